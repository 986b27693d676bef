/* CUDA backend: kernels.h's CUDA graphs. A capture records the context's stream from begin to
 * end and instantiates the graph once. The ops whose values change every step read them, in a
 * graph, from step_dev: a capture or replay writes each call's values into step_host (pinned)
 * in call order, and each launch copies them up, then queues the graph. One step_dev serves
 * every graph, since launches and their copies queue on the one stream in order. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/cuda/cuda_internal.h"

/* Room for Adam's table of about 10000 tensors (ResNet-152 has 466), the loss's step and the
 * dropout layers' seeds. */
#define STEP_VALUES_BYTES ((size_t)256 << 10)
#define STEP_VALUES_ALIGN 16 /* each call's values start aligned for any kernel argument type */

struct kn_cuda_graph {
    cudaGraphExec_t exec;
    size_t step_bytes;     /* its calls' per-step values */
    uint64_t memory_epoch; /* the context's at the capture */
};

int kn_cuda_graphs_supported(kn_cuda_ctx *ctx, char *why, size_t whylen) {
    (void)ctx, (void)why, (void)whylen;
    return 1;
}

/* A capture that failed leaves its error (cudaErrorStreamCaptureInvalidated from the end, or
 * the call that broke it) as this thread's last runtime error, and our launches report
 * cudaGetLastError: the eager step that follows would fail on a launch that worked. A sticky
 * error is not cleared by this and shows again at the next call. */
static void forget_error(void) {
    (void)cudaGetLastError();
}

/* step_host, step_dev and step_copied, made by the first capture (outside it) */
static int step_buffers(kn_cuda_ctx *ctx, const char *what) {
    if (ctx->step_copied) return 0;
    return (!ctx->step_host && CU_CHECK(ctx, what,
                                        cudaHostAlloc((void **)&ctx->step_host, STEP_VALUES_BYTES,
                                                      cudaHostAllocDefault))) ||
                   (!ctx->step_dev &&
                    CU_CHECK(ctx, what, cudaMalloc((void **)&ctx->step_dev, STEP_VALUES_BYTES))) ||
                   CU_CHECK(ctx, what,
                            cudaEventCreateWithFlags(&ctx->step_copied, cudaEventDisableTiming))
               ? -1
               : 0;
}

/* A capture or replay writes step_host from the start: the last launch's copy must have run
 * (at most the step queued before it is still ahead of that copy). */
static int open_step(kn_cuda_ctx *ctx, kn_cuda_graph_mode mode, const kn_cuda_graph *values_of,
                     const char *what) {
    if (step_buffers(ctx, what) || CU_CHECK(ctx, what, cudaEventSynchronize(ctx->step_copied))) {
        forget_error(); /* an allocation that failed: the step runs eagerly */
        return -1;
    }
    ctx->graph_mode = mode;
    ctx->step_used = 0;
    ctx->step_failed = 0;
    ctx->step_values_of = values_of;
    return 0;
}

/* -1 when a call of the open capture or replay failed: its graph would lack that call's work
 * (the caller may have gone on to the end). Keeps the call's error. */
static int check_step_calls(kn_cuda_ctx *ctx, const char *what) {
    if (!ctx->step_failed) return 0;
    char call[KN_CUDA_ERR_LEN];
    snprintf(call, sizeof call, "%s", ctx->err);
    return kn_cuda_fail(ctx, what, "a call of the step failed: %s", call);
}

int kn_cuda_graph_capture_begin(kn_cuda_ctx *ctx) {
    const char *what = "kn_graph_capture_begin";
    if (open_step(ctx, KN_CUDA_CAPTURE, NULL, what)) return -1;
    /* thread-local: only this thread's calls must be capture-safe (the context is used by one
     * thread; other threads, a loader's, are not ours to restrict) */
    if (CU_CHECK(ctx, what,
                 cudaStreamBeginCapture(ctx->stream, cudaStreamCaptureModeThreadLocal))) {
        forget_error();
        ctx->graph_mode = KN_CUDA_EAGER;
        return -1;
    }
    ctx->capture_epoch = ctx->memory_epoch;
    return 0;
}

