/* Synthetic Flowers102: class-dependent flowers written in the published layout (real JPEGs,
 * real MATLAB v5 .mat files), so every test and the demo exercise the real loader. */
#ifndef TLSWEEP_SYNTH_H
#define TLSWEEP_SYNTH_H

#include <stddef.h>
#include <stdint.h>

#include "worker/data/image.h"

typedef struct {
    int classes;         /* labels 1..classes */
    int per_class;       /* images per class */
    int width, height;   /* every image's size */
    int quality;         /* JPEG quality */
    int trnid_per_class; /* the seed's split shape: 10 trnid + 10 valid per class, rest tstid */
    int valid_per_class;
    uint64_t seed;
} synth_options;

/* 102 classes x 80 images of 500x600, 10 + 10 per class in trnid / valid, quality 90. */
void synth_default_options(synth_options *o);

/* Draws image number INDEX of class LABEL (0-based) into OUT (pixels malloc'd): the class
 * fixes petal count, colours, size and petal shape; INDEX and the seed fix position, rotation,
 * scale, background clutter and noise. Returns -1 when out of memory. */
int synth_render(image_u8 *out, const synth_options *o, int label, uint64_t index);

/* Writes DIR/jpg/image_NNNNN.jpg, DIR/imagelabels.mat and DIR/setid.mat (creating DIR).
 * Images are in a seeded random class order, like the real set. */
int synth_flowers_write(const char *dir, const synth_options *o, char *err, size_t errlen);

/* Encodes RGB IMG as a JPEG file at PATH. */
int synth_write_jpeg(const char *path, const image_u8 *img, int quality, char *err, size_t errlen);

#endif
