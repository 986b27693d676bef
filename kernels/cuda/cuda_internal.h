/* Internals of the CUDA backend shared by its host files: the context, error reporting with
 * file:line for every CUDA, cuDNN and cuBLAS call, and device buffers the context owns.
 *
 * Contracts of this backend beyond kernels.h:
 * - A context and its plans are used by one host thread at a time; all work is queued on the
 *   context's one stream (cuDNN and cuBLAS are bound to it), so calls run in call order.
 * - Copies, kn_cross_entropy and kn_sync wait for the stream; everything else is
 *   asynchronous, and a kernel's own failure surfaces at the next waiting call.
 * - fp32 math except in bf16 plans; kn_ctx_options.tf32 lets cuDNN and cuBLAS use TF32
 *   tensor cores, .deterministic limits cuDNN to deterministic algorithms, .workspace_limit
 *   caps the conv workspace (KN_CUDA_DEFAULT_WORKSPACE when 0).
 * - bf16 plans (compute capability 8.0 and up) use bf16 tensor cores with fp32 accumulation
 *   whatever tf32 says, and keep a bf16 copy of their weights: each forward call renews it,
 *   and a backward-data call reuses it unless its weights are another buffer or weights_epoch
 *   moved since (kn_adam_step, kn_copy_to_device, kn_zero and kn_written move it; the backend
 *   has no write log, so any of them counts, wherever it wrote).
 * - CUDA graphs (graph.c): between a capture's begin and end the calls are captured from the
 *   stream, not run; in a replay the dispatcher runs none but the ops with per-step values
 *   (Adam, the loss's totals, dropout), which only hand those values over
 *   (kn_cuda_step_values). Captured kernels read such values from device memory, eager ones
 *   take them as arguments: the same kernel, the same values, the same bits. */
#ifndef TLSWEEP_KERNELS_CUDA_INTERNAL_H
#define TLSWEEP_KERNELS_CUDA_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include <cublas_v2.h>
#include <cuda_runtime_api.h>
#include <cudnn.h>

#include "kernels/cuda/cuda_backend.h"

#define KN_CUDA_ERR_LEN 512
#define KN_CUDA_WHAT_LEN 160
#define KN_CUDA_DEFAULT_WORKSPACE ((size_t)256 << 20)

typedef struct {
    void *ptr;
    size_t bytes;
} kn_cuda_block;

typedef enum { KN_CUDA_EAGER = 0, KN_CUDA_CAPTURE, KN_CUDA_REPLAY } kn_cuda_graph_mode;

/* One pinned staging buffer of kn_cuda_upload_table and the end of the last copy out of it.
 * A trainer queues up to two tables a step (jobs, eager Adam) and runs about three steps
 * ahead of the device: more buffers than that, so that none is waited for. */
#define KN_CUDA_TABLE_PINS 8
typedef struct {
    void *host;
    size_t bytes;
    cudaEvent_t copied; /* NULL until first used */
} kn_cuda_table_pin;

struct kn_cuda_ctx {
    int device;
    int cc_major, cc_minor; /* compute capability */
    int tf32, deterministic;
    /* Bumped by every call that may change parameters (see above): bf16 plans renew their
     * weight copy when it moved. */
    uint64_t weights_epoch;
    size_t workspace_limit;
    cudaStream_t stream;
    /* kn_upload_async's stream and its last copy (staging.c), created on first use */
    cudaStream_t copy_stream;
    cudaEvent_t copy_done;
    cudnnHandle_t dnn;
    cublasHandle_t blas;
    /* cuDNN convolution workspace, shared by every plan (one stream runs one call at a time)
     * and grown to the largest need of any plan. */
    void *workspace;
    size_t workspace_bytes;
    /* Conv weights in cuDNN's NHWC filter layout (KRSC): the largest plan's, shared. */
    void *weight_stage;
    size_t weight_stage_bytes;
    /* Small per-call tables: Adam's tensor list, cross-entropy's per-sample results, image jobs
     * and their contrast sums. */
    void *table;
    size_t table_bytes;
    /* Pinned host copies of tables on their way into `table` (kn_cuda_upload_table), used in
     * turn: a copy from pageable memory may wait for the whole stream, one from here only for
     * its buffer's copy of KN_CUDA_TABLE_PINS calls ago. */
    kn_cuda_table_pin table_pins[KN_CUDA_TABLE_PINS];
    int next_table_pin;
    /* Device bytes held (kn_malloc'd, scratch, plans') and their high point; kn_free learns a
     * buffer's size from the list of live kn_malloc'd ones (cudaFree does not say). */
    size_t mem_live, mem_peak;
    kn_cuda_block *blocks;
    size_t n_blocks, blocks_cap;
    /* cuBLAS's workspace, ours: cuBLAS then never allocates one inside a captured step */
    void *blas_workspace;
    /* Bumped whenever device memory of the context or a plan is freed (or moved by
     * kn_cuda_reserve): graphs captured before it may point there, and are stale. */
    uint64_t memory_epoch, capture_epoch;
    /* CUDA graphs (graph.c): the open capture or replay, and the per-step values of its
     * calls, written into step_host and copied to step_dev by each launch before its graph */
    kn_cuda_graph_mode graph_mode;
    unsigned char *step_host; /* pinned */
    unsigned char *step_dev;
    size_t step_used;
    int step_failed; /* a call failed (kn_cuda_fail) since the capture or replay opened */
    const kn_cuda_graph *step_values_of; /* whose values step_host holds, ready to launch */
    cudaEvent_t step_copied;             /* the last launch's copy of step_host has run */
    char err[KN_CUDA_ERR_LEN];
    char describe[768]; /* device name (up to 256) and versions */
};

