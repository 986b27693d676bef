// The CUDA backend's own kernels: everything cuDNN and cuBLAS do not cover. All activations
// are NHWC with C fastest, so one thread per output element with the channel as the fastest
// index gives coalesced loads and stores. Backward passes gather (each input element sums
// the outputs that read it) instead of scattering with atomics, so they are deterministic.
#include "kernels/cuda/ops.h"

#include "kernels/dropout_mask.h"

namespace {

constexpr int kThreads = 256;
constexpr unsigned kMaxBlocks = 1u << 20; // grid-stride loops cover the rest

unsigned blocks_for(size_t count) {
    size_t b = (count + kThreads - 1) / kThreads;
    if (b == 0) b = 1;
    return b < kMaxBlocks ? (unsigned)b : kMaxBlocks;
}

#define GRID_STRIDE(i, count)                                                                      \
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < (count);                    \
         i += (size_t)gridDim.x * blockDim.x)

__global__ void relu_forward(float *out, const float *inp, size_t count) {
    GRID_STRIDE(i, count) out[i] = inp[i] > 0.0f ? inp[i] : 0.0f;
}

__global__ void relu_backward(float *dinp, const float *dout, const float *out, size_t count) {
    GRID_STRIDE(i, count) dinp[i] = out[i] > 0.0f ? dout[i] : 0.0f;
}

__global__ void add(float *out, const float *a, const float *b, size_t count) {
    GRID_STRIDE(i, count) out[i] = a[i] + b[i];
}

__global__ void accumulate(float *dst, const float *src, size_t count) {
    GRID_STRIDE(i, count) dst[i] += src[i];
}

__global__ void scale_in_place(float *x, float a, size_t count) {
    GRID_STRIDE(i, count) x[i] *= a;
}

__global__ void dropout_forward(float *out, uint8_t *mask, const float *inp, size_t count,
                                float scale, uint64_t key, uint64_t threshold, uint64_t offset) {
    GRID_STRIDE(i, count) {
        const uint8_t keep = (uint8_t)kn_dropout_keep(key, offset + i, threshold);
        mask[i] = keep;
        out[i] = keep ? inp[i] * scale : 0.0f;
    }
}

__global__ void dropout_backward(float *dinp, const float *dout, const uint8_t *mask, size_t count,
                                 float scale) {
    GRID_STRIDE(i, count) dinp[i] = mask[i] ? dout[i] * scale : 0.0f;
}

// One thread per output element, output order: writes coalesce, reads are strided.
__global__ void nhwc_to_nchw(float *out, const float *inp, int c, int hw, size_t count) {
    GRID_STRIDE(i, count) {
        const size_t pos = i % hw, ch = i / hw % c, b = i / hw / c;
        out[i] = inp[(b * hw + pos) * c + ch];
    }
}

__global__ void nchw_to_nhwc(float *out, const float *inp, int c, int hw, size_t count) {
    GRID_STRIDE(i, count) {
        const size_t ch = i % c, pos = i / c % hw, b = i / c / hw;
        out[i] = inp[(b * c + ch) * hw + pos];
    }
}

// PyTorch's adaptive window: [floor(i * in / out), ceil((i + 1) * in / out))
__device__ int window_start(int i, int in, int out) {
    return (int)(((long long)i * in) / out);
}
__device__ int window_end(int i, int in, int out) {
    return (int)((((long long)i + 1) * in + out - 1) / out);
}

__global__ void adaptive_forward(float *out, const float *inp, int c, int h, int w, int ho, int wo,
                                 size_t count) {
    GRID_STRIDE(i, count) {
        const int ch = (int)(i % c), ow = (int)(i / c % wo), oh = (int)(i / c / wo % ho);
        const size_t b = i / c / wo / ho;
        const int h0 = window_start(oh, h, ho), h1 = window_end(oh, h, ho);
        const int w0 = window_start(ow, w, wo), w1 = window_end(ow, w, wo);
        float acc = 0.0f;
        for (int y = h0; y < h1; y++)
            for (int x = w0; x < w1; x++)
                acc += inp[((b * h + y) * w + x) * c + ch];
        out[i] = acc * (1.0f / (float)((h1 - h0) * (w1 - w0)));
    }
}

