/* 2-D convolution on oneDNN.
 *
 * Direct convolutions read and write the caller's NHWC activations in place, so no activation
 * reorders happen. 3x3 stride-1 convolutions use oneDNN's Winograd F(4x4, 3x3) kernels when
 * they exist for the shape: they need oneDNN's blocked activation layout, but the reorders
 * (through the context's two staging buffers) cost ~10% of the ~2x the Winograd kernels save.
 * Weights use whatever layout each primitive prefers ("any"), reordered from/to PyTorch's
 * (C_out, C_in/groups, KH, KW) buffer by reorder primitives made once with the plan. A bf16
 * plan's weight reorders also convert the fp32 master weights to bf16 (that blocked copy is
 * the plan's bf16 weights); its weight gradient stays fp32 (oneDNN accumulates in fp32). */
#include "kernels/cpu/cpu_internal.h"
#include "kernels/shape.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* One activation argument of one primitive: the caller's NHWC buffer and, when the primitive
 * wants another layout, a reorder through staging buffer `slot`. */
typedef struct {
    dnnl_memory_t user;   /* NHWC, bound to the caller's pointer */
    dnnl_memory_t staged; /* the primitive's layout; NULL when that is NHWC */
    kn_prim reorder;
    int slot;
} conv_act;

struct kn_cpu_conv {
    kn_cpu_ctx *ctx;
    kn_conv_shape s;
    char what[KN_WHAT_LEN];
    kn_prim fwd, bwd_data, bwd_weights;
    conv_act fwd_src, fwd_dst, bd_ddst, bd_dsrc, bw_src, bw_ddst;
    /* user (PyTorch) weight layout <-> primitive layouts; a reorder is absent (prim NULL)
     * when the formats already agree */
    kn_prim reorder_w_fwd, reorder_w_bd, reorder_dw;
    float *w_fwd, *w_bd, *dw_blocked; /* plan-owned blocked copies, NULL when not needed */
    int bd_shares_fwd;                /* bwd_data reads w_fwd (same format) */
    const float *w_fwd_source;        /* weights last reordered into w_fwd ... */
    uint64_t w_fwd_epoch;             /* ... and the ctx->weights_epoch at the time */
    dnnl_memory_t m_bias, m_w_user, m_w_fwd, m_w_bd, m_dw;
};

static int validate(kn_cpu_ctx *ctx, const kn_conv_shape *s, const char *what) {
    char msg[KN_WHAT_LEN];
    return kn_conv_shape_check(s, msg, sizeof msg) ? kn_fail(ctx, what, "%s", msg) : 0;
}

/* PyTorch's weight buffer as oneDNN sees it: OIHW, or GOIHW split along C_out for groups. */
static int user_weight_md(kn_cpu_ctx *ctx, const kn_conv_shape *s, dnnl_memory_desc_t *md,
                          dnnl_data_type_t dt, dnnl_format_tag_t tag, const char *what) {
    if (s->groups == 1) {
        dnnl_dims_t d = {s->c_out, s->c_in, s->kh, s->kw};
        return kn_check(ctx,
                        dnnl_memory_desc_init_by_tag(md, 4, d, dt,
                                                     tag == dnnl_format_tag_any ? tag : dnnl_oihw),
                        what, "weight descriptor");
    }
    dnnl_dims_t d = {s->groups, s->c_out / s->groups, s->c_in / s->groups, s->kh, s->kw};
    return kn_check(
        ctx,
        dnnl_memory_desc_init_by_tag(md, 5, d, dt, tag == dnnl_format_tag_any ? tag : dnnl_goihw),
        what, "weight descriptor");
}

/* The three primitives for algorithm `alg` with activation descriptors src/dst (NHWC, or
 * "any" to let Winograd choose its layout); w_any is the weights' type, dw_any the weight
 * gradient's (fp32 in both precisions). */
