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

struct kn_ctx {
    kn_backend backend;
    kn_cpu_ctx *cpu;
    kn_cuda_ctx *cuda;
};

struct kn_conv {
    kn_backend backend;
    kn_cpu_conv *cpu;
    kn_cuda_conv *cuda;
};
struct kn_bn {
    kn_backend backend;
    kn_cpu_bn *cpu;
    kn_cuda_bn *cuda;
};
struct kn_pool {
    kn_backend backend;
    kn_cpu_pool *cpu;
    kn_cuda_pool *cuda;
};
struct kn_linear {
    kn_backend backend;
    kn_cpu_linear *cpu;
    kn_cuda_linear *cuda;
};
struct kn_comm { /* CUDA only: a CPU group moves host memory over MPI */
    kn_cuda_comm *cuda;
};

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
    return ROUTE(ctx, NULL, malloc, bytes);
}
void kn_free(kn_ctx *ctx, void *ptr) {
    ROUTE(ctx, (void)0, free, ptr);
}
void kn_written(kn_ctx *ctx, const void *ptr, size_t bytes) {
    ROUTE(ctx, (void)0, note_write, ptr, bytes);
}
int kn_copy_to_device(kn_ctx *ctx, void *dst, const void *host_src, size_t bytes) {
    return ROUTE(ctx, -1, copy_to_device, dst, host_src, bytes);
}
int kn_copy_to_host(kn_ctx *ctx, void *host_dst, const void *src, size_t bytes) {
    return ROUTE(ctx, -1, copy_to_host, host_dst, src, bytes);
}
int kn_zero(kn_ctx *ctx, float *ptr, size_t count) {
    return ROUTE(ctx, -1, zero, ptr, count);
}
int kn_sync(kn_ctx *ctx) {
    return ROUTE0(ctx, -1, sync);
}

/* ---- convolution ----------------------------------------------------------------------- */
kn_conv *kn_conv_create(kn_ctx *ctx, const kn_conv_shape *s) {
    kn_conv *p = plan_new(ctx, sizeof *p, "conv plan");
    if (!p) return NULL;
    p->backend = ctx->backend;
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
    return ROUTE(p, -1, conv_forward, out, inp, weight, bias);
}
int kn_conv_backward_data(kn_conv *p, void *dinp, const void *dout, const float *weight) {
    return ROUTE(p, -1, conv_backward_data, dinp, dout, weight);
}
int kn_conv_backward_weights(kn_conv *p, float *dweight, float *dbias, const void *dout,
                             const void *inp) {
    return ROUTE(p, -1, conv_backward_weights, dweight, dbias, dout, inp);
}
const char *kn_conv_impl(const kn_conv *p) {
    return ROUTE0(p, "none", conv_impl);
}
void kn_conv_destroy(kn_conv *p) {
    if (!p) return;
    ROUTE0(p, (void)0, conv_destroy);
    free(p);
}

/* ---- batch normalization --------------------------------------------------------------- */
kn_bn *kn_bn_create(kn_ctx *ctx, const kn_bn_shape *s) {
    kn_bn *p = plan_new(ctx, sizeof *p, "batchnorm plan");
    if (!p) return NULL;
    p->backend = ctx->backend;
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
    return ROUTE(p, -1, bn_forward_train, out, save_mean, save_var, running_mean, running_var, inp,
                 gamma, beta);
}
int kn_bn_forward_infer(kn_bn *p, float *out, const float *inp, const float *gamma,
                        const float *beta, const float *running_mean, const float *running_var) {
    return ROUTE(p, -1, bn_forward_infer, out, inp, gamma, beta, running_mean, running_var);
}
int kn_bn_backward(kn_bn *p, float *dinp, float *dgamma, float *dbeta, const float *dout,
                   const float *inp, const float *save_mean, const float *save_var,
                   const float *gamma) {
    return ROUTE(p, -1, bn_backward, dinp, dgamma, dbeta, dout, inp, save_mean, save_var, gamma);
}
int kn_bn_shard_stats(kn_bn *p, double *mean, double *m2, const float *inp) {
    return ROUTE(p, -1, bn_shard_stats, mean, m2, inp);
}
int kn_bn_forward_stats(kn_bn *p, float *out, float *save_mean, float *save_var,
                        float *running_mean, float *running_var, const double *mean,
                        const double *var, double count, const float *inp, const float *gamma,
                        const float *beta) {
    return ROUTE(p, -1, bn_forward_stats, out, save_mean, save_var, running_mean, running_var, mean,
                 var, count, inp, gamma, beta);
}
int kn_bn_update_running(kn_ctx *ctx, float *running_mean, float *running_var, const double *mean,
                         const double *var, double count, int c, float momentum) {
    return ROUTE(ctx, -1, bn_update_running, running_mean, running_var, mean, var, count, c,
                 momentum);
}
int kn_bn_shard_backward_sums(kn_bn *p, double *sum_dy, double *sum_dy_xhat, float *dgamma,
                              float *dbeta, const float *dout, const float *inp,
                              const float *save_mean, const float *save_var) {
    return ROUTE(p, -1, bn_shard_backward_sums, sum_dy, sum_dy_xhat, dgamma, dbeta, dout, inp,
                 save_mean, save_var);
}
int kn_bn_backward_stats(kn_bn *p, float *dinp, const float *dout, const float *inp,
                         const float *save_mean, const float *save_var, const float *gamma,
                         const double *sum_dy, const double *sum_dy_xhat, double count) {
    return ROUTE(p, -1, bn_backward_stats, dinp, dout, inp, save_mean, save_var, gamma, sum_dy,
                 sum_dy_xhat, count);
}
void kn_bn_destroy(kn_bn *p) {
    if (!p) return;
    ROUTE0(p, (void)0, bn_destroy);
    free(p);
}

