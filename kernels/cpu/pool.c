/* Max and average pooling on oneDNN (NHWC). Max pooling keeps its argmax workspace in the
 * plan, written by the forward and read by the backward. */
#include "kernels/cpu/cpu_internal.h"
#include "kernels/shape.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct kn_cpu_pool {
    kn_cpu_ctx *ctx;
    kn_pool_shape s;
    char what[KN_WHAT_LEN];
    kn_prim fwd, bwd;
    void *workspace; /* max pooling only */
    dnnl_memory_t m_src, m_dst, m_ws;
};

kn_cpu_pool *kn_cpu_pool_create(kn_cpu_ctx *ctx, const kn_pool_shape *s) {
    char what[KN_WHAT_LEN];
    snprintf(what, sizeof what, "%s pool %dx%d s%d,%d p%d,%d%s on NHWC %dx%dx%dx%d",
             s->kind == KN_POOL_MAX ? "max" : "avg", s->kh, s->kw, s->stride_h, s->stride_w,
             s->pad_h, s->pad_w, s->ceil_mode ? " ceil" : "", s->n, s->h_in, s->w_in, s->c);
    char msg[KN_WHAT_LEN];
    if (kn_pool_shape_check(s, msg, sizeof msg)) {
        kn_fail(ctx, what, "%s", msg);
        return NULL;
    }
    int ho, wo;
    kn_pool_output_hw(s, &ho, &wo);
    /* oneDNN's include-padding average divides by KH*KW, PyTorch by the window clipped to the
     * padded input; they differ only where a ceil_mode window hangs past the right padding. */
    int pad_r_h = (ho - 1) * s->stride_h + s->kh - s->h_in - s->pad_h;
    int pad_r_w = (wo - 1) * s->stride_w + s->kw - s->w_in - s->pad_w;
    if (s->kind == KN_POOL_AVG && s->count_include_pad &&
        (pad_r_h > s->pad_h || pad_r_w > s->pad_w)) {
        kn_fail(ctx, what,
                "ceil_mode with count_include_pad and a window past the padding is not supported");
        return NULL;
    }
    kn_cpu_pool *p = kn_plan_new(ctx, sizeof *p, what);
    if (!p) return NULL;
    p->ctx = ctx;
    p->s = *s;
    memcpy(p->what, what, sizeof what);
    dnnl_alg_kind_t alg = s->kind == KN_POOL_MAX ? dnnl_pooling_max
                          : s->count_include_pad ? dnnl_pooling_avg_include_padding
                                                 : dnnl_pooling_avg_exclude_padding;
    dnnl_dims_t strides = {s->stride_h, s->stride_w}, kernel = {s->kh, s->kw}, dil = {0, 0};
    dnnl_dims_t pad_l = {s->pad_h, s->pad_w}, pad_r = {pad_r_h, pad_r_w};
    dnnl_memory_desc_t src, dst;
    dnnl_pooling_v2_desc_t fd, bd;
    if (kn_md_nhwc(ctx, &src, s->n, s->c, s->h_in, s->w_in, what) ||
        kn_md_nhwc(ctx, &dst, s->n, s->c, ho, wo, what) ||
        kn_check(ctx,
                 dnnl_pooling_v2_forward_desc_init(&fd, dnnl_forward_training, alg, &src, &dst,
                                                   strides, kernel, dil, pad_l, pad_r),
                 what, "forward descriptor") ||
        kn_prim_create(ctx, &p->fwd, &fd, NULL, what) ||
        kn_check(ctx,
                 dnnl_pooling_v2_backward_desc_init(&bd, alg, &src, &dst, strides, kernel, dil,
                                                    pad_l, pad_r),
                 what, "backward descriptor") ||
        kn_prim_create(ctx, &p->bwd, &bd, p->fwd.pd, what) ||
        kn_mem_create(ctx, &p->m_src, &src, what) || kn_mem_create(ctx, &p->m_dst, &dst, what))
        goto fail;
    const dnnl_memory_desc_t *ws = kn_prim_md(&p->fwd, dnnl_query_workspace_md, 0);
    size_t ws_bytes = ws ? dnnl_memory_desc_get_size(ws) : 0;
    if (ws_bytes) {
        p->workspace = kn_plan_alloc(ctx, ws_bytes, what);
        if (!p->workspace || kn_mem_create(ctx, &p->m_ws, ws, what) ||
            kn_bind(ctx, p->m_ws, p->workspace, what))
            goto fail;
    }
    return p;
fail:
    kn_cpu_pool_destroy(p);
    return NULL;
}

int kn_cpu_pool_forward(kn_cpu_pool *p,
                        float *out,         // (N, Ho, Wo, C)
                        const float *inp) { // (N, H, W, C)
    dnnl_exec_arg_t args[3] = {
        {DNNL_ARG_SRC, p->m_src}, {DNNL_ARG_DST, p->m_dst}, {DNNL_ARG_WORKSPACE, p->m_ws}};
    const void *ptrs[] = {inp, out}; /* the workspace stays bound to the plan's buffer */
    if (kn_bind_args(p->ctx, args, ptrs, 2, p->what)) return -1;
    return kn_prim_exec(p->ctx, &p->fwd, p->m_ws ? 3 : 2, args, p->what);
}

int kn_cpu_pool_backward(kn_cpu_pool *p,
                         float *dinp,         // (N, H, W, C)
                         const float *dout) { // (N, Ho, Wo, C)
    dnnl_exec_arg_t args[3] = {{DNNL_ARG_DIFF_SRC, p->m_src},
                               {DNNL_ARG_DIFF_DST, p->m_dst},
                               {DNNL_ARG_WORKSPACE, p->m_ws}};
    const void *ptrs[] = {dinp, dout};
    if (kn_bind_args(p->ctx, args, ptrs, 2, p->what)) return -1;
    return kn_prim_exec(p->ctx, &p->bwd, p->m_ws ? 3 : 2, args, p->what);
}

void kn_cpu_pool_destroy(kn_cpu_pool *p) {
    if (!p) return;
    kn_prim_destroy(&p->fwd);
    kn_prim_destroy(&p->bwd);
    kn_mem_destroy(p->m_src);
    kn_mem_destroy(p->m_dst);
    kn_mem_destroy(p->m_ws);
    free(p->workspace);
    free(p);
}