static int create_prims(kn_cpu_conv *p, dnnl_alg_kind_t alg, const dnnl_memory_desc_t *src,
                        const dnnl_memory_desc_t *dst, const dnnl_memory_desc_t *w_any,
                        const dnnl_memory_desc_t *dw_any, const dnnl_memory_desc_t *bias_md, int ho,
                        int wo) {
    const kn_conv_shape *s = &p->s;
    kn_cpu_ctx *ctx = p->ctx;
    dnnl_dims_t strides = {s->stride_h, s->stride_w};
    dnnl_dims_t dil = {s->dilation_h - 1, s->dilation_w - 1}; /* oneDNN: 0 = dense */
    dnnl_dims_t pad_l = {s->pad_h, s->pad_w};
    /* right padding that makes oneDNN's output size equal PyTorch's floor rule */
    dnnl_dims_t pad_r = {
        (ho - 1) * s->stride_h + (s->kh - 1) * s->dilation_h + 1 - s->h_in - s->pad_h,
        (wo - 1) * s->stride_w + (s->kw - 1) * s->dilation_w + 1 - s->w_in - s->pad_w};
    dnnl_convolution_desc_t fd, bdd, bwd;
    if (kn_check(ctx,
                 dnnl_dilated_convolution_forward_desc_init(&fd, dnnl_forward_training, alg, src,
                                                            w_any, bias_md, dst, strides, dil,
                                                            pad_l, pad_r),
                 p->what, "forward descriptor") ||
        kn_prim_create(ctx, &p->fwd, &fd, NULL, p->what))
        return -1;
    if (kn_check(ctx,
                 dnnl_dilated_convolution_backward_data_desc_init(&bdd, alg, src, w_any, dst,
                                                                  strides, dil, pad_l, pad_r),
                 p->what, "backward-data descriptor") ||
        kn_prim_create(ctx, &p->bwd_data, &bdd, p->fwd.pd, p->what))
        return -1;
    if (kn_check(ctx,
                 dnnl_dilated_convolution_backward_weights_desc_init(
                     &bwd, alg, src, dw_any, bias_md, dst, strides, dil, pad_l, pad_r),
                 p->what, "backward-weights descriptor") ||
        kn_prim_create(ctx, &p->bwd_weights, &bwd, p->fwd.pd, p->what))
        return -1;
    return 0;
}

static void destroy_prims(kn_cpu_conv *p) {
    kn_prim_destroy(&p->fwd);
    kn_prim_destroy(&p->bwd_data);
    kn_prim_destroy(&p->bwd_weights);
}

/* Sets up one activation argument: `want` is what the primitive reports for it. */
static int act_init(kn_cpu_conv *p, conv_act *a, const dnnl_memory_desc_t *nhwc,
                    const dnnl_memory_desc_t *want, int slot, int is_output) {
    a->slot = slot;
    if (!want) return kn_fail(p->ctx, p->what, "primitive reported no activation descriptor");
    if (kn_mem_create(p->ctx, &a->user, nhwc, p->what)) return -1;
    if (dnnl_memory_desc_equal(nhwc, want)) return 0;
    if (kn_stage_reserve(p->ctx, slot, dnnl_memory_desc_get_size(want), p->what) ||
        kn_mem_create(p->ctx, &a->staged, want, p->what))
        return -1;
    return is_output ? kn_prim_create_reorder(p->ctx, &a->reorder, want, nhwc, p->what)
                     : kn_prim_create_reorder(p->ctx, &a->reorder, nhwc, want, p->what);
}

static void act_destroy(conv_act *a) {
    kn_mem_destroy(a->user);
    kn_mem_destroy(a->staged);
    kn_prim_destroy(&a->reorder);
}

/* An input: returns the memory the primitive should read, reordered if needed. */
static int act_in(kn_cpu_conv *p, conv_act *a, const void *ptr, dnnl_memory_t *use) {
    if (kn_bind(p->ctx, a->user, ptr, p->what)) return -1;
    if (!a->staged) {
        *use = a->user;
        return 0;
    }
    if (kn_bind(p->ctx, a->staged, p->ctx->stage[a->slot], p->what)) return -1;
    dnnl_exec_arg_t args[] = {{DNNL_ARG_FROM, a->user}, {DNNL_ARG_TO, a->staged}};
    if (kn_prim_exec(p->ctx, &a->reorder, 2, args, p->what)) return -1;
    *use = a->staged;
    return 0;
}

