/* What the results file records about the binary and libraries that produced it. */
#ifndef TLSWEEP_PROVENANCE_H
#define TLSWEEP_PROVENANCE_H

#include "orchestrator/results_h5.h"
#include "orchestrator/trials.h"

#define TLSWEEP_VERSION "0.1.0"

typedef struct {
    char mpi[256], onednn[64], cuda[160], cudnn[64];
} provenance;

/* Fills p and points meta's version fields at it (and at compile-time constants). */
void provenance_fill(provenance *p, results_meta *meta);

/* The image cache files (worker/data/cache_file.h) the trials of T read, each split's once,
 * space-separated: images-RESIZE-COUNT-KEY.tlsimg, the key naming the image files' names,
 * sizes and times and the decoder. A dataset that does not open (preflight says why) adds
 * nothing. */
void provenance_image_caches(const sweep *s, const trial_table *t, char *out, size_t outlen);

#endif
