/* CUDA backend: context (device, stream, cuDNN and cuBLAS handles), errors, device memory,
 * and the helpers the op files share. See cuda_internal.h for this backend's contracts. */
#include "kernels/cuda/cuda_internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int kn_cuda_fail(kn_cuda_ctx *ctx, const char *what, const char *fmt, ...) {
    if (ctx->graph_mode != KN_CUDA_EAGER) ctx->step_failed = 1; /* its graph would lack the call */
    int len = snprintf(ctx->err, sizeof ctx->err, "%s: ", what);
    if (len < 0 || (size_t)len >= sizeof ctx->err) return -1;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(ctx->err + len, sizeof ctx->err - (size_t)len, fmt, ap);
    va_end(ap);
    return -1;
}

int kn_cuda_check_rt(kn_cuda_ctx *ctx, cudaError_t st, const char *call, const char *file, int line,
                     const char *what) {
    if (st == cudaSuccess) return 0;
    return kn_cuda_fail(ctx, what, "%s failed: %s (%s) at %s:%d", call, cudaGetErrorName(st),
                        cudaGetErrorString(st), file, line);
}

int kn_cuda_check_dnn(kn_cuda_ctx *ctx, cudnnStatus_t st, const char *call, const char *file,
                      int line, const char *what) {
    if (st == CUDNN_STATUS_SUCCESS) return 0;
    return kn_cuda_fail(ctx, what, "%s failed: %s at %s:%d", call, cudnnGetErrorString(st), file,
                        line);
}

int kn_cuda_check_blas(kn_cuda_ctx *ctx, cublasStatus_t st, const char *call, const char *file,
                       int line, const char *what) {
    if (st == CUBLAS_STATUS_SUCCESS) return 0;
    return kn_cuda_fail(ctx, what, "%s failed: %s (%s) at %s:%d", call, cublasGetStatusName(st),
                        cublasGetStatusString(st), file, line);
}

static void create_error(char *err, size_t errlen, const char *fmt, const char *detail) {
    if (!err || errlen == 0) return;
    int len = snprintf(err, errlen, "cuda backend: ");
    if (len >= 0 && (size_t)len < errlen) snprintf(err + len, errlen - (size_t)len, fmt, detail);
}

/* Versions as the loaded libraries report them; cudaDriverGetVersion gives 0 without a
 * driver, which is how a machine without a GPU shows. */
void kn_cuda_library_versions(char *cuda, size_t cuda_len, char *cudnn, size_t cudnn_len) {
    int rt = 0, drv = 0, bmaj = 0, bmin = 0, bpatch = 0;
    if (cudaRuntimeGetVersion(&rt) != cudaSuccess) rt = 0;
    if (cudaDriverGetVersion(&drv) != cudaSuccess) drv = 0;
    if (cublasGetProperty(MAJOR_VERSION, &bmaj) != CUBLAS_STATUS_SUCCESS ||
        cublasGetProperty(MINOR_VERSION, &bmin) != CUBLAS_STATUS_SUCCESS ||
        cublasGetProperty(PATCH_LEVEL, &bpatch) != CUBLAS_STATUS_SUCCESS)
        bmaj = bmin = bpatch = -1;
    char driver[32] = "none";
    if (drv > 0) snprintf(driver, sizeof driver, "%d.%d", drv / 1000, drv % 1000 / 10);
    if (cuda_len)
        snprintf(cuda, cuda_len, "driver %s, runtime %d.%d, cuBLAS %d.%d.%d", driver, rt / 1000,
                 rt % 1000 / 10, bmaj, bmin, bpatch);
    const size_t dnn = cudnnGetVersion(); /* major * 10000 + minor * 100 + patch since 9.0 */
    if (cudnn_len)
        snprintf(cudnn, cudnn_len, "%zu.%zu.%zu", dnn / 10000, dnn / 100 % 100, dnn % 100);
}

/* "cuda: NVIDIA H200 (sm_90), driver 13.0, runtime 13.0, cuBLAS 13.1.0, cuDNN 9.19.0, fp32
 * (TF32 off), deterministic, workspace cap 256 MiB" */
static void describe(kn_cuda_ctx *ctx) {
    struct cudaDeviceProp prop;
    memset(&prop, 0, sizeof prop);
    if (cudaGetDeviceProperties(&prop, ctx->device) != cudaSuccess)
        snprintf(prop.name, sizeof prop.name, "device %d", ctx->device);
    char cuda[160], cudnn[32];
    kn_cuda_library_versions(cuda, sizeof cuda, cudnn, sizeof cudnn);
    snprintf(ctx->describe, sizeof ctx->describe,
             "cuda: %s (sm_%d%d), %s, cuDNN %s, %s, %s, workspace cap %zu MiB", prop.name,
             prop.major, prop.minor, cuda, cudnn,
             ctx->tf32 ? "fp32 with TF32 tensor cores" : "fp32 (TF32 off)",
             ctx->deterministic ? "deterministic" : "fastest algorithms (not deterministic)",
             ctx->workspace_limit >> 20);
}

