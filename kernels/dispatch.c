/* kernels.h's functions: each routes to the backend that owns the context or plan.
 *
 * The context and every plan carry their backend and the backend's own object; a plan always
 * belongs to the backend of the context it was made with. */
#include "kernels/kernels.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/cpu/cpu_backend.h"
#include "kernels/cuda/cuda_backend.h"
#include "kernels/graph_seq.h"

/* The one place that knows which backends this build has: the CUDA backend only with
 * KN_WITH_CUDA (the Makefile's CUDA=1), the CPU backend unless KN_NO_CPU (the GPU test
 * build, which has no oneDNN). A backend left out can never own a context, since
 * kn_ctx_create refuses it, so the `fail` value of its *_CALL is never produced. */
#ifdef KN_WITH_CUDA
#define CUDA_BUILT 1
#define CUDA_CALL(fail, fn, ...) kn_cuda_##fn(__VA_ARGS__)
#else
#define CUDA_BUILT 0
#define CUDA_CALL(fail, fn, ...) (fail)
#endif
#ifdef KN_NO_CPU
#define CPU_BUILT 0
#define CPU_CALL(fail, fn, ...) (fail)
#else
#define CPU_BUILT 1
#define CPU_CALL(fail, fn, ...) kn_cpu_##fn(__VA_ARGS__)
#endif

/* x is a context or a plan: fn(x's backend object, args...) of x's backend. */
#define ROUTE(x, fail, fn, ...)                                                                    \
    ((x)->backend == KN_BACKEND_CUDA ? CUDA_CALL(fail, fn, (x)->cuda, __VA_ARGS__)                 \
                                     : CPU_CALL(fail, fn, (x)->cpu, __VA_ARGS__))
#define ROUTE0(x, fail, fn)                                                                        \
    ((x)->backend == KN_BACKEND_CUDA ? CUDA_CALL(fail, fn, (x)->cuda)                              \
                                     : CPU_CALL(fail, fn, (x)->cpu))

typedef enum { GRAPH_EAGER = 0, GRAPH_CAPTURE, GRAPH_REPLAY } graph_mode;

struct kn_ctx {
    kn_backend backend;
    kn_cpu_ctx *cpu;
    kn_cuda_ctx *cuda;
    /* CUDA graphs: a capture or replay open since its begin, the calls made in it, and the
     * first call made in it that a step may not make */
    graph_mode graph;
    kn_seq seq;
    const char *refused;
};

/* Plans know their context: their calls join its graph's call sequence. */
struct kn_conv {
    kn_backend backend;
    kn_ctx *ctx;
    kn_cpu_conv *cpu;
    kn_cuda_conv *cuda;
};
struct kn_bn {
    kn_backend backend;
    kn_ctx *ctx;
    kn_cpu_bn *cpu;
    kn_cuda_bn *cuda;
};
struct kn_pool {
    kn_backend backend;
    kn_ctx *ctx;
    kn_cpu_pool *cpu;
    kn_cuda_pool *cuda;
};
struct kn_linear {
    kn_backend backend;
    kn_ctx *ctx;
    kn_cpu_linear *cpu;
    kn_cuda_linear *cuda;
};
struct kn_comm { /* CUDA only: a CPU group moves host memory over MPI */
    kn_ctx *ctx;
    kn_cuda_comm *cuda;
};
struct kn_graph {
    kn_seq seq; /* the calls it was captured from */
    kn_cuda_graph *cuda;
};

/* ---- the calls of a captured or replayed step (kernels.h's CUDA graphs) -------------- *
 * Each op a step may make notes itself with its plans, buffers and sizes (STEP_OP), so that a
 * replay is checked against its capture; in a replay the graph holds the op's work, so the
 * call ends there. The ops with per-step values (dropout's seed, the loss's step, Adam's)
 * always reach the backend, which keeps those values for the graph (STEP_VALUES). Any other
 * call that queues work or touches device memory is refused inside a step (REFUSED_IN_STEP):
 * run then, it would land outside the graph, out of order. A new kernels.h call that queues
 * device work needs one of the three, or a replay would run it eagerly, ahead of its graph. */
#define P(ptr) ((uint64_t)(uintptr_t)(ptr))
#define F(x) kn_seq_f32(x)

/* Notes the call in an open capture or replay; 1 when it is a replay's (nothing to run). */
static int step_note(kn_ctx *ctx, const char *op, const uint64_t *args, size_t n_args) {
    if (ctx->graph == GRAPH_EAGER) return 0;
    kn_seq_add(&ctx->seq, op, args, n_args);
    return ctx->graph == GRAPH_REPLAY;
}

#define STEP_ARGS(ctx, ...)                                                                        \
    const uint64_t step_args_[] = {__VA_ARGS__};                                                   \
    const int step_replayed_ =                                                                     \
        step_note((ctx), __func__, step_args_, sizeof step_args_ / sizeof *step_args_)
