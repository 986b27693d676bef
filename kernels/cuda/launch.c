/* The kernels.h calls that are launches of the backend's own kernels (kernels/cuda/ops.cu,
 * images.cu): argument checks, then one launch on the context's stream; cross-entropy, Adam
 * and the image batch also move their small tables between host and device. */
#include "kernels/cuda/cuda_internal.h"
#include "kernels/cuda/images.h"
#include "kernels/cuda/ops.h"
#include "kernels/dropout_mask.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int kn_cuda_relu_forward(kn_cuda_ctx *ctx, float *out, const float *inp, size_t count) {
    if (!count) return 0;
    if (!out || !inp) return kn_cuda_fail(ctx, "relu forward", "NULL tensor argument");
    return CU_CHECK(ctx, "relu forward", kn_cu_relu_forward(ctx->stream, out, inp, count));
}

int kn_cuda_relu_backward(kn_cuda_ctx *ctx, float *dinp, const float *dout, const float *out,
                          size_t count) {
    if (!count) return 0;
    if (!dinp || !dout || !out) return kn_cuda_fail(ctx, "relu backward", "NULL tensor argument");
    return CU_CHECK(ctx, "relu backward", kn_cu_relu_backward(ctx->stream, dinp, dout, out, count));
}

int kn_cuda_add(kn_cuda_ctx *ctx, float *out, const float *a, const float *b, size_t count) {
    if (!count) return 0;
    if (!out || !a || !b) return kn_cuda_fail(ctx, "add", "NULL tensor argument");
    return CU_CHECK(ctx, "add", kn_cu_add(ctx->stream, out, a, b, count));
}

int kn_cuda_accumulate(kn_cuda_ctx *ctx, float *dst, const float *src, size_t count) {
    if (!count) return 0;
    if (!dst || !src) return kn_cuda_fail(ctx, "accumulate", "NULL tensor argument");
    return CU_CHECK(ctx, "accumulate", kn_cu_accumulate(ctx->stream, dst, src, count));
}

int kn_cuda_scale(kn_cuda_ctx *ctx, float *x, float a, size_t count) {
    if (!count) return 0;
    if (!x) return kn_cuda_fail(ctx, "scale", "NULL tensor argument");
    return CU_CHECK(ctx, "scale", kn_cu_scale(ctx->stream, x, a, count));
}

static int check_p(kn_cuda_ctx *ctx, float p, const char *what) {
    if (!(p >= 0.0f && p <= 1.0f))
        return kn_cuda_fail(ctx, what, "p = %g is outside [0, 1]", (double)p);
    return 0;
}

int kn_cuda_dropout_forward(kn_cuda_ctx *ctx, float *out, uint8_t *mask, const float *inp,
                            size_t count, float p, uint64_t seed, uint64_t offset) {
    const char *what = "dropout forward";
    if (check_p(ctx, p, what)) return -1;
    if (!count) return 0;
    if (!out || !mask || !inp) return kn_cuda_fail(ctx, what, "NULL tensor argument");
    const float scale = p < 1.0f ? 1.0f / (1.0f - p) : 0.0f;
    const uint64_t key_offset[2] = {kn_dropout_key(seed), offset};
    const void *dev = NULL;
    const int rc = kn_cuda_step_values(ctx, key_offset, sizeof key_offset, what, &dev);
    if (rc) return rc < 0 ? -1 : 0;
    return CU_CHECK(ctx, what,
                    kn_cu_dropout_forward(ctx->stream, out, mask, inp, count, scale, key_offset[0],
                                          kn_dropout_threshold(p), offset, dev));
}

int kn_cuda_dropout_backward(kn_cuda_ctx *ctx, float *dinp, const float *dout, const uint8_t *mask,
                             size_t count, float p) {
    const char *what = "dropout backward";
    if (check_p(ctx, p, what)) return -1;
    if (!count) return 0;
    if (!dinp || !dout || !mask) return kn_cuda_fail(ctx, what, "NULL tensor argument");
    const float scale = p < 1.0f ? 1.0f / (1.0f - p) : 0.0f;
    return CU_CHECK(ctx, what, kn_cu_dropout_backward(ctx->stream, dinp, dout, mask, count, scale));
}

static int check_layout(kn_cuda_ctx *ctx, const void *out, const void *inp, int n, int c, int h,
                        int w, const char *what) {
    if (!out || !inp) return kn_cuda_fail(ctx, what, "NULL tensor argument");
    if (n <= 0 || c <= 0 || h <= 0 || w <= 0)
        return kn_cuda_fail(ctx, what, "sizes must be positive");
    if (out == inp) return kn_cuda_fail(ctx, what, "cannot transpose in place");
    return 0;
}