/* cuBLAS's workspace of the size it would take itself (its guide: 32 MiB on Hopper and newer,
 * 4 MiB before), set once, after cublasSetStream (which resets it): eager and captured steps
 * then use the same one, and a capture never has cuBLAS allocate. */
static int set_blas_workspace(kn_cuda_ctx *ctx, const char *what) {
    const size_t bytes = (size_t)(ctx->cc_major >= 9 ? 32 : 4) << 20;
    return CU_CHECK(ctx, what, cudaMalloc(&ctx->blas_workspace, bytes)) ||
                   BLAS_CHECK(ctx, what, cublasSetWorkspace(ctx->blas, ctx->blas_workspace, bytes))
               ? -1
               : 0;
}

kn_cuda_ctx *kn_cuda_ctx_create(const kn_ctx_options *opt, char *err, size_t errlen) {
    int count = 0;
    cudaError_t st = cudaGetDeviceCount(&count);
    if (st != cudaSuccess) {
        create_error(err, errlen, "no CUDA device (cudaGetDeviceCount: %s)",
                     cudaGetErrorString(st));
        return NULL;
    }
    if (count == 0) {
        create_error(err, errlen, "no CUDA device (%s)", "cudaGetDeviceCount found 0");
        return NULL;
    }
    const int device = opt ? opt->device : 0;
    if (device < 0 || device >= count) {
        char detail[64];
        snprintf(detail, sizeof detail, "%d (of %d)", device, count);
        create_error(err, errlen, "no CUDA device %s", detail);
        return NULL;
    }
    kn_cuda_ctx *ctx = calloc(1, sizeof *ctx);
    if (!ctx) {
        create_error(err, errlen, "%s", "out of memory for the context");
        return NULL;
    }
    ctx->device = device;
    ctx->tf32 = opt && opt->tf32;
    ctx->deterministic = opt && opt->deterministic;
    ctx->workspace_limit =
        opt && opt->workspace_limit ? opt->workspace_limit : KN_CUDA_DEFAULT_WORKSPACE;
    const char *what = "cuda context";
    /* Non-blocking: the legacy default stream (used by other libraries) never serializes
     * with ours; our copies go through our stream explicitly. */
    if (CU_CHECK(ctx, what, cudaSetDevice(device)) ||
        CU_CHECK(ctx, what, cudaStreamCreateWithFlags(&ctx->stream, cudaStreamNonBlocking)) ||
        DNN_CHECK(ctx, what, cudnnCreate(&ctx->dnn)) ||
        DNN_CHECK(ctx, what, cudnnSetStream(ctx->dnn, ctx->stream)) ||
        BLAS_CHECK(ctx, what, cublasCreate(&ctx->blas)) ||
        BLAS_CHECK(ctx, what, cublasSetStream(ctx->blas, ctx->stream)) ||
        BLAS_CHECK(ctx, what,
                   cublasSetMathMode(ctx->blas, ctx->tf32 ? CUBLAS_TF32_TENSOR_OP_MATH
                                                          : CUBLAS_DEFAULT_MATH)) ||
        CU_CHECK(
            ctx, what,
            cudaDeviceGetAttribute(&ctx->cc_major, cudaDevAttrComputeCapabilityMajor, device)) ||
        CU_CHECK(
            ctx, what,
            cudaDeviceGetAttribute(&ctx->cc_minor, cudaDevAttrComputeCapabilityMinor, device)) ||
        set_blas_workspace(ctx, what)) {
        create_error(err, errlen, "%s", ctx->err);
        kn_cuda_ctx_destroy(ctx);
        return NULL;
    }
    describe(ctx);
    return ctx;
}