#define STEP_OP(ctx, ...)                                                                          \
    do {                                                                                           \
        STEP_ARGS(ctx, __VA_ARGS__);                                                               \
        if (step_replayed_) return 0;                                                              \
    } while (0)
#define STEP_VALUES(ctx, ...)                                                                      \
    do {                                                                                           \
        STEP_ARGS(ctx, __VA_ARGS__);                                                               \
        (void)step_replayed_;                                                                      \
    } while (0)

static void set_error(kn_ctx *ctx, const char *msg);

/* 1 (with the error set) when a step is open: the caller returns its failure value. Calls
 * that return nothing still run, and the capture or replay fails at its end. */
static int refused_in_step(kn_ctx *ctx, const char *op) {
    if (ctx->graph == GRAPH_EAGER) return 0;
    if (!ctx->refused) ctx->refused = op;
    char msg[160];
    snprintf(msg, sizeof msg, "%s: not allowed inside a captured or replayed step", op);
    set_error(ctx, msg);
    return 1;
}
#define REFUSED_IN_STEP(ctx, fail)                                                                 \
    do {                                                                                           \
        if (refused_in_step((ctx), __func__)) return fail;                                         \
    } while (0)

static void set_error(kn_ctx *ctx, const char *msg) {
    ROUTE(ctx, (void)0, set_error, msg);
}

static void create_error(char *err, size_t errlen, const char *msg) {
    if (err && errlen > 0) snprintf(err, errlen, "%s", msg);
}

kn_ctx *kn_ctx_create(const kn_ctx_options *opt, char *err, size_t errlen) {
    const kn_backend backend = opt ? opt->backend : KN_BACKEND_CPU;
    if (backend != KN_BACKEND_CPU && backend != KN_BACKEND_CUDA) {
        create_error(err, errlen, "unknown backend");
        return NULL;
    }
    if (backend == KN_BACKEND_CUDA && !CUDA_BUILT) {
        create_error(err, errlen,
                     "cuda backend: built without CUDA (make CUDA=1 with nvcc + cuDNN)");
        return NULL;
    }
    if (backend == KN_BACKEND_CPU && !CPU_BUILT) {
        create_error(err, errlen, "cpu backend: built without it (KN_NO_CPU: the GPU test build)");
        return NULL;
    }
    kn_ctx *ctx = calloc(1, sizeof *ctx);
    if (!ctx) {
        create_error(err, errlen, "out of memory for the context");
        return NULL;
    }
    ctx->backend = backend;
    if (backend == KN_BACKEND_CUDA)
        ctx->cuda = CUDA_CALL(NULL, ctx_create, opt, err, errlen);
    else
        ctx->cpu = CPU_CALL(NULL, ctx_create, opt, err, errlen);
    if (!ctx->cpu && !ctx->cuda) {
        free(ctx);
        return NULL;
    }
    return ctx;
}

void kn_ctx_destroy(kn_ctx *ctx) {
    if (!ctx) return;
    ROUTE0(ctx, (void)0, ctx_destroy);
    free(ctx);
}

const char *kn_error(const kn_ctx *ctx) {
    return ctx ? ROUTE0(ctx, "no backend", error) : "no context";
}

const char *kn_describe(const kn_ctx *ctx) {
    return ctx ? ROUTE0(ctx, "no backend", describe) : "no context";
}

size_t kn_workspace_bytes(const kn_ctx *ctx) {
    return ctx && ctx->backend == KN_BACKEND_CUDA ? CUDA_CALL(0, workspace_bytes, ctx->cuda) : 0;
}

size_t kn_memory_peak(const kn_ctx *ctx) {
    return ctx && ctx->backend == KN_BACKEND_CUDA ? CUDA_CALL(0, memory_peak, ctx->cuda) : 0;
}

void kn_library_versions(char *cuda, size_t cuda_len, char *cudnn, size_t cudnn_len) {
#ifdef KN_WITH_CUDA
    kn_cuda_library_versions(cuda, cuda_len, cudnn, cudnn_len);
#else
    if (cuda_len) snprintf(cuda, cuda_len, "none (CPU-only build)");
    if (cudnn_len) snprintf(cudnn, cudnn_len, "none (CPU-only build)");
#endif
}

/* A zeroed plan wrapper of `bytes`; NULL with the context's error set. */
static void *plan_new(kn_ctx *ctx, size_t bytes, const char *what) {
    void *p = calloc(1, bytes);
    if (!p) {
        char msg[128];
        snprintf(msg, sizeof msg, "%s: out of memory", what);
        ROUTE(ctx, (void)0, set_error, msg);
    }
    return p;
}

