/* Linear layers on oneDNN's inner product: (N, IN) x (OUT, IN)^T. PyTorch's weight layout is
 * oneDNN's plain "oi", so fp32 plans need no reorders; a bf16 plan converts the fp32 master
 * weights into its own bf16 copy (kept while the weights are unchanged, as conv plans do). */
#include "kernels/cpu/cpu_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct kn_cpu_linear {
    kn_cpu_ctx *ctx;
    kn_linear_shape s;
    char what[KN_WHAT_LEN];
    kn_prim fwd, bwd_data, bwd_weights;
    dnnl_memory_t m_src, m_dst, m_w, m_dw, m_bias;
    /* bf16 plans only: fp32 weights (m_w_user) -> the plan's bf16 copy (m_w, over w_bf16) */
    kn_prim to_bf16;
    dnnl_memory_t m_w_user;
    void *w_bf16;
    const float *w_source; /* weights last converted into w_bf16 ... */
    uint64_t w_epoch;      /* ... and the ctx->weights_epoch at the time */
};

kn_cpu_linear *kn_cpu_linear_create(kn_cpu_ctx *ctx, const kn_linear_shape *s) {
    char what[KN_WHAT_LEN];
    snprintf(what, sizeof what, "linear %d -> %d%s on batch %d%s", s->in_features, s->out_features,
             s->has_bias ? " +bias" : "", s->n, s->dtype == KN_BF16 ? " bf16" : "");
    if (s->n <= 0 || s->in_features <= 0 || s->out_features <= 0) {
        kn_fail(ctx, what, "sizes must be positive");
        return NULL;
    }
    dnnl_data_type_t act;
    if (kn_dtype_check(ctx, s->dtype, &act, what)) return NULL;
    kn_cpu_linear *p = kn_plan_new(ctx, sizeof *p, what);
    if (!p) return NULL;
    p->ctx = ctx;
    p->s = *s;
    memcpy(p->what, what, sizeof what);
    dnnl_memory_desc_t src, dst, w, dw, bias;
    dnnl_inner_product_desc_t fd, bdd, bwd;
    const dnnl_memory_desc_t *bias_md = s->has_bias ? &bias : NULL;
    dnnl_dims_t src_dims = {s->n, s->in_features}, dst_dims = {s->n, s->out_features};
    dnnl_dims_t w_dims = {s->out_features, s->in_features};
    if (kn_check(ctx, dnnl_memory_desc_init_by_tag(&src, 2, src_dims, act, dnnl_ab), what,
                 "src descriptor") ||
        kn_check(ctx, dnnl_memory_desc_init_by_tag(&dst, 2, dst_dims, act, dnnl_ab), what,
                 "dst descriptor") ||
        kn_check(ctx, dnnl_memory_desc_init_by_tag(&w, 2, w_dims, act, dnnl_ab), what,
                 "weight descriptor") ||
        kn_md_2d(ctx, &dw, s->out_features, s->in_features, what) ||
        kn_md_1d(ctx, &bias, s->out_features, what) ||
        kn_check(ctx,
                 dnnl_inner_product_forward_desc_init(&fd, dnnl_forward_training, &src, &w, bias_md,
                                                      &dst),
                 what, "forward descriptor") ||
        kn_prim_create(ctx, &p->fwd, &fd, NULL, what) ||
        kn_check(ctx, dnnl_inner_product_backward_data_desc_init(&bdd, &src, &w, &dst), what,
                 "backward-data descriptor") ||
        kn_prim_create(ctx, &p->bwd_data, &bdd, p->fwd.pd, what) ||
        kn_check(ctx, dnnl_inner_product_backward_weights_desc_init(&bwd, &src, &dw, bias_md, &dst),
                 what, "backward-weights descriptor") ||
        kn_prim_create(ctx, &p->bwd_weights, &bwd, p->fwd.pd, what) ||
        kn_mem_create(ctx, &p->m_src, &src, what) || kn_mem_create(ctx, &p->m_dst, &dst, what) ||
        kn_mem_create(ctx, &p->m_w, &w, what) || kn_mem_create(ctx, &p->m_dw, &dw, what) ||
        kn_mem_create(ctx, &p->m_bias, &bias, what))
        goto fail;
    if (s->dtype == KN_BF16) {
        p->w_bf16 = kn_plan_alloc(ctx, dnnl_memory_desc_get_size(&w), what);
        if (!p->w_bf16 || kn_bind(ctx, p->m_w, p->w_bf16, what) ||
            kn_mem_create(ctx, &p->m_w_user, &dw, what) ||
            kn_prim_create_reorder(ctx, &p->to_bf16, &dw, &w, what))
            goto fail;
    }
    return p;
fail:
    kn_cpu_linear_destroy(p);
    return NULL;
}

