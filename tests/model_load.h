/* A model loaded from a PyTorch checkpoint, as the conformance tests start theirs
 * (tests/conformance/test_models.c, test_ddp.c). Apart from testlib.c because it needs the
 * model code, which the standalone GPU build (make gpu-standalone) does not link. */
#ifndef TLSWEEP_TESTS_MODEL_LOAD_H
#define TLSWEEP_TESTS_MODEL_LOAD_H

#include "kernels/kernels.h"
#include "worker/models/model.h"

/* Changes the values read from the checkpoint (host memory laid out by T) before they go to
 * the device. */
typedef void (*tl_values_edit)(const param_table *t, float *values);

/* Builds SPEC's model into M, binds it to CTX for batches up to MAX_BATCH (with gradients)
 * and loads the weights file PATH into it, EDIT (when not NULL) changing the values on the
 * host first. Returns 0; or -1 after recording the failure at FILE:LINE with M freed: every
 * message names PATH, and one that cannot read it names EXPORTER, the script that writes it. */
int tl_model_load(const char *file, int line, model *m, kn_ctx *ctx, const model_spec *spec,
                  int max_batch, const char *path, const char *exporter, tl_values_edit edit);
#define TL_MODEL_LOAD(m, ctx, spec, max_batch, path, exporter, edit)                               \
    tl_model_load(__FILE__, __LINE__, m, ctx, spec, max_batch, path, exporter, edit)

#endif
