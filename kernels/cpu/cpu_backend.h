/* The CPU backend (oneDNN) as kernels/dispatch.c calls it: kernels.h's functions with a
 * kn_cpu_ prefix and the backend's own context and plan types. No oneDNN types here, so the
 * dispatcher compiles without oneDNN's headers. */
#ifndef TLSWEEP_KERNELS_CPU_BACKEND_H
#define TLSWEEP_KERNELS_CPU_BACKEND_H

#include "kernels/kernels.h"

typedef struct kn_cpu_ctx kn_cpu_ctx;
typedef struct kn_cpu_conv kn_cpu_conv;
typedef struct kn_cpu_bn kn_cpu_bn;
typedef struct kn_cpu_pool kn_cpu_pool;
typedef struct kn_cpu_linear kn_cpu_linear;

kn_cpu_ctx *kn_cpu_ctx_create(const kn_ctx_options *opt, char *err, size_t errlen);
void kn_cpu_ctx_destroy(kn_cpu_ctx *ctx);
const char *kn_cpu_error(const kn_cpu_ctx *ctx);
const char *kn_cpu_describe(const kn_cpu_ctx *ctx);
void *kn_cpu_malloc(kn_cpu_ctx *ctx, size_t bytes);
void kn_cpu_free(kn_cpu_ctx *ctx, void *ptr);
void kn_cpu_note_write(kn_cpu_ctx *ctx, const void *ptr, size_t bytes);
int kn_cpu_copy_to_device(kn_cpu_ctx *ctx, void *dst, const void *host_src, size_t bytes);
int kn_cpu_copy_to_host(kn_cpu_ctx *ctx, void *host_dst, const void *src, size_t bytes);
int kn_cpu_zero(kn_cpu_ctx *ctx, float *ptr, size_t count);
int kn_cpu_sync(kn_cpu_ctx *ctx);
kn_cpu_conv *kn_cpu_conv_create(kn_cpu_ctx *ctx, const kn_conv_shape *s);
int kn_cpu_conv_forward(kn_cpu_conv *plan, void *out, const void *inp, const float *weight,
                        const float *bias);
int kn_cpu_conv_backward_data(kn_cpu_conv *plan, void *dinp, const void *dout, const float *weight);
int kn_cpu_conv_backward_weights(kn_cpu_conv *plan, float *dweight, float *dbias, const void *dout,
                                 const void *inp);
void kn_cpu_conv_destroy(kn_cpu_conv *plan);
kn_cpu_bn *kn_cpu_bn_create(kn_cpu_ctx *ctx, const kn_bn_shape *s);
int kn_cpu_bn_forward_train(kn_cpu_bn *plan, float *out, float *save_mean, float *save_var,
                            float *running_mean, float *running_var, const float *inp,
                            const float *gamma, const float *beta);
int kn_cpu_bn_forward_infer(kn_cpu_bn *plan, float *out, const float *inp, const float *gamma,
                            const float *beta, const float *running_mean, const float *running_var);
int kn_cpu_bn_backward(kn_cpu_bn *plan, float *dinp, float *dgamma, float *dbeta, const float *dout,
                       const float *inp, const float *save_mean, const float *save_var,
                       const float *gamma);
void kn_cpu_bn_destroy(kn_cpu_bn *plan);
int kn_cpu_bn_shard_stats(kn_cpu_bn *plan, double *mean, double *m2, const float *inp);
int kn_cpu_bn_forward_stats(kn_cpu_bn *plan, float *out, float *save_mean, float *save_var,
                            float *running_mean, float *running_var, const double *mean,
                            const double *var, double count, const float *inp, const float *gamma,
                            const float *beta);
int kn_cpu_bn_update_running(kn_cpu_ctx *ctx, float *running_mean, float *running_var,
                             const double *mean, const double *var, double count, int c,
                             float momentum);
int kn_cpu_bn_shard_backward_sums(kn_cpu_bn *plan, double *sum_dy, double *sum_dy_xhat,
                                  float *dgamma, float *dbeta, const float *dout, const float *inp,
                                  const float *save_mean, const float *save_var);