// Windows may overlap (or skip nothing), so each input element visits every output window
// and keeps those that contain it; output grids are small (7x7 at most in these models).
__global__ void adaptive_backward(float *dinp, const float *dout, int c, int h, int w, int ho,
                                  int wo, size_t count) {
    GRID_STRIDE(i, count) {
        const int ch = (int)(i % c), x = (int)(i / c % w), y = (int)(i / c / w % h);
        const size_t b = i / c / w / h;
        float acc = 0.0f;
        for (int oh = 0; oh < ho; oh++) {
            const int h0 = window_start(oh, h, ho), h1 = window_end(oh, h, ho);
            if (y < h0 || y >= h1) continue;
            for (int ow = 0; ow < wo; ow++) {
                const int w0 = window_start(ow, w, wo), w1 = window_end(ow, w, wo);
                if (x < w0 || x >= w1) continue;
                acc += dout[((b * ho + oh) * wo + ow) * c + ch] / (float)((h1 - h0) * (w1 - w0));
            }
        }
        dinp[i] = acc;
    }
}

// The output rows [lo, hi] (inclusive, maybe empty) whose windows of size k, stride s and
// left padding p contain input row y.
__device__ void windows_containing(int y, int k, int s, int p, int out, int *lo, int *hi) {
    const int yp = y + p;
    *lo = yp < k ? 0 : (yp - k) / s + 1;
    *hi = min(yp / s, out - 1);
}

__global__ void maxpool_forward(float *out, int32_t *argmax, const float *inp, kn_cu_pool_geom g,
                                size_t count) {
    GRID_STRIDE(i, count) {
        const int ch = (int)(i % g.c), ow = (int)(i / g.c % g.w_out);
        const int oh = (int)(i / g.c / g.w_out % g.h_out);
        const size_t b = i / g.c / g.w_out / g.h_out;
        const int hs = oh * g.stride_h - g.pad_h, ws = ow * g.stride_w - g.pad_w;
        const int h0 = max(hs, 0), h1 = min(hs + g.kh, g.h), w0 = max(ws, 0),
                  w1 = min(ws + g.kw, g.w);
        float best = -INFINITY;
        int where = h0 * g.w + w0;
        // PyTorch's rule: strict > keeps the first maximum, and a NaN always takes over
        for (int y = h0; y < h1; y++)
            for (int x = w0; x < w1; x++) {
                const float v = inp[((b * g.h + y) * g.w + x) * g.c + ch];
                if (v > best || isnan(v)) best = v, where = y * g.w + x;
            }
        out[i] = best;
        argmax[i] = where;
    }
}

__global__ void maxpool_backward(float *dinp, const float *dout, const int32_t *argmax,
                                 kn_cu_pool_geom g, size_t count) {
    GRID_STRIDE(i, count) {
        const int ch = (int)(i % g.c), x = (int)(i / g.c % g.w), y = (int)(i / g.c / g.w % g.h);
        const size_t b = i / g.c / g.w / g.h;
        int oh0, oh1, ow0, ow1;
        windows_containing(y, g.kh, g.stride_h, g.pad_h, g.h_out, &oh0, &oh1);
        windows_containing(x, g.kw, g.stride_w, g.pad_w, g.w_out, &ow0, &ow1);
        const int32_t here = y * g.w + x;
        float acc = 0.0f;
        for (int oh = oh0; oh <= oh1; oh++)
            for (int ow = ow0; ow <= ow1; ow++) {
                const size_t o = ((b * g.h_out + oh) * g.w_out + ow) * g.c + ch;
                if (argmax[o] == here) acc += dout[o];
            }
        dinp[i] = acc;
    }
}

// PyTorch's avg_pool2d divisor: the window clipped to the padded input (include_pad), or to
// the input itself.
__device__ float avg_divisor(int oh, int ow, const kn_cu_pool_geom &g) {
    int hs = oh * g.stride_h - g.pad_h, ws = ow * g.stride_w - g.pad_w;
    int he = min(hs + g.kh, g.h + g.pad_h), we = min(ws + g.kw, g.w + g.pad_w);
    if (g.count_include_pad) return (float)((he - hs) * (we - ws));
    hs = max(hs, 0), ws = max(ws, 0), he = min(he, g.h), we = min(we, g.w);
    return (float)((he - hs) * (we - ws));
}

