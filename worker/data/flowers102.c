/* Flowers102 index: the .mat files through matio, the splits resolved into paths and labels. */
#include "worker/data/dataset.h"

#include <inttypes.h>
#include <math.h>
#include <matio.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "worker/data/mat_check.h"
#include "worker/paths.h"
#include "worker/trial.h"

void dataset_image_path(char *out, size_t outlen, const char *root, int64_t id) {
    snprintf(out, outlen, "%s/jpg/image_%05" PRId64 ".jpg", root, id);
}

/* Element I of a numeric matio variable as a double (every class the files may use). */
static int mat_element(const matvar_t *v, size_t i, double *out) {
    switch (v->class_type) {
    case MAT_C_DOUBLE:
        *out = ((const double *)v->data)[i];
        return 0;
    case MAT_C_SINGLE:
        *out = ((const float *)v->data)[i];
        return 0;
    case MAT_C_INT8:
        *out = ((const int8_t *)v->data)[i];
        return 0;
    case MAT_C_UINT8:
        *out = ((const uint8_t *)v->data)[i];
        return 0;
    case MAT_C_INT16:
        *out = ((const int16_t *)v->data)[i];
        return 0;
    case MAT_C_UINT16:
        *out = ((const uint16_t *)v->data)[i];
        return 0;
    case MAT_C_INT32:
        *out = ((const int32_t *)v->data)[i];
        return 0;
    case MAT_C_UINT32:
        *out = ((const uint32_t *)v->data)[i];
        return 0;
    case MAT_C_INT64:
        *out = (double)((const int64_t *)v->data)[i];
        return 0;
    case MAT_C_UINT64:
        *out = (double)((const uint64_t *)v->data)[i];
        return 0;
    default:
        return -1;
    }
}

/* Reads variable NAME of the open file PATH as a vector (1xN or Nx1) of positive integers.
 * Returns the malloc'd values and their count, or -1 with a message. */
static int mat_read_ids(mat_t *mat, const char *path, const char *name, int64_t **out, size_t *n,
                        char *err, size_t errlen) {
    matvar_t *v = Mat_VarRead(mat, name);
    if (!v) {
        snprintf(err, errlen, "%s: no variable '%s'", path, name);
        return -1;
    }
    int rc = -1;
    size_t count = v->rank == 2 ? v->dims[0] * v->dims[1] : 0;
    if (v->rank != 2 || (v->dims[0] != 1 && v->dims[1] != 1) || count == 0) {
        snprintf(err, errlen, "%s: '%s' has shape %zux%zu%s, expected a 1xN or Nx1 vector", path,
                 name, v->rank >= 1 ? v->dims[0] : 0, v->rank >= 2 ? v->dims[1] : 0,
                 v->rank > 2 ? "x..." : "");
        goto done;
    }
    if (v->isComplex || !v->data) {
        snprintf(err, errlen, "%s: '%s' is not a real numeric array", path, name);
        goto done;
    }
    int64_t *ids = malloc(count * sizeof *ids);
    if (!ids) {
        snprintf(err, errlen, "%s: out of memory reading '%s'", path, name);
        goto done;
    }
    for (size_t i = 0; i < count; i++) {
        double x;
        if (mat_element(v, i, &x) != 0) {
            snprintf(err, errlen, "%s: '%s' is not a numeric array (matio class %d)", path, name,
                     (int)v->class_type);
            free(ids);
            goto done;
        }
        if (!(x >= 1 && x <= 1e12) || x != floor(x)) {
            snprintf(err, errlen, "%s: '%s'[%zu] = %g is not a positive integer", path, name, i, x);
            free(ids);
            goto done;
        }
        ids[i] = (int64_t)x;
    }
    *out = ids;
    *n = count;
    rc = 0;
done:
    Mat_VarFree(v);
    return rc;
}