/* ---- memory ---------------------------------------------------------------------------- */
void *kn_malloc(kn_ctx *ctx, size_t bytes) {
    REFUSED_IN_STEP(ctx, NULL);
    return ROUTE(ctx, NULL, malloc, bytes);
}
void kn_free(kn_ctx *ctx, void *ptr) {
    (void)refused_in_step(ctx, __func__);
    ROUTE(ctx, (void)0, free, ptr);
}
void kn_written(kn_ctx *ctx, const void *ptr, size_t bytes) {
    (void)refused_in_step(ctx, __func__);
    ROUTE(ctx, (void)0, note_write, ptr, bytes);
}
int kn_copy_to_device(kn_ctx *ctx, void *dst, const void *host_src, size_t bytes) {
    REFUSED_IN_STEP(ctx, -1);
    return ROUTE(ctx, -1, copy_to_device, dst, host_src, bytes);
}
int kn_copy_to_host(kn_ctx *ctx, void *host_dst, const void *src, size_t bytes) {
    REFUSED_IN_STEP(ctx, -1);
    return ROUTE(ctx, -1, copy_to_host, host_dst, src, bytes);
}
int kn_zero(kn_ctx *ctx, float *ptr, size_t count) {
    STEP_OP(ctx, P(ptr), count);
    return ROUTE(ctx, -1, zero, ptr, count);
}
int kn_sync(kn_ctx *ctx) {
    REFUSED_IN_STEP(ctx, -1);
    return ROUTE0(ctx, -1, sync);
}

/* ---- convolution ----------------------------------------------------------------------- */
kn_conv *kn_conv_create(kn_ctx *ctx, const kn_conv_shape *s) {
    REFUSED_IN_STEP(ctx, NULL);
    kn_conv *p = plan_new(ctx, sizeof *p, "conv plan");
    if (!p) return NULL;
    p->backend = ctx->backend;
    p->ctx = ctx;
    if (p->backend == KN_BACKEND_CUDA)
        p->cuda = CUDA_CALL(NULL, conv_create, ctx->cuda, s);
    else
        p->cpu = CPU_CALL(NULL, conv_create, ctx->cpu, s);
    if (p->cpu || p->cuda) return p;
    free(p);
    return NULL;
}
int kn_conv_forward(kn_conv *p, void *out, const void *inp, const float *weight,
                    const float *bias) {
    STEP_OP(p->ctx, P(p), P(out), P(inp), P(weight), P(bias));
    return ROUTE(p, -1, conv_forward, out, inp, weight, bias);
}
int kn_conv_backward_data(kn_conv *p, void *dinp, const void *dout, const float *weight) {
    STEP_OP(p->ctx, P(p), P(dinp), P(dout), P(weight));
    return ROUTE(p, -1, conv_backward_data, dinp, dout, weight);
}
int kn_conv_backward_weights(kn_conv *p, float *dweight, float *dbias, const void *dout,
                             const void *inp) {
    STEP_OP(p->ctx, P(p), P(dweight), P(dbias), P(dout), P(inp));
    return ROUTE(p, -1, conv_backward_weights, dweight, dbias, dout, inp);
}
const char *kn_conv_impl(const kn_conv *p) {
    return ROUTE0(p, "none", conv_impl);
}
void kn_conv_destroy(kn_conv *p) {
    if (!p) return;
    (void)refused_in_step(p->ctx, __func__);
    ROUTE0(p, (void)0, conv_destroy);
    free(p);
}