__global__ void avgpool_forward(float *out, const float *inp, kn_cu_pool_geom g, size_t count) {
    GRID_STRIDE(i, count) {
        const int ch = (int)(i % g.c), ow = (int)(i / g.c % g.w_out);
        const int oh = (int)(i / g.c / g.w_out % g.h_out);
        const size_t b = i / g.c / g.w_out / g.h_out;
        const int hs = oh * g.stride_h - g.pad_h, ws = ow * g.stride_w - g.pad_w;
        float acc = 0.0f;
        for (int y = max(hs, 0); y < min(hs + g.kh, g.h); y++)
            for (int x = max(ws, 0); x < min(ws + g.kw, g.w); x++)
                acc += inp[((b * g.h + y) * g.w + x) * g.c + ch];
        out[i] = acc / avg_divisor(oh, ow, g);
    }
}

__global__ void avgpool_backward(float *dinp, const float *dout, kn_cu_pool_geom g, size_t count) {
    GRID_STRIDE(i, count) {
        const int ch = (int)(i % g.c), x = (int)(i / g.c % g.w), y = (int)(i / g.c / g.w % g.h);
        const size_t b = i / g.c / g.w / g.h;
        int oh0, oh1, ow0, ow1;
        windows_containing(y, g.kh, g.stride_h, g.pad_h, g.h_out, &oh0, &oh1);
        windows_containing(x, g.kw, g.stride_w, g.pad_w, g.w_out, &ow0, &ow1);
        float acc = 0.0f;
        for (int oh = oh0; oh <= oh1; oh++)
            for (int ow = ow0; ow <= ow1; ow++)
                acc +=
                    dout[((b * g.h_out + oh) * g.w_out + ow) * g.c + ch] / avg_divisor(oh, ow, g);
        dinp[i] = acc;
    }
}

__global__ void add_bias(float *out, const float *bias, int cols, size_t count) {
    GRID_STRIDE(i, count) out[i] += bias[i % cols];
}

// One thread per column: rows are a batch (linear layers), small enough to loop over.
__global__ void column_sums(float *sums, const float *x, int rows, int cols) {
    const int j = blockIdx.x * blockDim.x + threadIdx.x;
    if (j >= cols) return;
    float acc = 0.0f;
    for (int r = 0; r < rows; r++)
        acc += x[(size_t)r * cols + j];
    sums[j] = acc;
}

__global__ void bn_invstd_to_var(float *var, const float *invstd, int c, float eps) {
    const int j = blockIdx.x * blockDim.x + threadIdx.x;
    if (j < c) var[j] = 1.0f / (invstd[j] * invstd[j]) - eps;
}

__global__ void bn_var_to_invstd(float *invstd, const float *var, int c, float eps) {
    const int j = blockIdx.x * blockDim.x + threadIdx.x;
    if (j < c) invstd[j] = 1.0f / sqrtf(var[j] + eps);
}

// One block per sample. The max and the exp sums run in the same order of operations as the
// CPU backend's (max first, sums in double) so both agree to rounding.
constexpr int kCeThreads = 128;

__global__ void cross_entropy(float *dlogits, kn_cu_ce_row *rows, const float *logits,
                              const int32_t *labels, int c, float inv_n) {
    __shared__ float best_v[kCeThreads];
    __shared__ int best_i[kCeThreads];
    __shared__ double sums[kCeThreads];
    const int r = blockIdx.x, t = threadIdx.x;
    const float *row = logits + (size_t)r * c;
    const int label = labels[r];
    float bv = -INFINITY;
    int bi = c; // no element yet: loses every tie
    for (int j = t; j < c; j += kCeThreads)
        if (row[j] > bv || bi == c) bv = row[j], bi = j;
    best_v[t] = bv, best_i[t] = bi;
    __syncthreads();
    for (int s = kCeThreads / 2; s > 0; s /= 2) {
        if (t < s) {
            const float ov = best_v[t + s];
            const int oi = best_i[t + s];
            // the larger value, and on a tie the smaller index: torch.argmax's first maximum
            if (oi < c && (best_i[t] == c || ov > best_v[t] || (ov == best_v[t] && oi < best_i[t])))
                best_v[t] = ov, best_i[t] = oi;
        }
        __syncthreads();
    }
    const float mx = best_v[0];
    const int best = best_i[0];
    double sum = 0.0;
    for (int j = t; j < c; j += kCeThreads)
        sum += exp((double)(row[j] - mx));
    sums[t] = sum;
    __syncthreads();
    for (int s = kCeThreads / 2; s > 0; s /= 2) {
        if (t < s) sums[t] += sums[t + s];
        __syncthreads();
    }
    const double log_sum = log(sums[0]);
    const bool bad = label < 0 || label >= c;
    if (t == 0) {
        rows[r].bad_label = bad;
        rows[r].hit = !bad && best == label;
        rows[r].loss = bad ? 0.0 : log_sum - (double)(row[label] - mx);
    }
    if (!dlogits || bad) return;
    float *d = dlogits + (size_t)r * c;
    for (int j = t; j < c; j += kCeThreads)
        d[j] = (float)exp((double)(row[j] - mx) - log_sum) * inv_n - (j == label ? inv_n : 0.0f);
}

