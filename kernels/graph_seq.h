/* The call sequence of a captured step (kernels.h's CUDA graphs), kept as a running hash: a
 * replay must make the same calls (the same ops on the same plans, buffers and sizes, in the
 * same order) for the graph to do its work. Backend-independent, so the CPU tests check it. */
#ifndef TLSWEEP_KERNELS_GRAPH_SEQ_H
#define TLSWEEP_KERNELS_GRAPH_SEQ_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    uint64_t hash;  /* over every call's op name and arguments, in order */
    uint64_t calls; /* how many */
} kn_seq;

void kn_seq_start(kn_seq *s);
/* One call: its op (the kernels.h function's name) and the arguments the graph holds fixed. */
void kn_seq_add(kn_seq *s, const char *op, const uint64_t *args, size_t n_args);
int kn_seq_equal(const kn_seq *a, const kn_seq *b);
/* A float argument as its bits (a plain conversion would truncate 0.5 to 0). */
uint64_t kn_seq_f32(float x);

#endif