kn_cuda_graph *kn_cuda_graph_capture_end(kn_cuda_ctx *ctx) {
    const char *what = "kn_graph_capture_end";
    cudaGraph_t graph = NULL;
    kn_cuda_graph *g = NULL;
    ctx->graph_mode = KN_CUDA_EAGER;
    ctx->step_values_of = NULL;
    int rc = CU_CHECK(ctx, what, cudaStreamEndCapture(ctx->stream, &graph));
    if (!rc) rc = check_step_calls(ctx, what);
    if (!rc && ctx->memory_epoch != ctx->capture_epoch)
        rc = kn_cuda_fail(ctx, what, "device memory was freed during the capture");
    if (!rc && !(g = kn_cuda_plan_new(ctx, sizeof *g, what))) rc = -1;
    if (!rc && CU_CHECK(ctx, what, cudaGraphInstantiate(&g->exec, graph, 0))) rc = -1;
    if (graph) cudaGraphDestroy(graph); /* the instance keeps what it needs */
    if (rc) {
        forget_error();
        free(g);
        return NULL;
    }
    g->step_bytes = ctx->step_used;
    g->memory_epoch = ctx->capture_epoch;
    ctx->step_values_of = g;
    return g;
}

int kn_cuda_graph_replay_begin(kn_cuda_ctx *ctx, kn_cuda_graph *g) {
    if (g->memory_epoch != ctx->memory_epoch) return 1;
    return open_step(ctx, KN_CUDA_REPLAY, g, "kn_graph_replay_begin");
}

int kn_cuda_graph_launch(kn_cuda_ctx *ctx, kn_cuda_graph *g) {
    const char *what = "kn_graph_launch";
    const kn_cuda_graph *values_of = ctx->step_values_of;
    ctx->graph_mode = KN_CUDA_EAGER;
    ctx->step_values_of = NULL; /* one launch per capture or replay: the values are its */
    if (values_of != g)
        return kn_cuda_fail(ctx, what, "the graph was not the one just captured or replayed");
    if (check_step_calls(ctx, what)) return -1;
    if (g->memory_epoch != ctx->memory_epoch)
        return kn_cuda_fail(ctx, what, "device memory the graph uses was freed since its capture");
    if (ctx->step_used != g->step_bytes)
        return kn_cuda_fail(ctx, what, "the step's values take %zu bytes, its capture's %zu",
                            ctx->step_used, g->step_bytes);
    if ((g->step_bytes && (CU_CHECK(ctx, what,
                                    cudaMemcpyAsync(ctx->step_dev, ctx->step_host, g->step_bytes,
                                                    cudaMemcpyHostToDevice, ctx->stream)) ||
                           CU_CHECK(ctx, what, cudaEventRecord(ctx->step_copied, ctx->stream)))) ||
        CU_CHECK(ctx, what, cudaGraphLaunch(g->exec, ctx->stream))) {
        forget_error(); /* the step is made again eagerly */
        return -1;
    }
    return 0;
}

void kn_cuda_graph_abandon(kn_cuda_ctx *ctx) {
    if (ctx->graph_mode == KN_CUDA_CAPTURE) {
        cudaGraph_t graph = NULL;
        /* an invalidated capture ends with an error and no graph: nothing to keep either way */
        if (cudaStreamEndCapture(ctx->stream, &graph) == cudaSuccess && graph)
            cudaGraphDestroy(graph);
        forget_error(); /* the eager step made next must not see the capture's */
    }
    ctx->graph_mode = KN_CUDA_EAGER;
    ctx->step_values_of = NULL;
}

void kn_cuda_graph_destroy(kn_cuda_ctx *ctx, kn_cuda_graph *g) {
    if (!g) return;
    /* a launch still queued finishes: CUDA frees an executing instance when it is done */
    CU_CHECK(ctx, "kn_graph_destroy", cudaGraphExecDestroy(g->exec));
    if (ctx->step_values_of == g) ctx->step_values_of = NULL;
    free(g);
}

int kn_cuda_step_values(kn_cuda_ctx *ctx, const void *values, size_t bytes, const char *what,
                        const void **dev) {
    *dev = NULL;
    if (ctx->graph_mode == KN_CUDA_EAGER) return 0;
    const size_t at =
        (ctx->step_used + STEP_VALUES_ALIGN - 1) / STEP_VALUES_ALIGN * STEP_VALUES_ALIGN;
    if (at > STEP_VALUES_BYTES || bytes > STEP_VALUES_BYTES - at)
        return kn_cuda_fail(ctx, what, "the step's per-step values outgrow their %zu KiB",
                            STEP_VALUES_BYTES >> 10);
    memcpy(ctx->step_host + at, values, bytes);
    ctx->step_used = at + bytes;
    *dev = ctx->step_dev + at;
    return ctx->graph_mode == KN_CUDA_REPLAY;
}
