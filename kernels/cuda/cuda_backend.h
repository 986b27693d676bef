/* The CUDA backend (cuDNN, cuBLAS and own kernels) as kernels/dispatch.c calls it:
 * kernels.h's functions with a kn_cuda_ prefix and the backend's own context and plan
 * types. Plain C: no CUDA types here, so the dispatcher compiles without the CUDA headers. */
#ifndef TLSWEEP_KERNELS_CUDA_BACKEND_H
#define TLSWEEP_KERNELS_CUDA_BACKEND_H

#include "kernels/kernels.h"

typedef struct kn_cuda_ctx kn_cuda_ctx;
typedef struct kn_cuda_conv kn_cuda_conv;
typedef struct kn_cuda_bn kn_cuda_bn;
typedef struct kn_cuda_pool kn_cuda_pool;
typedef struct kn_cuda_linear kn_cuda_linear;
typedef struct kn_cuda_comm kn_cuda_comm;

kn_cuda_ctx *kn_cuda_ctx_create(const kn_ctx_options *opt, char *err, size_t errlen);
void kn_cuda_ctx_destroy(kn_cuda_ctx *ctx);
const char *kn_cuda_error(const kn_cuda_ctx *ctx);
const char *kn_cuda_describe(const kn_cuda_ctx *ctx);
size_t kn_cuda_workspace_bytes(const kn_cuda_ctx *ctx);
size_t kn_cuda_memory_peak(const kn_cuda_ctx *ctx);
void kn_cuda_library_versions(char *cuda, size_t cuda_len, char *cudnn, size_t cudnn_len);
void *kn_cuda_malloc(kn_cuda_ctx *ctx, size_t bytes);
void kn_cuda_free(kn_cuda_ctx *ctx, void *ptr);
int kn_cuda_copy_to_device(kn_cuda_ctx *ctx, void *dst, const void *host_src, size_t bytes);
int kn_cuda_copy_to_host(kn_cuda_ctx *ctx, void *host_dst, const void *src, size_t bytes);
int kn_cuda_zero(kn_cuda_ctx *ctx, float *ptr, size_t count);
/* kn_written: bf16 plans renew their weight copies (the backend keeps no write log). */
void kn_cuda_note_write(kn_cuda_ctx *ctx, const void *ptr, size_t bytes);
int kn_cuda_sync(kn_cuda_ctx *ctx);
kn_cuda_conv *kn_cuda_conv_create(kn_cuda_ctx *ctx, const kn_conv_shape *s);
/* Activations (out, inp, dout, dinp) are of the plan's dtype, as in kernels.h. */
int kn_cuda_conv_forward(kn_cuda_conv *plan, void *out, const void *inp, const float *weight,
                         const float *bias);
int kn_cuda_conv_backward_data(kn_cuda_conv *plan, void *dinp, const void *dout,
                               const float *weight);
int kn_cuda_conv_backward_weights(kn_cuda_conv *plan, float *dweight, float *dbias,
                                  const void *dout, const void *inp);
void kn_cuda_conv_destroy(kn_cuda_conv *plan);
kn_cuda_bn *kn_cuda_bn_create(kn_cuda_ctx *ctx, const kn_bn_shape *s);
int kn_cuda_bn_forward_train(kn_cuda_bn *plan, float *out, float *save_mean, float *save_var,
                             float *running_mean, float *running_var, const float *inp,
                             const float *gamma, const float *beta);
int kn_cuda_bn_forward_infer(kn_cuda_bn *plan, float *out, const float *inp, const float *gamma,
                             const float *beta, const float *running_mean,
                             const float *running_var);
int kn_cuda_bn_backward(kn_cuda_bn *plan, float *dinp, float *dgamma, float *dbeta,
                        const float *dout, const float *inp, const float *save_mean,
                        const float *save_var, const float *gamma);
