/* 2-D convolution on cuDNN (legacy API), NHWC activations.
 *
 * The filter is given to cuDNN in its NHWC layout (C_out, KH, KW, C_in/groups), the layout
 * cuDNN's NHWC kernels are written for (PyTorch's channels_last does the same): the
 * forward and backward-data transpose PyTorch's (C_out, C_in/groups, KH, KW) weights into
 * the context's weight stage, and backward-weights transposes the gradient back. That costs
 * one pass over the weights per call, small beside the convolution.
 *
 * Algorithms are chosen once per plan by cudnnFind* (timed on this GPU; cudnnGet*_v7's
 * heuristic when Find fails or the context is deterministic), within the context's workspace
 * cap, and the workspace is the context's, grown to the largest choice. Without the
 * context's tf32 only FMA (true fp32) kernels are allowed.
 *
 * bf16 plans (kernels.h's mixed precision) run cuDNN's PSEUDO_BFLOAT16 configuration: x, w
 * and y (dx, dw, dy) bf16, compute type fp32, tensor-op math allowed whatever tf32 says. The
 * plan keeps the fp32 master weights' bf16 copy in the NHWC filter layout, written by each
 * forward call and reused by backward-data when nothing may have changed the weights since
 * (cuda_internal.h). cuDNN's legacy API has no backward-filter configuration with bf16 x/dy
 * and an fp32 dw, so dw comes out of cuDNN in bf16 (accumulated in fp32 inside, rounded once
 * at the end: 8 significant bits, as PyTorch's autocast weight gradient, which is a bf16
 * tensor too) and is widened to fp32 while it is transposed back. The bias is added to the
 * bf16 output in fp32 and rounded again (autocast rounds once, with the bias in the sum);
 * the bias gradient sums bf16 dy in fp32 with an own deterministic kernel. */
#include "kernels/cuda/cuda_internal.h"
#include "kernels/cuda/ops.h"
#include "kernels/shape.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct kn_cuda_conv {
    kn_cuda_ctx *ctx;
    kn_conv_shape s;
    int ho, wo;
    size_t weight_count;
    char what[KN_CUDA_WHAT_LEN];
    char impl[KN_CUDA_WHAT_LEN];
    cudnnTensorDescriptor_t x, y, bias;
    cudnnFilterDescriptor_t w;
    cudnnConvolutionDescriptor_t conv;
    cudnnConvolutionFwdAlgo_t fwd;
    cudnnConvolutionBwdDataAlgo_t bwd_data;
    cudnnConvolutionBwdFilterAlgo_t bwd_filter;
    cudnnMathType_t fwd_math, bwd_data_math, bwd_filter_math;
    int tensor_ops; /* tensor-op math allowed: tf32 on, or a bf16 plan */
    /* bf16 plans only: the weights in the filter layout, rounded to bf16, and whence */
    uint16_t *w_bf16;
    const float *w_source;
    uint64_t w_epoch;
    size_t bias_partials; /* floats of ctx->table the bias gradient's sums use */
};

static const float one = 1.0f, zero = 0.0f;

/* A result is usable when it ran, its math type is allowed (tensor-op math only with TF32 or
 * in bf16 plans), it is deterministic if the context asks for that, and its workspace fits
 * the cap. */
static int usable(const kn_cuda_ctx *ctx, int tensor_ops, cudnnStatus_t status,
                  cudnnMathType_t math, cudnnDeterminism_t determinism, size_t memory) {
    const int tensor_op =
        math == CUDNN_TENSOR_OP_MATH || math == CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION;
    return status == CUDNN_STATUS_SUCCESS && (tensor_ops || !tensor_op) &&
           (!ctx->deterministic || determinism == CUDNN_DETERMINISTIC) &&
           memory <= ctx->workspace_limit;
}

/* choose_NAME(plan, *algo, *math, *workspace): the first usable result of cudnnFind (timed on
 * this GPU, fastest first), else of the heuristic's list (cudnnGet*_v7). Deterministic
 * contexts take the heuristic's list only: it is a function of shape, GPU and cuDNN version,
 * while timing may pick another algorithm in the next run, and a resume would differ. */
