/* What the results file records about the binary and libraries that produced it. */
#ifndef TLSWEEP_PROVENANCE_H
#define TLSWEEP_PROVENANCE_H

#include "orchestrator/results_h5.h"

#define TLSWEEP_VERSION "0.1.0"

typedef struct {
    char mpi[256], onednn[64], cuda[160], cudnn[64];
} provenance;

/* Fills p and points meta's version fields at it (and at compile-time constants). */
void provenance_fill(provenance *p, results_meta *meta);

#endif