void kn_cuda_bn_destroy(kn_cuda_bn *plan);
int kn_cuda_bn_shard_stats(kn_cuda_bn *plan, double *mean, double *m2, const float *inp);
int kn_cuda_bn_forward_stats(kn_cuda_bn *plan, float *out, float *save_mean, float *save_var,
                             float *running_mean, float *running_var, const double *mean,
                             const double *var, double count, const float *inp, const float *gamma,
                             const float *beta);
int kn_cuda_bn_update_running(kn_cuda_ctx *ctx, float *running_mean, float *running_var,
                              const double *mean, const double *var, double count, int c,
                              float momentum);
int kn_cuda_bn_shard_backward_sums(kn_cuda_bn *plan, double *sum_dy, double *sum_dy_xhat,
                                   float *dgamma, float *dbeta, const float *dout, const float *inp,
                                   const float *save_mean, const float *save_var);
int kn_cuda_bn_backward_stats(kn_cuda_bn *plan, float *dinp, const float *dout, const float *inp,
                              const float *save_mean, const float *save_var, const float *gamma,
                              const double *sum_dy, const double *sum_dy_xhat, double count);
kn_cuda_pool *kn_cuda_pool_create(kn_cuda_ctx *ctx, const kn_pool_shape *s);
int kn_cuda_pool_forward(kn_cuda_pool *plan, float *out, const float *inp);
int kn_cuda_pool_backward(kn_cuda_pool *plan, float *dinp, const float *dout);
void kn_cuda_pool_destroy(kn_cuda_pool *plan);
int kn_cuda_adaptive_avgpool_forward(kn_cuda_ctx *ctx, float *out, const float *inp, int n, int c,
                                     int h, int w, int h_out, int w_out);
int kn_cuda_adaptive_avgpool_backward(kn_cuda_ctx *ctx, float *dinp, const float *dout, int n,
                                      int c, int h, int w, int h_out, int w_out);
int kn_cuda_relu_forward(kn_cuda_ctx *ctx, float *out, const float *inp, size_t count);
int kn_cuda_relu_backward(kn_cuda_ctx *ctx, float *dinp, const float *dout, const float *out,
                          size_t count);
int kn_cuda_add(kn_cuda_ctx *ctx, float *out, const float *a, const float *b, size_t count);
int kn_cuda_accumulate(kn_cuda_ctx *ctx, float *dst, const float *src, size_t count);
int kn_cuda_scale(kn_cuda_ctx *ctx, float *x, float a, size_t count);
int kn_cuda_dropout_forward(kn_cuda_ctx *ctx, float *out, uint8_t *mask, const float *inp,
                            size_t count, float p, uint64_t seed, uint64_t offset);
int kn_cuda_dropout_backward(kn_cuda_ctx *ctx, float *dinp, const float *dout, const uint8_t *mask,
                             size_t count, float p);
/* jobs are host memory, copied to the device on the context's stream before the call returns */
int kn_cuda_images_to_batch(kn_cuda_ctx *ctx, float *out, const uint8_t *store,
                            const kn_image_job *jobs, int n, int crop);
int kn_cuda_nhwc_to_nchw(kn_cuda_ctx *ctx, float *out, const float *inp, int n, int c, int h,
                         int w);
int kn_cuda_nchw_to_nhwc(kn_cuda_ctx *ctx, float *out, const float *inp, int n, int c, int h,
                         int w);
int kn_cuda_f32_to_bf16(kn_cuda_ctx *ctx, kn_bf16 *out, const float *inp, size_t count);
int kn_cuda_bf16_to_f32(kn_cuda_ctx *ctx, float *out, const kn_bf16 *inp, size_t count);
/* 1 on compute capability 8.0 and up; 0 with the reason in why (when whylen > 0). */
int kn_cuda_bf16_supported(kn_cuda_ctx *ctx, char *why, size_t whylen);
kn_cuda_linear *kn_cuda_linear_create(kn_cuda_ctx *ctx, const kn_linear_shape *s);
int kn_cuda_linear_forward(kn_cuda_linear *plan, void *out, const void *inp, const float *weight,
                           const float *bias);
