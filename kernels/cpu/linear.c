/* Linear layers on oneDNN's inner product: (N, IN) x (OUT, IN)^T. PyTorch's weight layout is
 * oneDNN's plain "oi", so no reorders are needed. */
#include "kernels/cpu/cpu_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct kn_cpu_linear {
    kn_cpu_ctx *ctx;
    kn_linear_shape s;
    char what[KN_WHAT_LEN];
    kn_prim fwd, bwd_data, bwd_weights;
    dnnl_memory_t m_src, m_dst, m_w, m_bias;
};

kn_cpu_linear *kn_cpu_linear_create(kn_cpu_ctx *ctx, const kn_linear_shape *s) {
    char what[KN_WHAT_LEN];
    snprintf(what, sizeof what, "linear %d -> %d%s on batch %d", s->in_features, s->out_features,
             s->has_bias ? " +bias" : "", s->n);
    if (s->n <= 0 || s->in_features <= 0 || s->out_features <= 0) {
        kn_fail(ctx, what, "sizes must be positive");
        return NULL;
    }
    kn_cpu_linear *p = kn_plan_new(ctx, sizeof *p, what);
    if (!p) return NULL;
    p->ctx = ctx;
    p->s = *s;
    memcpy(p->what, what, sizeof what);
    dnnl_memory_desc_t src, dst, w, bias;
    dnnl_inner_product_desc_t fd, bdd, bwd;
    const dnnl_memory_desc_t *bias_md = s->has_bias ? &bias : NULL;
    if (kn_md_2d(ctx, &src, s->n, s->in_features, what) ||
        kn_md_2d(ctx, &dst, s->n, s->out_features, what) ||
        kn_md_2d(ctx, &w, s->out_features, s->in_features, what) ||
        kn_md_1d(ctx, &bias, s->out_features, what) ||
        kn_check(ctx,
                 dnnl_inner_product_forward_desc_init(&fd, dnnl_forward_training, &src, &w, bias_md,
                                                      &dst),
                 what, "forward descriptor") ||
        kn_prim_create(ctx, &p->fwd, &fd, NULL, what) ||
        kn_check(ctx, dnnl_inner_product_backward_data_desc_init(&bdd, &src, &w, &dst), what,
                 "backward-data descriptor") ||
        kn_prim_create(ctx, &p->bwd_data, &bdd, p->fwd.pd, what) ||
        kn_check(ctx, dnnl_inner_product_backward_weights_desc_init(&bwd, &src, &w, bias_md, &dst),
                 what, "backward-weights descriptor") ||
        kn_prim_create(ctx, &p->bwd_weights, &bwd, p->fwd.pd, what) ||
        kn_mem_create(ctx, &p->m_src, &src, what) || kn_mem_create(ctx, &p->m_dst, &dst, what) ||
        kn_mem_create(ctx, &p->m_w, &w, what) || kn_mem_create(ctx, &p->m_bias, &bias, what)) {
        kn_cpu_linear_destroy(p);
        return NULL;
    }
    return p;
}

int kn_cpu_linear_forward(kn_cpu_linear *p,
                          float *out,          // (N, OUT)
                          const float *inp,    // (N, IN)
                          const float *weight, // (OUT, IN)
                          const float *bias) { // (OUT) or NULL
    dnnl_exec_arg_t args[] = {{DNNL_ARG_DST, p->m_dst},
                              {DNNL_ARG_SRC, p->m_src},
                              {DNNL_ARG_WEIGHTS, p->m_w},
                              {DNNL_ARG_BIAS, p->m_bias}};
    const void *ptrs[] = {out, inp, weight, bias};
    int nargs = p->s.has_bias ? 4 : 3;
    return kn_prim_bind_exec(p->ctx, &p->fwd, nargs, args, ptrs, p->what);
}

int kn_cpu_linear_backward_data(kn_cpu_linear *p,
                                float *dinp,           // (N, IN)
                                const float *dout,     // (N, OUT)
                                const float *weight) { // (OUT, IN)
    dnnl_exec_arg_t args[] = {
        {DNNL_ARG_DIFF_SRC, p->m_src}, {DNNL_ARG_DIFF_DST, p->m_dst}, {DNNL_ARG_WEIGHTS, p->m_w}};
    const void *ptrs[] = {dinp, dout, weight};
    return kn_prim_bind_exec(p->ctx, &p->bwd_data, 3, args, ptrs, p->what);
}

int kn_cpu_linear_backward_weights(kn_cpu_linear *p,
                                   float *dweight,     // (OUT, IN)
                                   float *dbias,       // (OUT) or NULL
                                   const float *dout,  // (N, OUT)
                                   const float *inp) { // (N, IN)
    dnnl_exec_arg_t args[] = {{DNNL_ARG_SRC, p->m_src},
                              {DNNL_ARG_DIFF_DST, p->m_dst},
                              {DNNL_ARG_DIFF_WEIGHTS, p->m_w},
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
    kn_mem_destroy(p->m_bias);
    free(p);
}
