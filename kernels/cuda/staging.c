/* CUDA backend: device queries for placement, pinned host memory, a copy stream with events
 * for double-buffered uploads, and cross-entropy totals that stay on the device. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/cuda/accumulate.h"
#include "kernels/cuda/cuda_internal.h"

int kn_cuda_visible_devices(char *err, size_t errlen) {
    int count = 0;
    cudaError_t st = cudaGetDeviceCount(&count);
    /* no driver, no device, CUDA_VISIBLE_DEVICES empty: all mean "none here" */
    if (st != cudaSuccess) {
        if (err && errlen) snprintf(err, errlen, "%s", cudaGetErrorString(st));
        return 0;
    }
    if (count == 0 && err && errlen) snprintf(err, errlen, "the CUDA runtime sees no device");
    return count;
}

int kn_cuda_query_device(int device, kn_device_info *info, char *err, size_t errlen) {
    struct cudaDeviceProp prop;
    cudaError_t st = cudaGetDeviceProperties(&prop, device);
    if (st != cudaSuccess) {
        if (err && errlen)
            snprintf(err, errlen, "CUDA device %d: %s", device, cudaGetErrorString(st));
        return -1;
    }
    snprintf(info->name, sizeof info->name, "%.95s", prop.name);
    info->total_bytes = prop.totalGlobalMem;
    info->major = prop.major;
    info->minor = prop.minor;
    return 0;
}

void *kn_cuda_host_alloc(kn_cuda_ctx *ctx, size_t bytes) {
    void *p = NULL;
    if (CU_CHECK(ctx, "kn_host_alloc", cudaHostAlloc(&p, bytes ? bytes : 64, cudaHostAllocDefault)))
        return NULL;
    return p;
}

void kn_cuda_host_free(kn_cuda_ctx *ctx, void *ptr) {
    if (ptr) CU_CHECK(ctx, "kn_host_free", cudaFreeHost(ptr));
}

struct kn_cuda_event {
    cudaEvent_t event;
};

kn_cuda_event *kn_cuda_event_create(kn_cuda_ctx *ctx) {
    kn_cuda_event *ev = kn_cuda_plan_new(ctx, sizeof *ev, "event");
    if (!ev) return NULL;
    /* no timing: the lightest event, which is all a fence needs */
    if (CU_CHECK(ctx, "event", cudaEventCreateWithFlags(&ev->event, cudaEventDisableTiming))) {
        free(ev);
        return NULL;
    }
    return ev;
}

void kn_cuda_event_destroy(kn_cuda_ctx *ctx, kn_cuda_event *ev) {
    if (!ev) return;
    CU_CHECK(ctx, "event", cudaEventDestroy(ev->event));
    free(ev);
}

int kn_cuda_event_record(kn_cuda_ctx *ctx, kn_cuda_event *ev) {
    return CU_CHECK(ctx, "kn_event_record", cudaEventRecord(ev->event, ctx->stream));
}

int kn_cuda_event_wait_host(kn_cuda_ctx *ctx, kn_cuda_event *ev) {
    return CU_CHECK(ctx, "kn_event_wait_host", cudaEventSynchronize(ev->event));
}

int kn_cuda_upload_async(kn_cuda_ctx *ctx, void *dst, const void *host_src, size_t bytes,
                         kn_cuda_event *dst_free, kn_cuda_event *src_free) {
    const char *what = "kn_upload_async";
    if (!bytes) return 0;
    if (!dst || !host_src) return kn_cuda_fail(ctx, what, "NULL pointer");
    /* created on first use: contexts that never upload this way keep one stream */
    if (!ctx->copy_stream &&
        (CU_CHECK(ctx, what, cudaStreamCreateWithFlags(&ctx->copy_stream, cudaStreamNonBlocking)) ||
         CU_CHECK(ctx, what, cudaEventCreateWithFlags(&ctx->copy_done, cudaEventDisableTiming))))
        return -1;
    /* a never-recorded event counts as passed, so the first uploads wait for nothing */
    if (dst_free && CU_CHECK(ctx, what, cudaStreamWaitEvent(ctx->copy_stream, dst_free->event, 0)))
        return -1;
    if (CU_CHECK(ctx, what,
                 cudaMemcpyAsync(dst, host_src, bytes, cudaMemcpyHostToDevice, ctx->copy_stream)) ||
        (src_free && CU_CHECK(ctx, what, cudaEventRecord(src_free->event, ctx->copy_stream))) ||
        CU_CHECK(ctx, what, cudaEventRecord(ctx->copy_done, ctx->copy_stream)) ||
        CU_CHECK(ctx, what, cudaStreamWaitEvent(ctx->stream, ctx->copy_done, 0)))
        return -1;
    return 0;
}

int kn_cuda_upload_table(kn_cuda_ctx *ctx, void *dst, const void *src, size_t bytes,
                         const char *what) {
    if (!bytes) return 0;
    kn_cuda_table_pin *pin = &ctx->table_pins[ctx->next_table_pin];
    ctx->next_table_pin = (ctx->next_table_pin + 1) % KN_CUDA_TABLE_PINS;
    /* a never-recorded event has passed: only a buffer whose copy is still queued waits */
    if ((!pin->copied &&
         CU_CHECK(ctx, what, cudaEventCreateWithFlags(&pin->copied, cudaEventDisableTiming))) ||
        CU_CHECK(ctx, what, cudaEventSynchronize(pin->copied)))
        return -1;
    if (pin->bytes < bytes) {
        const size_t grown = bytes > 2 * pin->bytes ? bytes : 2 * pin->bytes;
        const cudaError_t st = pin->host ? cudaFreeHost(pin->host) : cudaSuccess;
        pin->host = NULL;
        pin->bytes = 0;
        if (CU_CHECK(ctx, what, st) ||
            CU_CHECK(ctx, what, cudaHostAlloc(&pin->host, grown, cudaHostAllocDefault)))
            return -1;
        pin->bytes = grown;
    }
    memcpy(pin->host, src, bytes);
    return CU_CHECK(ctx, what,
                    cudaMemcpyAsync(dst, pin->host, bytes, cudaMemcpyHostToDevice, ctx->stream)) ||
                   CU_CHECK(ctx, what, cudaEventRecord(pin->copied, ctx->stream))
               ? -1
               : 0;
}

int kn_cuda_cross_entropy_accumulate(kn_cuda_ctx *ctx, float *dlogits, kn_totals *totals,
                                     const float *logits, const int32_t *labels, int n, int c,
                                     int64_t step) {
    const char *what = "cross entropy";
    if (!totals || !logits || !labels) return kn_cuda_fail(ctx, what, "NULL argument");
    if (n <= 0 || c <= 0)
        return kn_cuda_fail(ctx, what, "sizes must be positive (N %d, C %d)", n, c);
    const void *step_dev = NULL;
    const int rc = kn_cuda_step_values(ctx, &step, sizeof step, what, &step_dev);
    if (rc) return rc < 0 ? -1 : 0;
    /* the rows share the context's small table with Adam's tensor list: both are used in
     * stream order, so the Adam step after this batch cannot overwrite rows still unread */
    return kn_cuda_reserve(ctx, &ctx->table, &ctx->table_bytes, (size_t)n * sizeof(kn_cu_ce_row),
                           what) ||
                   CU_CHECK(ctx, what,
                            kn_cu_cross_entropy(ctx->stream, dlogits, ctx->table, logits, labels, n,
                                                c)) ||
                   CU_CHECK(ctx, what,
                            kn_cu_totals_add(ctx->stream, totals, ctx->table, n, step, step_dev))
               ? -1
               : 0;
}
