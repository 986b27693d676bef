/* From a loaded torch.save pickle to named fp32 tensors, shared by the zip and the legacy
 * container: pth_plan_build checks every tensor view against its storage and allocates the
 * outputs; the container then hands over each storage's bytes once, and pth_plan_fill
 * gathers every tensor that views that storage. */
#ifndef TLSWEEP_WEIGHTS_PTH_TENSORS_H
#define TLSWEEP_WEIGHTS_PTH_TENSORS_H

#include "worker/weights/pickle.h"

/* One storage that output tensors read, with the tensors that read it. */
typedef struct {
    const char *key;
    weights_dtype dtype;
    int64_t numel;
    size_t first, count; /* range of pth_plan.order */
} pth_storage_use;

typedef struct {
    const pickle_tensor **tensors; /* per output tensor, parallel to out->tensors */
    size_t *order;                 /* output tensor indices, grouped by storage key */
    pth_storage_use *uses;         /* sorted by key */
    size_t nuses;
} pth_plan;

/* Finds the state dict in ROOT (itself, or one level down under "state_dict" or "model"),
 * validates it against FILE_SIZE and fills OUT with names, shapes and allocated data. */
int pth_plan_build(const pickle_value *root, size_t file_size, pth_plan *plan, weights_file *out,
                   const weights_err *e);
/* Gathers every tensor of USE from BYTES (the storage, at least numel * element size bytes). */
void pth_plan_fill(const pth_plan *plan, const pth_storage_use *use, const unsigned char *bytes,
                   weights_file *out);
void pth_plan_free(pth_plan *plan);

#endif
