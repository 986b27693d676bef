/* Batch normalization on cuDNN (legacy API, SPATIAL mode), NHWC.
 *
 * cuDNN's training forward updates the running statistics itself, as PyTorch does: the
 * exponential average factor is the momentum and running_var takes the unbiased batch
 * variance (PyTorch's CUDA BatchNorm is this same cuDNN call). cuDNN saves 1/sqrt(var + eps)
 * where kernels.h saves the biased variance, so a small kernel converts after the forward
 * and back before the backward (fp32 round trip, ~1e-7 relative). */
#include "kernels/cuda/cuda_internal.h"
#include "kernels/cuda/ops.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct kn_cuda_bn {
    kn_cuda_ctx *ctx;
    kn_bn_shape s;
    char what[KN_CUDA_WHAT_LEN];
    cudnnTensorDescriptor_t data, vec;
    float *invstd;                   /* (C) cuDNN's saved statistic */
    float *dgamma_sink, *dbeta_sink; /* (C) targets when the caller's dgamma/dbeta are NULL */
};

static const float one = 1.0f, zero = 0.0f;

kn_cuda_bn *kn_cuda_bn_create(kn_cuda_ctx *ctx, const kn_bn_shape *s) {
    char what[KN_CUDA_WHAT_LEN];
    snprintf(what, sizeof what, "batchnorm on NHWC %dx%dx%dx%d", s->n, s->h, s->w, s->c);
    if (s->n <= 0 || s->c <= 0 || s->h <= 0 || s->w <= 0) {
        kn_cuda_fail(ctx, what, "sizes must be positive");
        return NULL;
    }
    if (!(s->eps > 0)) {
        kn_cuda_fail(ctx, what, "eps must be > 0");
        return NULL;
    }
    kn_cuda_bn *p = kn_cuda_plan_new(ctx, sizeof *p, what);
    if (!p) return NULL;
    p->ctx = ctx;
    p->s = *s;
    memcpy(p->what, what, sizeof what);
    const size_t vec_bytes = (size_t)s->c * sizeof(float);
    if (kn_cuda_nhwc_desc(ctx, &p->data, s->n, s->c, s->h, s->w, what) ||
        DNN_CHECK(ctx, what, cudnnCreateTensorDescriptor(&p->vec)) ||
        DNN_CHECK(ctx, what,
                  cudnnDeriveBNTensorDescriptor(p->vec, p->data, CUDNN_BATCHNORM_SPATIAL)) ||
        !(p->invstd = kn_cuda_plan_alloc(ctx, vec_bytes, what)) ||
        !(p->dgamma_sink = kn_cuda_plan_alloc(ctx, vec_bytes, what)) ||
        !(p->dbeta_sink = kn_cuda_plan_alloc(ctx, vec_bytes, what))) {
        kn_cuda_bn_destroy(p);
        return NULL;
    }
    return p;
}

int kn_cuda_bn_forward_train(kn_cuda_bn *p,
                             float *out,          // (N, H, W, C)
                             float *save_mean,    // (C)
                             float *save_var,     // (C)
                             float *running_mean, // (C), updated in place
                             float *running_var,  // (C), updated in place
                             const float *inp,    // (N, H, W, C)
                             const float *gamma,  // (C)
                             const float *beta) { // (C)
    kn_cuda_ctx *ctx = p->ctx;
    if ((size_t)p->s.n * p->s.h * p->s.w < 2)
        return kn_cuda_fail(ctx, p->what, "training needs more than 1 value per channel");
    if (!running_mean || !running_var) return kn_cuda_fail(ctx, p->what, "NULL running statistics");
    if (!out || !save_mean || !save_var || !inp || !gamma || !beta)
        return kn_cuda_fail(ctx, p->what, "NULL tensor argument");
    return DNN_CHECK(ctx, p->what,
                     cudnnBatchNormalizationForwardTraining(
                         ctx->dnn, CUDNN_BATCHNORM_SPATIAL, &one, &zero, p->data, inp, p->data, out,
                         p->vec, gamma, beta, (double)p->s.momentum, running_mean, running_var,
                         (double)p->s.eps, save_mean, p->invstd)) ||
                   CU_CHECK(
                       ctx, p->what,
                       kn_cu_bn_invstd_to_var(ctx->stream, save_var, p->invstd, p->s.c, p->s.eps))
               ? -1
               : 0;
}

int kn_cuda_bn_forward_infer(kn_cuda_bn *p,
                             float *out,                 // (N, H, W, C)
                             const float *inp,           // (N, H, W, C)
                             const float *gamma,         // (C)
                             const float *beta,          // (C)
                             const float *running_mean,  // (C)
                             const float *running_var) { // (C)
    kn_cuda_ctx *ctx = p->ctx;
    if (!out || !inp || !gamma || !beta || !running_mean || !running_var)
        return kn_cuda_fail(ctx, p->what, "NULL tensor argument");
    return DNN_CHECK(ctx, p->what,
                     cudnnBatchNormalizationForwardInference(
                         ctx->dnn, CUDNN_BATCHNORM_SPATIAL, &one, &zero, p->data, inp, p->data, out,
                         p->vec, gamma, beta, running_mean, running_var, (double)p->s.eps));
}

