/* Fused Adam over every listed tensor of the parameter buffer, exactly torch.optim.Adam
 * (non-amsgrad, L2 weight decay added to the gradient). */
#include "kernels/cpu/cpu_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

/* The decimal a float hyperparameter was written as (0.999f -> 0.999), i.e. the shortest
 * decimal that rounds to it: PyTorch computes 1 - beta from that double, and 1 - 0.999f in
 * float or double is 5e-5 or 1e-5 off relative. */
static double decimal_of(float x) {
    char buf[32];
    for (int digits = 1; digits <= 9; digits++) {
        snprintf(buf, sizeof buf, "%.*g", digits, (double)x);
        if (strtof(buf, NULL) == x) return strtod(buf, NULL);
    }
    return (double)x;
}

int kn_adam_step(kn_ctx *ctx,
                 float *params,      // (total), slices updated in place
                 const float *grads, // (total)
                 float *m,           // (total), first moment
                 float *v,           // (total), second moment
                 const kn_adam_tensor *tensors, int n_tensors, const kn_adam_hparams *hp) {
    const char *what = "adam step";
    if (!params || !grads || !m || !v || !hp || (n_tensors > 0 && !tensors))
        return kn_fail(ctx, what, "NULL argument");
    if (hp->step < 1) return kn_fail(ctx, what, "step %lld must be >= 1", (long long)hp->step);
    if (!(hp->beta1 >= 0 && hp->beta1 < 1 && hp->beta2 >= 0 && hp->beta2 < 1))
        return kn_fail(ctx, what, "betas (%g, %g) must be in [0, 1)", (double)hp->beta1,
                       (double)hp->beta2);
    const float b1 = hp->beta1, b2 = hp->beta2, eps = hp->eps, wd = hp->weight_decay;
    const double beta1 = decimal_of(hp->beta1), beta2 = decimal_of(hp->beta2);
    const float one_minus_b1 = (float)(1.0 - beta1), one_minus_b2 = (float)(1.0 - beta2);
    const double bc1 = 1.0 - pow(beta1, (double)hp->step);
    const double bc2_sqrt = sqrt(1.0 - pow(beta2, (double)hp->step));
    const float bc2s = (float)bc2_sqrt;
    ctx->weights_epoch++; /* plans holding reordered weights must refresh them */
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
