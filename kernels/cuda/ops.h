/* Launchers of the CUDA backend's own kernels (kernels/cuda/ops.cu), callable from C.
 * Each enqueues its kernel on `stream` and returns the launch status (cudaGetLastError);
 * errors of the kernel itself surface at the next synchronizing call. Sizes are checked by
 * the callers. */
#ifndef TLSWEEP_KERNELS_CUDA_OPS_H
#define TLSWEEP_KERNELS_CUDA_OPS_H

#include <stddef.h>
#include <stdint.h>

#include <cuda_runtime_api.h>

#include "kernels/adam_rule.h"

#ifdef __cplusplus
extern "C" {
#endif

cudaError_t kn_cu_relu_forward(cudaStream_t stream, float *out, const float *inp, size_t count);
cudaError_t kn_cu_relu_backward(cudaStream_t stream, float *dinp, const float *dout,
                                const float *out, size_t count);
cudaError_t kn_cu_add(cudaStream_t stream, float *out, const float *a, const float *b,
                      size_t count);
cudaError_t kn_cu_accumulate(cudaStream_t stream, float *dst, const float *src, size_t count);
cudaError_t kn_cu_scale(cudaStream_t stream, float *x, float a, size_t count); /* x *= a */
/* mask and scale as kernels/dropout_mask.h and kernels.h define them; key_offset: NULL, or
 * device memory holding {key, offset} (a graph step's), read in place of those arguments */
cudaError_t kn_cu_dropout_forward(cudaStream_t stream, float *out, uint8_t *mask, const float *inp,
                                  size_t count, float scale, uint64_t key, uint64_t threshold,
                                  uint64_t offset, const uint64_t *key_offset);
cudaError_t kn_cu_dropout_backward(cudaStream_t stream, float *dinp, const float *dout,
                                   const uint8_t *mask, size_t count, float scale);

/* (N, H, W, C) <-> (N, C, H, W); also OIHW <-> OHWI conv weights with N = C_out. */
cudaError_t kn_cu_nhwc_to_nchw(cudaStream_t stream, float *out, const float *inp, int n, int c,
                               int h, int w);
cudaError_t kn_cu_nchw_to_nhwc(cudaStream_t stream, float *out, const float *inp, int n, int c,
                               int h, int w);

cudaError_t kn_cu_adaptive_avgpool_forward(cudaStream_t stream, float *out, const float *inp, int n,
                                           int c, int h, int w, int h_out, int w_out);
cudaError_t kn_cu_adaptive_avgpool_backward(cudaStream_t stream, float *dinp, const float *dout,
                                            int n, int c, int h, int w, int h_out, int w_out);

/* One pooling layer's geometry (NHWC), output size by PyTorch's rule (kn_pool_output_hw). */
typedef struct {
    int n, c, h, w, h_out, w_out;
    int kh, kw, stride_h, stride_w, pad_h, pad_w;
    int count_include_pad;
} kn_cu_pool_geom;

/* argmax: (N, Ho, Wo, C) positions y * W + x of each window's first maximum */
cudaError_t kn_cu_maxpool_forward(cudaStream_t stream, float *out, int32_t *argmax,
                                  const float *inp, kn_cu_pool_geom g);
cudaError_t kn_cu_maxpool_backward(cudaStream_t stream, float *dinp, const float *dout,
                                   const int32_t *argmax, kn_cu_pool_geom g);
cudaError_t kn_cu_avgpool_forward(cudaStream_t stream, float *out, const float *inp,
                                  kn_cu_pool_geom g);
cudaError_t kn_cu_avgpool_backward(cudaStream_t stream, float *dinp, const float *dout,
                                   kn_cu_pool_geom g);

/* out (rows, cols) += bias (cols) broadcast over rows */
cudaError_t kn_cu_add_bias(cudaStream_t stream, float *out, const float *bias, int rows, int cols);
/* sums (cols) = column sums of x (rows, cols) */
cudaError_t kn_cu_column_sums(cudaStream_t stream, float *sums, const float *x, int rows, int cols);

/* bf16 mixed precision. bf16 values are the top 16 bits of an fp32 (kernels.h's kn_bf16);
 * fp32 -> bf16 rounds to nearest even as PyTorch's .to(torch.bfloat16) (and the CPU
 * backend's casts, bit for bit: NaN stays a quiet NaN). */
cudaError_t kn_cu_f32_to_bf16(cudaStream_t stream, uint16_t *out, const float *inp, size_t count);
cudaError_t kn_cu_bf16_to_f32(cudaStream_t stream, float *out, const uint16_t *inp, size_t count);
/* Conv weights: fp32 OIHW -> bf16 OHWI (cuDNN's NHWC filter layout), and a bf16 OHWI weight
 * gradient back to fp32 OIHW; n = C_out, c = C_in/groups. */
cudaError_t kn_cu_oihw_f32_to_ohwi_bf16(cudaStream_t stream, uint16_t *out, const float *inp, int n,
                                        int c, int h, int w);
cudaError_t kn_cu_ohwi_bf16_to_oihw_f32(cudaStream_t stream, float *out, const uint16_t *inp, int n,
                                        int c, int h, int w);
/* out (rows, cols) bf16 = bf16(out + bias) with bias (cols) fp32, added in fp32 */
cudaError_t kn_cu_add_bias_bf16(cudaStream_t stream, uint16_t *out, const float *bias, size_t rows,
                                int cols);
/* sums (cols) fp32 = column sums of x (rows, cols) bf16, in fp32 and deterministic: row
 * blocks fixed by (rows, cols), their partial sums added in block order. `partials` is device
 * scratch of kn_cu_column_sums_bf16_partials(rows, cols) floats. */
size_t kn_cu_column_sums_bf16_partials(size_t rows, int cols);
cudaError_t kn_cu_column_sums_bf16(cudaStream_t stream, float *sums, float *partials,
                                   const uint16_t *x, size_t rows, int cols);

/* Batchnorm: cuDNN keeps 1/sqrt(var + eps) where kernels.h keeps the variance. */
cudaError_t kn_cu_bn_invstd_to_var(cudaStream_t stream, float *var, const float *invstd, int c,
                                   float eps);
cudaError_t kn_cu_bn_var_to_invstd(cudaStream_t stream, float *invstd, const float *var, int c,
                                   float eps);

/* Synchronized batchnorm (kernels.h) over an (rows, C) activation. The per-channel sums are
 * fp64 and deterministic: row blocks fixed by (rows, C), partials added in block order, no
 * atomics. `partials` is device scratch of kn_cu_bn_partials_count(rows, c) doubles; every
 * other double pointer is device memory too. */
size_t kn_cu_bn_partials_count(size_t rows, int c);
/* mean (C) and m2 (C): two passes, the mean first, then squared deviations from it */
cudaError_t kn_cu_bn_shard_stats(cudaStream_t stream, double *mean, double *m2, double *partials,
                                 const float *inp, size_t rows, int c);
/* sums (2, C): sum(dout), sum(dout * xhat); dgamma/dbeta (may be NULL) get them in fp32 */
cudaError_t kn_cu_bn_backward_sums(cudaStream_t stream, double *sums, float *dgamma, float *dbeta,
                                   double *partials, const float *dout, const float *inp,
                                   const float *save_mean, const float *save_var, size_t rows,
                                   int c, float eps);
/* running stats from the batch's mean and biased var over `count` values (PyTorch's rule) */
cudaError_t kn_cu_bn_update_running(cudaStream_t stream, float *running_mean, float *running_var,
                                    const double *mean, const double *var, double count, int c,
                                    float momentum);
/* out normalized with the given statistics, saved in fp32, running stats updated; scale (C)
 * is scratch */
cudaError_t kn_cu_bn_forward_stats(cudaStream_t stream, float *out, float *save_mean,
                                   float *save_var, float *running_mean, float *running_var,
                                   float *scale, const double *mean, const double *var,
                                   double count, const float *inp, const float *gamma,
                                   const float *beta, size_t rows, int c, float eps,
                                   float momentum);
/* dinp from the whole batch's sums; coefs (3, C) is scratch */
cudaError_t kn_cu_bn_backward_stats(cudaStream_t stream, float *dinp, float *coefs,
                                    const float *dout, const float *inp, const float *save_mean,
                                    const float *save_var, const float *gamma, const double *sum_dy,
                                    const double *sum_dy_xhat, double count, size_t rows, int c,
                                    float eps);

/* One sample's cross-entropy result; bad_label is set (to 1) when its label is out of range. */
typedef struct {
    double loss; /* log(sum exp(x - max)) - (x[label] - max) */
    int32_t hit; /* argmax (first maximum) == label */
    int32_t bad_label;
} kn_cu_ce_row;
cudaError_t kn_cu_cross_entropy(cudaStream_t stream, float *dlogits, kn_cu_ce_row *rows,
                                const float *logits, const int32_t *labels, int n, int c);

/* One Adam tensor in device memory: a slice of the parameter buffer and its step size
 * lr / (1 - beta1^t). */
typedef struct {
    size_t offset, count;
    float step_size;
} kn_cu_adam_tensor;
/* Every tensor in one launch: blockIdx.y is the tensor, blocks stride along its elements.
 * k_from: NULL, or device memory holding the constants (a graph step's), read in place of k. */
cudaError_t kn_cu_adam(cudaStream_t stream, float *params, const float *grads, float *m, float *v,
                       const kn_cu_adam_tensor *tensors, int n_tensors, size_t max_count,
                       kn_adam_consts k, const kn_adam_consts *k_from);

#ifdef __cplusplus
}
#endif

#endif
