#include "tests/model_load.h"

#include <stdlib.h>

#include "tests/testlib.h"
#include "worker/weights/weights.h"

int tl_model_load(const char *file, int line, model *m, kn_ctx *ctx, const model_spec *spec,
                  int max_batch, const char *path, const char *exporter, tl_values_edit edit) {
    char err[1024];
    if (model_build(m, spec, err, sizeof err)) {
        tl_fail(file, line, "model_build: %s", err);
        return -1;
    }
    if (model_bind(m, ctx, max_batch, 1, err, sizeof err)) {
        tl_fail(file, line, "model_bind: %s", err);
        model_free(m);
        return -1;
    }
    weights_file w = {0};
    if (weights_read(path, &w, err, sizeof err)) {
        tl_fail(file, line, "weights_read: %s (run %s first)", err, exporter);
        model_free(m);
        return -1;
    }
    float *host = calloc(m->params.total_count, sizeof *host);
    int rc = -1;
    if (!host)
        tl_fail(file, line, "%s: out of memory for %zu values", path, m->params.total_count);
    else if ((rc = params_load(&m->params, host, &w, path, err, sizeof err)))
        tl_fail(file, line, "params_load: %s", err);
    if (!rc && edit) edit(&m->params, host);
    if (!rc &&
        kn_copy_to_device(ctx, model_values(m), host, m->params.total_count * sizeof *host)) {
        tl_fail(file, line, "%s: copy to the device: %s", path, kn_error(ctx));
        rc = -1;
    }
    free(host);
    weights_free(&w);
    if (rc) model_free(m);
    return rc;
}
