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
                                float scale, uint64_t key, uint64_t threshold, uint64_t offset,
                                const uint64_t *key_offset) {
    if (key_offset) { // a graph step's: its seed changes every replay
        key = key_offset[0];
        offset = key_offset[1];
    }
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

// bf16 as the top half of an fp32: round to nearest even through the bits (the CPU
// backend's formula, so both backends give the same bits), NaN kept a quiet NaN.
__device__ uint16_t to_bf16(float x) {
    const uint32_t u = __float_as_uint(x);
    const uint32_t rounded = (u + 0x7fffu + ((u >> 16) & 1u)) >> 16;
    const uint32_t quiet_nan = (u >> 16) | 0x40u;
    return (uint16_t)((u & 0x7fffffffu) > 0x7f800000u ? quiet_nan : rounded);
}
__device__ float from_bf16(uint16_t x) {
    return __uint_as_float((uint32_t)x << 16);
}

__global__ void f32_to_bf16(uint16_t *out, const float *inp, size_t count) {
    GRID_STRIDE(i, count) out[i] = to_bf16(inp[i]);
}

__global__ void bf16_to_f32(float *out, const uint16_t *inp, size_t count) {
    GRID_STRIDE(i, count) out[i] = from_bf16(inp[i]);
}

// nchw_to_nhwc and nhwc_to_nchw with the cast on the way
__global__ void nchw_f32_to_nhwc_bf16(uint16_t *out, const float *inp, int c, int hw,
                                      size_t count) {
    GRID_STRIDE(i, count) {
        const size_t ch = i % c, pos = i / c % hw, b = i / c / hw;
        out[i] = to_bf16(inp[(b * c + ch) * hw + pos]);
    }
}

__global__ void nhwc_bf16_to_nchw_f32(float *out, const uint16_t *inp, int c, int hw,
                                      size_t count) {
    GRID_STRIDE(i, count) {
        const size_t pos = i % hw, ch = i / hw % c, b = i / hw / c;
        out[i] = from_bf16(inp[(b * hw + pos) * c + ch]);
    }
}

__global__ void add_bias_bf16(uint16_t *out, const float *bias, int cols, size_t count) {
    GRID_STRIDE(i, count) out[i] = to_bf16(from_bf16(out[i]) + bias[i % cols]);
}

// Column sums of a bf16 (rows, cols) matrix: a block covers kSumCols columns (a warp's
// coalesced row segment) of one block of rows, kSumRows warps striding down them; its
// partial sum goes to partials[blockIdx.y][column], and sum_partials adds those in order.
constexpr int kSumCols = 32, kSumRows = 8;
constexpr size_t kSumRowBlocks = 256, kSumMinRows = 256;

size_t sum_row_blocks(size_t rows) {
    const size_t b = (rows + kSumMinRows - 1) / kSumMinRows;
    return b < 1 ? (size_t)1 : b < kSumRowBlocks ? b : kSumRowBlocks;
}

__global__ void column_partials_bf16(float *partials, const uint16_t *x, size_t rows, int cols,
                                     size_t rows_per_block) {
    __shared__ float acc[kSumRows][kSumCols];
    const int j = blockIdx.x * kSumCols + threadIdx.x;
    const size_t r0 = blockIdx.y * rows_per_block;
    const size_t r1 = r0 + rows_per_block < rows ? r0 + rows_per_block : rows;
    float s = 0.0f;
    if (j < cols)
        for (size_t r = r0 + threadIdx.y; r < r1; r += kSumRows)
            s += from_bf16(x[r * cols + j]);
    acc[threadIdx.y][threadIdx.x] = s;
    __syncthreads();
    if (threadIdx.y != 0 || j >= cols) return;
    float t = 0.0f;
    for (int k = 0; k < kSumRows; k++)
        t += acc[k][threadIdx.x];
    partials[blockIdx.y * (size_t)cols + j] = t;
}

__global__ void sum_partials(float *sums, const float *partials, size_t parts, int cols) {
    const int j = blockIdx.x * blockDim.x + threadIdx.x;
    if (j >= cols) return;
    float t = 0.0f;
    for (size_t p = 0; p < parts; p++)
        t += partials[p * cols + j];
    sums[j] = t;
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

// ---- synchronized batchnorm ----
// Per-channel fp64 sums over an (rows, C) activation in an order fixed by the shape alone:
// block (x, y) covers kBnLanes channels and row block y; thread (tx, ty) adds the rows
// ty, ty + kBnRowLanes, ... of that block in order, the block adds its kBnRowLanes thread
// sums in ty order, and bn_finish adds the row blocks' partials in block order. No atomics,
// so a rerun gives the same bits.
constexpr int kBnLanes = 32, kBnRowLanes = 8; // 256 threads, a warp reads 128 bytes of a row
constexpr size_t kBnMinRows = 64;             // rows per row block, at least
constexpr size_t kBnMaxRowBlocks = 256;

enum BnSum { kBnSumX, kBnSumSquaredDeviation, kBnSumBackward };

struct BnRowBlocks {
    size_t rows_per_block;
    unsigned blocks;
};

BnRowBlocks bn_row_blocks(size_t rows) {
    size_t per = (rows + kBnMaxRowBlocks - 1) / kBnMaxRowBlocks;
    if (per < kBnMinRows) per = kBnMinRows;
    return {per, (unsigned)((rows + per - 1) / per)};
}

// partials (2, row blocks, C): the first sum, and dy * (x - mean) for kBnSumBackward.
// mean is fp64 (the shard's own, kBnSumSquaredDeviation) or fp32 (save_mean, kBnSumBackward).
template <BnSum kind>
__global__ void bn_partials(double *partials, const float *x, const float *dy, const double *mean64,
                            const float *mean32, size_t rows, size_t rows_per_block, int c) {
    __shared__ double acc[2][kBnRowLanes][kBnLanes];
    const int tx = threadIdx.x, ty = threadIdx.y, ch = blockIdx.x * kBnLanes + tx;
    const size_t r0 = (size_t)blockIdx.y * rows_per_block;
    const size_t r1 = min(r0 + rows_per_block, rows);
    double a = 0.0, b = 0.0;
    if (ch < c) {
        const double m = kind == kBnSumSquaredDeviation ? mean64[ch]
                         : kind == kBnSumBackward       ? (double)mean32[ch]
                                                        : 0.0;
        for (size_t r = r0 + ty; r < r1; r += kBnRowLanes) {
            const double v = (double)x[r * c + ch];
            if (kind == kBnSumX) a += v;
            if (kind == kBnSumSquaredDeviation) a += (v - m) * (v - m);
            if (kind == kBnSumBackward) {
                const double g = (double)dy[r * c + ch];
                a += g;
                b += g * (v - m);
            }
        }
    }
    acc[0][ty][tx] = a, acc[1][ty][tx] = b;
    __syncthreads();
    if (ty != 0 || ch >= c) return;
    a = 0.0, b = 0.0;
    for (int i = 0; i < kBnRowLanes; i++)
        a += acc[0][i][tx], b += acc[1][i][tx];
    const size_t slot = (size_t)blockIdx.y * c + ch, half = (size_t)gridDim.y * c;
    partials[slot] = a;
    if (kind == kBnSumBackward) partials[half + slot] = b;
}

// One thread per channel adds the row blocks' partials in block order. kBnSumX: out[ch] is
// the mean; kBnSumSquaredDeviation: out[ch] is M2; kBnSumBackward: out[ch] is sum_dy and
// out[C + ch] sum_dy_xhat (the 1/sqrt(var + eps) of xhat applied once to the total), with
// dgamma/dbeta (may be NULL) their fp32 copies.
template <BnSum kind>
__global__ void bn_finish(double *out, float *dgamma, float *dbeta, const double *partials,
                          unsigned blocks, size_t rows, const float *save_var, float eps, int c) {
    const int ch = blockIdx.x * blockDim.x + threadIdx.x;
    if (ch >= c) return;
    const size_t half = (size_t)blocks * c;
    double a = 0.0, b = 0.0;
    for (unsigned i = 0; i < blocks; i++) {
        a += partials[(size_t)i * c + ch];
        if (kind == kBnSumBackward) b += partials[half + (size_t)i * c + ch];
    }
    if (kind == kBnSumX) a /= (double)rows;
    out[ch] = a;
    if (kind != kBnSumBackward) return;
    b /= sqrt((double)save_var[ch] + (double)eps);
    out[c + ch] = b;
    if (dgamma) dgamma[ch] = (float)b;
    if (dbeta) dbeta[ch] = (float)a;
}

// PyTorch's running update in double (kn_cpu_bn_running_update): running_var takes the
// unbiased variance.
__device__ void bn_running_update(float *running_mean, float *running_var, double mean, double var,
                                  double count, double momentum) {
    const double unbias = count / (count - 1.0);
    *running_mean = (float)((1.0 - momentum) * *running_mean + momentum * mean);
    *running_var = (float)((1.0 - momentum) * *running_var + momentum * var * unbias);
}

__global__ void bn_update_running(float *running_mean, float *running_var, const double *mean,
                                  const double *var, double count, float momentum, int c) {
    const int ch = blockIdx.x * blockDim.x + threadIdx.x;
    if (ch < c)
        bn_running_update(&running_mean[ch], &running_var[ch], mean[ch], var[ch], count,
                          (double)momentum);
}

// Per channel, in double: scale = gamma / sqrt(var + eps); the statistics saved in fp32; the
// running update.
__global__ void bn_forward_coefs(float *scale, float *save_mean, float *save_var,
                                 float *running_mean, float *running_var, const double *mean,
                                 const double *var, const float *gamma, double count, float eps,
                                 float momentum, int c) {
    const int ch = blockIdx.x * blockDim.x + threadIdx.x;
    if (ch >= c) return;
    scale[ch] = (float)((double)gamma[ch] / sqrt(var[ch] + (double)eps));
    save_mean[ch] = (float)mean[ch];
    save_var[ch] = (float)var[ch];
    bn_running_update(&running_mean[ch], &running_var[ch], mean[ch], var[ch], count,
                      (double)momentum);
}

__global__ void bn_normalize(float *out, const float *inp, const float *mean, const float *scale,
                             const float *beta, int c, size_t count) {
    GRID_STRIDE(i, count) {
        const int ch = (int)(i % c);
        out[i] = (inp[i] - mean[ch]) * scale[ch] + beta[ch];
    }
}

// coefs (3, C): scale = gamma * invstd, mean_dy = sum_dy / count,
// slope = invstd * sum_dy_xhat / count, made in double.
__global__ void bn_backward_coefs(float *coefs, const float *save_var, const float *gamma,
                                  const double *sum_dy, const double *sum_dy_xhat, double count,
                                  float eps, int c) {
    const int ch = blockIdx.x * blockDim.x + threadIdx.x;
    if (ch >= c) return;
    const double invstd = 1.0 / sqrt((double)save_var[ch] + (double)eps);
    coefs[ch] = (float)((double)gamma[ch] * invstd);
    coefs[c + ch] = (float)(sum_dy[ch] / count);
    coefs[2 * c + ch] = (float)(invstd * sum_dy_xhat[ch] / count);
}

__global__ void bn_backward_apply(float *dinp, const float *dout, const float *inp,
                                  const float *save_mean, const float *coefs, int c, size_t count) {
    GRID_STRIDE(i, count) {
        const int ch = (int)(i % c);
        dinp[i] =
            coefs[ch] * (dout[i] - coefs[c + ch] - (inp[i] - save_mean[ch]) * coefs[2 * c + ch]);
    }
}

// The two launches of one fixed-order reduction (see bn_partials).
template <BnSum kind>
cudaError_t bn_sums(cudaStream_t stream, double *out, float *dgamma, float *dbeta, double *partials,
                    const float *x, const float *dy, const double *mean64, const float *mean32,
                    const float *save_var, size_t rows, int c, float eps) {
    const BnRowBlocks rb = bn_row_blocks(rows);
    const dim3 grid((unsigned)((c + kBnLanes - 1) / kBnLanes), rb.blocks);
    bn_partials<kind><<<grid, dim3(kBnLanes, kBnRowLanes), 0, stream>>>(
        partials, x, dy, mean64, mean32, rows, rb.rows_per_block, c);
    const cudaError_t st = cudaGetLastError();
    if (st != cudaSuccess) return st;
    bn_finish<kind><<<blocks_for((size_t)c), kThreads, 0, stream>>>(
        out, dgamma, dbeta, partials, rb.blocks, rows, save_var, eps, c);
    return cudaGetLastError();
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
                     const kn_cu_adam_tensor *tensors, kn_adam_consts k,
                     const kn_adam_consts *k_from) {
    if (k_from) k = *k_from; // a graph step's: the bias corrections change every replay
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
                                  uint64_t offset, const uint64_t *key_offset) {
    dropout_forward<<<blocks_for(count), kThreads, 0, stream>>>(out, mask, inp, count, scale, key,
                                                                threshold, offset, key_offset);
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

cudaError_t kn_cu_f32_to_bf16(cudaStream_t stream, uint16_t *out, const float *inp, size_t count) {
    f32_to_bf16<<<blocks_for(count), kThreads, 0, stream>>>(out, inp, count);
    return cudaGetLastError();
}

cudaError_t kn_cu_bf16_to_f32(cudaStream_t stream, float *out, const uint16_t *inp, size_t count) {
    bf16_to_f32<<<blocks_for(count), kThreads, 0, stream>>>(out, inp, count);
    return cudaGetLastError();
}

cudaError_t kn_cu_oihw_f32_to_ohwi_bf16(cudaStream_t stream, uint16_t *out, const float *inp, int n,
                                        int c, int h, int w) {
    const size_t count = (size_t)n * c * h * w;
    nchw_f32_to_nhwc_bf16<<<blocks_for(count), kThreads, 0, stream>>>(out, inp, c, h * w, count);
    return cudaGetLastError();
}

cudaError_t kn_cu_ohwi_bf16_to_oihw_f32(cudaStream_t stream, float *out, const uint16_t *inp, int n,
                                        int c, int h, int w) {
    const size_t count = (size_t)n * c * h * w;
    nhwc_bf16_to_nchw_f32<<<blocks_for(count), kThreads, 0, stream>>>(out, inp, c, h * w, count);
    return cudaGetLastError();
}

cudaError_t kn_cu_add_bias_bf16(cudaStream_t stream, uint16_t *out, const float *bias, size_t rows,
                                int cols) {
    const size_t count = rows * cols;
    add_bias_bf16<<<blocks_for(count), kThreads, 0, stream>>>(out, bias, cols, count);
    return cudaGetLastError();
}

size_t kn_cu_column_sums_bf16_partials(size_t rows, int cols) {
    return sum_row_blocks(rows) * (size_t)cols;
}

cudaError_t kn_cu_column_sums_bf16(cudaStream_t stream, float *sums, float *partials,
                                   const uint16_t *x, size_t rows, int cols) {
    const size_t parts = sum_row_blocks(rows);
    const size_t rows_per_block = (rows + parts - 1) / parts;
    const dim3 grid((unsigned)((cols + kSumCols - 1) / kSumCols), (unsigned)parts);
    column_partials_bf16<<<grid, dim3(kSumCols, kSumRows), 0, stream>>>(partials, x, rows, cols,
                                                                        rows_per_block);
    const cudaError_t st = cudaGetLastError();
    if (st != cudaSuccess) return st;
    sum_partials<<<blocks_for((size_t)cols), kThreads, 0, stream>>>(sums, partials, parts, cols);
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

size_t kn_cu_bn_partials_count(size_t rows, int c) {
    return 2 * (size_t)bn_row_blocks(rows).blocks * c;
}

cudaError_t kn_cu_bn_shard_stats(cudaStream_t stream, double *mean, double *m2, double *partials,
                                 const float *inp, size_t rows, int c) {
    const cudaError_t st = bn_sums<kBnSumX>(stream, mean, nullptr, nullptr, partials, inp, nullptr,
                                            nullptr, nullptr, nullptr, rows, c, 0.0f);
    if (st != cudaSuccess) return st;
    return bn_sums<kBnSumSquaredDeviation>(stream, m2, nullptr, nullptr, partials, inp, nullptr,
                                           mean, nullptr, nullptr, rows, c, 0.0f);
}

cudaError_t kn_cu_bn_backward_sums(cudaStream_t stream, double *sums, float *dgamma, float *dbeta,
                                   double *partials, const float *dout, const float *inp,
                                   const float *save_mean, const float *save_var, size_t rows,
                                   int c, float eps) {
    return bn_sums<kBnSumBackward>(stream, sums, dgamma, dbeta, partials, inp, dout, nullptr,
                                   save_mean, save_var, rows, c, eps);
}

cudaError_t kn_cu_bn_update_running(cudaStream_t stream, float *running_mean, float *running_var,
                                    const double *mean, const double *var, double count, int c,
                                    float momentum) {
    bn_update_running<<<blocks_for((size_t)c), kThreads, 0, stream>>>(
        running_mean, running_var, mean, var, count, momentum, c);
    return cudaGetLastError();
}

cudaError_t kn_cu_bn_forward_stats(cudaStream_t stream, float *out, float *save_mean,
                                   float *save_var, float *running_mean, float *running_var,
                                   float *scale, const double *mean, const double *var,
                                   double count, const float *inp, const float *gamma,
                                   const float *beta, size_t rows, int c, float eps,
                                   float momentum) {
    bn_forward_coefs<<<blocks_for((size_t)c), kThreads, 0, stream>>>(
        scale, save_mean, save_var, running_mean, running_var, mean, var, gamma, count, eps,
        momentum, c);
    const cudaError_t st = cudaGetLastError();
    if (st != cudaSuccess) return st;
    const size_t n = rows * c;
    bn_normalize<<<blocks_for(n), kThreads, 0, stream>>>(out, inp, save_mean, scale, beta, c, n);
    return cudaGetLastError();
}

cudaError_t kn_cu_bn_backward_stats(cudaStream_t stream, float *dinp, float *coefs,
                                    const float *dout, const float *inp, const float *save_mean,
                                    const float *save_var, const float *gamma, const double *sum_dy,
                                    const double *sum_dy_xhat, double count, size_t rows, int c,
                                    float eps) {
    bn_backward_coefs<<<blocks_for((size_t)c), kThreads, 0, stream>>>(
        coefs, save_var, gamma, sum_dy, sum_dy_xhat, count, eps, c);
    const cudaError_t st = cudaGetLastError();
    if (st != cudaSuccess) return st;
    const size_t n = rows * c;
    bn_backward_apply<<<blocks_for(n), kThreads, 0, stream>>>(dinp, dout, inp, save_mean, coefs, c,
                                                              n);
    return cudaGetLastError();
}

cudaError_t kn_cu_cross_entropy(cudaStream_t stream, float *dlogits, kn_cu_ce_row *rows,
                                const float *logits, const int32_t *labels, int n, int c) {
    cross_entropy<<<n, kCeThreads, 0, stream>>>(dlogits, rows, logits, labels, c, 1.0f / (float)n);
    return cudaGetLastError();
}

cudaError_t kn_cu_adam(cudaStream_t stream, float *params, const float *grads, float *m, float *v,
                       const kn_cu_adam_tensor *tensors, int n_tensors, size_t max_count,
                       kn_adam_consts k, const kn_adam_consts *k_from) {
    // blocks sized for the largest tensor (capped: the loop strides); small tensors' extra
    // blocks exit at once
    const unsigned bx = blocks_for(max_count) < 4096 ? blocks_for(max_count) : 4096;
    adam<<<dim3(bx, (unsigned)n_tensors), kThreads, 0, stream>>>(params, grads, m, v, tensors, k,
                                                                 k_from);
    return cudaGetLastError();
}

} // extern "C"