/* An output: the memory the primitive should write; act_out_finish moves it to NHWC. */
static int act_out(kn_cpu_conv *p, conv_act *a, void *ptr, dnnl_memory_t *use) {
    if (kn_bind(p->ctx, a->user, ptr, p->what)) return -1;
    if (a->staged && kn_bind(p->ctx, a->staged, p->ctx->stage[a->slot], p->what)) return -1;
    *use = a->staged ? a->staged : a->user;
    return 0;
}

static int act_out_finish(kn_cpu_conv *p, conv_act *a) {
    if (!a->staged) return 0;
    dnnl_exec_arg_t args[] = {{DNNL_ARG_FROM, a->staged}, {DNNL_ARG_TO, a->user}};
    return kn_prim_exec(p->ctx, &a->reorder, 2, args, p->what);
}

/* Makes a reorder and its blocked buffer when `want` differs from the user layout. */
static int maybe_reorder(kn_cpu_conv *p, kn_prim *r, float **buf, dnnl_memory_t *mem,
                         const dnnl_memory_desc_t *user, const dnnl_memory_desc_t *want,
                         int to_user) {
    if (!want) return kn_fail(p->ctx, p->what, "primitive reported no weight descriptor");
    if (dnnl_memory_desc_equal(user, want)) return 0;
    *buf = kn_plan_alloc(p->ctx, dnnl_memory_desc_get_size(want), p->what);
    if (!*buf) return -1;
    if (kn_mem_create(p->ctx, mem, want, p->what) || kn_bind(p->ctx, *mem, *buf, p->what))
        return -1;
    return to_user ? kn_prim_create_reorder(p->ctx, r, want, user, p->what)
                   : kn_prim_create_reorder(p->ctx, r, user, want, p->what);
}

/* Winograd kernels exist for fp32 3x3, stride 1, dense, ungrouped convolutions (and oneDNN
 * adds channel conditions; a failed creation falls back to direct). */
static int winograd_candidate(const kn_cpu_ctx *ctx, const kn_conv_shape *s) {
    return ctx->winograd && s->dtype == KN_F32 && s->kh == 3 && s->kw == 3 && s->stride_h == 1 &&
           s->stride_w == 1 && s->dilation_h == 1 && s->dilation_w == 1 && s->groups == 1;
}

