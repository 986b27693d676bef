/* Elementwise ops: ReLU on oneDNN (the interface passes only a count, so the context caches
 * primitives by count), add, accumulate and scale in C. */
#include "kernels/cpu/cpu_internal.h"

#include <stdio.h>
#include <string.h>

/* The cached entry for `count`, made on first use; slots are reused round-robin. */
static kn_relu_entry *relu_entry(kn_cpu_ctx *ctx, size_t count, const char *what) {
    for (int i = 0; i < KN_RELU_CACHE; i++)
        if (ctx->relu_cache[i].count == count && ctx->relu_cache[i].fwd.prim)
            return &ctx->relu_cache[i];
    kn_relu_entry *e = &ctx->relu_cache[ctx->relu_next];
    ctx->relu_next = (ctx->relu_next + 1) % KN_RELU_CACHE;
    kn_prim_destroy(&e->fwd);
    kn_prim_destroy(&e->bwd);
    kn_mem_destroy(e->data);
    kn_mem_destroy(e->diff_data);
    kn_mem_destroy(e->out);
    memset(e, 0, sizeof *e);
    dnnl_memory_desc_t md;
    dnnl_eltwise_desc_t fd, bd;
    /* the _use_dst_for_bwd variant lets the backward read the forward's output */
    if (kn_md_1d(ctx, &md, (int64_t)count, what) ||
        kn_check(ctx,
                 dnnl_eltwise_forward_desc_init(&fd, dnnl_forward_training,
                                                dnnl_eltwise_relu_use_dst_for_bwd, &md, 0.0f, 0.0f),
                 what, "forward descriptor") ||
        kn_prim_create(ctx, &e->fwd, &fd, NULL, what) ||
        kn_check(ctx,
                 dnnl_eltwise_backward_desc_init(&bd, dnnl_eltwise_relu_use_dst_for_bwd, &md, &md,
                                                 0.0f, 0.0f),
                 what, "backward descriptor") ||
        kn_prim_create(ctx, &e->bwd, &bd, e->fwd.pd, what) ||
        kn_mem_create(ctx, &e->data, &md, what) || kn_mem_create(ctx, &e->diff_data, &md, what) ||
        kn_mem_create(ctx, &e->out, &md, what)) {
        kn_prim_destroy(&e->fwd); /* leave the slot empty so it is never matched */
        kn_prim_destroy(&e->bwd);
        return NULL;
    }
    e->count = count;
    return e;
}

int kn_cpu_relu_forward(kn_cpu_ctx *ctx, float *out, const float *inp, size_t count) {
    char what[KN_WHAT_LEN];
    snprintf(what, sizeof what, "relu forward (%zu)", count);
    if (count == 0) return 0;
    if (!out || !inp) return kn_fail(ctx, what, "NULL tensor argument");
    kn_relu_entry *e = relu_entry(ctx, count, what);
    if (!e || kn_bind(ctx, e->data, inp, what) || kn_bind(ctx, e->out, out, what)) return -1;
    dnnl_exec_arg_t args[] = {{DNNL_ARG_SRC, e->data}, {DNNL_ARG_DST, e->out}};
    return kn_prim_exec(ctx, &e->fwd, 2, args, what);
}

int kn_cpu_relu_backward(kn_cpu_ctx *ctx, float *dinp, const float *dout, const float *out,
                         size_t count) {
    char what[KN_WHAT_LEN];
    snprintf(what, sizeof what, "relu backward (%zu)", count);
    if (count == 0) return 0;
    if (!dinp || !dout || !out) return kn_fail(ctx, what, "NULL tensor argument");
    kn_relu_entry *e = relu_entry(ctx, count, what);
    if (!e || kn_bind(ctx, e->out, out, what) || kn_bind(ctx, e->diff_data, dout, what) ||
        kn_bind(ctx, e->data, dinp, what))
        return -1;
    dnnl_exec_arg_t args[] = {
        {DNNL_ARG_DST, e->out}, {DNNL_ARG_DIFF_DST, e->diff_data}, {DNNL_ARG_DIFF_SRC, e->data}};
    return kn_prim_exec(ctx, &e->bwd, 3, args, what);
}

int kn_cpu_add(kn_cpu_ctx *ctx,
               float *out,     // (count)
               const float *a, // (count)
               const float *b, // (count)
               size_t count) {
    if (count && (!out || !a || !b)) return kn_fail(ctx, "add", "NULL tensor argument");
#pragma omp parallel for simd num_threads(ctx->threads) schedule(static) if (count > 16384)
    for (size_t i = 0; i < count; i++)
        out[i] = a[i] + b[i];
    return 0;
}

int kn_cpu_accumulate(kn_cpu_ctx *ctx,
                      float *dst,       // (count), += src
                      const float *src, // (count)
                      size_t count) {
    if (count && (!dst || !src)) return kn_fail(ctx, "accumulate", "NULL tensor argument");
#pragma omp parallel for simd num_threads(ctx->threads) schedule(static) if (count > 16384)
    for (size_t i = 0; i < count; i++)
        dst[i] += src[i];
    return 0;
}

int kn_cpu_scale(kn_cpu_ctx *ctx,
                 float *x, // (count), *= a
                 float a, size_t count) {
    if (count && !x) return kn_fail(ctx, "scale", "NULL tensor argument");
#pragma omp parallel for simd num_threads(ctx->threads) schedule(static) if (count > 16384)
    for (size_t i = 0; i < count; i++)
        x[i] *= a;
    return 0;
}