static mat_t *mat_open(const char *path, char *err, size_t errlen) {
    if (access(path, R_OK) != 0) {
        char tried[TRIAL_PATH_MAX + 16];
        snprintf(err, errlen, "%s: missing or unreadable%s", path,
                 path_tried(path, tried, sizeof tried));
        return NULL;
    }
    /* matio trusts the sizes in the file; refuse hostile ones before it allocates */
    if (mat_check_file(path, err, errlen) != 0) return NULL;
    mat_t *mat = Mat_Open(path, MAT_ACC_RDONLY);
    if (!mat) snprintf(err, errlen, "%s: not a MATLAB .mat file matio can read", path);
    return mat;
}

static void split_free(dataset_split *s) {
    for (int i = 0; i < s->count; i++)
        free(s->paths[i]);
    free(s->paths);
    free(s->labels);
    memset(s, 0, sizeof *s);
}

/* Which training split holds each image id (0: none), so that validation can refuse them. */
typedef struct {
    const char *const *train_splits;
    uint8_t *train_split_of; /* [num_images + 1]: 1 + the index in train_splits */
} split_owners;

/* Appends the images of split NAME (ids from setid.mat) to OUT: the training set's when
 * train_index >= 0 (recorded in owners), else the validation set's (checked against them). */
static int split_append(dataset *ds, dataset_split *out, mat_t *setid, const char *setid_path,
                        const char *name, int train_index, split_owners *owners, const char *root,
                        const int64_t *labels, char *err, size_t errlen) {
    int64_t *ids = NULL;
    size_t n = 0;
    if (mat_read_ids(setid, setid_path, name, &ids, &n, err, errlen) != 0) return -1;
    /* a split names each image at most once, so it is never longer than the label vector; the
     * bound also keeps a hostile file from making millions of path strings */
    if (n > (size_t)ds->num_images) {
        snprintf(err, errlen,
                 "%s: '%s' has %zu image ids, more than the %d images of imagelabels.mat",
                 setid_path, name, n, ds->num_images);
        free(ids);
        return -1;
    }
    char **paths = realloc(out->paths, (out->count + n) * sizeof *paths);
    if (paths) out->paths = paths;
    int32_t *lab = realloc(out->labels, (out->count + n) * sizeof *lab);
    if (lab) out->labels = lab;
    if (!paths || !lab) {
        snprintf(err, errlen, "%s: out of memory for split '%s'", setid_path, name);
        free(ids);
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        if (ids[i] > ds->num_images) {
            snprintf(err, errlen,
                     "%s: '%s'[%zu] = image id %" PRId64
                     " is out of range (imagelabels.mat has %d images)",
                     setid_path, name, i, ids[i], ds->num_images);
            free(ids);
            return -1;
        }
        uint8_t *owner = &owners->train_split_of[ids[i]];
        if (train_index >= 0) {
            *owner = (uint8_t)(train_index + 1);
        } else if (*owner) {
            snprintf(err, errlen,
                     "%s: image %" PRId64 " is in validation split '%s' and in training split "
                     "'%s': validation would measure images the model trained on",
                     setid_path, ids[i], name, owners->train_splits[*owner - 1]);
            free(ids);
            return -1;
        }
        char path[4096];
        dataset_image_path(path, sizeof path, root, ids[i]);
        if (access(path, R_OK) != 0) {
            if (!ds->skip_corrupt) {
                snprintf(err, errlen, "%s: missing or unreadable (split '%s')", path, name);
                free(ids);
                return -1;
            }
            fprintf(stderr, "tlsweep: warning: %s: missing, skipped (skip_corrupt)\n", path);
            ds->missing++;
            continue;
        }
        char *copy = strdup(path);
        if (!copy) {
            snprintf(err, errlen, "%s: out of memory", path);
            free(ids);
            return -1;
        }
        out->paths[out->count] = copy;
        out->labels[out->count] = (int32_t)(labels[ids[i] - 1] - 1);
        out->count++;
    }
    free(ids);
    return 0;
}

