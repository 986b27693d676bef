/* A model trained by a data-parallel group (model.h, worker/group.h): the gradient sum, and
 * keeping every rank's copy of the model the same. The buffers are the context's memory,
 * which MPI reads directly on the CPU backend: groups train on the CPU only (trial.c). */
#include <stdio.h>

#include "worker/models/model.h"

int model_sum_grads(model *m, const trial_group *g, char *err, size_t errlen) {
    if (!group_active(g)) return 0;
    /* one call over the span of the trainable tensors: the head alone in feature extraction */
    size_t lo = m->params.param_count, hi = 0;
    for (int i = 0; i < m->params.count; i++) {
        const param_tensor *p = &m->params.tensors[i];
        if (p->is_buffer || !p->trainable) continue;
        if (p->offset < lo) lo = p->offset;
        if (p->offset + p->count > hi) hi = p->offset + p->count;
    }
    return hi > lo ? group_sum_floats(g, model_grads(m) + lo, hi - lo, err, errlen) : 0;
}

int model_share_buffers(model *m, const trial_group *g, char *err, size_t errlen) {
    size_t count = m->params.total_count - m->params.param_count;
    return group_broadcast(g, model_values(m) + m->params.param_count, count * sizeof(float), err,
                           errlen);
}

int model_share_state(model *m, const trial_group *g, char *err, size_t errlen) {
    if (!group_active(g)) return 0;
    int64_t steps = model_adam_steps(m);
    size_t params = m->params.param_count * sizeof(float);
    if (group_broadcast(g, model_values(m), m->params.total_count * sizeof(float), err, errlen) ||
        group_broadcast(g, model_adam_m(m), params, err, errlen) ||
        group_broadcast(g, model_adam_v(m), params, err, errlen) ||
        group_broadcast(g, &steps, sizeof steps, err, errlen))
        return -1;
    model_set_adam_steps(m, steps);
    return 0;
}

int model_check_same(model *m, const trial_group *g, char *err, size_t errlen) {
    return group_check_same(g, model_values(m), m->params.total_count * sizeof(float),
                            "the model's parameters and buffers", err, errlen);
}