int kn_cuda_nhwc_to_nchw(kn_cuda_ctx *ctx, float *out, const float *inp, int n, int c, int h,
                         int w) {
    if (check_layout(ctx, out, inp, n, c, h, w, "nhwc_to_nchw")) return -1;
    return CU_CHECK(ctx, "nhwc_to_nchw", kn_cu_nhwc_to_nchw(ctx->stream, out, inp, n, c, h, w));
}

int kn_cuda_nchw_to_nhwc(kn_cuda_ctx *ctx, float *out, const float *inp, int n, int c, int h,
                         int w) {
    if (check_layout(ctx, out, inp, n, c, h, w, "nchw_to_nhwc")) return -1;
    return CU_CHECK(ctx, "nchw_to_nhwc", kn_cu_nchw_to_nhwc(ctx->stream, out, inp, n, c, h, w));
}

static int check_adaptive(kn_cuda_ctx *ctx, const void *a, const void *b, int n, int c, int h,
                          int w, int ho, int wo, const char *what) {
    if (!a || !b) return kn_cuda_fail(ctx, what, "NULL tensor argument");
    if (n <= 0 || c <= 0 || h <= 0 || w <= 0 || ho <= 0 || wo <= 0)
        return kn_cuda_fail(ctx, what, "sizes must be positive (%dx%dx%dx%d -> %dx%d)", n, h, w, c,
                            ho, wo);
    return 0;
}

int kn_cuda_adaptive_avgpool_forward(kn_cuda_ctx *ctx, float *out, const float *inp, int n, int c,
                                     int h, int w, int h_out, int w_out) {
    const char *what = "adaptive avgpool forward";
    if (check_adaptive(ctx, out, inp, n, c, h, w, h_out, w_out, what)) return -1;
    return CU_CHECK(
        ctx, what, kn_cu_adaptive_avgpool_forward(ctx->stream, out, inp, n, c, h, w, h_out, w_out));
}

int kn_cuda_adaptive_avgpool_backward(kn_cuda_ctx *ctx, float *dinp, const float *dout, int n,
                                      int c, int h, int w, int h_out, int w_out) {
    const char *what = "adaptive avgpool backward";
    if (check_adaptive(ctx, dinp, dout, n, c, h, w, h_out, w_out, what)) return -1;
    return CU_CHECK(
        ctx, what,
        kn_cu_adaptive_avgpool_backward(ctx->stream, dinp, dout, n, c, h, w, h_out, w_out));
}

int kn_cuda_cross_entropy(kn_cuda_ctx *ctx, float *dlogits, float *loss, int *correct,
                          const float *logits, const int32_t *labels, int n, int c) {
    const char *what = "cross entropy";
    if (!loss || !correct || !logits || !labels) return kn_cuda_fail(ctx, what, "NULL argument");
    if (n <= 0 || c <= 0)
        return kn_cuda_fail(ctx, what, "sizes must be positive (N %d, C %d)", n, c);
    const size_t bytes = (size_t)n * sizeof(kn_cu_ce_row);
    kn_cu_ce_row *rows = malloc(bytes);
    if (!rows) return kn_cuda_fail(ctx, what, "out of memory");
    /* Labels live on the device, so they are checked there; a sample with a bad label gets
     * no dlogits row and fails the call. The per-sample results are summed here, in double,
     * in sample order, as the CPU backend sums them. */
    int rc = kn_cuda_reserve(ctx, &ctx->table, &ctx->table_bytes, bytes, what) ||
                     CU_CHECK(ctx, what,
                              kn_cu_cross_entropy(ctx->stream, dlogits, ctx->table, logits, labels,
                                                  n, c)) ||
                     CU_CHECK(ctx, what,
                              cudaMemcpyAsync(rows, ctx->table, bytes, cudaMemcpyDeviceToHost,
                                              ctx->stream)) ||
                     CU_CHECK(ctx, what, cudaStreamSynchronize(ctx->stream))
                 ? -1
                 : 0;
    double total = 0.0;
    int hits = 0;
    for (int i = 0; rc == 0 && i < n; i++) {
        if (rows[i].bad_label)
            rc = kn_cuda_fail(ctx, what, "the label of sample %d is outside [0, %d)", i, c);
        total += rows[i].loss;
        hits += rows[i].hit;
    }
    free(rows);
    if (rc) return -1;
    *loss = (float)(total / n);
    *correct = hits;
    return 0;
}

int kn_cuda_f32_to_bf16(kn_cuda_ctx *ctx, kn_bf16 *out, const float *inp, size_t count) {
    if (!count) return 0;
    if (!out || !inp) return kn_cuda_fail(ctx, "f32_to_bf16", "NULL tensor argument");
    return CU_CHECK(ctx, "f32_to_bf16", kn_cu_f32_to_bf16(ctx->stream, out, inp, count));
}