/* ---- batch normalization --------------------------------------------------------------- */
kn_bn *kn_bn_create(kn_ctx *ctx, const kn_bn_shape *s) {
    REFUSED_IN_STEP(ctx, NULL);
    kn_bn *p = plan_new(ctx, sizeof *p, "batchnorm plan");
    if (!p) return NULL;
    p->backend = ctx->backend;
    p->ctx = ctx;
    if (p->backend == KN_BACKEND_CUDA)
        p->cuda = CUDA_CALL(NULL, bn_create, ctx->cuda, s);
    else
        p->cpu = CPU_CALL(NULL, bn_create, ctx->cpu, s);
    if (p->cpu || p->cuda) return p;
    free(p);
    return NULL;
}
int kn_bn_forward_train(kn_bn *p, float *out, float *save_mean, float *save_var,
                        float *running_mean, float *running_var, const float *inp,
                        const float *gamma, const float *beta) {
    STEP_OP(p->ctx, P(p), P(out), P(save_mean), P(save_var), P(running_mean), P(running_var),
            P(inp), P(gamma), P(beta));
    return ROUTE(p, -1, bn_forward_train, out, save_mean, save_var, running_mean, running_var, inp,
                 gamma, beta);
}
int kn_bn_forward_infer(kn_bn *p, float *out, const float *inp, const float *gamma,
                        const float *beta, const float *running_mean, const float *running_var) {
    STEP_OP(p->ctx, P(p), P(out), P(inp), P(gamma), P(beta), P(running_mean), P(running_var));
    return ROUTE(p, -1, bn_forward_infer, out, inp, gamma, beta, running_mean, running_var);
}
int kn_bn_backward(kn_bn *p, float *dinp, float *dgamma, float *dbeta, const float *dout,
                   const float *inp, const float *save_mean, const float *save_var,
                   const float *gamma) {
    STEP_OP(p->ctx, P(p), P(dinp), P(dgamma), P(dbeta), P(dout), P(inp), P(save_mean), P(save_var),
            P(gamma));
    return ROUTE(p, -1, bn_backward, dinp, dgamma, dbeta, dout, inp, save_mean, save_var, gamma);
}
int kn_bn_shard_stats(kn_bn *p, double *mean, double *m2, const float *inp) {
    REFUSED_IN_STEP(p->ctx, -1);
    return ROUTE(p, -1, bn_shard_stats, mean, m2, inp);
}
int kn_bn_forward_stats(kn_bn *p, float *out, float *save_mean, float *save_var,
                        float *running_mean, float *running_var, const double *mean,
                        const double *var, double count, const float *inp, const float *gamma,
                        const float *beta) {
    REFUSED_IN_STEP(p->ctx, -1);
    return ROUTE(p, -1, bn_forward_stats, out, save_mean, save_var, running_mean, running_var, mean,
                 var, count, inp, gamma, beta);
}
int kn_bn_update_running(kn_ctx *ctx, float *running_mean, float *running_var, const double *mean,
                         const double *var, double count, int c, float momentum) {
    REFUSED_IN_STEP(ctx, -1);
    return ROUTE(ctx, -1, bn_update_running, running_mean, running_var, mean, var, count, c,
                 momentum);
}
int kn_bn_shard_backward_sums(kn_bn *p, double *sum_dy, double *sum_dy_xhat, float *dgamma,
                              float *dbeta, const float *dout, const float *inp,
                              const float *save_mean, const float *save_var) {
    REFUSED_IN_STEP(p->ctx, -1);
    return ROUTE(p, -1, bn_shard_backward_sums, sum_dy, sum_dy_xhat, dgamma, dbeta, dout, inp,
                 save_mean, save_var);
}
int kn_bn_backward_stats(kn_bn *p, float *dinp, const float *dout, const float *inp,
                         const float *save_mean, const float *save_var, const float *gamma,
                         const double *sum_dy, const double *sum_dy_xhat, double count) {
    REFUSED_IN_STEP(p->ctx, -1);
    return ROUTE(p, -1, bn_backward_stats, dinp, dout, inp, save_mean, save_var, gamma, sum_dy,
                 sum_dy_xhat, count);
}
void kn_bn_destroy(kn_bn *p) {
    if (!p) return;
    (void)refused_in_step(p->ctx, __func__);
    ROUTE0(p, (void)0, bn_destroy);
    free(p);
}

/* ---- pooling --------------------------------------------------------------------------- */
kn_pool *kn_pool_create(kn_ctx *ctx, const kn_pool_shape *s) {
    REFUSED_IN_STEP(ctx, NULL);
    kn_pool *p = plan_new(ctx, sizeof *p, "pool plan");
    if (!p) return NULL;
    p->backend = ctx->backend;
    p->ctx = ctx;
    if (p->backend == KN_BACKEND_CUDA)
        p->cuda = CUDA_CALL(NULL, pool_create, ctx->cuda, s);
    else
        p->cpu = CPU_CALL(NULL, pool_create, ctx->cpu, s);
    if (p->cpu || p->cuda) return p;
    free(p);
    return NULL;
}
int kn_pool_forward(kn_pool *p, float *out, const float *inp) {
    STEP_OP(p->ctx, P(p), P(out), P(inp));
    return ROUTE(p, -1, pool_forward, out, inp);
}
int kn_pool_backward(kn_pool *p, float *dinp, const float *dout) {
    STEP_OP(p->ctx, P(p), P(dinp), P(dout));
    return ROUTE(p, -1, pool_backward, dinp, dout);
}
void kn_pool_destroy(kn_pool *p) {
    if (!p) return;
    (void)refused_in_step(p->ctx, __func__);
    ROUTE0(p, (void)0, pool_destroy);
    free(p);
}

int kn_adaptive_avgpool_forward(kn_ctx *ctx, float *out, const float *inp, int n, int c, int h,
                                int w, int h_out, int w_out) {
    STEP_OP(ctx, P(out), P(inp), n, c, h, w, h_out, w_out);
    return ROUTE(ctx, -1, adaptive_avgpool_forward, out, inp, n, c, h, w, h_out, w_out);
}
int kn_adaptive_avgpool_backward(kn_ctx *ctx, float *dinp, const float *dout, int n, int c, int h,
                                 int w, int h_out, int w_out) {
    STEP_OP(ctx, P(dinp), P(dout), n, c, h, w, h_out, w_out);
    return ROUTE(ctx, -1, adaptive_avgpool_backward, dinp, dout, n, c, h, w, h_out, w_out);
}