int kn_cpu_bn_backward_stats(kn_cpu_bn *plan, float *dinp, const float *dout, const float *inp,
                             const float *save_mean, const float *save_var, const float *gamma,
                             const double *sum_dy, const double *sum_dy_xhat, double count);
kn_cpu_pool *kn_cpu_pool_create(kn_cpu_ctx *ctx, const kn_pool_shape *s);
int kn_cpu_pool_forward(kn_cpu_pool *plan, float *out, const float *inp);
int kn_cpu_pool_backward(kn_cpu_pool *plan, float *dinp, const float *dout);
void kn_cpu_pool_destroy(kn_cpu_pool *plan);
int kn_cpu_adaptive_avgpool_forward(kn_cpu_ctx *ctx, float *out, const float *inp, int n, int c,
                                    int h, int w, int h_out, int w_out);
int kn_cpu_adaptive_avgpool_backward(kn_cpu_ctx *ctx, float *dinp, const float *dout, int n, int c,
                                     int h, int w, int h_out, int w_out);
int kn_cpu_relu_forward(kn_cpu_ctx *ctx, float *out, const float *inp, size_t count);
int kn_cpu_relu_backward(kn_cpu_ctx *ctx, float *dinp, const float *dout, const float *out,
                         size_t count);
int kn_cpu_add(kn_cpu_ctx *ctx, float *out, const float *a, const float *b, size_t count);
int kn_cpu_accumulate(kn_cpu_ctx *ctx, float *dst, const float *src, size_t count);
int kn_cpu_scale(kn_cpu_ctx *ctx, float *x, float a, size_t count);
int kn_cpu_dropout_forward(kn_cpu_ctx *ctx, float *out, uint8_t *mask, const float *inp,
                           size_t count, float p, uint64_t seed, uint64_t offset);
int kn_cpu_dropout_backward(kn_cpu_ctx *ctx, float *dinp, const float *dout, const uint8_t *mask,
                            size_t count, float p);
int kn_cpu_images_to_batch(kn_cpu_ctx *ctx, float *out, const uint8_t *store,
                           const kn_image_job *jobs, int n, int crop);
int kn_cpu_nhwc_to_nchw(kn_cpu_ctx *ctx, float *out, const float *inp, int n, int c, int h, int w);
int kn_cpu_nchw_to_nhwc(kn_cpu_ctx *ctx, float *out, const float *inp, int n, int c, int h, int w);
kn_cpu_linear *kn_cpu_linear_create(kn_cpu_ctx *ctx, const kn_linear_shape *s);
int kn_cpu_linear_forward(kn_cpu_linear *plan, void *out, const void *inp, const float *weight,
                          const float *bias);
int kn_cpu_linear_backward_data(kn_cpu_linear *plan, void *dinp, const void *dout,
                                const float *weight);
int kn_cpu_linear_backward_weights(kn_cpu_linear *plan, float *dweight, float *dbias,
                                   const void *dout, const void *inp);
int kn_cpu_f32_to_bf16(kn_cpu_ctx *ctx, kn_bf16 *out, const float *inp, size_t count);
int kn_cpu_bf16_to_f32(kn_cpu_ctx *ctx, float *out, const kn_bf16 *inp, size_t count);
int kn_cpu_bf16_supported(kn_cpu_ctx *ctx, char *why, size_t whylen);
void kn_cpu_linear_destroy(kn_cpu_linear *plan);
int kn_cpu_cross_entropy(kn_cpu_ctx *ctx, float *dlogits, float *loss, int *correct,
                         const float *logits, const int32_t *labels, int n, int c);
int kn_cpu_adam_step(kn_cpu_ctx *ctx, float *params, const float *grads, float *m, float *v,
                     const kn_adam_tensor *tensors, int n_tensors, const kn_adam_hparams *hp);
/* The oneDNN implementation a conv plan's forward uses (e.g. "brg:avx512_core"). */
const char *kn_cpu_conv_impl(const kn_cpu_conv *plan);
/* Replaces the context's error message (for failures the dispatcher itself detects). */
void kn_cpu_set_error(kn_cpu_ctx *ctx, const char *msg);

#endif