#define DEFINE_CHOOSE(NAME, PERF, ALGO, COUNT, FIND, GET, ...)                                     \
    static int choose_##NAME(kn_cuda_conv *p, ALGO *algo, cudnnMathType_t *math, size_t *ws) {     \
        kn_cuda_ctx *ctx = p->ctx;                                                                 \
        PERF res[COUNT];                                                                           \
        for (int timed = !ctx->deterministic; timed >= 0; timed--) {                               \
            int got = 0;                                                                           \
            cudnnStatus_t st = timed ? FIND(ctx->dnn, __VA_ARGS__, COUNT, &got, res)               \
                                     : GET(ctx->dnn, __VA_ARGS__, COUNT, &got, res);               \
            if (st != CUDNN_STATUS_SUCCESS) {                                                      \
                if (timed) continue;                                                               \
                return kn_cuda_check_dnn(ctx, st, #GET, __FILE__, __LINE__, p->what);              \
            }                                                                                      \
            for (int i = 0; i < got; i++)                                                          \
                if (usable(ctx, p->tensor_ops, res[i].status, res[i].mathType, res[i].determinism, \
                           res[i].memory)) {                                                       \
                    *algo = res[i].algo;                                                           \
                    *math = p->tensor_ops ? res[i].mathType : CUDNN_FMA_MATH;                      \
                    *ws = res[i].memory;                                                           \
                    return 0;                                                                      \
                }                                                                                  \
        }                                                                                          \
        return kn_cuda_fail(ctx, p->what,                                                          \
                            "cuDNN offers no %s%s algorithm for this shape within "                \
                            "a %zu MiB workspace",                                                 \
                            ctx->deterministic ? "deterministic " : "", #NAME,                     \
                            ctx->workspace_limit >> 20);                                           \
    }
DEFINE_CHOOSE(forward, cudnnConvolutionFwdAlgoPerf_t, cudnnConvolutionFwdAlgo_t,
              CUDNN_CONVOLUTION_FWD_ALGO_COUNT, cudnnFindConvolutionForwardAlgorithm,
              cudnnGetConvolutionForwardAlgorithm_v7, p->x, p->w, p->conv, p->y)
DEFINE_CHOOSE(backward_data, cudnnConvolutionBwdDataAlgoPerf_t, cudnnConvolutionBwdDataAlgo_t,
              CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT, cudnnFindConvolutionBackwardDataAlgorithm,
              cudnnGetConvolutionBackwardDataAlgorithm_v7, p->w, p->y, p->conv, p->x)
DEFINE_CHOOSE(backward_filter, cudnnConvolutionBwdFilterAlgoPerf_t, cudnnConvolutionBwdFilterAlgo_t,
              CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT, cudnnFindConvolutionBackwardFilterAlgorithm,
              cudnnGetConvolutionBackwardFilterAlgorithm_v7, p->x, p->y, p->conv, p->w)

static const char *fwd_name(cudnnConvolutionFwdAlgo_t a) {
    static const char *const names[] = {
        "IMPLICIT_GEMM", "IMPLICIT_PRECOMP_GEMM", "GEMM", "DIRECT", "FFT", "FFT_TILING",
        "WINOGRAD",      "WINOGRAD_NONFUSED"};
    return (unsigned)a < sizeof names / sizeof names[0] ? names[a] : "?";
}
static const char *bwd_data_name(cudnnConvolutionBwdDataAlgo_t a) {
    static const char *const names[] = {"ALGO_0",     "ALGO_1",   "FFT",
                                        "FFT_TILING", "WINOGRAD", "WINOGRAD_NONFUSED"};
    return (unsigned)a < sizeof names / sizeof names[0] ? names[a] : "?";
}
static const char *bwd_filter_name(cudnnConvolutionBwdFilterAlgo_t a) {
    static const char *const names[] = {
        "ALGO_0", "ALGO_1", "FFT", "ALGO_3", "WINOGRAD", "WINOGRAD_NONFUSED", "FFT_TILING"};
    return (unsigned)a < sizeof names / sizeof names[0] ? names[a] : "?";
}