/* ---- elementwise ----------------------------------------------------------------------- */
int kn_relu_forward(kn_ctx *ctx, float *out, const float *inp, size_t count) {
    STEP_OP(ctx, P(out), P(inp), count);
    return ROUTE(ctx, -1, relu_forward, out, inp, count);
}
int kn_relu_backward(kn_ctx *ctx, float *dinp, const float *dout, const float *out, size_t count) {
    STEP_OP(ctx, P(dinp), P(dout), P(out), count);
    return ROUTE(ctx, -1, relu_backward, dinp, dout, out, count);
}
int kn_add(kn_ctx *ctx, float *out, const float *a, const float *b, size_t count) {
    STEP_OP(ctx, P(out), P(a), P(b), count);
    return ROUTE(ctx, -1, add, out, a, b, count);
}
int kn_accumulate(kn_ctx *ctx, float *dst, const float *src, size_t count) {
    STEP_OP(ctx, P(dst), P(src), count);
    return ROUTE(ctx, -1, accumulate, dst, src, count);
}
int kn_scale(kn_ctx *ctx, float *x, float a, size_t count) {
    STEP_OP(ctx, P(x), F(a), count);
    return ROUTE(ctx, -1, scale, x, a, count);
}
int kn_dropout_forward(kn_ctx *ctx, float *out, uint8_t *mask, const float *inp, size_t count,
                       float p, uint64_t seed, uint64_t offset) {
    STEP_VALUES(ctx, P(out), P(mask), P(inp), count, F(p)); /* seed, offset: per step */
    return ROUTE(ctx, -1, dropout_forward, out, mask, inp, count, p, seed, offset);
}
int kn_dropout_backward(kn_ctx *ctx, float *dinp, const float *dout, const uint8_t *mask,
                        size_t count, float p) {
    STEP_OP(ctx, P(dinp), P(dout), P(mask), count, F(p));
    return ROUTE(ctx, -1, dropout_backward, dinp, dout, mask, count, p);
}
int kn_nhwc_to_nchw(kn_ctx *ctx, float *out, const float *inp, int n, int c, int h, int w) {
    STEP_OP(ctx, P(out), P(inp), n, c, h, w);
    return ROUTE(ctx, -1, nhwc_to_nchw, out, inp, n, c, h, w);
}
int kn_nchw_to_nhwc(kn_ctx *ctx, float *out, const float *inp, int n, int c, int h, int w) {
    STEP_OP(ctx, P(out), P(inp), n, c, h, w);
    return ROUTE(ctx, -1, nchw_to_nhwc, out, inp, n, c, h, w);
}

int kn_f32_to_bf16(kn_ctx *ctx, kn_bf16 *out, const float *inp, size_t count) {
    STEP_OP(ctx, P(out), P(inp), count);
    return ROUTE(ctx, -1, f32_to_bf16, out, inp, count);
}
int kn_bf16_to_f32(kn_ctx *ctx, float *out, const kn_bf16 *inp, size_t count) {
    STEP_OP(ctx, P(out), P(inp), count);
    return ROUTE(ctx, -1, bf16_to_f32, out, inp, count);
}
int kn_bf16_supported(kn_ctx *ctx, char *why, size_t whylen) {
    return ROUTE(ctx, 0, bf16_supported, why, whylen);
}

/* ---- input batches from cached images ------------------------------------------------- */
/* The checks both backends need; the store's size is the caller's, so offsets are trusted. */
static int check_image_jobs(kn_ctx *ctx, const float *out, const uint8_t *store,
                            const kn_image_job *jobs, int n, int crop) {
    char msg[256] = "";
    if (n < 0 || crop <= 0) {
        snprintf(msg, sizeof msg, "images to batch: bad sizes (N %d, crop %d)", n, crop);
    } else if (n > 0 && (!out || !store || !jobs)) {
        snprintf(msg, sizeof msg, "images to batch: NULL argument");
    }
    for (int i = 0; i < n && !msg[0]; i++) {
        const kn_image_job *j = &jobs[i];
        if (j->width < crop || j->height < crop || j->top < 0 || j->top > j->height - crop ||
            j->left < 0 || j->left > j->width - crop)
            snprintf(msg, sizeof msg,
                     "images to batch: job %d: a %dx%d crop at (%d, %d) is not inside its %dx%d "
                     "image",
                     i, crop, crop, j->left, j->top, j->width, j->height);
    }
    if (!msg[0]) return 0;
    ROUTE(ctx, (void)0, set_error, msg);
    return -1;
}

int kn_images_to_batch(kn_ctx *ctx, float *out, const uint8_t *store, const kn_image_job *jobs,
                       int n, int crop) {
    REFUSED_IN_STEP(ctx, -1); /* the batch is made before its step, outside the graph */
    if (check_image_jobs(ctx, out, store, jobs, n, crop)) return -1;
    if (n == 0) return 0;
    return ROUTE(ctx, -1, images_to_batch, out, store, jobs, n, crop);
}

/* ---- collectives over a group's GPUs ------------------------------------------------- */
static const char no_comm[] =
    "NCCL communicator: the CPU backend has none (a group on CPUs moves host memory over MPI)";

