/* Max and average pooling with the backend's own kernels (kernels/cuda/ops.cu), not cuDNN:
 * cuDNN's pooling backward needs the forward's input and output, which kn_pool_backward
 * does not receive, and its padding cannot express PyTorch's ceil_mode windows exactly.
 * Max pooling keeps each window's argmax in the plan, as the CPU plan keeps its workspace. */
#include "kernels/cuda/cuda_internal.h"
#include "kernels/cuda/ops.h"
#include "kernels/shape.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct kn_cuda_pool {
    kn_cuda_ctx *ctx;
    kn_pool_kind kind;
    kn_cu_pool_geom g;
    char what[KN_CUDA_WHAT_LEN];
    int32_t *argmax; /* (N, Ho, Wo, C), max pooling only */
};

kn_cuda_pool *kn_cuda_pool_create(kn_cuda_ctx *ctx, const kn_pool_shape *s) {
    char what[KN_CUDA_WHAT_LEN], msg[KN_CUDA_WHAT_LEN];
    snprintf(what, sizeof what, "%s pool %dx%d s%d,%d p%d,%d%s on NHWC %dx%dx%dx%d",
             s->kind == KN_POOL_MAX ? "max" : "avg", s->kh, s->kw, s->stride_h, s->stride_w,
             s->pad_h, s->pad_w, s->ceil_mode ? " ceil" : "", s->n, s->h_in, s->w_in, s->c);
    if (kn_pool_shape_check(s, msg, sizeof msg)) {
        kn_cuda_fail(ctx, what, "%s", msg);
        return NULL;
    }
    kn_cuda_pool *p = kn_cuda_plan_new(ctx, sizeof *p, what);
    if (!p) return NULL;
    p->ctx = ctx;
    p->kind = s->kind;
    memcpy(p->what, what, sizeof what);
    kn_cu_pool_geom *g = &p->g;
    g->n = s->n, g->c = s->c, g->h = s->h_in, g->w = s->w_in;
    kn_pool_output_hw(s, &g->h_out, &g->w_out);
    g->kh = s->kh, g->kw = s->kw, g->stride_h = s->stride_h, g->stride_w = s->stride_w;
    g->pad_h = s->pad_h, g->pad_w = s->pad_w, g->count_include_pad = s->count_include_pad;
    if (s->kind == KN_POOL_MAX) {
        p->argmax = kn_cuda_plan_alloc(ctx, (size_t)g->n * g->h_out * g->w_out * g->c * 4, what);
        if (!p->argmax) {
            free(p);
            return NULL;
        }
    }
    return p;
}

int kn_cuda_pool_forward(kn_cuda_pool *p,
                         float *out,         // (N, Ho, Wo, C)
                         const float *inp) { // (N, H, W, C)
    if (!out || !inp) return kn_cuda_fail(p->ctx, p->what, "NULL tensor argument");
    cudaStream_t st = p->ctx->stream;
    return CU_CHECK(p->ctx, p->what,
                    p->kind == KN_POOL_MAX ? kn_cu_maxpool_forward(st, out, p->argmax, inp, p->g)
                                           : kn_cu_avgpool_forward(st, out, inp, p->g));
}

int kn_cuda_pool_backward(kn_cuda_pool *p,
                          float *dinp,         // (N, H, W, C)
                          const float *dout) { // (N, Ho, Wo, C)
    if (!dinp || !dout) return kn_cuda_fail(p->ctx, p->what, "NULL tensor argument");
    cudaStream_t st = p->ctx->stream;
    return CU_CHECK(p->ctx, p->what,
                    p->kind == KN_POOL_MAX ? kn_cu_maxpool_backward(st, dinp, dout, p->argmax, p->g)
                                           : kn_cu_avgpool_backward(st, dinp, dout, p->g));
}

void kn_cuda_pool_destroy(kn_cuda_pool *p) {
    if (!p) return;
    p->ctx->memory_epoch++; /* graphs captured with this plan are stale */
    cudaFree(p->argmax);
    free(p);
}
