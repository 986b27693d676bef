/* NHWC <-> NCHW transposes, used before flatten so linear layers see PyTorch's (C, H, W)
 * feature order. */
#include "kernels/cpu/cpu_internal.h"

static int check_args(kn_cpu_ctx *ctx, const void *out, const void *inp, int n, int c, int h, int w,
                      const char *what) {
    if (!out || !inp) return kn_fail(ctx, what, "NULL tensor argument");
    if (n <= 0 || c <= 0 || h <= 0 || w <= 0) return kn_fail(ctx, what, "sizes must be positive");
    if (out == inp) return kn_fail(ctx, what, "cannot transpose in place");
    return 0;
}

int kn_cpu_nhwc_to_nchw(kn_cpu_ctx *ctx,
                        float *out,       // (N, C, H, W)
                        const float *inp, // (N, H, W, C)
                        int n, int c, int h, int w) {
    if (check_args(ctx, out, inp, n, c, h, w, "nhwc_to_nchw")) return -1;
    const size_t hw = (size_t)h * w;
    /* one output plane (image, channel) per iteration: writes are contiguous */
#pragma omp parallel for num_threads(ctx->threads) schedule(static)
    for (int64_t bc = 0; bc < (int64_t)n * c; bc++) {
        const size_t b = (size_t)(bc / c), ch = (size_t)(bc % c);
        const float *src = inp + b * hw * c + ch;
        float *dst = out + (size_t)bc * hw;
        for (size_t i = 0; i < hw; i++)
            dst[i] = src[i * c];
    }
    return 0;
}

int kn_cpu_nchw_to_nhwc(kn_cpu_ctx *ctx,
                        float *out,       // (N, H, W, C)
                        const float *inp, // (N, C, H, W)
                        int n, int c, int h, int w) {
    if (check_args(ctx, out, inp, n, c, h, w, "nchw_to_nhwc")) return -1;
    const size_t hw = (size_t)h * w;
    /* one output pixel (image, position) per iteration: writes are contiguous */
#pragma omp parallel for num_threads(ctx->threads) schedule(static)
    for (int64_t bp = 0; bp < (int64_t)(n * hw); bp++) {
        const size_t b = (size_t)bp / hw, pos = (size_t)bp % hw;
        const float *src = inp + b * hw * c + pos;
        float *dst = out + (size_t)bp * c;
        for (int ch = 0; ch < c; ch++)
            dst[ch] = src[(size_t)ch * hw];
    }
    return 0;
}
