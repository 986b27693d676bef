/* A model trained by a data-parallel group (model.h, worker/group.h): the gradient sum, and
 * keeping every rank's copy of the model the same. On the CPU the model's buffers are host
 * memory and move over MPI; on a GPU they go through the group's NCCL communicator, queued on
 * the context's stream. */
#include <stdio.h>
#include <stdlib.h>

#include "worker/models/model.h"

static int kernel_failed(model *m, char *err, size_t errlen) {
    snprintf(err, errlen, "%s", kn_error(model_ctx(m)));
    return -1;
}

/* bytes of the model's memory at buf, from the voice to every rank */
static int share(model *m, void *buf, size_t bytes, char *err, size_t errlen) {
    kn_comm *comm = model_comm(m);
    if (comm) return kn_comm_broadcast(comm, buf, bytes) ? kernel_failed(m, err, errlen) : 0;
    if (group_broadcast(model_group(m), buf, bytes, err, errlen)) return -1;
    kn_written(model_ctx(m), buf, bytes); /* MPI wrote it, not a kernel */
    return 0;
}

int model_sum_grads(model *m, char *err, size_t errlen) {
    const trial_group *g = model_group(m);
    if (!g) return 0;
    /* one call over the span of the trainable tensors: the head alone in feature extraction */
    size_t lo = m->params.param_count, hi = 0;
    for (int i = 0; i < m->params.count; i++) {
        const param_tensor *p = &m->params.tensors[i];
        if (p->is_buffer || !p->trainable) continue;
        if (p->offset < lo) lo = p->offset;
        if (p->offset + p->count > hi) hi = p->offset + p->count;
    }
    if (hi <= lo) return 0;
    float *grads = model_grads(m) + lo;
    kn_comm *comm = model_comm(m);
    if (!comm) return group_sum_floats(g, grads, hi - lo, err, errlen);
    return kn_comm_sum(comm, grads, hi - lo) ? kernel_failed(m, err, errlen) : 0;
}

int model_share_buffers(model *m, char *err, size_t errlen) {
    if (!model_group(m)) return 0;
    size_t count = m->params.total_count - m->params.param_count;
    return share(m, model_values(m) + m->params.param_count, count * sizeof(float), err, errlen);
}

int model_share_state(model *m, char *err, size_t errlen) {
    const trial_group *g = model_group(m);
    if (!g) return 0;
    int64_t steps = model_adam_steps(m);
    size_t params = m->params.param_count * sizeof(float);
    if (share(m, model_values(m), m->params.total_count * sizeof(float), err, errlen) ||
        share(m, model_adam_m(m), params, err, errlen) ||
        share(m, model_adam_v(m), params, err, errlen) ||
        group_broadcast(g, &steps, sizeof steps, err, errlen))
        return -1;
    model_set_adam_steps(m, steps);
    return 0;
}

int model_check_same(model *m, char *err, size_t errlen) {
    const trial_group *g = model_group(m);
    if (!g) return 0;
    const char *what = "the model's parameters and buffers";
    size_t bytes = m->params.total_count * sizeof(float);
    if (!model_comm(m)) return group_check_same(g, model_values(m), bytes, what, err, errlen);
    void *host = malloc(bytes); /* a GPU's: compared from a host copy */
    int rc = host ? 0 : -1;
    if (!host) snprintf(err, errlen, "out of memory for a copy of the model");
    if (!rc && kn_copy_to_host(model_ctx(m), host, model_values(m), bytes))
        rc = kernel_failed(m, err, errlen);
    /* every rank takes part, even one whose copy failed, so that none waits for good */
    int same = group_check_same(g, host ? host : (void *)"", host ? bytes : 0, what, err, errlen);
    free(host);
    return rc ? rc : same;
}