kn_cpu_conv *kn_cpu_conv_create(kn_cpu_ctx *ctx, const kn_conv_shape *s) {
    char what[KN_WHAT_LEN];
    snprintf(what, sizeof what, "conv %dx%dx%dx%d g%d s%d,%d p%d,%d d%d,%d on NHWC %dx%dx%dx%d%s",
             s->c_out, s->groups > 0 ? s->c_in / s->groups : s->c_in, s->kh, s->kw, s->groups,
             s->stride_h, s->stride_w, s->pad_h, s->pad_w, s->dilation_h, s->dilation_w, s->n,
             s->h_in, s->w_in, s->c_in, s->dtype == KN_BF16 ? " bf16" : "");
    dnnl_data_type_t act;
    if (validate(ctx, s, what) || kn_dtype_check(ctx, s->dtype, &act, what)) return NULL;
    kn_cpu_conv *p = kn_plan_new(ctx, sizeof *p, what);
    if (!p) return NULL;
    p->ctx = ctx;
    p->s = *s;
    memcpy(p->what, what, sizeof what);

    int ho, wo;
    kn_conv_output_hw(s, &ho, &wo);
    dnnl_memory_desc_t src, dst, src_any, dst_any, w_any, dw_any, w_user, bias;
    dnnl_dims_t src_dims = {s->n, s->c_in, s->h_in, s->w_in}, dst_dims = {s->n, s->c_out, ho, wo};
    if (kn_check(ctx, dnnl_memory_desc_init_by_tag(&src, 4, src_dims, act, dnnl_nhwc), what,
                 "src descriptor") ||
        kn_check(ctx, dnnl_memory_desc_init_by_tag(&dst, 4, dst_dims, act, dnnl_nhwc), what,
                 "dst descriptor") ||
        kn_check(ctx, dnnl_memory_desc_init_by_tag(&src_any, 4, src_dims, act, dnnl_format_tag_any),
                 what, "src descriptor") ||
        kn_check(ctx, dnnl_memory_desc_init_by_tag(&dst_any, 4, dst_dims, act, dnnl_format_tag_any),
                 what, "dst descriptor") ||
        user_weight_md(ctx, s, &w_any, act, dnnl_format_tag_any, what) ||
        user_weight_md(ctx, s, &dw_any, dnnl_f32, dnnl_format_tag_any, what) ||
        user_weight_md(ctx, s, &w_user, dnnl_f32, dnnl_format_tag_undef, what) ||
        kn_md_1d(ctx, &bias, s->c_out, what))
        goto fail;
    const dnnl_memory_desc_t *bias_md = s->has_bias ? &bias : NULL;

    int made = 0;
    if (winograd_candidate(ctx, s)) {
        made = create_prims(p, dnnl_convolution_winograd, &src_any, &dst_any, &w_any, &dw_any,
                            bias_md, ho, wo) == 0;
        if (!made) { /* not available for this shape: direct it is, and no error */
            destroy_prims(p);
            ctx->err[0] = '\0';
        }
    }
    if (!made &&
        create_prims(p, dnnl_convolution_direct, &src, &dst, &w_any, &dw_any, bias_md, ho, wo))
        goto fail;

    /* Staging slots: 0 for the input-side tensor, 1 for the other of each call. */
    if (act_init(p, &p->fwd_src, &src, kn_prim_md(&p->fwd, dnnl_query_src_md, 0), 0, 0) ||
        act_init(p, &p->fwd_dst, &dst, kn_prim_md(&p->fwd, dnnl_query_dst_md, 0), 1, 1) ||
        act_init(p, &p->bd_ddst, &dst, kn_prim_md(&p->bwd_data, dnnl_query_diff_dst_md, 0), 0, 0) ||
        act_init(p, &p->bd_dsrc, &src, kn_prim_md(&p->bwd_data, dnnl_query_diff_src_md, 0), 1, 1) ||
        act_init(p, &p->bw_src, &src, kn_prim_md(&p->bwd_weights, dnnl_query_src_md, 0), 0, 0) ||
        act_init(p, &p->bw_ddst, &dst, kn_prim_md(&p->bwd_weights, dnnl_query_diff_dst_md, 0), 1,
                 0))
        goto fail;
    if (kn_mem_create(ctx, &p->m_w_user, &w_user, what) ||
        kn_mem_create(ctx, &p->m_bias, &bias, what))
        goto fail;
    const dnnl_memory_desc_t *w_f = kn_prim_md(&p->fwd, dnnl_query_weights_md, 0);
    const dnnl_memory_desc_t *w_b = kn_prim_md(&p->bwd_data, dnnl_query_weights_md, 0);
    const dnnl_memory_desc_t *dw = kn_prim_md(&p->bwd_weights, dnnl_query_diff_weights_md, 0);
    if (maybe_reorder(p, &p->reorder_w_fwd, &p->w_fwd, &p->m_w_fwd, &w_user, w_f, 0)) goto fail;
    if (w_b && w_f && dnnl_memory_desc_equal(w_b, w_f) && p->w_fwd) {
        p->bd_shares_fwd = 1;
    } else if (maybe_reorder(p, &p->reorder_w_bd, &p->w_bd, &p->m_w_bd, &w_user, w_b, 0)) {
        goto fail;
    }
    if (maybe_reorder(p, &p->reorder_dw, &p->dw_blocked, &p->m_dw, &w_user, dw, 1)) goto fail;
    return p;
fail:
    kn_cpu_conv_destroy(p);
    return NULL;
}