int kn_cuda_bn_backward(kn_cuda_bn *p,
                        float *dinp,            // (N, H, W, C)
                        float *dgamma,          // (C) or NULL
                        float *dbeta,           // (C) or NULL
                        const float *dout,      // (N, H, W, C)
                        const float *inp,       // (N, H, W, C)
                        const float *save_mean, // (C)
                        const float *save_var,  // (C)
                        const float *gamma) {   // (C)
    kn_cuda_ctx *ctx = p->ctx;
    if (!dinp || !dout || !inp || !save_mean || !save_var || !gamma)
        return kn_cuda_fail(ctx, p->what, "NULL tensor argument");
    /* Frozen BN parameters still need dinp; their gradients go to plan-owned sinks. */
    return CU_CHECK(ctx, p->what,
                    kn_cu_bn_var_to_invstd(ctx->stream, p->invstd, save_var, p->s.c, p->s.eps)) ||
                   DNN_CHECK(ctx, p->what,
                             cudnnBatchNormalizationBackward(
                                 ctx->dnn, CUDNN_BATCHNORM_SPATIAL, &one, &zero, &one, &zero,
                                 p->data, inp, p->data, dout, p->data, dinp, p->vec, gamma,
                                 dgamma ? dgamma : p->dgamma_sink, dbeta ? dbeta : p->dbeta_sink,
                                 (double)p->s.eps, save_mean, p->invstd))
               ? -1
               : 0;
}

/* Synchronized batch norm (data-parallel trials): not built on CUDA yet. Each call fails with
 * one message, so a data-parallel trial on a GPU fails at its first BN layer with the reason
 * instead of training with per-shard statistics. */
#define KN_SYNC_BN_REFUSED                                                                         \
    "synchronized batch norm (data-parallel trials) is CPU-only in this version"

static int sync_bn_refused(kn_cuda_bn *p) {
    return kn_cuda_fail(p->ctx, p->what, KN_SYNC_BN_REFUSED);
}

int kn_cuda_bn_update_running(kn_cuda_ctx *ctx, float *running_mean, float *running_var,
                              const double *mean, const double *var, double count, int c,
                              float momentum) {
    (void)running_mean, (void)running_var, (void)mean, (void)var, (void)count, (void)c;
    (void)momentum;
    return kn_cuda_fail(ctx, "batchnorm running statistics", KN_SYNC_BN_REFUSED);
}

int kn_cuda_bn_shard_stats(kn_cuda_bn *p, double *mean, double *m2, const float *inp) {
    (void)mean, (void)m2, (void)inp;
    return sync_bn_refused(p);
}

int kn_cuda_bn_forward_stats(kn_cuda_bn *p, float *out, float *save_mean, float *save_var,
                             float *running_mean, float *running_var, const double *mean,
                             const double *var, double count, const float *inp, const float *gamma,
                             const float *beta) {
    (void)out, (void)save_mean, (void)save_var, (void)running_mean, (void)running_var;
    (void)mean, (void)var, (void)count, (void)inp, (void)gamma, (void)beta;
    return sync_bn_refused(p);
}

int kn_cuda_bn_shard_backward_sums(kn_cuda_bn *p, double *sum_dy, double *sum_dy_xhat,
                                   float *dgamma, float *dbeta, const float *dout, const float *inp,
                                   const float *save_mean, const float *save_var) {
    (void)sum_dy, (void)sum_dy_xhat, (void)dgamma, (void)dbeta, (void)dout, (void)inp;
    (void)save_mean, (void)save_var;
    return sync_bn_refused(p);
}

int kn_cuda_bn_backward_stats(kn_cuda_bn *p, float *dinp, const float *dout, const float *inp,
                              const float *save_mean, const float *save_var, const float *gamma,
                              const double *sum_dy, const double *sum_dy_xhat, double count) {
    (void)dinp, (void)dout, (void)inp, (void)save_mean, (void)save_var, (void)gamma;
    (void)sum_dy, (void)sum_dy_xhat, (void)count;
    return sync_bn_refused(p);
}

void kn_cuda_bn_destroy(kn_cuda_bn *p) {
    if (!p) return;
    if (p->data) cudnnDestroyTensorDescriptor(p->data);
    if (p->vec) cudnnDestroyTensorDescriptor(p->vec);
    cudaFree(p->invstd);
    cudaFree(p->dgamma_sink);
    cudaFree(p->dbeta_sink);
    free(p);
}
