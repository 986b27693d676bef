/* fp32 <-> bf16 casts at the edges of bf16 ops, in plain C: round to nearest even like
 * PyTorch's .to(torch.bfloat16), NaN kept a (quiet) NaN. */
#include "kernels/cpu/cpu_internal.h"

#include <string.h>

/* Branch-free, so that the loop vectorizes (a branch made it 10x slower). */
static kn_bf16 to_bf16(float x) {
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    const uint32_t rounded = (u + 0x7fffu + ((u >> 16) & 1u)) >> 16;
    const uint32_t quiet_nan = (u >> 16) | 0x40u;
    return (kn_bf16)((u & 0x7fffffffu) > 0x7f800000u ? quiet_nan : rounded);
}

static float to_f32(kn_bf16 x) {
    const uint32_t u = (uint32_t)x << 16;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

int kn_cpu_f32_to_bf16(kn_cpu_ctx *ctx, kn_bf16 *out, const float *inp, size_t count) {
    if (!out || !inp) return kn_fail(ctx, "f32_to_bf16", "NULL tensor argument");
#pragma omp parallel for simd num_threads(ctx->threads) schedule(static)
    for (size_t i = 0; i < count; i++)
        out[i] = to_bf16(inp[i]);
    return 0;
}

int kn_cpu_bf16_to_f32(kn_cpu_ctx *ctx, float *out, const kn_bf16 *inp, size_t count) {
    if (!out || !inp) return kn_fail(ctx, "bf16_to_f32", "NULL tensor argument");
#pragma omp parallel for simd num_threads(ctx->threads) schedule(static)
    for (size_t i = 0; i < count; i++)
        out[i] = to_f32(inp[i]);
    return 0;
}
