/* Counter-based random numbers: a stream is a pure function of (seed, epoch, position,
 * purpose), so an image's augmentation, an epoch's shuffle, a dropout mask or a weight
 * initialisation never depends on which thread ran first or on how many threads there are. */
#ifndef TLSWEEP_RNG_H
#define TLSWEEP_RNG_H

#include <stdint.h>

typedef struct {
    uint64_t state;
} rng_stream;

/* What a stream is for: streams of different purposes never coincide. */
enum {
    RNG_SHUFFLE = 1,
    RNG_AUGMENT = 2,
    RNG_INIT_BACKBONE = 3,
    RNG_INIT_HEAD = 4,
    RNG_DROPOUT = 5
};

rng_stream rng_stream_for(uint64_t seed, uint64_t epoch, uint64_t position, uint64_t purpose);
uint64_t rng_next(rng_stream *r);
/* Uniform in [lo, hi) from 53 random bits. */
double rng_uniform(rng_stream *r, double lo, double hi);
/* Uniform integer in [0, n) without modulo bias. */
uint64_t rng_below(rng_stream *r, uint64_t n);
/* Standard normal (Box-Muller on two uniforms). */
double rng_normal(rng_stream *r);

#endif