const char *kn_cpu_conv_impl(const kn_cpu_conv *p) {
    const char *impl = NULL;
    if (dnnl_primitive_desc_query(p->fwd.pd, dnnl_query_impl_info_str, 0, &impl) != dnnl_success)
        return "unknown";
    return impl;
}

static int check_ptrs(kn_cpu_conv *p, const void *a, const void *b, const void *c) {
    if (!a || !b || !c) return kn_fail(p->ctx, p->what, "NULL tensor argument");
    return 0;
}

/* Brings the user's weights into `blocked` (the plan's buffer) when a reorder exists;
 * returns the memory object the primitive should read. */
static int stage_weights(kn_cpu_conv *p, kn_prim *reorder, dnnl_memory_t blocked,
                         const float *weight, dnnl_memory_t *use) {
    if (kn_bind(p->ctx, p->m_w_user, weight, p->what)) return -1;
    if (!reorder->prim) {
        *use = p->m_w_user;
        return 0;
    }
    dnnl_exec_arg_t args[] = {{DNNL_ARG_FROM, p->m_w_user}, {DNNL_ARG_TO, blocked}};
    if (kn_prim_exec(p->ctx, reorder, 2, args, p->what)) return -1;
    *use = blocked;
    return 0;
}

/* Whether the plan's reordered forward weights (w_fwd) hold `weight` as it is now: the same
 * pointer, and nothing written over it since (kn_cpu_unchanged). */
static int fwd_weights_current(const kn_cpu_conv *p, const float *weight) {
    const kn_conv_shape *s = &p->s;
    size_t count = (size_t)s->c_out * (size_t)(s->c_in / s->groups) * (size_t)s->kh * (size_t)s->kw;
    return p->reorder_w_fwd.prim && p->w_fwd_source == weight &&
           kn_cpu_unchanged(p->ctx, p->w_fwd_epoch, weight, count * sizeof *weight);
}

int kn_cpu_conv_forward(kn_cpu_conv *p,
                        void *out,           // (N, Ho, Wo, C_out) dtype
                        const void *inp,     // (N, H, W, C_in) dtype
                        const float *weight, // (C_out, C_in/groups, KH, KW)
                        const float *bias) { // (C_out) or NULL
    if (check_ptrs(p, out, inp, weight)) return -1;
    if (p->s.has_bias && !bias) return kn_fail(p->ctx, p->what, "plan has a bias but bias is NULL");
    dnnl_memory_t w, src, dst;
    if (fwd_weights_current(p, weight))
        w = p->m_w_fwd; /* a frozen layer's, reordered once */
    else if (stage_weights(p, &p->reorder_w_fwd, p->m_w_fwd, weight, &w))
        return -1;
    p->w_fwd_source = weight;
    p->w_fwd_epoch = p->ctx->weights_epoch;
    if (act_in(p, &p->fwd_src, inp, &src) || act_out(p, &p->fwd_dst, out, &dst)) return -1;
    dnnl_exec_arg_t args[4] = {{DNNL_ARG_SRC, src}, {DNNL_ARG_WEIGHTS, w}, {DNNL_ARG_DST, dst}};
    int nargs = 3;
    if (p->s.has_bias) {
        if (kn_bind(p->ctx, p->m_bias, bias, p->what)) return -1;
        args[nargs++] = (dnnl_exec_arg_t){DNNL_ARG_BIAS, p->m_bias};
    }
    if (kn_prim_exec(p->ctx, &p->fwd, nargs, args, p->what)) return -1;
    return act_out_finish(p, &p->fwd_dst);
}

/* Contract: the reordered weights of the last forward are reused when bwd_data gets the same
 * weight pointer and no kn_cpu_adam_step/kn_cpu_copy_to_device/kn_cpu_zero wrote over it since
 * (kn_cpu_unchanged): within a training step, and across steps for a frozen layer. */