kn_cuda_conv *kn_cuda_conv_create(kn_cuda_ctx *ctx, const kn_conv_shape *s) {
    char what[KN_CUDA_WHAT_LEN], msg[KN_CUDA_WHAT_LEN];
    snprintf(what, sizeof what, "conv %dx%d s%d p%d g%d %d->%d on NHWC %dx%dx%dx%d%s", s->kh, s->kw,
             s->stride_h, s->pad_h, s->groups, s->c_in, s->c_out, s->n, s->h_in, s->w_in, s->c_in,
             s->dtype == KN_BF16 ? " bf16" : "");
    if (kn_conv_shape_check(s, msg, sizeof msg)) {
        kn_cuda_fail(ctx, what, "%s", msg);
        return NULL;
    }
    if (kn_cuda_dtype_check(ctx, s->dtype, what)) return NULL;
    kn_cuda_conv *p = kn_cuda_plan_new(ctx, sizeof *p, what);
    if (!p) return NULL;
    p->ctx = ctx;
    p->s = *s;
    memcpy(p->what, what, sizeof what);
    kn_conv_output_hw(s, &p->ho, &p->wo);
    p->weight_count = (size_t)s->c_out * (s->c_in / s->groups) * s->kh * s->kw;
    const int bf16 = s->dtype == KN_BF16;
    const cudnnDataType_t dt = bf16 ? CUDNN_DATA_BFLOAT16 : CUDNN_DATA_FLOAT;
    p->tensor_ops = ctx->tf32 || bf16;
    const cudnnMathType_t math = bf16        ? CUDNN_TENSOR_OP_MATH
                                 : ctx->tf32 ? CUDNN_DEFAULT_MATH
                                             : CUDNN_FMA_MATH;
    int n, c, h, w;
    size_t ws_fwd = 0, ws_bd = 0, ws_bf = 0;
    if (kn_cuda_nhwc_desc_typed(ctx, &p->x, dt, s->n, s->c_in, s->h_in, s->w_in, what) ||
        kn_cuda_nhwc_desc_typed(ctx, &p->y, dt, s->n, s->c_out, p->ho, p->wo, what) ||
        DNN_CHECK(ctx, what, cudnnCreateTensorDescriptor(&p->bias)) ||
        DNN_CHECK(ctx, what,
                  cudnnSetTensor4dDescriptor(p->bias, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, 1,
                                             s->c_out, 1, 1)) ||
        DNN_CHECK(ctx, what, cudnnCreateFilterDescriptor(&p->w)) ||
        DNN_CHECK(ctx, what,
                  cudnnSetFilter4dDescriptor(p->w, dt, CUDNN_TENSOR_NHWC, s->c_out,
                                             s->c_in / s->groups, s->kh, s->kw)) ||
        DNN_CHECK(ctx, what, cudnnCreateConvolutionDescriptor(&p->conv)) ||
        DNN_CHECK(ctx, what,
                  cudnnSetConvolution2dDescriptor(p->conv, s->pad_h, s->pad_w, s->stride_h,
                                                  s->stride_w, s->dilation_h, s->dilation_w,
                                                  CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT)) ||
        DNN_CHECK(ctx, what, cudnnSetConvolutionGroupCount(p->conv, s->groups)) ||
        DNN_CHECK(ctx, what, cudnnSetConvolutionMathType(p->conv, math)) ||
        DNN_CHECK(ctx, what,
                  cudnnGetConvolution2dForwardOutputDim(p->conv, p->x, p->w, &n, &c, &h, &w)))
        goto fail;
    if (n != s->n || c != s->c_out || h != p->ho || w != p->wo) {
        kn_cuda_fail(ctx, what, "cuDNN's output %dx%dx%dx%d differs from PyTorch's %dx%dx%dx%d", n,
                     h, w, c, s->n, p->ho, p->wo, s->c_out);
        goto fail;
    }
    if (choose_forward(p, &p->fwd, &p->fwd_math, &ws_fwd) ||
        choose_backward_data(p, &p->bwd_data, &p->bwd_data_math, &ws_bd) ||
        choose_backward_filter(p, &p->bwd_filter, &p->bwd_filter_math, &ws_bf))
        goto fail;
    size_t ws = ws_fwd > ws_bd ? ws_fwd : ws_bd;
    ws = ws > ws_bf ? ws : ws_bf;
    /* the stage holds fp32 weights (forward, backward data) or the weight gradient in cuDNN's
     * layout, bf16 in bf16 plans */
    const size_t stage = p->weight_count * (bf16 ? sizeof(uint16_t) : sizeof(float));
    if (kn_cuda_reserve(ctx, &ctx->workspace, &ctx->workspace_bytes, ws, what) ||
        kn_cuda_reserve(ctx, &ctx->weight_stage, &ctx->weight_stage_bytes, stage, what))
        goto fail;
    if (bf16) {
        p->bias_partials =
            s->has_bias ? kn_cu_column_sums_bf16_partials((size_t)s->n * p->ho * p->wo, s->c_out)
                        : 0;
        /* reserved now: growing the table waits for the device, which a step should not */
        if (!(p->w_bf16 = kn_cuda_plan_alloc(ctx, p->weight_count * sizeof(uint16_t), what)) ||
            kn_cuda_reserve(ctx, &ctx->table, &ctx->table_bytes, p->bias_partials * sizeof(float),
                            what))
            goto fail;
    }
    snprintf(p->impl, sizeof p->impl,
             "cudnn%s fwd %s, bwd-data %s, bwd-filter %s (%.1f MiB workspace%s)",
             bf16 ? " bf16" : "", fwd_name(p->fwd), bwd_data_name(p->bwd_data),
             bwd_filter_name(p->bwd_filter), (double)ws / (1 << 20),
             ctx->deterministic ? ", deterministic" : "");
    return p;
fail:
    kn_cuda_conv_destroy(p);
    return NULL;
}

