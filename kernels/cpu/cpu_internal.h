/* Internals of the CPU backend shared by its files: the context, error reporting and thin
 * wrappers around oneDNN primitive/memory objects. Declarations only. */
#ifndef TLSWEEP_KERNELS_CPU_INTERNAL_H
#define TLSWEEP_KERNELS_CPU_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include <oneapi/dnnl/dnnl.h>

#include "kernels/cpu/cpu_backend.h"

#define KN_ERR_LEN 512
#define KN_WHAT_LEN 160
#define KN_RELU_CACHE 32
#define KN_WRITE_LOG 1024 /* writes between two forwards of a plan: a step's zeroings and Adam */

/* A cached ReLU primitive pair for one element count (the interface passes counts, not
 * plans, so the context remembers the primitives it made). */
typedef struct kn_relu_entry kn_relu_entry;

struct kn_cpu_ctx {
    dnnl_engine_t engine;
    dnnl_stream_t stream;
    /* Every primitive is made with a user-managed scratchpad: one buffer in the context,
     * grown when a plan needs more, shared by all primitives because execution is serial. */
    dnnl_primitive_attr_t attr;
    void *scratch;
    size_t scratch_bytes;
    /* Two staging buffers for activations a primitive wants in another layout than NHWC
     * (Winograd convolutions): at most one input and one output are staged per call. */
    void *stage[2];
    size_t stage_bytes[2];
    int winograd; /* 3x3 stride-1 convolutions may use Winograd (TLSWEEP_CPU_WINOGRAD=0: no) */
    /* Every write to the context's memory that may change parameters (Adam, copies, zeroing)
     * bumps weights_epoch and logs the span it wrote, so that a plan holding reordered weights
     * knows whether they are stale (kn_cpu_unchanged): a frozen layer's stay valid while Adam
     * updates the head. */
    uint64_t weights_epoch;
    struct {
        const char *lo, *hi;
    } write_log[KN_WRITE_LOG]; /* the span of write e at [e % KN_WRITE_LOG] */
    int threads;
    kn_relu_entry *relu_cache; /* KN_RELU_CACHE entries */
    int relu_next;             /* round-robin slot to replace */
    char err[KN_ERR_LEN];
    char describe[KN_ERR_LEN];
};

/* 1 when no write logged after epoch `since` touched [ptr, ptr + bytes) (0 also when the log no
 * longer reaches back that far). */
int kn_cpu_unchanged(const kn_cpu_ctx *ctx, uint64_t since, const void *ptr, size_t bytes);

/* One oneDNN primitive with its descriptor and (if it needs one) a scratchpad memory whose
 * handle is pointed at the context's scratch buffer at each execution. */
typedef struct {
    dnnl_primitive_desc_t pd;
    dnnl_primitive_t prim;
    dnnl_memory_t scratch;
} kn_prim;

struct kn_relu_entry {
    size_t count;
    kn_prim fwd, bwd;
    dnnl_memory_t data, diff_data, out; /* (count) */
};

/* A batchnorm plan: oneDNN primitives (kernels/cpu/batchnorm.c) and, for synchronized batch
 * norm (kernels/cpu/batchnorm_sync.c), scratch made on first use. */
struct kn_cpu_bn {
    kn_cpu_ctx *ctx;
    kn_bn_shape s;
    char what[KN_WHAT_LEN];
    kn_prim train, infer, bwd;
    float *dgamma_sink, *dbeta_sink; /* (C) targets when the caller's dgamma/dbeta are NULL */
    float *zero_shift;               /* (C) oneDNN's backward wants a shift it does not use */
    dnnl_memory_t m_src, m_dst, m_dsrc, m_mean, m_var, m_scale, m_shift, m_dscale, m_dshift;
    double *partials; /* (blocks, 2, C) fp64 sums of row blocks, NULL until first needed */
    float *coefs;     /* (3, C) per-channel coefficients, NULL until first needed */
};

