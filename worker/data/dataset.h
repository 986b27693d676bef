/* A Flowers102-layout dataset on disk: jpg/image_NNNNN.jpg, imagelabels.mat (`labels`, one
 * label per image, 1..K) and setid.mat (one vector of 1-based image ids per split name).
 * Opening reads the two .mat files with matio and resolves the chosen splits into paths and
 * 0-based labels; images are decoded later, by the loader. */
#ifndef TLSWEEP_DATASET_H
#define TLSWEEP_DATASET_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    char **paths;    /* (count) full paths of the JPEG files, in split order */
    int32_t *labels; /* (count) 0-based class of each image */
    int count;
} dataset_split;

typedef struct {
    dataset_split train; /* the concatenation of the train split names, in the order given */
    dataset_split val;
    int num_classes;  /* the largest label in imagelabels.mat (labels are 1..num_classes) */
    int num_images;   /* length of the label vector */
    int skip_corrupt; /* the loader skips (and counts) unreadable images instead of failing */
    int missing;      /* images listed in a split whose file is absent (skipped: skip_corrupt) */
} dataset;

/* Opens ROOT with the given split names (e.g. {"tstid"} and {"trnid", "valid"}). A missing
 * file, a label vector of the wrong shape or with non-integer or non-positive values, an
 * unknown split name or an id out of range is an error: returns -1 with one message naming
 * the file and the problem in err. A missing JPEG is an error too, unless skip_corrupt, in
 * which case it is left out of its split, counted in `missing` and warned about on stderr. */
int dataset_open(dataset *ds, const char *root, const char *const *train_splits, int n_train,
                 const char *const *val_splits, int n_val, int skip_corrupt, char *err,
                 size_t errlen);
void dataset_free(dataset *ds);

/* The path of image ID (1-based) under ROOT in the published naming: jpg/image_00001.jpg. */
void dataset_image_path(char *out, size_t outlen, const char *root, int64_t id);

#endif
