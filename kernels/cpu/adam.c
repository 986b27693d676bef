/* Fused Adam over every listed tensor of the parameter buffer, exactly torch.optim.Adam
 * (non-amsgrad, L2 weight decay added to the gradient). */
#include "kernels/cpu/cpu_internal.h"

#include "kernels/adam_rule.h"

#include <math.h>
#include <stdint.h>

int kn_cpu_adam_step(kn_cpu_ctx *ctx,
                     float *params,      // (total), slices updated in place
                     const float *grads, // (total)
                     float *m,           // (total), first moment
                     float *v,           // (total), second moment
                     const kn_adam_tensor *tensors, int n_tensors, const kn_adam_hparams *hp) {
    const char *what = "adam step";
    if (!params || !grads || !m || !v || !hp || (n_tensors > 0 && !tensors))
        return kn_fail(ctx, what, "NULL argument");
    kn_adam_consts k;
    char msg[KN_WHAT_LEN];
    if (kn_adam_prepare(hp, &k, msg, sizeof msg)) return kn_fail(ctx, what, "%s", msg);
    const float b1 = k.b1, b2 = k.b2, eps = k.eps, wd = k.weight_decay;
    const float one_minus_b1 = k.one_minus_b1, one_minus_b2 = k.one_minus_b2;
    const double bc1 = k.bias_correction1;
    const float bc2s = k.bias_correction2_sqrt;
    /* plans holding reordered copies of these weights must refresh them; the others not */
    size_t lo = SIZE_MAX, hi = 0;
    for (int t = 0; t < n_tensors; t++) {
        if (tensors[t].offset < lo) lo = tensors[t].offset;
        if (tensors[t].offset + tensors[t].count > hi) hi = tensors[t].offset + tensors[t].count;
    }
    if (hi > lo) kn_cpu_note_write(ctx, params + lo, (hi - lo) * sizeof *params);
        /* One parallel region for all tensors: a region per tensor would cost more than the
         * update for the many small BN vectors. */
#pragma omp parallel num_threads(ctx->threads)
    for (int t = 0; t < n_tensors; t++) {
        const float step_size = (float)(tensors[t].lr / bc1);
        float *p = params + tensors[t].offset, *mt = m + tensors[t].offset,
              *vt = v + tensors[t].offset;
        const float *g = grads + tensors[t].offset;
        const size_t count = tensors[t].count;
#pragma omp for simd schedule(static) nowait
        for (size_t i = 0; i < count; i++) {
            const float gi = wd != 0.0f ? g[i] + wd * p[i] : g[i];
            mt[i] = b1 * mt[i] + one_minus_b1 * gi;
            vt[i] = b2 * vt[i] + one_minus_b2 * (gi * gi);
            /* same operation order as PyTorch's (sqrt(v) / bc2_sqrt + eps) and addcdiv */
            const float denom = sqrtf(vt[i]) / bc2s + eps;
            p[i] -= step_size * (mt[i] / denom);
        }
    }
    return 0;
}
