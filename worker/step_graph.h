/* Whether the trainer's step runs as a CUDA graph (kernels.h), and the graphs: one per batch
 * slot, since each slot's batch lives in buffers of its own that its graph reads. For
 * single-rank trials on a CUDA context (a group's step waits for the host and NCCL between
 * backward and Adam); TLSWEEP_CUDA_GRAPHS=0 turns them off, for A/B runs. After each reset (a
 * new phase: other trainable tensors, so other calls) the first full-size step runs eagerly:
 * it makes the plans and grows the backend's scratch, which a capture cannot. Partial batches
 * run eagerly. Any failure of a graph turns them off for the trial, said once. */
#ifndef TLSWEEP_WORKER_STEP_GRAPH_H
#define TLSWEEP_WORKER_STEP_GRAPH_H

#include "kernels/kernels.h"

#define STEP_GRAPH_SLOTS 2

typedef enum { STEP_EAGER = 0, STEP_CAPTURE, STEP_REPLAY } step_how;

typedef struct {
    kn_ctx *ctx;
    const char *name; /* the trial's, for its messages */
    int enabled;      /* wanted and supported; 0 after a failure */
    int warm;         /* a full-size eager step ran since the last reset */
    int announced;    /* "runs as a CUDA graph" said */
    kn_graph *graph[STEP_GRAPH_SLOTS];
} step_graphs;

/* wanted: the trial could use graphs (one rank); the environment and the backend decide. */
void step_graphs_init(step_graphs *sg, kn_ctx *ctx, int wanted, const char *name);
/* The step's calls change (another phase): the graphs go, and the next step warms up. */
void step_graphs_reset(step_graphs *sg);
void step_graphs_free(step_graphs *sg);
/* How the step on a slot's batch runs (full: a full-size batch), by the rule alone. */
step_how step_graphs_plan(const step_graphs *sg, int slot, int full);
/* Opens the step's capture or replay as step_graphs_plan says (a stale graph is captured again;
 * one that cannot open turns graphs off) and says how the step runs. */
step_how step_graphs_begin(step_graphs *sg, int slot, int full);
/* After the step's calls (ok: all succeeded; else why): keeps a capture's graph and launches a
 * captured or replayed step. 0: the step is queued (or was eager); 1: nothing of it ran, graphs
 * are off (said once, with the reason), and the caller makes the step again eagerly. */
int step_graphs_end(step_graphs *sg, int slot, step_how how, int ok, const char *why);

#endif