int kn_cpu_conv_backward_data(kn_cpu_conv *p,
                              void *dinp,            // (N, H, W, C_in) dtype
                              const void *dout,      // (N, Ho, Wo, C_out) dtype
                              const float *weight) { // (C_out, C_in/groups, KH, KW)
    if (check_ptrs(p, dinp, dout, weight)) return -1;
    dnnl_memory_t w, ddst, dsrc;
    if (p->bd_shares_fwd && fwd_weights_current(p, weight)) {
        w = p->m_w_fwd;
        p->w_fwd_epoch = p->ctx->weights_epoch;
    } else if (p->bd_shares_fwd) {
        if (stage_weights(p, &p->reorder_w_fwd, p->m_w_fwd, weight, &w)) return -1;
        p->w_fwd_source = weight;
        p->w_fwd_epoch = p->ctx->weights_epoch;
    } else if (stage_weights(p, &p->reorder_w_bd, p->m_w_bd, weight, &w)) {
        return -1;
    }
    if (act_in(p, &p->bd_ddst, dout, &ddst) || act_out(p, &p->bd_dsrc, dinp, &dsrc)) return -1;
    dnnl_exec_arg_t args[] = {
        {DNNL_ARG_DIFF_SRC, dsrc}, {DNNL_ARG_WEIGHTS, w}, {DNNL_ARG_DIFF_DST, ddst}};
    if (kn_prim_exec(p->ctx, &p->bwd_data, 3, args, p->what)) return -1;
    return act_out_finish(p, &p->bd_dsrc);
}

int kn_cpu_conv_backward_weights(kn_cpu_conv *p,
                                 float *dweight,    // (C_out, C_in/groups, KH, KW)
                                 float *dbias,      // (C_out) or NULL
                                 const void *dout,  // (N, Ho, Wo, C_out) dtype
                                 const void *inp) { // (N, H, W, C_in) dtype
    if (check_ptrs(p, dweight, dout, inp)) return -1;
    if (p->s.has_bias && !dbias)
        return kn_fail(p->ctx, p->what, "plan has a bias but dbias is NULL");
    dnnl_memory_t src, ddst;
    if (act_in(p, &p->bw_src, inp, &src) || act_in(p, &p->bw_ddst, dout, &ddst) ||
        kn_bind(p->ctx, p->m_w_user, dweight, p->what))
        return -1;
    dnnl_memory_t dw = p->reorder_dw.prim ? p->m_dw : p->m_w_user;
    dnnl_exec_arg_t args[4] = {
        {DNNL_ARG_SRC, src}, {DNNL_ARG_DIFF_DST, ddst}, {DNNL_ARG_DIFF_WEIGHTS, dw}};
    int nargs = 3;
    if (p->s.has_bias) {
        if (kn_bind(p->ctx, p->m_bias, dbias, p->what)) return -1;
        args[nargs++] = (dnnl_exec_arg_t){DNNL_ARG_DIFF_BIAS, p->m_bias};
    }
    if (kn_prim_exec(p->ctx, &p->bwd_weights, nargs, args, p->what)) return -1;
    if (!p->reorder_dw.prim) return 0;
    dnnl_exec_arg_t back[] = {{DNNL_ARG_FROM, p->m_dw}, {DNNL_ARG_TO, p->m_w_user}};
    return kn_prim_exec(p->ctx, &p->reorder_dw, 2, back, p->what);
}

void kn_cpu_conv_destroy(kn_cpu_conv *p) {
    if (!p) return;
    destroy_prims(p);
    conv_act *acts[] = {&p->fwd_src, &p->fwd_dst, &p->bd_ddst,
                        &p->bd_dsrc, &p->bw_src,  &p->bw_ddst};
    for (size_t i = 0; i < sizeof acts / sizeof acts[0]; i++)
        act_destroy(acts[i]);
    kn_prim_destroy(&p->reorder_w_fwd);
    kn_prim_destroy(&p->reorder_w_bd);
    kn_prim_destroy(&p->reorder_dw);
    kn_mem_destroy(p->m_bias);
    kn_mem_destroy(p->m_w_user);
    kn_mem_destroy(p->m_w_fwd);
    kn_mem_destroy(p->m_w_bd);
    kn_mem_destroy(p->m_dw);
    free(p->w_fwd);
    free(p->w_bd);
    free(p->dw_blocked);
    free(p);
}