int kn_cuda_linear_backward_data(kn_cuda_linear *plan, void *dinp, const void *dout,
                                 const float *weight);
int kn_cuda_linear_backward_weights(kn_cuda_linear *plan, float *dweight, float *dbias,
                                    const void *dout, const void *inp);
void kn_cuda_linear_destroy(kn_cuda_linear *plan);
int kn_cuda_cross_entropy(kn_cuda_ctx *ctx, float *dlogits, float *loss, int *correct,
                          const float *logits, const int32_t *labels, int n, int c);
int kn_cuda_adam_step(kn_cuda_ctx *ctx, float *params, const float *grads, float *m, float *v,
                      const kn_adam_tensor *tensors, int n_tensors, const kn_adam_hparams *hp);
/* The cuDNN algorithms a conv plan uses, e.g. "fwd IMPLICIT_PRECOMP_GEMM, ...". */
const char *kn_cuda_conv_impl(const kn_cuda_conv *plan);
/* Replaces the context's error message (for failures the dispatcher itself detects). */
void kn_cuda_set_error(kn_cuda_ctx *ctx, const char *msg);

/* kernels.h's "devices, pinned staging and on-device totals" (kernels/cuda/staging.c) */
typedef struct kn_cuda_event kn_cuda_event;
int kn_cuda_visible_devices(char *err, size_t errlen);
int kn_cuda_query_device(int device, kn_device_info *info, char *err, size_t errlen);
void *kn_cuda_host_alloc(kn_cuda_ctx *ctx, size_t bytes);
void kn_cuda_host_free(kn_cuda_ctx *ctx, void *ptr);
kn_cuda_event *kn_cuda_event_create(kn_cuda_ctx *ctx);
void kn_cuda_event_destroy(kn_cuda_ctx *ctx, kn_cuda_event *ev);
int kn_cuda_event_record(kn_cuda_ctx *ctx, kn_cuda_event *ev);
int kn_cuda_event_wait_host(kn_cuda_ctx *ctx, kn_cuda_event *ev);
int kn_cuda_upload_async(kn_cuda_ctx *ctx, void *dst, const void *host_src, size_t bytes,
                         kn_cuda_event *dst_free, kn_cuda_event *src_free);
int kn_cuda_cross_entropy_accumulate(kn_cuda_ctx *ctx, float *dlogits, kn_totals *totals,
                                     const float *logits, const int32_t *labels, int n, int c,
                                     int64_t step);

/* graph.c: kernels.h's CUDA graphs */
typedef struct kn_cuda_graph kn_cuda_graph;
int kn_cuda_graphs_supported(kn_cuda_ctx *ctx, char *why, size_t whylen);
int kn_cuda_graph_capture_begin(kn_cuda_ctx *ctx);
kn_cuda_graph *kn_cuda_graph_capture_end(kn_cuda_ctx *ctx);
/* 1: stale (memory it uses was freed since its capture) */
int kn_cuda_graph_replay_begin(kn_cuda_ctx *ctx, kn_cuda_graph *graph);
int kn_cuda_graph_launch(kn_cuda_ctx *ctx, kn_cuda_graph *graph);
void kn_cuda_graph_abandon(kn_cuda_ctx *ctx);
void kn_cuda_graph_destroy(kn_cuda_ctx *ctx, kn_cuda_graph *graph);

/* comm.c: NCCL */
int kn_cuda_comm_id(kn_cuda_ctx *ctx, unsigned char *id);
kn_cuda_comm *kn_cuda_comm_create(kn_cuda_ctx *ctx, const unsigned char *id, int nranks, int rank);
void kn_cuda_comm_destroy(kn_cuda_comm *comm);
int kn_cuda_comm_sum(kn_cuda_comm *comm, float *buf, size_t count);
int kn_cuda_comm_broadcast(kn_cuda_comm *comm, void *buf, size_t bytes);

#endif
