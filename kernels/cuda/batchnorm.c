/* Batch normalization on cuDNN (legacy API, SPATIAL mode), NHWC.
 *
 * cuDNN's training forward updates the running statistics itself, as PyTorch does: the
 * exponential average factor is the momentum and running_var takes the unbiased batch
 * variance (PyTorch's CUDA BatchNorm is this same cuDNN call). cuDNN saves 1/sqrt(var + eps)
 * where kernels.h saves the biased variance, so a small kernel converts after the forward
 * and back before the backward (fp32 round trip, ~1e-7 relative).
 *
 * Synchronized batch norm (data-parallel trials) is the backend's own kernels (ops.cu), not
 * cuDNN: its statistics come from other ranks and cross the host in fp64. */
#include "kernels/bn_stats.h"
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
    /* Synchronized calls' device scratch, made by the first one: fp64 partials, then (2, C)
     * results on their way to the host, then (2, C) host vectors uploaded; fp32 (3, C)
     * per-channel coefficients. */
    double *sync_sums;
    float *sync_coefs;
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

/* ---- synchronized batch norm (kernels.h) -------------------------------------------------
 * Reductions run on the device in fp64 in an order fixed by the shape (ops.cu), so a rerun
 * gives the same bits; the fp64 vectors cross to and from the host on the context's stream.
 * Host-to-device copies are from pageable memory, which cudaMemcpyAsync has read on return
 * (as kn_cuda_adam_step relies on), so the caller may reuse its vectors at once. */

static size_t shard_rows(const kn_cuda_bn *p) {
    return (size_t)p->s.n * p->s.h * p->s.w;
}

static int sync_scratch(kn_cuda_bn *p) {
    const size_t c = (size_t)p->s.c;
    const size_t doubles = kn_cu_bn_partials_count(shard_rows(p), p->s.c) + 4 * c;
    if (!p->sync_sums &&
        !(p->sync_sums = kn_cuda_plan_alloc(p->ctx, doubles * sizeof(double), p->what)))
        return -1;
    if (!p->sync_coefs &&
        !(p->sync_coefs = kn_cuda_plan_alloc(p->ctx, 3 * c * sizeof(float), p->what)))
        return -1;
    return 0;
}

/* The (2, C) results and the (2, C) upload area inside sync_sums. */
static double *sync_results(const kn_cuda_bn *p) {
    return p->sync_sums + kn_cu_bn_partials_count(shard_rows(p), p->s.c);
}
static double *sync_uploads(const kn_cuda_bn *p) {
    return sync_results(p) + 2 * (size_t)p->s.c;
}

/* Two host (C) vectors to dev (2, C), queued on the stream. */
static int upload_pair(kn_cuda_ctx *ctx, double *dev, const double *a, const double *b, int c,
                       const char *what) {
    const size_t bytes = (size_t)c * sizeof(double);
    return CU_CHECK(ctx, what,
                    cudaMemcpyAsync(dev, a, bytes, cudaMemcpyHostToDevice, ctx->stream)) ||
                   CU_CHECK(ctx, what,
                            cudaMemcpyAsync(dev + c, b, bytes, cudaMemcpyHostToDevice, ctx->stream))
               ? -1
               : 0;
}

/* The plan's (2, C) results to host vectors a and b, waiting for the stream. */
static int download_results(kn_cuda_bn *p, double *a, double *b) {
    kn_cuda_ctx *ctx = p->ctx;
    const size_t bytes = (size_t)p->s.c * sizeof(double);
    const double *dev = sync_results(p);
    return CU_CHECK(ctx, p->what,
                    cudaMemcpyAsync(a, dev, bytes, cudaMemcpyDeviceToHost, ctx->stream)) ||
                   CU_CHECK(ctx, p->what,
                            cudaMemcpyAsync(b, dev + p->s.c, bytes, cudaMemcpyDeviceToHost,
                                            ctx->stream)) ||
                   CU_CHECK(ctx, p->what, cudaStreamSynchronize(ctx->stream))
               ? -1
               : 0;
}

int kn_cuda_bn_update_running(kn_cuda_ctx *ctx,
                              float *running_mean, // (C), updated in place
                              float *running_var,  // (C), updated in place
                              const double *mean,  // (C) host, whole batch
                              const double *var,   // (C) host, whole batch, biased
                              double count,        // values per channel in the whole batch
                              int c, float momentum) {
    const char *what = "batchnorm running statistics";
    char msg[KN_CUDA_WHAT_LEN];
    if (kn_bn_count_check(count, 0, 1, msg, sizeof msg)) return kn_cuda_fail(ctx, what, "%s", msg);
    if (c <= 0) return kn_cuda_fail(ctx, what, "C %d must be positive", c);
    if (!running_mean || !running_var || !mean || !var)
        return kn_cuda_fail(ctx, what, "NULL tensor argument");
    /* no plan here: the context's table holds the uploaded vectors */
    if (kn_cuda_reserve(ctx, &ctx->table, &ctx->table_bytes, 2 * (size_t)c * sizeof(double), what))
        return -1;
    double *dev = ctx->table;
    return upload_pair(ctx, dev, mean, var, c, what) ||
                   CU_CHECK(ctx, what,
                            kn_cu_bn_update_running(ctx->stream, running_mean, running_var, dev,
                                                    dev + c, count, c, momentum))
               ? -1
               : 0;
}