const char *kn_cuda_conv_impl(const kn_cuda_conv *p) {
    return p->impl;
}

/* The filter cuDNN reads: PyTorch's (C_out, C_in/g, KH, KW) weights as (C_out, KH, KW,
 * C_in/g), in the context's stage (fp32 plans, each call), or in the plan's bf16 copy,
 * rounded, unless `reuse` and the copy is of these weights with no parameter change since. */
static int stage_weights(kn_cuda_conv *p, const float *weight, int reuse, const void **filter) {
    const kn_conv_shape *s = &p->s;
    kn_cuda_ctx *ctx = p->ctx;
    if (!p->w_bf16) {
        *filter = ctx->weight_stage;
        return CU_CHECK(ctx, p->what,
                        kn_cu_nchw_to_nhwc(ctx->stream, ctx->weight_stage, weight, s->c_out,
                                           s->c_in / s->groups, s->kh, s->kw));
    }
    *filter = p->w_bf16;
    if (reuse && p->w_source == weight && p->w_epoch == ctx->weights_epoch) return 0;
    if (CU_CHECK(ctx, p->what,
                 kn_cu_oihw_f32_to_ohwi_bf16(ctx->stream, p->w_bf16, weight, s->c_out,
                                             s->c_in / s->groups, s->kh, s->kw)))
        return -1;
    p->w_source = weight;
    p->w_epoch = ctx->weights_epoch;
    return 0;
}

int kn_cuda_conv_forward(kn_cuda_conv *p,
                         void *out,           // (N, Ho, Wo, C_out) dtype
                         const void *inp,     // (N, H, W, C_in) dtype
                         const float *weight, // (C_out, C_in/groups, KH, KW)
                         const float *bias) { // (C_out) or NULL
    kn_cuda_ctx *ctx = p->ctx;
    if (!out || !inp || !weight || (p->s.has_bias && !bias))
        return kn_cuda_fail(ctx, p->what, "NULL tensor argument");
    const void *filter;
    if (stage_weights(p, weight, 0, &filter) ||
        DNN_CHECK(ctx, p->what, cudnnSetConvolutionMathType(p->conv, p->fwd_math)) ||
        DNN_CHECK(ctx, p->what,
                  cudnnConvolutionForward(ctx->dnn, &one, p->x, inp, p->w, filter, p->conv, p->fwd,
                                          ctx->workspace, ctx->workspace_bytes, &zero, p->y, out)))
        return -1;
    if (!p->s.has_bias) return 0;
    const size_t rows = (size_t)p->s.n * p->ho * p->wo;
    return CU_CHECK(ctx, p->what,
                    p->w_bf16 ? kn_cu_add_bias_bf16(ctx->stream, out, bias, rows, p->s.c_out)
                              : kn_cu_add_bias(ctx->stream, out, bias, (int)rows, p->s.c_out));
}

