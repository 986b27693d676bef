/* The call sequence of a captured step (see graph_seq.h): 64-bit FNV-1a over the op names and
 * arguments, so that a replay's check costs a few cycles per call. */
#include "kernels/graph_seq.h"

#include <string.h>

#define FNV_OFFSET 0xcbf29ce484222325ull
#define FNV_PRIME 0x100000001b3ull

static uint64_t mix_bytes(uint64_t h, const void *data, size_t bytes) {
    const unsigned char *p = data;
    for (size_t i = 0; i < bytes; i++)
        h = (h ^ p[i]) * FNV_PRIME;
    return h;
}

void kn_seq_start(kn_seq *s) {
    s->hash = FNV_OFFSET;
    s->calls = 0;
}

void kn_seq_add(kn_seq *s, const char *op, const uint64_t *args, size_t n_args) {
    /* the terminating NUL too: "add" then args never hashes like "add_..." */
    uint64_t h = mix_bytes(s->hash, op, strlen(op) + 1);
    h = mix_bytes(h, &n_args, sizeof n_args);
    s->hash = mix_bytes(h, args, n_args * sizeof *args);
    s->calls++;
}

int kn_seq_equal(const kn_seq *a, const kn_seq *b) {
    return a->hash == b->hash && a->calls == b->calls;
}

uint64_t kn_seq_f32(float x) {
    uint32_t bits;
    memcpy(&bits, &x, sizeof bits);
    return bits;
}