/* PyTorch's running-statistics update of one channel from a batch of `count` values per
 * channel (biased batch_var; running_var takes the unbiased one), computed in double. */
void kn_cpu_bn_running_update(float *running_mean, float *running_var, double batch_mean,
                              double batch_var, double count, double momentum);

/* Writes "what: message" into ctx->err and returns -1. */
int kn_fail(kn_cpu_ctx *ctx, const char *what, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Returns 0 on dnnl_success, else records "what: step: oneDNN status" and returns -1. */
int kn_check(kn_cpu_ctx *ctx, dnnl_status_t st, const char *what, const char *step);

/* Primitive from an op descriptor (hint = forward pd for backward ops, else NULL). */
int kn_prim_create(kn_cpu_ctx *ctx, kn_prim *p, const_dnnl_op_desc_t op,
                   const_dnnl_primitive_desc_t hint, const char *what);
int kn_prim_create_reorder(kn_cpu_ctx *ctx, kn_prim *p, const dnnl_memory_desc_t *src,
                           const dnnl_memory_desc_t *dst, const char *what);
/* Executes with the given arguments plus the scratchpad. */
int kn_prim_exec(kn_cpu_ctx *ctx, kn_prim *p, int nargs, const dnnl_exec_arg_t *args,
                 const char *what);
/* Points each args[i].memory at ptrs[i] (none bound if any is NULL: "NULL tensor argument"). */
int kn_bind_args(kn_cpu_ctx *ctx, const dnnl_exec_arg_t *args, const void *const *ptrs, int nargs,
                 const char *what);
/* kn_bind_args, then kn_prim_exec with the same arguments. */
int kn_prim_bind_exec(kn_cpu_ctx *ctx, kn_prim *p, int nargs, const dnnl_exec_arg_t *args,
                      const void *const *ptrs, const char *what);
void kn_prim_destroy(kn_prim *p);
/* The memory descriptor a primitive wants for `query` (e.g. dnnl_query_weights_md). */
const dnnl_memory_desc_t *kn_prim_md(const kn_prim *p, dnnl_query_t query, int index);

/* A memory object without data; kn_bind points it at a buffer before each execution. */
int kn_mem_create(kn_cpu_ctx *ctx, dnnl_memory_t *mem, const dnnl_memory_desc_t *md,
                  const char *what);
/* const is cast away because oneDNN takes void *; inputs are only read by the primitive. */
int kn_bind(kn_cpu_ctx *ctx, dnnl_memory_t mem, const void *ptr, const char *what);
void kn_mem_destroy(dnnl_memory_t mem);

/* The oneDNN type of a plan's dtype into *dt; -1 with the reason for an unknown dtype, or for
 * bf16 on a CPU without AVX512-BF16. */
int kn_dtype_check(kn_cpu_ctx *ctx, kn_dtype dtype, dnnl_data_type_t *dt, const char *what);

/* Plain descriptors for the layouts of the interface. */
int kn_md_nhwc(kn_cpu_ctx *ctx, dnnl_memory_desc_t *md, int n, int c, int h, int w,
               const char *what);
int kn_md_2d(kn_cpu_ctx *ctx, dnnl_memory_desc_t *md, int rows, int cols, const char *what);
int kn_md_1d(kn_cpu_ctx *ctx, dnnl_memory_desc_t *md, int64_t count, const char *what);

/* Grows staging buffer `slot` (0 or 1) to at least `bytes`; its address may change, so
 * users bind it at each call. */
int kn_stage_reserve(kn_cpu_ctx *ctx, int slot, size_t bytes, const char *what);

/* Zeroed plan struct of `bytes`; NULL + "out of memory" on failure. */
void *kn_plan_new(kn_cpu_ctx *ctx, size_t bytes, const char *what);

/* Aligned buffer for plan-owned data (reordered weights, workspaces); NULL + error on failure. */
void *kn_plan_alloc(kn_cpu_ctx *ctx, size_t bytes, const char *what);

#endif
