/* Counter-based random numbers: a stream is a pure function of (seed, epoch, position,
 * purpose), so an image's augmentation and an epoch's shuffle never depend on which thread
 * ran first or on how many threads there are. */
#ifndef TLSWEEP_RNG_H
#define TLSWEEP_RNG_H

#include <stdint.h>

typedef struct {
    uint64_t state;
} rng_stream;

enum { RNG_SHUFFLE = 1, RNG_AUGMENT = 2 };

rng_stream rng_stream_for(uint64_t seed, uint64_t epoch, uint64_t position, uint64_t purpose);
uint64_t rng_next(rng_stream *r);
/* Uniform in [lo, hi) from 53 random bits. */
double rng_uniform(rng_stream *r, double lo, double hi);
/* Uniform integer in [0, n) without modulo bias. */
uint64_t rng_below(rng_stream *r, uint64_t n);

#endif
