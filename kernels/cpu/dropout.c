/* Inverted dropout with a counter-based mask: element i keeps iff hash(seed, offset + i)
 * maps to a uniform >= p, so the mask is the same for any thread count or split. */
#include "kernels/cpu/cpu_internal.h"
#include "kernels/dropout_mask.h"

static int check_p(kn_cpu_ctx *ctx, float p, const char *what) {
    if (!(p >= 0.0f && p <= 1.0f)) return kn_fail(ctx, what, "p = %g is outside [0, 1]", (double)p);
    return 0;
}

int kn_cpu_dropout_forward(kn_cpu_ctx *ctx,
                           float *out,       // (count)
                           uint8_t *mask,    // (count)
                           const float *inp, // (count)
                           size_t count, float p, uint64_t seed, uint64_t offset) {
    if (check_p(ctx, p, "dropout forward")) return -1;
    if (count && (!out || !mask || !inp))
        return kn_fail(ctx, "dropout forward", "NULL tensor argument");
    const uint64_t threshold = kn_dropout_threshold(p);
    const float scale = p < 1.0f ? 1.0f / (1.0f - p) : 0.0f;
    const uint64_t key = kn_dropout_key(seed);
#pragma omp parallel for simd num_threads(ctx->threads) schedule(static)
    for (size_t i = 0; i < count; i++) {
        const uint8_t keep = (uint8_t)kn_dropout_keep(key, offset + i, threshold);
        mask[i] = keep;
        out[i] = keep ? inp[i] * scale : 0.0f;
    }
    return 0;
}

int kn_cpu_dropout_backward(kn_cpu_ctx *ctx,
                            float *dinp,         // (count)
                            const float *dout,   // (count)
                            const uint8_t *mask, // (count)
                            size_t count, float p) {
    if (check_p(ctx, p, "dropout backward")) return -1;
    if (count && (!dinp || !dout || !mask))
        return kn_fail(ctx, "dropout backward", "NULL tensor argument");
    const float scale = p < 1.0f ? 1.0f / (1.0f - p) : 0.0f;
#pragma omp parallel for simd num_threads(ctx->threads) schedule(static)
    for (size_t i = 0; i < count; i++)
        dinp[i] = mask[i] ? dout[i] * scale : 0.0f;
    return 0;
}
