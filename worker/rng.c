/* SplitMix64 (Steele, Lea, Flood 2014) keyed by hashing the stream coordinates together. */
#include "worker/rng.h"

#include <math.h>

static uint64_t mix64(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

rng_stream rng_stream_for(uint64_t seed, uint64_t epoch, uint64_t position, uint64_t purpose) {
    /* Chained hashing: each coordinate changes the whole key, so nearby streams differ. */
    uint64_t h = mix64(seed + 0x9e3779b97f4a7c15ull);
    h = mix64(h ^ (epoch + 0x632be59bd9b4e019ull));
    h = mix64(h ^ (position + 0x8cb92ba72f3d8dd7ull));
    h = mix64(h ^ (purpose + 0xd1b54a32d192ed03ull));
    return (rng_stream){h};
}

uint64_t rng_next(rng_stream *r) {
    r->state += 0x9e3779b97f4a7c15ull;
    return mix64(r->state);
}

double rng_uniform(rng_stream *r, double lo, double hi) {
    double u = (double)(rng_next(r) >> 11) * 0x1.0p-53;
    return lo + (hi - lo) * u;
}

uint64_t rng_below(rng_stream *r, uint64_t n) {
    uint64_t limit = UINT64_MAX - UINT64_MAX % n;
    uint64_t x;
    do
        x = rng_next(r);
    while (x >= limit);
    return x % n;
}

double rng_normal(rng_stream *r) {
    double u1 = rng_uniform(r, 0, 1), u2 = rng_uniform(r, 0, 1);
    if (u1 < 1e-300) u1 = 1e-300; /* log(0) */
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}