int kn_cuda_conv_backward_data(kn_cuda_conv *p,
                               void *dinp,            // (N, H, W, C_in) dtype
                               const void *dout,      // (N, Ho, Wo, C_out) dtype
                               const float *weight) { // (C_out, C_in/groups, KH, KW)
    kn_cuda_ctx *ctx = p->ctx;
    if (!dinp || !dout || !weight) return kn_cuda_fail(ctx, p->what, "NULL tensor argument");
    const void *filter;
    return stage_weights(p, weight, 1, &filter) ||
                   DNN_CHECK(ctx, p->what,
                             cudnnSetConvolutionMathType(p->conv, p->bwd_data_math)) ||
                   DNN_CHECK(ctx, p->what,
                             cudnnConvolutionBackwardData(ctx->dnn, &one, p->w, filter, p->y, dout,
                                                          p->conv, p->bwd_data, ctx->workspace,
                                                          ctx->workspace_bytes, &zero, p->x, dinp))
               ? -1
               : 0;
}

int kn_cuda_conv_backward_weights(kn_cuda_conv *p,
                                  float *dweight,    // (C_out, C_in/groups, KH, KW)
                                  float *dbias,      // (C_out) or NULL
                                  const void *dout,  // (N, Ho, Wo, C_out) dtype
                                  const void *inp) { // (N, H, W, C_in) dtype
    kn_cuda_ctx *ctx = p->ctx;
    const kn_conv_shape *s = &p->s;
    if (!dweight || !dout || !inp || (s->has_bias && !dbias))
        return kn_cuda_fail(ctx, p->what, "NULL tensor argument");
    if (DNN_CHECK(ctx, p->what, cudnnSetConvolutionMathType(p->conv, p->bwd_filter_math)) ||
        DNN_CHECK(ctx, p->what,
                  cudnnConvolutionBackwardFilter(
                      ctx->dnn, &one, p->x, inp, p->y, dout, p->conv, p->bwd_filter, ctx->workspace,
                      ctx->workspace_bytes, &zero, p->w, ctx->weight_stage)) ||
        CU_CHECK(ctx, p->what,
                 p->w_bf16
                     ? kn_cu_ohwi_bf16_to_oihw_f32(ctx->stream, dweight, ctx->weight_stage,
                                                   s->c_out, s->c_in / s->groups, s->kh, s->kw)
                     : kn_cu_nhwc_to_nchw(ctx->stream, dweight, ctx->weight_stage, s->c_out,
                                          s->c_in / s->groups, s->kh, s->kw)))
        return -1;
    if (!s->has_bias) return 0;
    if (!p->w_bf16)
        return DNN_CHECK(
            ctx, p->what,
            cudnnConvolutionBackwardBias(ctx->dnn, &one, p->y, dout, &zero, p->bias, dbias));
    return kn_cuda_reserve(ctx, &ctx->table, &ctx->table_bytes, p->bias_partials * sizeof(float),
                           p->what) ||
                   CU_CHECK(ctx, p->what,
                            kn_cu_column_sums_bf16(ctx->stream, dbias, ctx->table, dout,
                                                   (size_t)s->n * p->ho * p->wo, s->c_out))
               ? -1
               : 0;
}

void kn_cuda_conv_destroy(kn_cuda_conv *p) {
    if (!p) return;
    p->ctx->memory_epoch++; /* graphs captured with this plan are stale */
    if (p->x) cudnnDestroyTensorDescriptor(p->x);
    if (p->y) cudnnDestroyTensorDescriptor(p->y);
    if (p->bias) cudnnDestroyTensorDescriptor(p->bias);
    if (p->w) cudnnDestroyFilterDescriptor(p->w);
    if (p->conv) cudnnDestroyConvolutionDescriptor(p->conv);
    cudaFree(p->w_bf16);
    free(p);
}