/* Writes "what: message" into ctx->err and returns -1 (for argument errors). */
int kn_cuda_fail(kn_cuda_ctx *ctx, const char *what, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Return 0 on success, else record "what: CALL failed: STATUS (FILE:LINE)" and return -1. */
int kn_cuda_check_rt(kn_cuda_ctx *ctx, cudaError_t st, const char *call, const char *file, int line,
                     const char *what);
int kn_cuda_check_dnn(kn_cuda_ctx *ctx, cudnnStatus_t st, const char *call, const char *file,
                      int line, const char *what);
int kn_cuda_check_blas(kn_cuda_ctx *ctx, cublasStatus_t st, const char *call, const char *file,
                       int line, const char *what);
#define CU_CHECK(ctx, what, call) kn_cuda_check_rt((ctx), (call), #call, __FILE__, __LINE__, (what))
#define DNN_CHECK(ctx, what, call)                                                                 \
    kn_cuda_check_dnn((ctx), (call), #call, __FILE__, __LINE__, (what))
#define BLAS_CHECK(ctx, what, call)                                                                \
    kn_cuda_check_blas((ctx), (call), #call, __FILE__, __LINE__, (what))

/* Grows a context-owned device buffer (*buf, *cap) to at least `bytes`; the address may
 * change, so users read it at each call. */
int kn_cuda_reserve(kn_cuda_ctx *ctx, void **buf, size_t *cap, size_t bytes, const char *what);

/* Queues a copy of `bytes` of host memory into device memory dst on the stream, through the
 * next of the context's pinned buffers: src may be reused on return, and the call waits for
 * the device only when that buffer's previous copy (KN_CUDA_TABLE_PINS calls ago) is still
 * queued. Eager calls only (not inside a capture). */
int kn_cuda_upload_table(kn_cuda_ctx *ctx, void *dst, const void *src, size_t bytes,
                         const char *what);

/* Per-step values of an op that graphs replay (graph.c), `bytes` of host memory. Eager: 0 and
 * *dev NULL (the caller passes them as kernel arguments). Capture: 0 and *dev where the
 * captured kernel reads them. Replay: 1, they are kept for the launch and the call is done.
 * -1 + error when a step's values outgrow their buffer. */
int kn_cuda_step_values(kn_cuda_ctx *ctx, const void *values, size_t bytes, const char *what,
                        const void **dev);

/* Zeroed plan struct (host memory); NULL + "out of memory". */
void *kn_cuda_plan_new(kn_cuda_ctx *ctx, size_t bytes, const char *what);
/* Device memory for a plan; NULL + error. */
void *kn_cuda_plan_alloc(kn_cuda_ctx *ctx, size_t bytes, const char *what);

/* cuDNN's NHWC descriptor of an (N, H, W, C) activation: fp32, or of element type dt. */
int kn_cuda_nhwc_desc(kn_cuda_ctx *ctx, cudnnTensorDescriptor_t *desc, int n, int c, int h, int w,
                      const char *what);
int kn_cuda_nhwc_desc_typed(kn_cuda_ctx *ctx, cudnnTensorDescriptor_t *desc, cudnnDataType_t dt,
                            int n, int c, int h, int w, const char *what);

/* Fails (-1, the reason in ctx->err) for a dtype the backend cannot run here: one it does
 * not know, or bf16 before compute capability 8.0. */
int kn_cuda_dtype_check(kn_cuda_ctx *ctx, kn_dtype dtype, const char *what);

#endif