/* ---- pooling --------------------------------------------------------------------------- */
kn_pool *kn_pool_create(kn_ctx *ctx, const kn_pool_shape *s) {
    kn_pool *p = plan_new(ctx, sizeof *p, "pool plan");
    if (!p) return NULL;
    p->backend = ctx->backend;
    if (p->backend == KN_BACKEND_CUDA)
        p->cuda = CUDA_CALL(NULL, pool_create, ctx->cuda, s);
    else
        p->cpu = CPU_CALL(NULL, pool_create, ctx->cpu, s);
    if (p->cpu || p->cuda) return p;
    free(p);
    return NULL;
}
int kn_pool_forward(kn_pool *p, float *out, const float *inp) {
    return ROUTE(p, -1, pool_forward, out, inp);
}
int kn_pool_backward(kn_pool *p, float *dinp, const float *dout) {
    return ROUTE(p, -1, pool_backward, dinp, dout);
}
void kn_pool_destroy(kn_pool *p) {
    if (!p) return;
    ROUTE0(p, (void)0, pool_destroy);
    free(p);
}

int kn_adaptive_avgpool_forward(kn_ctx *ctx, float *out, const float *inp, int n, int c, int h,
                                int w, int h_out, int w_out) {
    return ROUTE(ctx, -1, adaptive_avgpool_forward, out, inp, n, c, h, w, h_out, w_out);
}
int kn_adaptive_avgpool_backward(kn_ctx *ctx, float *dinp, const float *dout, int n, int c, int h,
                                 int w, int h_out, int w_out) {
    return ROUTE(ctx, -1, adaptive_avgpool_backward, dinp, dout, n, c, h, w, h_out, w_out);
}

/* ---- elementwise ----------------------------------------------------------------------- */
int kn_relu_forward(kn_ctx *ctx, float *out, const float *inp, size_t count) {
    return ROUTE(ctx, -1, relu_forward, out, inp, count);
}
int kn_relu_backward(kn_ctx *ctx, float *dinp, const float *dout, const float *out, size_t count) {
    return ROUTE(ctx, -1, relu_backward, dinp, dout, out, count);
}
int kn_add(kn_ctx *ctx, float *out, const float *a, const float *b, size_t count) {
    return ROUTE(ctx, -1, add, out, a, b, count);
}
int kn_accumulate(kn_ctx *ctx, float *dst, const float *src, size_t count) {
    return ROUTE(ctx, -1, accumulate, dst, src, count);
}
int kn_scale(kn_ctx *ctx, float *x, float a, size_t count) {
    return ROUTE(ctx, -1, scale, x, a, count);
}
int kn_dropout_forward(kn_ctx *ctx, float *out, uint8_t *mask, const float *inp, size_t count,
                       float p, uint64_t seed, uint64_t offset) {
    return ROUTE(ctx, -1, dropout_forward, out, mask, inp, count, p, seed, offset);
}
int kn_dropout_backward(kn_ctx *ctx, float *dinp, const float *dout, const uint8_t *mask,
                        size_t count, float p) {
    return ROUTE(ctx, -1, dropout_backward, dinp, dout, mask, count, p);
}
int kn_nhwc_to_nchw(kn_ctx *ctx, float *out, const float *inp, int n, int c, int h, int w) {
    return ROUTE(ctx, -1, nhwc_to_nchw, out, inp, n, c, h, w);
}
int kn_nchw_to_nhwc(kn_ctx *ctx, float *out, const float *inp, int n, int c, int h, int w) {
    return ROUTE(ctx, -1, nchw_to_nhwc, out, inp, n, c, h, w);
}

int kn_f32_to_bf16(kn_ctx *ctx, kn_bf16 *out, const float *inp, size_t count) {
    return ROUTE(ctx, -1, f32_to_bf16, out, inp, count);
}
int kn_bf16_to_f32(kn_ctx *ctx, float *out, const kn_bf16 *inp, size_t count) {
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
    if (ctx->backend == KN_BACKEND_CUDA) return CUDA_CALL(-1, comm_id, ctx->cuda, id);
    ROUTE(ctx, (void)0, set_error, no_comm);
    return -1;
}