__global__ void adam(float *params, const float *grads, float *m, float *v,
                     const kn_cu_adam_tensor *tensors, kn_adam_consts k) {
    const kn_cu_adam_tensor t = tensors[blockIdx.y];
    float *p = params + t.offset, *mt = m + t.offset, *vt = v + t.offset;
    const float *g = grads + t.offset;
    GRID_STRIDE(i, t.count) {
        // the CPU backend's (and PyTorch's) order of operations
        const float gi = k.weight_decay != 0.0f ? g[i] + k.weight_decay * p[i] : g[i];
        const float mi = k.b1 * mt[i] + k.one_minus_b1 * gi;
        const float vi = k.b2 * vt[i] + k.one_minus_b2 * (gi * gi);
        mt[i] = mi;
        vt[i] = vi;
        const float denom = sqrtf(vi) / k.bias_correction2_sqrt + k.eps;
        p[i] -= t.step_size * (mi / denom);
    }
}

} // namespace

extern "C" {

cudaError_t kn_cu_relu_forward(cudaStream_t stream, float *out, const float *inp, size_t count) {
    relu_forward<<<blocks_for(count), kThreads, 0, stream>>>(out, inp, count);
    return cudaGetLastError();
}

cudaError_t kn_cu_relu_backward(cudaStream_t stream, float *dinp, const float *dout,
                                const float *out, size_t count) {
    relu_backward<<<blocks_for(count), kThreads, 0, stream>>>(dinp, dout, out, count);
    return cudaGetLastError();
}

cudaError_t kn_cu_add(cudaStream_t stream, float *out, const float *a, const float *b,
                      size_t count) {
    add<<<blocks_for(count), kThreads, 0, stream>>>(out, a, b, count);
    return cudaGetLastError();
}

cudaError_t kn_cu_accumulate(cudaStream_t stream, float *dst, const float *src, size_t count) {
    accumulate<<<blocks_for(count), kThreads, 0, stream>>>(dst, src, count);
    return cudaGetLastError();
}

cudaError_t kn_cu_scale(cudaStream_t stream, float *x, float a, size_t count) {
    scale_in_place<<<blocks_for(count), kThreads, 0, stream>>>(x, a, count);
    return cudaGetLastError();
}

cudaError_t kn_cu_dropout_forward(cudaStream_t stream, float *out, uint8_t *mask, const float *inp,
                                  size_t count, float scale, uint64_t key, uint64_t threshold,
                                  uint64_t offset) {
    dropout_forward<<<blocks_for(count), kThreads, 0, stream>>>(out, mask, inp, count, scale, key,
                                                                threshold, offset);
    return cudaGetLastError();
}

cudaError_t kn_cu_dropout_backward(cudaStream_t stream, float *dinp, const float *dout,
                                   const uint8_t *mask, size_t count, float scale) {
    dropout_backward<<<blocks_for(count), kThreads, 0, stream>>>(dinp, dout, mask, count, scale);
    return cudaGetLastError();
}

cudaError_t kn_cu_nhwc_to_nchw(cudaStream_t stream, float *out, const float *inp, int n, int c,
                               int h, int w) {
    const size_t count = (size_t)n * c * h * w;
    nhwc_to_nchw<<<blocks_for(count), kThreads, 0, stream>>>(out, inp, c, h * w, count);
    return cudaGetLastError();
}

cudaError_t kn_cu_nchw_to_nhwc(cudaStream_t stream, float *out, const float *inp, int n, int c,
                               int h, int w) {
    const size_t count = (size_t)n * c * h * w;
    nchw_to_nhwc<<<blocks_for(count), kThreads, 0, stream>>>(out, inp, c, h * w, count);
    return cudaGetLastError();
}

cudaError_t kn_cu_adaptive_avgpool_forward(cudaStream_t stream, float *out, const float *inp, int n,
                                           int c, int h, int w, int h_out, int w_out) {
    const size_t count = (size_t)n * h_out * w_out * c;
    adaptive_forward<<<blocks_for(count), kThreads, 0, stream>>>(out, inp, c, h, w, h_out, w_out,
                                                                 count);
    return cudaGetLastError();
}

cudaError_t kn_cu_adaptive_avgpool_backward(cudaStream_t stream, float *dinp, const float *dout,
                                            int n, int c, int h, int w, int h_out, int w_out) {
    const size_t count = (size_t)n * h * w * c;
    adaptive_backward<<<blocks_for(count), kThreads, 0, stream>>>(dinp, dout, c, h, w, h_out, w_out,
                                                                  count);
    return cudaGetLastError();
}

cudaError_t kn_cu_maxpool_forward(cudaStream_t stream, float *out, int32_t *argmax,
                                  const float *inp, kn_cu_pool_geom g) {
    const size_t count = (size_t)g.n * g.h_out * g.w_out * g.c;
    maxpool_forward<<<blocks_for(count), kThreads, 0, stream>>>(out, argmax, inp, g, count);
    return cudaGetLastError();
}

cudaError_t kn_cu_maxpool_backward(cudaStream_t stream, float *dinp, const float *dout,
                                   const int32_t *argmax, kn_cu_pool_geom g) {
    const size_t count = (size_t)g.n * g.h * g.w * g.c;
    maxpool_backward<<<blocks_for(count), kThreads, 0, stream>>>(dinp, dout, argmax, g, count);
    return cudaGetLastError();
}

cudaError_t kn_cu_avgpool_forward(cudaStream_t stream, float *out, const float *inp,
                                  kn_cu_pool_geom g) {
    const size_t count = (size_t)g.n * g.h_out * g.w_out * g.c;
    avgpool_forward<<<blocks_for(count), kThreads, 0, stream>>>(out, inp, g, count);
    return cudaGetLastError();
}

cudaError_t kn_cu_avgpool_backward(cudaStream_t stream, float *dinp, const float *dout,
                                   kn_cu_pool_geom g) {
    const size_t count = (size_t)g.n * g.h * g.w * g.c;
    avgpool_backward<<<blocks_for(count), kThreads, 0, stream>>>(dinp, dout, g, count);
    return cudaGetLastError();
}

cudaError_t kn_cu_add_bias(cudaStream_t stream, float *out, const float *bias, int rows, int cols) {
    const size_t count = (size_t)rows * cols;
    add_bias<<<blocks_for(count), kThreads, 0, stream>>>(out, bias, cols, count);
    return cudaGetLastError();
}

cudaError_t kn_cu_column_sums(cudaStream_t stream, float *sums, const float *x, int rows,
                              int cols) {
    column_sums<<<blocks_for((size_t)cols), kThreads, 0, stream>>>(sums, x, rows, cols);
    return cudaGetLastError();
}

cudaError_t kn_cu_bn_invstd_to_var(cudaStream_t stream, float *var, const float *invstd, int c,
                                   float eps) {
    bn_invstd_to_var<<<blocks_for((size_t)c), kThreads, 0, stream>>>(var, invstd, c, eps);
    return cudaGetLastError();
}

cudaError_t kn_cu_bn_var_to_invstd(cudaStream_t stream, float *invstd, const float *var, int c,
                                   float eps) {
    bn_var_to_invstd<<<blocks_for((size_t)c), kThreads, 0, stream>>>(invstd, var, c, eps);
    return cudaGetLastError();
}

cudaError_t kn_cu_cross_entropy(cudaStream_t stream, float *dlogits, kn_cu_ce_row *rows,
                                const float *logits, const int32_t *labels, int n, int c) {
    cross_entropy<<<n, kCeThreads, 0, stream>>>(dlogits, rows, logits, labels, c, 1.0f / (float)n);
    return cudaGetLastError();
}

cudaError_t kn_cu_adam(cudaStream_t stream, float *params, const float *grads, float *m, float *v,
                       const kn_cu_adam_tensor *tensors, int n_tensors, size_t max_count,
                       kn_adam_consts k) {
    // blocks sized for the largest tensor (capped: the loop strides); small tensors' extra
    // blocks exit at once
    const unsigned bx = blocks_for(max_count) < 4096 ? blocks_for(max_count) : 4096;
    adam<<<dim3(bx, (unsigned)n_tensors), kThreads, 0, stream>>>(params, grads, m, v, tensors, k);
    return cudaGetLastError();
}

} // extern "C"