/* A bf16 plan's weights: converts `weight` into the plan's copy unless it holds them already
 * (same pointer, no parameter change since). fp32 plans read `weight` itself (*use NULL). */
static int bf16_weights(kn_cpu_linear *p, const float *weight, const void **use) {
    *use = weight;
    if (!p->w_bf16) return 0;
    if (!weight) return kn_fail(p->ctx, p->what, "NULL tensor argument");
    *use = p->w_bf16;
    if (p->w_source == weight &&
        kn_cpu_unchanged(p->ctx, p->w_epoch, weight,
                         (size_t)p->s.out_features * (size_t)p->s.in_features * sizeof *weight)) {
        p->w_epoch = p->ctx->weights_epoch;
        return 0;
    }
    dnnl_exec_arg_t args[] = {{DNNL_ARG_FROM, p->m_w_user}, {DNNL_ARG_TO, p->m_w}};
    const void *ptrs[] = {weight, p->w_bf16};
    if (kn_prim_bind_exec(p->ctx, &p->to_bf16, 2, args, ptrs, p->what)) return -1;
    p->w_source = weight;
    p->w_epoch = p->ctx->weights_epoch;
    return 0;
}

int kn_cpu_linear_forward(kn_cpu_linear *p,
                          void *out,           // (N, OUT) dtype
                          const void *inp,     // (N, IN) dtype
                          const float *weight, // (OUT, IN)
                          const float *bias) { // (OUT) or NULL
    const void *w;
    if (bf16_weights(p, weight, &w)) return -1;
    dnnl_exec_arg_t args[] = {{DNNL_ARG_DST, p->m_dst},
                              {DNNL_ARG_SRC, p->m_src},
                              {DNNL_ARG_WEIGHTS, p->m_w},
                              {DNNL_ARG_BIAS, p->m_bias}};
    const void *ptrs[] = {out, inp, w, bias};
    int nargs = p->s.has_bias ? 4 : 3;
    return kn_prim_bind_exec(p->ctx, &p->fwd, nargs, args, ptrs, p->what);
}

int kn_cpu_linear_backward_data(kn_cpu_linear *p,
                                void *dinp,            // (N, IN) dtype
                                const void *dout,      // (N, OUT) dtype
                                const float *weight) { // (OUT, IN)
    const void *w;
    if (bf16_weights(p, weight, &w)) return -1;
    dnnl_exec_arg_t args[] = {
        {DNNL_ARG_DIFF_SRC, p->m_src}, {DNNL_ARG_DIFF_DST, p->m_dst}, {DNNL_ARG_WEIGHTS, p->m_w}};
    const void *ptrs[] = {dinp, dout, w};
    return kn_prim_bind_exec(p->ctx, &p->bwd_data, 3, args, ptrs, p->what);
}

int kn_cpu_linear_backward_weights(kn_cpu_linear *p,
                                   float *dweight,    // (OUT, IN)
                                   float *dbias,      // (OUT) or NULL
                                   const void *dout,  // (N, OUT) dtype
                                   const void *inp) { // (N, IN) dtype
    dnnl_exec_arg_t args[] = {{DNNL_ARG_SRC, p->m_src},
                              {DNNL_ARG_DIFF_DST, p->m_dst},
                              {DNNL_ARG_DIFF_WEIGHTS, p->m_dw},
                              {DNNL_ARG_DIFF_BIAS, p->m_bias}};
    const void *ptrs[] = {inp, dout, dweight, dbias};
    int nargs = p->s.has_bias ? 4 : 3;
    return kn_prim_bind_exec(p->ctx, &p->bwd_weights, nargs, args, ptrs, p->what);
}

void kn_cpu_linear_destroy(kn_cpu_linear *p) {
    if (!p) return;
    kn_prim_destroy(&p->fwd);
    kn_prim_destroy(&p->bwd_data);
    kn_prim_destroy(&p->bwd_weights);
    kn_mem_destroy(p->m_src);
    kn_mem_destroy(p->m_dst);
    kn_mem_destroy(p->m_w);
    kn_mem_destroy(p->m_dw);
    kn_mem_destroy(p->m_bias);
    kn_prim_destroy(&p->to_bf16);
    kn_mem_destroy(p->m_w_user);
    free(p->w_bf16);
    free(p);
}
