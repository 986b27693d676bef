/* Inverted dropout with a counter-based mask: element i keeps iff hash(seed, offset + i)
 * maps to a uniform >= p, so the mask is the same for any thread count or split. */
#include "kernels/cpu/cpu_internal.h"

/* splitmix64's finalizer: a strong 64-bit mix, cheap enough to run per element */
static uint64_t mix64(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static int check_p(kn_ctx *ctx, float p, const char *what) {
    if (!(p >= 0.0f && p <= 1.0f)) return kn_fail(ctx, what, "p = %g is outside [0, 1]", (double)p);
    return 0;
}

int kn_dropout_forward(kn_ctx *ctx,
                       float *out,       // (count)
                       uint8_t *mask,    // (count)
                       const float *inp, // (count)
                       size_t count, float p, uint64_t seed, uint64_t offset) {
    if (check_p(ctx, p, "dropout forward")) return -1;
    if (count && (!out || !mask || !inp))
        return kn_fail(ctx, "dropout forward", "NULL tensor argument");
    /* keep iff u >= p with u uniform on 24-bit grid [0, 1); p = 1 drops everything */
    const uint64_t threshold = (uint64_t)((double)p * 16777216.0);
    const float scale = p < 1.0f ? 1.0f / (1.0f - p) : 0.0f;
    const uint64_t key = mix64(seed ^ 0x9E3779B97F4A7C15ull);
#pragma omp parallel for simd num_threads(ctx->threads) schedule(static)
    for (size_t i = 0; i < count; i++) {
        const uint64_t u = mix64(key + (offset + i) * 0x9E3779B97F4A7C15ull) >> 40;
        const uint8_t keep = u >= threshold;
        mask[i] = keep;
        out[i] = keep ? inp[i] * scale : 0.0f;
    }
    return 0;
}

int kn_dropout_backward(kn_ctx *ctx,
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