int kn_comm_supported(char *why, size_t whylen) {
#if defined(KN_WITH_CUDA) && defined(KN_WITH_NCCL)
    (void)why, (void)whylen;
    return 1;
#else
    if (whylen)
        snprintf(why, whylen, "%s",
                 CUDA_BUILT
                     ? "this build has no NCCL (make found no nccl.h; NCCL_HOME=DIR names one)"
                     : "this build has no CUDA backend");
    return 0;
#endif
}

int kn_comm_id(kn_ctx *ctx, unsigned char id[KN_COMM_ID_BYTES]) {
    (void)id; /* (a CPU-only build names no CUDA call) */
    REFUSED_IN_STEP(ctx, -1);
    if (ctx->backend == KN_BACKEND_CUDA) return CUDA_CALL(-1, comm_id, ctx->cuda, id);
    ROUTE(ctx, (void)0, set_error, no_comm);
    return -1;
}

kn_comm *kn_comm_create(kn_ctx *ctx, const unsigned char id[KN_COMM_ID_BYTES], int nranks,
                        int rank) {
    (void)id, (void)nranks, (void)rank;
    REFUSED_IN_STEP(ctx, NULL);
    if (ctx->backend != KN_BACKEND_CUDA) {
        ROUTE(ctx, (void)0, set_error, no_comm);
        return NULL;
    }
    kn_comm *c = plan_new(ctx, sizeof *c, "NCCL communicator");
    if (c) c->ctx = ctx;
    if (c && !(c->cuda = CUDA_CALL(NULL, comm_create, ctx->cuda, id, nranks, rank))) {
        free(c);
        return NULL;
    }
    return c;
}

void kn_comm_destroy(kn_comm *c) {
    if (!c) return;
    (void)refused_in_step(c->ctx, __func__);
    CUDA_CALL((void)0, comm_destroy, c->cuda);
    free(c);
}

int kn_comm_sum(kn_comm *c, float *buf, size_t count) {
    (void)c, (void)buf, (void)count;
    REFUSED_IN_STEP(c->ctx, -1);
    return CUDA_CALL(-1, comm_sum, c->cuda, buf, count);
}

int kn_comm_broadcast(kn_comm *c, void *buf, size_t bytes) {
    (void)c, (void)buf, (void)bytes;
    REFUSED_IN_STEP(c->ctx, -1);
    return CUDA_CALL(-1, comm_broadcast, c->cuda, buf, bytes);
}

/* ---- linear ---------------------------------------------------------------------------- */
kn_linear *kn_linear_create(kn_ctx *ctx, const kn_linear_shape *s) {
    REFUSED_IN_STEP(ctx, NULL);
    kn_linear *p = plan_new(ctx, sizeof *p, "linear plan");
    if (!p) return NULL;
    p->backend = ctx->backend;
    p->ctx = ctx;
    if (p->backend == KN_BACKEND_CUDA)
        p->cuda = CUDA_CALL(NULL, linear_create, ctx->cuda, s);
    else
        p->cpu = CPU_CALL(NULL, linear_create, ctx->cpu, s);
    if (p->cpu || p->cuda) return p;
    free(p);
    return NULL;
}
int kn_linear_forward(kn_linear *p, void *out, const void *inp, const float *weight,
                      const float *bias) {
    STEP_OP(p->ctx, P(p), P(out), P(inp), P(weight), P(bias));
    return ROUTE(p, -1, linear_forward, out, inp, weight, bias);
}
int kn_linear_backward_data(kn_linear *p, void *dinp, const void *dout, const float *weight) {
    STEP_OP(p->ctx, P(p), P(dinp), P(dout), P(weight));
    return ROUTE(p, -1, linear_backward_data, dinp, dout, weight);
}
int kn_linear_backward_weights(kn_linear *p, float *dweight, float *dbias, const void *dout,
                               const void *inp) {
    STEP_OP(p->ctx, P(p), P(dweight), P(dbias), P(dout), P(inp));
    return ROUTE(p, -1, linear_backward_weights, dweight, dbias, dout, inp);
}
void kn_linear_destroy(kn_linear *p) {
    if (!p) return;
    (void)refused_in_step(p->ctx, __func__);
    ROUTE0(p, (void)0, linear_destroy);
    free(p);
}

/* ---- loss and optimizer ---------------------------------------------------------------- */
int kn_cross_entropy(kn_ctx *ctx, float *dlogits, float *loss, int *correct, const float *logits,
                     const int32_t *labels, int n, int c) {
    REFUSED_IN_STEP(ctx, -1); /* waits for the device */
    return ROUTE(ctx, -1, cross_entropy, dlogits, loss, correct, logits, labels, n, c);
}
int kn_adam_step(kn_ctx *ctx, float *params, const float *grads, float *m, float *v,
                 const kn_adam_tensor *tensors, int n_tensors, const kn_adam_hparams *hp) {
    STEP_VALUES(ctx, P(params), P(grads), P(m), P(v), n_tensors);
    /* which ranges are updated is fixed; their learning rates and the step are per step */
    for (int t = 0; ctx->graph != GRAPH_EAGER && t < n_tensors; t++) {
        const uint64_t range[2] = {tensors[t].offset, tensors[t].count};
        kn_seq_add(&ctx->seq, "adam tensor", range, 2);
    }
    return ROUTE(ctx, -1, adam_step, params, grads, m, v, tensors, n_tensors, hp);
}