int kn_cuda_bn_shard_stats(kn_cuda_bn *p,
                           double *mean,       // (C) host
                           double *m2,         // (C) host
                           const float *inp) { // (N, H, W, C)
    if (!mean || !m2 || !inp) return kn_cuda_fail(p->ctx, p->what, "NULL tensor argument");
    if (sync_scratch(p)) return -1;
    double *res = sync_results(p);
    return CU_CHECK(p->ctx, p->what,
                    kn_cu_bn_shard_stats(p->ctx->stream, res, res + p->s.c, p->sync_sums, inp,
                                         shard_rows(p), p->s.c)) ||
                   download_results(p, mean, m2)
               ? -1
               : 0;
}

int kn_cuda_bn_forward_stats(kn_cuda_bn *p,
                             float *out,          // (N, H, W, C)
                             float *save_mean,    // (C)
                             float *save_var,     // (C)
                             float *running_mean, // (C), updated in place
                             float *running_var,  // (C), updated in place
                             const double *mean,  // (C) host, whole batch
                             const double *var,   // (C) host, whole batch, biased
                             double count,        // values per channel in the whole batch
                             const float *inp,    // (N, H, W, C)
                             const float *gamma,  // (C)
                             const float *beta) { // (C)
    kn_cuda_ctx *ctx = p->ctx;
    const size_t rows = shard_rows(p);
    char msg[KN_CUDA_WHAT_LEN];
    if (kn_bn_count_check(count, rows, 1, msg, sizeof msg))
        return kn_cuda_fail(ctx, p->what, "%s", msg);
    if (!running_mean || !running_var) return kn_cuda_fail(ctx, p->what, "NULL running statistics");
    if (!out || !save_mean || !save_var || !mean || !var || !inp || !gamma || !beta)
        return kn_cuda_fail(ctx, p->what, "NULL tensor argument");
    for (int ch = 0; ch < p->s.c; ch++)
        if (!(var[ch] >= 0))
            return kn_cuda_fail(ctx, p->what, "channel %d: variance %g is not >= 0", ch, var[ch]);
    if (sync_scratch(p)) return -1;
    double *dev = sync_uploads(p);
    return upload_pair(ctx, dev, mean, var, p->s.c, p->what) ||
                   CU_CHECK(ctx, p->what,
                            kn_cu_bn_forward_stats(ctx->stream, out, save_mean, save_var,
                                                   running_mean, running_var, p->sync_coefs, dev,
                                                   dev + p->s.c, count, inp, gamma, beta, rows,
                                                   p->s.c, p->s.eps, p->s.momentum))
               ? -1
               : 0;
}

int kn_cuda_bn_shard_backward_sums(kn_cuda_bn *p,
                                   double *sum_dy,          // (C) host
                                   double *sum_dy_xhat,     // (C) host
                                   float *dgamma,           // (C) or NULL
                                   float *dbeta,            // (C) or NULL
                                   const float *dout,       // (N, H, W, C)
                                   const float *inp,        // (N, H, W, C)
                                   const float *save_mean,  // (C)
                                   const float *save_var) { // (C)
    if (!sum_dy || !sum_dy_xhat || !dout || !inp || !save_mean || !save_var)
        return kn_cuda_fail(p->ctx, p->what, "NULL tensor argument");
    if (sync_scratch(p)) return -1;
    return CU_CHECK(p->ctx, p->what,
                    kn_cu_bn_backward_sums(p->ctx->stream, sync_results(p), dgamma, dbeta,
                                           p->sync_sums, dout, inp, save_mean, save_var,
                                           shard_rows(p), p->s.c, p->s.eps)) ||
                   download_results(p, sum_dy, sum_dy_xhat)
               ? -1
               : 0;
}

int kn_cuda_bn_backward_stats(kn_cuda_bn *p,
                              float *dinp,               // (N, H, W, C)
                              const float *dout,         // (N, H, W, C)
                              const float *inp,          // (N, H, W, C)
                              const float *save_mean,    // (C)
                              const float *save_var,     // (C)
                              const float *gamma,        // (C)
                              const double *sum_dy,      // (C) host, whole batch
                              const double *sum_dy_xhat, // (C) host, whole batch
                              double count) {            // values per channel in the whole batch
    kn_cuda_ctx *ctx = p->ctx;
    const size_t rows = shard_rows(p);
    char msg[KN_CUDA_WHAT_LEN];
    if (kn_bn_count_check(count, rows, 0, msg, sizeof msg))
        return kn_cuda_fail(ctx, p->what, "%s", msg);
    if (!dinp || !dout || !inp || !save_mean || !save_var || !gamma || !sum_dy || !sum_dy_xhat)
        return kn_cuda_fail(ctx, p->what, "NULL tensor argument");
    if (sync_scratch(p)) return -1;
    double *dev = sync_uploads(p);
    return upload_pair(ctx, dev, sum_dy, sum_dy_xhat, p->s.c, p->what) ||
                   CU_CHECK(ctx, p->what,
                            kn_cu_bn_backward_stats(ctx->stream, dinp, p->sync_coefs, dout, inp,
                                                    save_mean, save_var, gamma, dev, dev + p->s.c,
                                                    count, rows, p->s.c, p->s.eps))
               ? -1
               : 0;
}

void kn_cuda_bn_destroy(kn_cuda_bn *p) {
    if (!p) return;
    p->ctx->memory_epoch++; /* graphs captured with this plan are stale */
    if (p->data) cudnnDestroyTensorDescriptor(p->data);
    if (p->vec) cudnnDestroyTensorDescriptor(p->vec);
    cudaFree(p->invstd);
    cudaFree(p->dgamma_sink);
    cudaFree(p->dbeta_sink);
    cudaFree(p->sync_sums);
    cudaFree(p->sync_coefs);
    free(p);
}
