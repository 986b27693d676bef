/* Linear layers on cuBLAS. cuBLAS is column-major: a row-major (R, C) matrix is its
 * column-major (C, R) transpose, so each product below is written for the transposes:
 *   out  (N, OUT) = inp (N, IN) @ W^T    ->  out^T  = op_T(W_cm) . inp_cm
 *   dinp (N, IN)  = dout (N, OUT) @ W    ->  dinp^T = W_cm . dout_cm
 *   dW   (OUT, IN) = dout^T @ inp        ->  dW^T   = inp_cm . op_T(dout_cm)
 *
 * bf16 plans (kernels.h's mixed precision) make the same products with cublasGemmEx: A and B
 * bf16 (CUDA_R_16BF), fp32 accumulation (CUBLAS_COMPUTE_32F, tensor cores), C bf16 for out
 * and dinp and fp32 for dW (cuBLAS rounds only the bf16 results, once). The weights are the
 * plan's bf16 copy of the fp32 masters, renewed as conv plans renew theirs (cuda_internal.h).
 * The bias is added to the bf16 output in fp32 and rounded again; its gradient sums bf16 dout
 * in fp32. */
#include "kernels/cuda/cuda_internal.h"
#include "kernels/cuda/ops.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct kn_cuda_linear {
    kn_cuda_ctx *ctx;
    kn_linear_shape s;
    char what[KN_CUDA_WHAT_LEN];
    /* bf16 plans only: the weights rounded to bf16, and whence */
    uint16_t *w_bf16;
    const float *w_source;
    uint64_t w_epoch;
    size_t bias_partials; /* floats of ctx->table the bias gradient's sums use */
};

static const float one = 1.0f, zero = 0.0f;

kn_cuda_linear *kn_cuda_linear_create(kn_cuda_ctx *ctx, const kn_linear_shape *s) {
    char what[KN_CUDA_WHAT_LEN];
    snprintf(what, sizeof what, "linear %d -> %d%s on batch %d%s", s->in_features, s->out_features,
             s->has_bias ? " +bias" : "", s->n, s->dtype == KN_BF16 ? " bf16" : "");
    if (s->n <= 0 || s->in_features <= 0 || s->out_features <= 0) {
        kn_cuda_fail(ctx, what, "sizes must be positive");
        return NULL;
    }
    if (kn_cuda_dtype_check(ctx, s->dtype, what)) return NULL;
    kn_cuda_linear *p = kn_cuda_plan_new(ctx, sizeof *p, what);
    if (!p) return NULL;
    p->ctx = ctx;
    p->s = *s;
    memcpy(p->what, what, sizeof what);
    if (s->dtype == KN_BF16) {
        const size_t count = (size_t)s->out_features * (size_t)s->in_features;
        p->bias_partials =
            s->has_bias ? kn_cu_column_sums_bf16_partials((size_t)s->n, s->out_features) : 0;
        /* reserved now: growing the table waits for the device, which a step should not */
        if (!(p->w_bf16 = kn_cuda_plan_alloc(ctx, count * sizeof(uint16_t), what)) ||
            kn_cuda_reserve(ctx, &ctx->table, &ctx->table_bytes, p->bias_partials * sizeof(float),
                            what)) {
            kn_cuda_linear_destroy(p);
            return NULL;
        }
    }
    return p;
}

/* A bf16 plan's weights: rounds `weight` into the plan's copy unless `reuse` and the copy is
 * of these weights with no parameter change since. */
static int bf16_weights(kn_cuda_linear *p, const float *weight, int reuse) {
    kn_cuda_ctx *ctx = p->ctx;
    if (reuse && p->w_source == weight && p->w_epoch == ctx->weights_epoch) return 0;
    const size_t count = (size_t)p->s.out_features * (size_t)p->s.in_features;
    if (CU_CHECK(ctx, p->what, kn_cu_f32_to_bf16(ctx->stream, p->w_bf16, weight, count))) return -1;
    p->w_source = weight;
    p->w_epoch = ctx->weights_epoch;
    return 0;
}

/* C = op_a(A) . op_b(B), column-major, A and B bf16, C of type c_type, fp32 accumulation. */
static int gemm_bf16(kn_cuda_linear *p, cublasOperation_t op_a, cublasOperation_t op_b, int m,
                     int n, int k, const void *a, int lda, const void *b, int ldb, void *c,
                     cudaDataType c_type, int ldc) {
    return BLAS_CHECK(p->ctx, p->what,
                      cublasGemmEx(p->ctx->blas, op_a, op_b, m, n, k, &one, a, CUDA_R_16BF, lda, b,
                                   CUDA_R_16BF, ldb, &zero, c, c_type, ldc, CUBLAS_COMPUTE_32F,
                                   CUBLAS_GEMM_DEFAULT));
}

