/* The parameter table: every parameter and buffer of a model by its torchvision state_dict
 * name, in one contiguous buffer (parameters first, then buffers such as BN running stats).
 * Gradients and Adam moments are one buffer each, covering the parameters only. */
#ifndef TLSWEEP_PARAMS_H
#define TLSWEEP_PARAMS_H

#include <stddef.h>
#include <stdint.h>

#include "worker/weights/weights.h"

#define PARAM_NAME_MAX 64
#define PARAM_MAX_DIMS 4

typedef struct {
    char name[PARAM_NAME_MAX];
    int ndim;
    int64_t shape[PARAM_MAX_DIMS];
    size_t count;  /* elements */
    size_t offset; /* elements into the table's buffers (grads/m/v use the same offsets) */
    int group;     /* layer group index (model_groups), -1 for none */
    int is_buffer; /* running statistics: saved and loaded, never trained */
    int trainable; /* set per phase by the trial runner */
    int is_head;   /* part of the replaced classification head */
} param_tensor;

typedef struct {
    param_tensor *tensors;
    int count, capacity;
    size_t param_count; /* elements of all parameters: the prefix [0, param_count) */
    size_t total_count; /* parameters and buffers */
} param_table;

/* Registers a tensor in state_dict order; returns its index or -1 when out of memory or the
 * name/shape does not fit. Offsets are assigned by params_finalize. */
int params_add(param_table *t, const char *name, int ndim, const int64_t *shape, int group,
               int is_buffer);
/* Lays the tensors out: parameters first (in registration order), then buffers. */
void params_finalize(param_table *t);
int params_find(const param_table *t, const char *name);
void params_free(param_table *t);
size_t params_count_trainable(const param_table *t);

/* Copies the tensors of W into VALUES (host memory laid out by T) by name. Tensors of the
 * replaced head (is_head) are skipped when W's shape for them differs, as are
 * num_batches_tracked counters. Every missing, unexpected or wrong-shape tensor is reported by
 * name in one message ("FILE: missing layer1.0.conv1.weight; wrong shape ..."); returns -1
 * then and leaves VALUES partly written. */
int params_load(const param_table *t, float *values, const weights_file *w, const char *path,
                char *err, size_t errlen);

#endif