void kn_cuda_ctx_destroy(kn_cuda_ctx *ctx) {
    if (!ctx) return;
    kn_cuda_graph_abandon(ctx);
    if (ctx->stream) cudaStreamSynchronize(ctx->stream);
    cudaFree(ctx->workspace);
    cudaFree(ctx->blas_workspace);
    cudaFree(ctx->step_dev);
    cudaFreeHost(ctx->step_host);
    if (ctx->step_copied) cudaEventDestroy(ctx->step_copied);
    cudaFree(ctx->weight_stage);
    cudaFree(ctx->table);
    for (int i = 0; i < KN_CUDA_TABLE_PINS; i++) {
        cudaFreeHost(ctx->table_pins[i].host);
        if (ctx->table_pins[i].copied) cudaEventDestroy(ctx->table_pins[i].copied);
    }
    free(ctx->blocks);
    if (ctx->blas) cublasDestroy(ctx->blas);
    if (ctx->dnn) cudnnDestroy(ctx->dnn);
    if (ctx->stream) cudaStreamDestroy(ctx->stream);
    if (ctx->copy_stream) cudaStreamSynchronize(ctx->copy_stream);
    if (ctx->copy_done) cudaEventDestroy(ctx->copy_done);
    if (ctx->copy_stream) cudaStreamDestroy(ctx->copy_stream);
    free(ctx);
}

const char *kn_cuda_error(const kn_cuda_ctx *ctx) {
    return ctx ? ctx->err : "no context";
}
const char *kn_cuda_describe(const kn_cuda_ctx *ctx) {
    return ctx ? ctx->describe : "no context";
}
size_t kn_cuda_workspace_bytes(const kn_cuda_ctx *ctx) {
    return ctx->workspace_bytes;
}
void kn_cuda_set_error(kn_cuda_ctx *ctx, const char *msg) {
    snprintf(ctx->err, sizeof ctx->err, "%s", msg);
}

/* ---- memory ---------------------------------------------------------------------------- */

/* The bytes the context holds: `more` taken, `less` given back; and their high point. */
static void count_held(kn_cuda_ctx *ctx, size_t more, size_t less) {
    ctx->mem_live -= less < ctx->mem_live ? less : ctx->mem_live;
    ctx->mem_live += more;
    if (ctx->mem_live > ctx->mem_peak) ctx->mem_peak = ctx->mem_live;
}

void *kn_cuda_malloc(kn_cuda_ctx *ctx, size_t bytes) {
    void *p = NULL; /* cudaMalloc aligns to 256 bytes; 0 bytes still gets a unique pointer */
    if (ctx->n_blocks == ctx->blocks_cap) {
        size_t cap = ctx->blocks_cap ? 2 * ctx->blocks_cap : 256;
        kn_cuda_block *grown = realloc(ctx->blocks, cap * sizeof *grown);
        if (!grown) {
            kn_cuda_fail(ctx, "kn_malloc", "out of host memory for the list of buffers");
            return NULL;
        }
        ctx->blocks = grown;
        ctx->blocks_cap = cap;
    }
    if (CU_CHECK(ctx, "kn_malloc", cudaMalloc(&p, bytes ? bytes : 256))) return NULL;
    ctx->blocks[ctx->n_blocks++] = (kn_cuda_block){p, bytes ? bytes : 256};
    count_held(ctx, bytes ? bytes : 256, 0);
    return p;
}

void kn_cuda_free(kn_cuda_ctx *ctx, void *ptr) {
    if (!ptr) return;
    /* from the newest: buffers tend to go in the reverse order they came */
    for (size_t i = ctx->n_blocks; i-- > 0;)
        if (ctx->blocks[i].ptr == ptr) {
            count_held(ctx, 0, ctx->blocks[i].bytes);
            ctx->blocks[i] = ctx->blocks[--ctx->n_blocks];
            break;
        }
    ctx->memory_epoch++; /* a graph may point there */
    CU_CHECK(ctx, "kn_free", cudaFree(ptr));
}

size_t kn_cuda_memory_peak(const kn_cuda_ctx *ctx) {
    return ctx->mem_peak;
}

/* Copies are synchronous, as on the CPU backend: the host buffer may be reused on return. */
int kn_cuda_copy_to_device(kn_cuda_ctx *ctx, void *dst, const void *host_src, size_t bytes) {
    const char *what = "kn_copy_to_device";
    if (!bytes) return 0;
    if (!dst || !host_src) return kn_cuda_fail(ctx, what, "NULL pointer");
    ctx->weights_epoch++; /* may have overwritten parameters */
    return CU_CHECK(ctx, what,
                    cudaMemcpyAsync(dst, host_src, bytes, cudaMemcpyHostToDevice, ctx->stream)) ||
                   CU_CHECK(ctx, what, cudaStreamSynchronize(ctx->stream))
               ? -1
               : 0;
}

int kn_cuda_copy_to_host(kn_cuda_ctx *ctx, void *host_dst, const void *src, size_t bytes) {
    const char *what = "kn_copy_to_host";
    if (!bytes) return 0;
    if (!host_dst || !src) return kn_cuda_fail(ctx, what, "NULL pointer");
    return CU_CHECK(ctx, what,
                    cudaMemcpyAsync(host_dst, src, bytes, cudaMemcpyDeviceToHost, ctx->stream)) ||
                   CU_CHECK(ctx, what, cudaStreamSynchronize(ctx->stream))
               ? -1
               : 0;
}