int kn_cuda_bf16_to_f32(kn_cuda_ctx *ctx, float *out, const kn_bf16 *inp, size_t count) {
    if (!count) return 0;
    if (!out || !inp) return kn_cuda_fail(ctx, "bf16_to_f32", "NULL tensor argument");
    return CU_CHECK(ctx, "bf16_to_f32", kn_cu_bf16_to_f32(ctx->stream, out, inp, count));
}

int kn_cuda_adam_step(kn_cuda_ctx *ctx, float *params, const float *grads, float *m, float *v,
                      const kn_adam_tensor *tensors, int n_tensors, const kn_adam_hparams *hp) {
    const char *what = "adam step";
    if (!params || !grads || !m || !v || !hp || (n_tensors > 0 && !tensors))
        return kn_cuda_fail(ctx, what, "NULL argument");
    kn_adam_consts k;
    char msg[KN_CUDA_WHAT_LEN];
    if (kn_adam_prepare(hp, &k, msg, sizeof msg)) return kn_cuda_fail(ctx, what, "%s", msg);
    if (n_tensors <= 0) return 0;
    ctx->weights_epoch++;  /* bf16 plans renew their weight copies */
    if (n_tensors > 65535) /* the grid's y dimension */
        return kn_cuda_fail(ctx, what, "%d tensors is more than one launch takes (65535)",
                            n_tensors);
    /* a graph step's values: the constants, then the table (aligned for its size_t fields) */
    const size_t head = (sizeof k + 15) / 16 * 16;
    const size_t bytes = (size_t)n_tensors * sizeof(kn_cu_adam_tensor);
    unsigned char *values = malloc(head + bytes);
    if (!values) return kn_cuda_fail(ctx, what, "out of memory");
    memcpy(values, &k, sizeof k);
    kn_cu_adam_tensor *table = (kn_cu_adam_tensor *)(values + head);
    size_t max_count = 0;
    for (int t = 0; t < n_tensors; t++) {
        table[t].offset = tensors[t].offset;
        table[t].count = tensors[t].count;
        table[t].step_size = (float)(tensors[t].lr / k.bias_correction1);
        if (tensors[t].count > max_count) max_count = tensors[t].count;
    }
    const void *dev = NULL;
    int rc = kn_cuda_step_values(ctx, values, head + bytes, what, &dev);
    if (rc == 0 && dev) /* captured: the launch copies the values up before the graph */
        rc = CU_CHECK(ctx, what,
                      kn_cu_adam(ctx->stream, params, grads, m, v,
                                 (const kn_cu_adam_tensor *)((const unsigned char *)dev + head),
                                 n_tensors, max_count, k, dev));
    /* Eager: the table goes up through a pinned buffer (a copy from pageable memory may wait
     * for the stream), so it can be freed right away; the stream orders the copy after
     * earlier launches that read the device table. */
    else if (rc == 0)
        rc = kn_cuda_reserve(ctx, &ctx->table, &ctx->table_bytes, bytes, what) ||
                     kn_cuda_upload_table(ctx, ctx->table, table, bytes, what) ||
                     CU_CHECK(ctx, what,
                              kn_cu_adam(ctx->stream, params, grads, m, v, ctx->table, n_tensors,
                                         max_count, k, NULL))
                 ? -1
                 : 0;
    free(values);
    return rc < 0 ? -1 : 0;
}

int kn_cuda_images_to_batch(kn_cuda_ctx *ctx, float *out, const uint8_t *store,
                            const kn_image_job *jobs, int n, int crop) {
    const char *what = "images to batch";
    if (n > 65535) /* the grid's y dimension */
        return kn_cuda_fail(ctx, what, "%d images is more than one launch takes (65535)", n);
    /* The jobs and then the per-image contrast sums share the context's small table, which
     * the stream orders after every queued kernel that still reads it. The jobs go up through
     * a pinned buffer: a copy from pageable memory may wait for the stream, and so for the
     * step queued before, which would stall the trainer's pipeline every batch. */
    const size_t job_bytes = (size_t)n * sizeof *jobs;
    return kn_cuda_reserve(ctx, &ctx->table, &ctx->table_bytes,
                           job_bytes + (size_t)n * sizeof(uint64_t), what) ||
                   kn_cuda_upload_table(ctx, ctx->table, jobs, job_bytes, what) ||
                   CU_CHECK(ctx, what,
                            kn_cu_images_to_batch(ctx->stream, out,
                                                  (uint64_t *)((char *)ctx->table + job_bytes),
                                                  store, ctx->table, n, crop))
               ? -1
               : 0;
}
