/* Linear layers on cuBLAS. cuBLAS is column-major: a row-major (R, C) matrix is its
 * column-major (C, R) transpose, so each product below is written for the transposes:
 *   out  (N, OUT) = inp (N, IN) @ W^T    ->  out^T  = op_T(W_cm) . inp_cm
 *   dinp (N, IN)  = dout (N, OUT) @ W    ->  dinp^T = W_cm . dout_cm
 *   dW   (OUT, IN) = dout^T @ inp        ->  dW^T   = inp_cm . op_T(dout_cm) */
#include "kernels/cuda/cuda_internal.h"
#include "kernels/cuda/ops.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct kn_cuda_linear {
    kn_cuda_ctx *ctx;
    kn_linear_shape s;
    char what[KN_CUDA_WHAT_LEN];
};

static const float one = 1.0f, zero = 0.0f;

kn_cuda_linear *kn_cuda_linear_create(kn_cuda_ctx *ctx, const kn_linear_shape *s) {
    char what[KN_CUDA_WHAT_LEN];
    snprintf(what, sizeof what, "linear %d -> %d%s on batch %d", s->in_features, s->out_features,
             s->has_bias ? " +bias" : "", s->n);
    if (s->n <= 0 || s->in_features <= 0 || s->out_features <= 0) {
        kn_cuda_fail(ctx, what, "sizes must be positive");
        return NULL;
    }
    kn_cuda_linear *p = kn_cuda_plan_new(ctx, sizeof *p, what);
    if (!p) return NULL;
    p->ctx = ctx;
    p->s = *s;
    memcpy(p->what, what, sizeof what);
    return p;
}

int kn_cuda_linear_forward(kn_cuda_linear *p,
                           float *out,          // (N, OUT)
                           const float *inp,    // (N, IN)
                           const float *weight, // (OUT, IN)
                           const float *bias) { // (OUT) or NULL
    kn_cuda_ctx *ctx = p->ctx;
    const int n = p->s.n, in = p->s.in_features, outf = p->s.out_features;
    if (!out || !inp || !weight || (p->s.has_bias && !bias))
        return kn_cuda_fail(ctx, p->what, "NULL tensor argument");
    if (BLAS_CHECK(ctx, p->what,
                   cublasSgemm(ctx->blas, CUBLAS_OP_T, CUBLAS_OP_N, outf, n, in, &one, weight, in,
                               inp, in, &zero, out, outf)))
        return -1;
    if (!p->s.has_bias) return 0;
    return CU_CHECK(ctx, p->what, kn_cu_add_bias(ctx->stream, out, bias, n, outf));
}

int kn_cuda_linear_backward_data(kn_cuda_linear *p,
                                 float *dinp,           // (N, IN)
                                 const float *dout,     // (N, OUT)
                                 const float *weight) { // (OUT, IN)
    kn_cuda_ctx *ctx = p->ctx;
    const int n = p->s.n, in = p->s.in_features, outf = p->s.out_features;
    if (!dinp || !dout || !weight) return kn_cuda_fail(ctx, p->what, "NULL tensor argument");
    return BLAS_CHECK(ctx, p->what,
                      cublasSgemm(ctx->blas, CUBLAS_OP_N, CUBLAS_OP_N, in, n, outf, &one, weight,
                                  in, dout, outf, &zero, dinp, in));
}

int kn_cuda_linear_backward_weights(kn_cuda_linear *p,
                                    float *dweight,     // (OUT, IN)
                                    float *dbias,       // (OUT) or NULL
                                    const float *dout,  // (N, OUT)
                                    const float *inp) { // (N, IN)
    kn_cuda_ctx *ctx = p->ctx;
    const int n = p->s.n, in = p->s.in_features, outf = p->s.out_features;
    if (!dweight || !dout || !inp || (p->s.has_bias && !dbias))
        return kn_cuda_fail(ctx, p->what, "NULL tensor argument");
    if (BLAS_CHECK(ctx, p->what,
                   cublasSgemm(ctx->blas, CUBLAS_OP_N, CUBLAS_OP_T, in, outf, n, &one, inp, in,
                               dout, outf, &zero, dweight, in)))
        return -1;
    if (!p->s.has_bias) return 0;
    return CU_CHECK(ctx, p->what, kn_cu_column_sums(ctx->stream, dbias, dout, n, outf));
}

void kn_cuda_linear_destroy(kn_cuda_linear *p) {
    free(p);
}
