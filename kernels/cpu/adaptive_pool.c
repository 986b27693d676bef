/* Adaptive average pooling (NHWC) in C with PyTorch's window rule:
 * start = floor(i * H / Ho), end = ceil((i + 1) * H / Ho). Windows may overlap. */
#include "kernels/cpu/cpu_internal.h"

#include <string.h>

/* Channels per work item: big enough to vectorize, small enough to split 2048 channels over
 * threads when the batch is small. */
#define KN_CBLOCK 64

static int window_start(int i, int in, int out) {
    return (int)(((int64_t)i * in) / out);
}
static int window_end(int i, int in, int out) {
    return (int)((((int64_t)i + 1) * in + out - 1) / out);
}

static int check_args(kn_cpu_ctx *ctx, const void *a, const void *b, int n, int c, int h, int w,
                      int ho, int wo, const char *what) {
    if (!a || !b) return kn_fail(ctx, what, "NULL tensor argument");
    if (n <= 0 || c <= 0 || h <= 0 || w <= 0 || ho <= 0 || wo <= 0)
        return kn_fail(ctx, what, "sizes must be positive (%dx%dx%dx%d -> %dx%d)", n, h, w, c, ho,
                       wo);
    return 0;
}

int kn_cpu_adaptive_avgpool_forward(kn_cpu_ctx *ctx,
                                    float *out,       // (N, Ho, Wo, C)
                                    const float *inp, // (N, H, W, C)
                                    int n, int c, int h, int w, int h_out, int w_out) {
    if (check_args(ctx, out, inp, n, c, h, w, h_out, w_out, "adaptive avgpool forward")) return -1;
    const int cblocks = (c + KN_CBLOCK - 1) / KN_CBLOCK;
    const int64_t items = (int64_t)n * h_out * w_out * cblocks;
#pragma omp parallel for num_threads(ctx->threads) schedule(static)
    for (int64_t it = 0; it < items; it++) {
        const int cb = (int)(it % cblocks);
        const int ow = (int)(it / cblocks % w_out);
        const int oh = (int)(it / cblocks / w_out % h_out);
        const int b = (int)(it / cblocks / w_out / h_out);
        const int c0 = cb * KN_CBLOCK, c1 = c0 + KN_CBLOCK < c ? c0 + KN_CBLOCK : c;
        const int h0 = window_start(oh, h, h_out), h1 = window_end(oh, h, h_out);
        const int w0 = window_start(ow, w, w_out), w1 = window_end(ow, w, w_out);
        float acc[KN_CBLOCK] = {0};
        for (int y = h0; y < h1; y++)
            for (int x = w0; x < w1; x++) {
                const float *src = inp + (((size_t)b * h + y) * w + x) * c;
#pragma omp simd
                for (int ch = c0; ch < c1; ch++)
                    acc[ch - c0] += src[ch];
            }
        const float scale = 1.0f / (float)((h1 - h0) * (w1 - w0));
        float *dst = out + (((size_t)b * h_out + oh) * w_out + ow) * c;
        for (int ch = c0; ch < c1; ch++)
            dst[ch] = acc[ch - c0] * scale;
    }
    return 0;
}

int kn_cpu_adaptive_avgpool_backward(kn_cpu_ctx *ctx,
                                     float *dinp,       // (N, H, W, C)
                                     const float *dout, // (N, Ho, Wo, C)
                                     int n, int c, int h, int w, int h_out, int w_out) {
    if (check_args(ctx, dinp, dout, n, c, h, w, h_out, w_out, "adaptive avgpool backward"))
        return -1;
    const int cblocks = (c + KN_CBLOCK - 1) / KN_CBLOCK;
    const int64_t items = (int64_t)n * cblocks;
    /* Each work item owns one image's channel block, so overlapping windows never race. */
#pragma omp parallel for num_threads(ctx->threads) schedule(static)
    for (int64_t it = 0; it < items; it++) {
        const int cb = (int)(it % cblocks), b = (int)(it / cblocks);
        const int c0 = cb * KN_CBLOCK, c1 = c0 + KN_CBLOCK < c ? c0 + KN_CBLOCK : c;
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++)
                memset(dinp + (((size_t)b * h + y) * w + x) * c + c0, 0,
                       (size_t)(c1 - c0) * sizeof(float));
        for (int oh = 0; oh < h_out; oh++)
            for (int ow = 0; ow < w_out; ow++) {
                const int h0 = window_start(oh, h, h_out), h1 = window_end(oh, h, h_out);
                const int w0 = window_start(ow, w, w_out), w1 = window_end(ow, w, w_out);
                const float scale = 1.0f / (float)((h1 - h0) * (w1 - w0));
                const float *g = dout + (((size_t)b * h_out + oh) * w_out + ow) * c;
                for (int y = h0; y < h1; y++)
                    for (int x = w0; x < w1; x++) {
                        float *d = dinp + (((size_t)b * h + y) * w + x) * c;
#pragma omp simd
                        for (int ch = c0; ch < c1; ch++)
                            d[ch] += g[ch] * scale;
                    }
            }
    }
    return 0;
}