int kn_cuda_zero(kn_cuda_ctx *ctx, float *ptr, size_t count) {
    if (!count) return 0;
    if (!ptr) return kn_cuda_fail(ctx, "kn_zero", "NULL pointer");
    ctx->weights_epoch++;
    return CU_CHECK(ctx, "kn_zero", cudaMemsetAsync(ptr, 0, count * sizeof *ptr, ctx->stream));
}

void kn_cuda_note_write(kn_cuda_ctx *ctx, const void *ptr, size_t bytes) {
    (void)ptr, (void)bytes; /* any write counts: the epoch is all a plan compares */
    ctx->weights_epoch++;
}

int kn_cuda_sync(kn_cuda_ctx *ctx) {
    return CU_CHECK(ctx, "kn_sync", cudaStreamSynchronize(ctx->stream));
}

int kn_cuda_reserve(kn_cuda_ctx *ctx, void **buf, size_t *cap, size_t bytes, const char *what) {
    if (bytes <= *cap) return 0;
    if (ctx->graph_mode == KN_CUDA_CAPTURE)
        return kn_cuda_fail(ctx, what,
                            "its scratch must grow to %zu bytes inside a captured step (capture "
                            "after an eager step of the same shapes)",
                            bytes);
    if (*buf) ctx->memory_epoch++; /* graphs captured before may point into the old buffer */
    /* cudaFree waits for the device, so queued work that still reads the old buffer is done */
    if (CU_CHECK(ctx, what, cudaFree(*buf))) return -1;
    count_held(ctx, 0, *cap);
    *buf = NULL;
    *cap = 0;
    if (CU_CHECK(ctx, what, cudaMalloc(buf, bytes))) return -1;
    *cap = bytes;
    count_held(ctx, bytes, 0);
    return 0;
}

void *kn_cuda_plan_new(kn_cuda_ctx *ctx, size_t bytes, const char *what) {
    void *p = calloc(1, bytes);
    if (!p) kn_cuda_fail(ctx, what, "out of memory");
    return p;
}

/* Plans free these themselves (cudaFree in their destroy), so they count as held until the
 * context ends: exact for a trial, whose plans live as long as its context, and an upper
 * bound where plans are remade. */
void *kn_cuda_plan_alloc(kn_cuda_ctx *ctx, size_t bytes, const char *what) {
    void *p = NULL;
    if (CU_CHECK(ctx, what, cudaMalloc(&p, bytes ? bytes : 256))) return NULL;
    count_held(ctx, bytes ? bytes : 256, 0);
    return p;
}

int kn_cuda_nhwc_desc_typed(kn_cuda_ctx *ctx, cudnnTensorDescriptor_t *desc, cudnnDataType_t dt,
                            int n, int c, int h, int w, const char *what) {
    return DNN_CHECK(ctx, what, cudnnCreateTensorDescriptor(desc)) ||
                   DNN_CHECK(ctx, what,
                             cudnnSetTensor4dDescriptor(*desc, CUDNN_TENSOR_NHWC, dt, n, c, h, w))
               ? -1
               : 0;
}

int kn_cuda_nhwc_desc(kn_cuda_ctx *ctx, cudnnTensorDescriptor_t *desc, int n, int c, int h, int w,
                      const char *what) {
    return kn_cuda_nhwc_desc_typed(ctx, desc, CUDNN_DATA_FLOAT, n, c, h, w, what);
}

/* bf16 tensor cores (and cuDNN's and cuBLAS's bf16 kernels) start with Ampere; older GPUs
 * would emulate bf16 slowly, so bf16 plans are refused there, as on CPUs without
 * AVX512-BF16. */
int kn_cuda_bf16_supported(kn_cuda_ctx *ctx, char *why, size_t whylen) {
    if (ctx->cc_major >= 8) return 1;
    if (whylen)
        snprintf(why, whylen,
                 "this GPU is sm_%d%d, and bf16 tensor cores need compute capability 8.0 "
                 "(Ampere) or newer",
                 ctx->cc_major, ctx->cc_minor);
    return 0;
}

int kn_cuda_dtype_check(kn_cuda_ctx *ctx, kn_dtype dtype, const char *what) {
    if (dtype == KN_F32) return 0;
    if (dtype != KN_BF16) return kn_cuda_fail(ctx, what, "unknown dtype %d", (int)dtype);
    char why[KN_CUDA_WHAT_LEN];
    if (!kn_cuda_bf16_supported(ctx, why, sizeof why))
        return kn_cuda_fail(ctx, what, "bf16: %s", why);
    return 0;
}