/* ==== devices, pinned staging and on-device totals ====================================== */
int kn_cuda_device_count(char *err, size_t errlen) {
#ifdef KN_WITH_CUDA
    return kn_cuda_visible_devices(err, errlen);
#else
    create_error(err, errlen, "this tlsweep was built without CUDA (make CUDA=1)");
    return 0;
#endif
}

int kn_cuda_device_info(int device, kn_device_info *info, char *err, size_t errlen) {
    memset(info, 0, sizeof *info);
#ifdef KN_WITH_CUDA
    return kn_cuda_query_device(device, info, err, errlen);
#else
    (void)device;
    create_error(err, errlen, "this tlsweep was built without CUDA (make CUDA=1)");
    return -1;
#endif
}

void *kn_host_alloc(kn_ctx *ctx, size_t bytes) {
    REFUSED_IN_STEP(ctx, NULL); /* cudaHostAlloc: an allocation a capture forbids */
    if (ctx->backend == KN_BACKEND_CUDA) return CUDA_CALL(NULL, host_alloc, ctx->cuda, bytes);
    /* aligned_alloc wants a multiple of the alignment */
    void *p = aligned_alloc(64, (bytes + 63) / 64 * 64 + 64 * !bytes);
    if (!p) ROUTE(ctx, (void)0, set_error, "kn_host_alloc: out of memory");
    return p;
}

void kn_host_free(kn_ctx *ctx, void *ptr) {
    (void)refused_in_step(ctx, __func__); /* cudaFreeHost waits for the device */
    if (ctx->backend == KN_BACKEND_CUDA)
        CUDA_CALL((void)0, host_free, ctx->cuda, ptr);
    else
        free(ptr);
}

struct kn_event {
    kn_backend backend;
    kn_cuda_event *cuda; /* NULL on the CPU backend, where work is done when a call returns */
};

/* Without CUDA (CUDA_BUILT 0) every event is a CPU one and CUDA_CALL drops its arguments:
 * the (void) casts below keep those arguments used in that build. */
kn_event *kn_event_create(kn_ctx *ctx) {
    REFUSED_IN_STEP(ctx, NULL);
    kn_event *ev = plan_new(ctx, sizeof *ev, "event");
    if (!ev) return NULL;
    ev->backend = ctx->backend;
    if (ev->backend != KN_BACKEND_CUDA) return ev;
    ev->cuda = CUDA_CALL(NULL, event_create, ctx->cuda);
    if (ev->cuda) return ev;
    free(ev);
    return NULL;
}

void kn_event_destroy(kn_ctx *ctx, kn_event *ev) {
    if (!ev) return;
    (void)refused_in_step(ctx, __func__);
    if (ev->cuda) CUDA_CALL((void)0, event_destroy, ctx->cuda, ev->cuda);
    free(ev);
}

int kn_event_record(kn_ctx *ctx, kn_event *ev) {
    REFUSED_IN_STEP(ctx, -1);
    return ev->cuda ? CUDA_CALL(-1, event_record, ctx->cuda, ev->cuda) : 0;
}

int kn_event_wait_host(kn_ctx *ctx, kn_event *ev) {
    REFUSED_IN_STEP(ctx, -1);
    return ev->cuda ? CUDA_CALL(-1, event_wait_host, ctx->cuda, ev->cuda) : 0;
}

int kn_upload_async(kn_ctx *ctx, void *dst, const void *host_src, size_t bytes, kn_event *dst_free,
                    kn_event *src_free) {
    (void)dst_free, (void)src_free;
    REFUSED_IN_STEP(ctx, -1);
    if (ctx->backend != KN_BACKEND_CUDA)
        return CPU_CALL(-1, copy_to_device, ctx->cpu, dst, host_src, bytes);
    return CUDA_CALL(-1, upload_async, ctx->cuda, dst, host_src, bytes,
                     dst_free ? dst_free->cuda : NULL, src_free ? src_free->cuda : NULL);
}

int kn_cross_entropy_accumulate(kn_ctx *ctx, float *dlogits, kn_totals *totals, const float *logits,
                                const int32_t *labels, int n, int c, int64_t step) {
    STEP_VALUES(ctx, P(dlogits), P(totals), P(logits), P(labels), n, c); /* step: per step */
    if (ctx->backend == KN_BACKEND_CUDA)
        return CUDA_CALL(-1, cross_entropy_accumulate, ctx->cuda, dlogits, totals, logits, labels,
                         n, c, step);
    float loss = 0;
    int correct = 0;
    if (kn_cross_entropy(ctx, dlogits, &loss, &correct, logits, labels, n, c)) return -1;
    /* (double)mean * n, as the trainer summed before the totals moved here: CPU results and
     * resume checkpoints stay bit for bit what they were */
    totals->loss_sum += (double)loss * n;
    totals->correct += correct;
    if (!isfinite(loss) && !totals->diverged_at) {
        totals->diverged_at = step;
        totals->diverged_loss = loss;
    }
    return 0;
}

