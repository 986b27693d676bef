/* The dropout mask rule both backends share, so that CPU and GPU keep the same elements for
 * the same (seed, offset + index). Header-only on purpose: the CPU's vectorized loop and the
 * CUDA kernel must both inline it (nvcc compiles it as __host__ __device__). */
#ifndef TLSWEEP_KERNELS_DROPOUT_MASK_H
#define TLSWEEP_KERNELS_DROPOUT_MASK_H

#include <stdint.h>

#include "kernels/host_device.h"

#define KN_GOLDEN 0x9E3779B97F4A7C15ull

/* splitmix64's finalizer: a strong 64-bit mix, cheap enough to run per element */
static inline KN_HOST_DEVICE uint64_t kn_mix64(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* The per-call key of a seed. */
static inline KN_HOST_DEVICE uint64_t kn_dropout_key(uint64_t seed) {
    return kn_mix64(seed ^ KN_GOLDEN);
}

/* keep iff u >= p with u uniform on the 24-bit grid [0, 1); p = 1 drops everything */
static inline KN_HOST_DEVICE uint64_t kn_dropout_threshold(float p) {
    return (uint64_t)((double)p * 16777216.0);
}

/* Whether element `index` (offset + position) survives. */
static inline KN_HOST_DEVICE int kn_dropout_keep(uint64_t key, uint64_t index, uint64_t threshold) {
    return (kn_mix64(key + index * KN_GOLDEN) >> 40) >= threshold;
}

#endif