/* The head gets one output per label value, so the labels must be 1..K with every class
 * present: a stray large label would silently widen the head (a label of 999 among 1..102
 * makes 999 outputs). */
static int check_classes(const int64_t *labels, size_t n, int64_t max_label, const char *path,
                         char *err, size_t errlen) {
    size_t at_max = 0;
    while (labels[at_max] != max_label)
        at_max++;
    if ((size_t)max_label > n) {
        snprintf(err, errlen,
                 "%s: label %" PRId64 " (image %zu) is larger than the number of images (%zu); "
                 "labels must run 1..K with every class present",
                 path, max_label, at_max + 1, n);
        return -1;
    }
    uint8_t *seen = calloc((size_t)max_label + 1, 1);
    if (!seen) {
        snprintf(err, errlen, "%s: out of memory", path);
        return -1;
    }
    for (size_t i = 0; i < n; i++)
        seen[labels[i]] = 1;
    int64_t missing = 0;
    for (int64_t k = 1; k <= max_label && !missing; k++)
        if (!seen[k]) missing = k;
    free(seen);
    if (missing) {
        snprintf(err, errlen,
                 "%s: no image has label %" PRId64 ", but image %zu has label %" PRId64
                 "; labels must run 1..K with every class present",
                 path, missing, at_max + 1, max_label);
        return -1;
    }
    return 0;
}

int dataset_open(dataset *ds, const char *root, const char *const *train_splits, int n_train,
                 const char *const *val_splits, int n_val, int skip_corrupt, char *err,
                 size_t errlen) {
    memset(ds, 0, sizeof *ds);
    ds->skip_corrupt = skip_corrupt;
    char labels_path[4096], setid_path[4096];
    snprintf(labels_path, sizeof labels_path, "%s/imagelabels.mat", root);
    snprintf(setid_path, sizeof setid_path, "%s/setid.mat", root);

    mat_t *mat = mat_open(labels_path, err, errlen);
    if (!mat) return -1;
    int64_t *labels = NULL;
    size_t n_labels = 0;
    int rc = mat_read_ids(mat, labels_path, "labels", &labels, &n_labels, err, errlen);
    Mat_Close(mat);
    if (rc != 0) return -1;
    if (n_labels > INT32_MAX) {
        snprintf(err, errlen, "%s: %zu labels is too many", labels_path, n_labels);
        free(labels);
        return -1;
    }
    ds->num_images = (int)n_labels;
    int64_t max_label = 0;
    for (size_t i = 0; i < n_labels; i++)
        if (labels[i] > max_label) max_label = labels[i];
    if (max_label > INT32_MAX) {
        snprintf(err, errlen, "%s: label %" PRId64 " is too large", labels_path, max_label);
        free(labels);
        return -1;
    }
    ds->num_classes = (int)max_label;
    if (check_classes(labels, n_labels, max_label, labels_path, err, errlen)) {
        free(labels);
        return -1;
    }

    mat_t *setid = mat_open(setid_path, err, errlen);
    if (!setid) {
        free(labels);
        return -1;
    }
    split_owners owners = {train_splits, calloc(n_labels + 1, 1)};
    rc = owners.train_split_of ? 0 : -1;
    if (rc) snprintf(err, errlen, "%s: out of memory", setid_path);
    for (int i = 0; i < n_train && rc == 0; i++)
        rc = split_append(ds, &ds->train, setid, setid_path, train_splits[i], i, &owners, root,
                          labels, err, errlen);
    for (int i = 0; i < n_val && rc == 0; i++)
        rc = split_append(ds, &ds->val, setid, setid_path, val_splits[i], -1, &owners, root, labels,
                          err, errlen);
    Mat_Close(setid);
    free(owners.train_split_of);
    free(labels);
    if (rc != 0) {
        dataset_free(ds);
        return -1;
    }
    return 0;
}

void dataset_free(dataset *ds) {
    split_free(&ds->train);
    split_free(&ds->val);
}