/* ==== CUDA graphs ======================================================================= */
int kn_graphs_supported(kn_ctx *ctx, char *why, size_t whylen) {
    if (ctx->backend == KN_BACKEND_CUDA)
        return CUDA_CALL(0, graphs_supported, ctx->cuda, why, whylen);
    if (whylen) snprintf(why, whylen, "the CPU backend runs each call as it comes (no graphs)");
    return 0;
}

/* -1 with the reason when ctx cannot open a capture or replay now. */
static int graph_refused(kn_ctx *ctx, const char *op) {
    char msg[160];
    if (ctx->backend != KN_BACKEND_CUDA)
        snprintf(msg, sizeof msg, "%s: the CPU backend has no graphs", op);
    else if (ctx->graph != GRAPH_EAGER)
        snprintf(msg, sizeof msg, "%s: a %s is open", op,
                 ctx->graph == GRAPH_CAPTURE ? "capture" : "replay");
    else
        return 0;
    set_error(ctx, msg);
    return -1;
}

static void graph_open(kn_ctx *ctx, graph_mode mode) {
    ctx->graph = mode;
    kn_seq_start(&ctx->seq);
    ctx->refused = NULL;
}

int kn_graph_capture_begin(kn_ctx *ctx) {
    if (graph_refused(ctx, __func__)) return -1;
    if (CUDA_CALL(-1, graph_capture_begin, ctx->cuda)) return -1; /* (a constant without CUDA) */
    graph_open(ctx, GRAPH_CAPTURE);
    return 0;
}

kn_graph *kn_graph_capture_end(kn_ctx *ctx) {
    if (ctx->graph != GRAPH_CAPTURE) {
        set_error(ctx, "kn_graph_capture_end: no capture is open");
        return NULL;
    }
    ctx->graph = GRAPH_EAGER;
    kn_graph *g = calloc(1, sizeof *g);
    if (!g || ctx->refused) {
        char msg[160];
        snprintf(msg, sizeof msg, "kn_graph_capture_end: %s%s",
                 g ? "the step called " : "out of memory", g ? ctx->refused : "");
        CUDA_CALL((void)0, graph_abandon, ctx->cuda);
        set_error(ctx, msg);
        free(g);
        return NULL;
    }
    g->seq = ctx->seq;
    if (!(g->cuda = CUDA_CALL(NULL, graph_capture_end, ctx->cuda))) {
        free(g);
        return NULL;
    }
    return g;
}

int kn_graph_replay_begin(kn_ctx *ctx, kn_graph *g) {
    (void)g; /* (a CPU-only build names no CUDA call) */
    if (graph_refused(ctx, __func__)) return -1;
    const int rc = CUDA_CALL(-1, graph_replay_begin, ctx->cuda, g->cuda);
    if (rc == 0) graph_open(ctx, GRAPH_REPLAY);
    return rc;
}

int kn_graph_launch(kn_ctx *ctx, kn_graph *g) {
    if (ctx->graph == GRAPH_CAPTURE || ctx->backend != KN_BACKEND_CUDA)
        return graph_refused(ctx, __func__);
    if (ctx->graph == GRAPH_REPLAY) {
        ctx->graph = GRAPH_EAGER;
        if (ctx->refused || !kn_seq_equal(&ctx->seq, &g->seq)) {
            char msg[256];
            if (ctx->refused)
                snprintf(msg, sizeof msg, "kn_graph_launch: the replayed step called %s",
                         ctx->refused);
            else
                snprintf(msg, sizeof msg,
                         "kn_graph_launch: the replayed step made %llu calls (hash %016llx), its "
                         "capture %llu (%016llx): not the same step",
                         (unsigned long long)ctx->seq.calls, (unsigned long long)ctx->seq.hash,
                         (unsigned long long)g->seq.calls, (unsigned long long)g->seq.hash);
            CUDA_CALL((void)0, graph_abandon, ctx->cuda);
            set_error(ctx, msg);
            return -1;
        }
    }
    return CUDA_CALL(-1, graph_launch, ctx->cuda, g->cuda);
}

void kn_graph_abandon(kn_ctx *ctx) {
    ctx->graph = GRAPH_EAGER;
    if (ctx->backend == KN_BACKEND_CUDA) CUDA_CALL((void)0, graph_abandon, ctx->cuda);
}

void kn_graph_destroy(kn_ctx *ctx, kn_graph *g) {
    (void)ctx;
    if (!g) return;
    CUDA_CALL((void)0, graph_destroy, ctx->cuda, g->cuda);
    free(g);
}