kn_comm *kn_comm_create(kn_ctx *ctx, const unsigned char id[KN_COMM_ID_BYTES], int nranks,
                        int rank) {
    (void)id, (void)nranks, (void)rank;
    if (ctx->backend != KN_BACKEND_CUDA) {
        ROUTE(ctx, (void)0, set_error, no_comm);
        return NULL;
    }
    kn_comm *c = plan_new(ctx, sizeof *c, "NCCL communicator");
    if (c && !(c->cuda = CUDA_CALL(NULL, comm_create, ctx->cuda, id, nranks, rank))) {
        free(c);
        return NULL;
    }
    return c;
}

void kn_comm_destroy(kn_comm *c) {
    if (!c) return;
    CUDA_CALL((void)0, comm_destroy, c->cuda);
    free(c);
}

int kn_comm_sum(kn_comm *c, float *buf, size_t count) {
    (void)c, (void)buf, (void)count;
    return CUDA_CALL(-1, comm_sum, c->cuda, buf, count);
}

int kn_comm_broadcast(kn_comm *c, void *buf, size_t bytes) {
    (void)c, (void)buf, (void)bytes;
    return CUDA_CALL(-1, comm_broadcast, c->cuda, buf, bytes);
}

/* ---- linear ---------------------------------------------------------------------------- */
kn_linear *kn_linear_create(kn_ctx *ctx, const kn_linear_shape *s) {
    kn_linear *p = plan_new(ctx, sizeof *p, "linear plan");
    if (!p) return NULL;
    p->backend = ctx->backend;
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
    return ROUTE(p, -1, linear_forward, out, inp, weight, bias);
}
int kn_linear_backward_data(kn_linear *p, void *dinp, const void *dout, const float *weight) {
    return ROUTE(p, -1, linear_backward_data, dinp, dout, weight);
}
int kn_linear_backward_weights(kn_linear *p, float *dweight, float *dbias, const void *dout,
                               const void *inp) {
    return ROUTE(p, -1, linear_backward_weights, dweight, dbias, dout, inp);
}
void kn_linear_destroy(kn_linear *p) {
    if (!p) return;
    ROUTE0(p, (void)0, linear_destroy);
    free(p);
}

/* ---- loss and optimizer ---------------------------------------------------------------- */
int kn_cross_entropy(kn_ctx *ctx, float *dlogits, float *loss, int *correct, const float *logits,
                     const int32_t *labels, int n, int c) {
    return ROUTE(ctx, -1, cross_entropy, dlogits, loss, correct, logits, labels, n, c);
}
int kn_adam_step(kn_ctx *ctx, float *params, const float *grads, float *m, float *v,
                 const kn_adam_tensor *tensors, int n_tensors, const kn_adam_hparams *hp) {
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
    if (ctx->backend == KN_BACKEND_CUDA) return CUDA_CALL(NULL, host_alloc, ctx->cuda, bytes);
    /* aligned_alloc wants a multiple of the alignment */
    void *p = aligned_alloc(64, (bytes + 63) / 64 * 64 + 64 * !bytes);
    if (!p) ROUTE(ctx, (void)0, set_error, "kn_host_alloc: out of memory");
    return p;
}

void kn_host_free(kn_ctx *ctx, void *ptr) {
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
    (void)ctx;
    if (!ev) return;
    if (ev->cuda) CUDA_CALL((void)0, event_destroy, ctx->cuda, ev->cuda);
    free(ev);
}

int kn_event_record(kn_ctx *ctx, kn_event *ev) {
    (void)ctx;
    return ev->cuda ? CUDA_CALL(-1, event_record, ctx->cuda, ev->cuda) : 0;
}

int kn_event_wait_host(kn_ctx *ctx, kn_event *ev) {
    (void)ctx;
    return ev->cuda ? CUDA_CALL(-1, event_wait_host, ctx->cuda, ev->cuda) : 0;
}

int kn_upload_async(kn_ctx *ctx, void *dst, const void *host_src, size_t bytes, kn_event *dst_free,
                    kn_event *src_free) {
    (void)dst_free, (void)src_free;
    if (ctx->backend != KN_BACKEND_CUDA)
        return CPU_CALL(-1, copy_to_device, ctx->cpu, dst, host_src, bytes);
    return CUDA_CALL(-1, upload_async, ctx->cuda, dst, host_src, bytes,
                     dst_free ? dst_free->cuda : NULL, src_free ? src_free->cuda : NULL);
}

int kn_cross_entropy_accumulate(kn_ctx *ctx, float *dlogits, kn_totals *totals, const float *logits,
                                const int32_t *labels, int n, int c, int64_t step) {
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