int kn_cuda_linear_forward(kn_cuda_linear *p,
                           void *out,           // (N, OUT) dtype
                           const void *inp,     // (N, IN) dtype
                           const float *weight, // (OUT, IN)
                           const float *bias) { // (OUT) or NULL
    kn_cuda_ctx *ctx = p->ctx;
    const int n = p->s.n, in = p->s.in_features, outf = p->s.out_features;
    if (!out || !inp || !weight || (p->s.has_bias && !bias))
        return kn_cuda_fail(ctx, p->what, "NULL tensor argument");
    if (p->w_bf16) {
        if (bf16_weights(p, weight, 0) || gemm_bf16(p, CUBLAS_OP_T, CUBLAS_OP_N, outf, n, in,
                                                    p->w_bf16, in, inp, in, out, CUDA_R_16BF, outf))
            return -1;
        if (!p->s.has_bias) return 0;
        return CU_CHECK(ctx, p->what, kn_cu_add_bias_bf16(ctx->stream, out, bias, (size_t)n, outf));
    }
    if (BLAS_CHECK(ctx, p->what,
                   cublasSgemm(ctx->blas, CUBLAS_OP_T, CUBLAS_OP_N, outf, n, in, &one, weight, in,
                               inp, in, &zero, out, outf)))
        return -1;
    if (!p->s.has_bias) return 0;
    return CU_CHECK(ctx, p->what, kn_cu_add_bias(ctx->stream, out, bias, n, outf));
}

int kn_cuda_linear_backward_data(kn_cuda_linear *p,
                                 void *dinp,            // (N, IN) dtype
                                 const void *dout,      // (N, OUT) dtype
                                 const float *weight) { // (OUT, IN)
    kn_cuda_ctx *ctx = p->ctx;
    const int n = p->s.n, in = p->s.in_features, outf = p->s.out_features;
    if (!dinp || !dout || !weight) return kn_cuda_fail(ctx, p->what, "NULL tensor argument");
    if (p->w_bf16)
        return bf16_weights(p, weight, 1) ||
                       gemm_bf16(p, CUBLAS_OP_N, CUBLAS_OP_N, in, n, outf, p->w_bf16, in, dout,
                                 outf, dinp, CUDA_R_16BF, in)
                   ? -1
                   : 0;
    return BLAS_CHECK(ctx, p->what,
                      cublasSgemm(ctx->blas, CUBLAS_OP_N, CUBLAS_OP_N, in, n, outf, &one, weight,
                                  in, dout, outf, &zero, dinp, in));
}

int kn_cuda_linear_backward_weights(kn_cuda_linear *p,
                                    float *dweight,    // (OUT, IN)
                                    float *dbias,      // (OUT) or NULL
                                    const void *dout,  // (N, OUT) dtype
                                    const void *inp) { // (N, IN) dtype
    kn_cuda_ctx *ctx = p->ctx;
    const int n = p->s.n, in = p->s.in_features, outf = p->s.out_features;
    if (!dweight || !dout || !inp || (p->s.has_bias && !dbias))
        return kn_cuda_fail(ctx, p->what, "NULL tensor argument");
    if (p->w_bf16) {
        if (gemm_bf16(p, CUBLAS_OP_N, CUBLAS_OP_T, in, outf, n, inp, in, dout, outf, dweight,
                      CUDA_R_32F, in))
            return -1;
        if (!p->s.has_bias) return 0;
        return kn_cuda_reserve(ctx, &ctx->table, &ctx->table_bytes,
                               p->bias_partials * sizeof(float), p->what) ||
                       CU_CHECK(ctx, p->what,
                                kn_cu_column_sums_bf16(ctx->stream, dbias, ctx->table, dout,
                                                       (size_t)n, outf))
                   ? -1
                   : 0;
    }
    if (BLAS_CHECK(ctx, p->what,
                   cublasSgemm(ctx->blas, CUBLAS_OP_N, CUBLAS_OP_T, in, outf, n, &one, inp, in,
                               dout, outf, &zero, dweight, in)))
        return -1;
    if (!p->s.has_bias) return 0;
    return CU_CHECK(ctx, p->what, kn_cu_column_sums(ctx->stream, dbias, dout, n, outf));
}

void kn_cuda_linear_destroy(kn_cuda_linear *p) {
    if (!p) return;
    p->ctx->memory_epoch++; /* graphs captured with this plan are stale */
    cudaFree(p->w_bf16);
    free(p);
}
