/* The compute interface the worker sees: one header for every backend.
 *
 * Conventions
 * - Activations are fp32 NHWC: (N, H, W, C), C fastest. Linear-layer activations are (N, K).
 * - Parameters keep PyTorch's layouts so state_dict tensors load by name: conv weight
 *   (C_out, C_in/groups, KH, KW), linear weight (OUT, IN), BN vectors (C).
 * - A plan is created once per layer instance (shape fixed) and reused every step; it may own
 *   backend scratch (oneDNN primitives, reordered weights, pooling workspace).
 * - Calls return 0 on success and -1 on failure, with the reason in kn_error(ctx).
 * - Backward calls overwrite their outputs (no accumulation) unless named *_accumulate.
 * - Every pointer is device memory of the context's backend (host memory on the CPU backend).
 *   Parameters change through kernels.h calls only (kn_adam_step, kn_copy_to_device, kn_zero),
 *   or are declared written (kn_written): plans keep reordered copies of the weights they read
 *   as long as nothing wrote over them (a frozen layer's for a whole phase).
 * - bf16 mixed precision (PyTorch autocast's choices): a conv or linear plan made with
 *   dtype KN_BF16 reads and writes bf16 activations (inp, out, dout, dinp), computes in bf16
 *   with fp32 accumulation, and takes the fp32 master weights and bias: the plan keeps their
 *   bf16 copy, refreshed whenever the weights changed (kn_adam_step, copies). Weight and
 *   bias gradients come out fp32. Every other op is fp32 (KN_F32, the default).
 */
#ifndef TLSWEEP_KERNELS_H
#define TLSWEEP_KERNELS_H

#include <stddef.h>
#include <stdint.h>

typedef struct kn_ctx kn_ctx;

typedef enum { KN_BACKEND_CPU = 0, KN_BACKEND_CUDA = 1 } kn_backend;

/* Element type of a plan's activations; zero (fp32) is the default. */
typedef enum { KN_F32 = 0, KN_BF16 = 1 } kn_dtype;
typedef uint16_t kn_bf16; /* bfloat16: the top 16 bits of an fp32 */

/* Initialise with designated initializers: fields may be added, and zero is every default. */
typedef struct {
    kn_backend backend;
    int threads; /* CPU: worker threads (0 = all cores); CUDA: ignored */
    int device;  /* CUDA: device ordinal; CPU: ignored */
    /* CUDA only (the CPU backend is always deterministic): */
    int tf32;               /* 1: cuDNN and cuBLAS may use TF32 tensor cores; 0: true fp32 (FMA) */
    int deterministic;      /* 1: only deterministic cuDNN algorithms, chosen by heuristics rather
                             * than by timing, so a rerun or a resume gives the same bits */
    size_t workspace_limit; /* cap on the shared conv workspace in bytes (0: 256 MiB); each
                             * conv takes the best algorithm that fits */
} kn_ctx_options;

/* Returns NULL and writes a message into err (if errlen > 0) on failure. */
kn_ctx *kn_ctx_create(const kn_ctx_options *opt, char *err, size_t errlen);
void kn_ctx_destroy(kn_ctx *ctx);
const char *kn_error(const kn_ctx *ctx);
/* One line naming backend and library versions, e.g. "cpu: oneDNN 2.6.3, 2 threads". */
const char *kn_describe(const kn_ctx *ctx);
/* Device scratch the context holds for its plans (the conv workspace); 0 on the CPU. */
size_t kn_workspace_bytes(const kn_ctx *ctx);
/* The high point so far of the device memory the context held: kn_malloc'd buffers plus its
 * scratch (conv workspace, weight staging) and its plans' buffers, in bytes; what a trial
 * needs of a GPU beside the CUDA runtime's own. 0 on the CPU. */
size_t kn_memory_peak(const kn_ctx *ctx);
/* The CUDA libraries as loaded at run time, no device needed: into cuda e.g. "driver 13.0,
 * runtime 13.0, cuBLAS 13.1.0" ("driver none" without one), into cudnn e.g. "9.19.0"; both
 * "none (CPU-only build)" in a build without the CUDA backend. */
void kn_library_versions(char *cuda, size_t cuda_len, char *cudnn, size_t cudnn_len);

/* ---- memory ---------------------------------------------------------------------------- */
void *kn_malloc(kn_ctx *ctx, size_t bytes); /* 64-byte aligned; NULL + kn_error on failure */
void kn_free(kn_ctx *ctx, void *ptr);
int kn_copy_to_device(kn_ctx *ctx, void *dst, const void *host_src, size_t bytes);
int kn_copy_to_host(kn_ctx *ctx, void *host_dst, const void *src, size_t bytes);
int kn_zero(kn_ctx *ctx, float *ptr, size_t count);
/* Says that the context's memory at ptr was written other than by a kernels.h call (MPI into a
 * CPU context's host memory): plans that hold copies of weights there refresh them. */
void kn_written(kn_ctx *ctx, const void *ptr, size_t bytes);
int kn_sync(kn_ctx *ctx); /* wait for all queued work */

/* ---- convolution 2-D ------------------------------------------------------------------- */
typedef struct {
    int n, c_in, h_in, w_in;
    int c_out, kh, kw;
    int stride_h, stride_w, pad_h, pad_w, dilation_h, dilation_w; /* dilation 1 = dense */
    int groups;
    int has_bias;
    kn_dtype dtype; /* of inp, out, dout, dinp (KN_BF16: CPU with AVX512-BF16 only) */
} kn_conv_shape;

typedef struct kn_conv kn_conv;
void kn_conv_output_hw(const kn_conv_shape *s, int *h_out, int *w_out);
kn_conv *kn_conv_create(kn_ctx *ctx, const kn_conv_shape *s);
int kn_conv_forward(kn_conv *plan,
                    void *out,           // (N, Ho, Wo, C_out) dtype
                    const void *inp,     // (N, H, W, C_in) dtype
                    const float *weight, // (C_out, C_in/groups, KH, KW)
                    const float *bias);  // (C_out) or NULL
int kn_conv_backward_data(kn_conv *plan,
                          void *dinp,           // (N, H, W, C_in) dtype
                          const void *dout,     // (N, Ho, Wo, C_out) dtype
                          const float *weight); // (C_out, C_in/groups, KH, KW)
int kn_conv_backward_weights(kn_conv *plan,
                             float *dweight,   // (C_out, C_in/groups, KH, KW)
                             float *dbias,     // (C_out) or NULL
                             const void *dout, // (N, Ho, Wo, C_out) dtype
                             const void *inp); // (N, H, W, C_in) dtype
void kn_conv_destroy(kn_conv *plan);
/* The implementation the plan's calls use (oneDNN's kernel name, cuDNN's algorithms), for
 * tests and logs. */
const char *kn_conv_impl(const kn_conv *plan);

/* ---- batch normalization (per channel over N, H, W) ----------------------------------- */
typedef struct {
    int n, c, h, w;
    float eps;      /* PyTorch default 1e-5 */
    float momentum; /* PyTorch default 0.1: running = (1 - m) * running + m * batch_stat */
} kn_bn_shape;

typedef struct kn_bn kn_bn;
kn_bn *kn_bn_create(kn_ctx *ctx, const kn_bn_shape *s);
/* Training: normalizes with the batch's biased variance; updates running_var with the
 * unbiased variance (n/(n-1)) as PyTorch does. save_mean/save_var keep the batch statistics
 * (biased variance) for the backward pass. */
int kn_bn_forward_train(kn_bn *plan,
                        float *out,          // (N, H, W, C)
                        float *save_mean,    // (C)
                        float *save_var,     // (C)
                        float *running_mean, // (C), updated in place
                        float *running_var,  // (C), updated in place
                        const float *inp,    // (N, H, W, C)
                        const float *gamma,  // (C)
                        const float *beta);  // (C)
int kn_bn_forward_infer(kn_bn *plan,
                        float *out,                // (N, H, W, C)
                        const float *inp,          // (N, H, W, C)
                        const float *gamma,        // (C)
                        const float *beta,         // (C)
                        const float *running_mean, // (C)
                        const float *running_var); // (C)
/* dgamma/dbeta may be NULL when the BN parameters are frozen. */
int kn_bn_backward(kn_bn *plan,
                   float *dinp,            // (N, H, W, C)
                   float *dgamma,          // (C) or NULL
                   float *dbeta,           // (C) or NULL
                   const float *dout,      // (N, H, W, C)
                   const float *inp,       // (N, H, W, C)
                   const float *save_mean, // (C)
                   const float *save_var,  // (C)
                   const float *gamma);    // (C)
void kn_bn_destroy(kn_bn *plan);

/* ---- synchronized batch norm: one batch split over several ranks ----------------------- *
 * Data-parallel training with PyTorch SyncBatchNorm semantics: each rank holds a contiguous
 * shard of every batch (its plan's n is the shard's size) and BN normalizes with the
 * statistics of the whole batch, exactly as one rank holding all of it would. The caller
 * moves the small per-channel vectors between ranks; one step on every rank is:
 *   forward   kn_bn_shard_stats (count = n*h*w of the shard); allgather count, mean, m2;
 *             kn_bn_combine_stats over all ranks' parts in rank order; kn_bn_forward_stats
 *             once on the rank's own shard with count = the total.
 *   backward  kn_bn_shard_backward_sums; sum sum_dy and sum_dy_xhat over ranks;
 *             kn_bn_backward_stats. dgamma/dbeta are summed over ranks like every gradient.
 * Every rank holds the model, so every rank updates its own running stats in its one
 * forward_stats call: from the same combined mean/var they come out the same on all ranks.
 * Sum the vectors in rank order (allgather, then add), not with a reduction whose order may
 * differ by rank, so that every rank gets the same bits. The CPU kernels' results do not
 * depend on the thread count. Host vectors are fp64 so that no precision is lost between
 * ranks; on the CPU backend every pointer is host memory anyway. */
/* Per-channel mean and M2 (sum of squared deviations from that mean) of this shard's n*h*w
 * values. */
int kn_bn_shard_stats(kn_bn *plan,
                      double *mean,      // (C) host
                      double *m2,        // (C) host
                      const float *inp); // (N, H, W, C)
/* Training forward with given batch statistics (mean and biased var over `count` values per
 * channel, all ranks): out normalized with them; save_mean/save_var keep them (fp32) for the
 * backward pass; running stats updated as kn_bn_forward_train does (momentum; running_var
 * takes the unbiased var * count / (count - 1)). count must be > 1 and at least this shard's
 * n*h*w. */
int kn_bn_forward_stats(kn_bn *plan,
                        float *out,          // (N, H, W, C)
                        float *save_mean,    // (C)
                        float *save_var,     // (C)
                        float *running_mean, // (C), updated in place
                        float *running_var,  // (C), updated in place
                        const double *mean,  // (C) host, whole batch
                        const double *var,   // (C) host, whole batch, biased
                        double count,        // values per channel in the whole batch
                        const float *inp,    // (N, H, W, C)
                        const float *gamma,  // (C)
                        const float *beta);  // (C)
/* The running-statistics update of kn_bn_forward_stats alone, for a rank whose shard is empty
 * (a plan needs n > 0) but whose model must stay the same as the other ranks'. */
int kn_bn_update_running(kn_ctx *ctx,
                         float *running_mean, // (C), updated in place
                         float *running_var,  // (C), updated in place
                         const double *mean,  // (C) host, whole batch
                         const double *var,   // (C) host, whole batch, biased
                         double count,        // values per channel in the whole batch
                         int c, float momentum);
/* This shard's per-channel backward sums: sum_dy = sum(dout), sum_dy_xhat = sum(dout * xhat)
 * with xhat = (inp - save_mean) / sqrt(save_var + eps). dgamma/dbeta get this shard's part of
 * the parameter gradients (sum_dy_xhat, sum_dy as fp32); NULL when they are frozen. */
int kn_bn_shard_backward_sums(kn_bn *plan,
                              double *sum_dy,         // (C) host
                              double *sum_dy_xhat,    // (C) host
                              float *dgamma,          // (C) or NULL
                              float *dbeta,           // (C) or NULL
                              const float *dout,      // (N, H, W, C)
                              const float *inp,       // (N, H, W, C)
                              const float *save_mean, // (C)
                              const float *save_var); // (C)
/* dinp from the whole batch's sums over `count` values per channel:
 * dinp = gamma / sqrt(var + eps) * (dout - sum_dy / count - xhat * sum_dy_xhat / count). */
int kn_bn_backward_stats(kn_bn *plan,
                         float *dinp,               // (N, H, W, C)
                         const float *dout,         // (N, H, W, C)
                         const float *inp,          // (N, H, W, C)
                         const float *save_mean,    // (C)
                         const float *save_var,     // (C)
                         const float *gamma,        // (C)
                         const double *sum_dy,      // (C) host, whole batch
                         const double *sum_dy_xhat, // (C) host, whole batch
                         double count);             // values per channel in the whole batch
/* Host, any backend: the statistics of the union of `parts` shards from each shard's count,
 * mean and M2 (Chan et al.'s pairwise combination, in part order, so that every rank gets the
 * same bits from the same inputs). Parts with count 0 are skipped; with no values at all the
 * var is NaN (and kn_bn_forward_stats refuses the count). */
void kn_bn_combine_stats(double *mean,         // (C) whole batch
                         double *var,          // (C) whole batch, biased
                         const double *counts, // (parts) values per channel of each shard
                         const double *means,  // (parts, C)
                         const double *m2s,    // (parts, C)
                         int parts, int c);

/* ---- pooling --------------------------------------------------------------------------- */
typedef enum { KN_POOL_MAX = 0, KN_POOL_AVG = 1 } kn_pool_kind;

typedef struct {
    kn_pool_kind kind;
    int n, c, h_in, w_in;
    int kh, kw, stride_h, stride_w, pad_h, pad_w;
    int ceil_mode;         /* PyTorch ceil_mode */
    int count_include_pad; /* avg only: PyTorch count_include_pad */
} kn_pool_shape;

typedef struct kn_pool kn_pool;
void kn_pool_output_hw(const kn_pool_shape *s, int *h_out, int *w_out);
kn_pool *kn_pool_create(kn_ctx *ctx, const kn_pool_shape *s);
/* Max pooling keeps its argmax workspace inside the plan between forward and backward. */
int kn_pool_forward(kn_pool *plan,
                    float *out,        // (N, Ho, Wo, C)
                    const float *inp); // (N, H, W, C)
int kn_pool_backward(kn_pool *plan,
                     float *dinp,        // (N, H, W, C)
                     const float *dout); // (N, Ho, Wo, C)
void kn_pool_destroy(kn_pool *plan);

/* Adaptive average pooling with PyTorch's window rule:
 * start = floor(i * H / Ho), end = ceil((i + 1) * H / Ho). */
int kn_adaptive_avgpool_forward(kn_ctx *ctx,
                                float *out,       // (N, Ho, Wo, C)
                                const float *inp, // (N, H, W, C)
                                int n, int c, int h, int w, int h_out, int w_out);
int kn_adaptive_avgpool_backward(kn_ctx *ctx,
                                 float *dinp,       // (N, H, W, C)
                                 const float *dout, // (N, Ho, Wo, C)
                                 int n, int c, int h, int w, int h_out, int w_out);

/* ---- elementwise ----------------------------------------------------------------------- */
int kn_relu_forward(kn_ctx *ctx, float *out, const float *inp, size_t count);
/* Uses the forward output: dinp = dout where out > 0, else 0. */
int kn_relu_backward(kn_ctx *ctx, float *dinp, const float *dout, const float *out, size_t count);
int kn_add(kn_ctx *ctx, float *out, const float *a, const float *b, size_t count);
int kn_accumulate(kn_ctx *ctx, float *dst, const float *src, size_t count); /* dst += src */
int kn_scale(kn_ctx *ctx, float *x, float a, size_t count);                 /* x *= a */

/* Inverted dropout as PyTorch: keep with probability 1-p, scale kept values by 1/(1-p).
 * The mask is a pure function of (seed, offset + element index), so it does not depend on the
 * thread count. mask holds 0/1 per element. */
int kn_dropout_forward(kn_ctx *ctx,
                       float *out,       // (count)
                       uint8_t *mask,    // (count)
                       const float *inp, // (count)
                       size_t count, float p, uint64_t seed, uint64_t offset);
int kn_dropout_backward(kn_ctx *ctx,
                        float *dinp,         // (count)
                        const float *dout,   // (count)
                        const uint8_t *mask, // (count)
                        size_t count, float p);

/* NHWC (N, H, W, C) <-> NCHW (N, C, H, W); used before flatten so that linear layers see
 * PyTorch's (C, H, W) feature order. */
int kn_nhwc_to_nchw(kn_ctx *ctx, float *out, const float *inp, int n, int c, int h, int w);
int kn_nchw_to_nhwc(kn_ctx *ctx, float *out, const float *inp, int n, int c, int h, int w);

/* fp32 <-> bf16 (round to nearest even, as PyTorch's .to(torch.bfloat16)); the casts autocast
 * puts at the edges of bf16 ops. */
int kn_f32_to_bf16(kn_ctx *ctx, kn_bf16 *out, const float *inp, size_t count);
int kn_bf16_to_f32(kn_ctx *ctx, float *out, const kn_bf16 *inp, size_t count);
/* 1 where the backend runs bf16 plans at full speed (CPU: AVX512-BF16, through oneDNN);
 * 0 with the reason in why (when whylen > 0). */
int kn_bf16_supported(kn_ctx *ctx, char *why, size_t whylen);

/* ---- input batches from cached images (the device data path) -------------------------- *
 * The loader's per-image transform (worker/data/transform.h: horizontal flip, ColorJitter's
 * brightness and contrast in their drawn order, RandomAffine with nearest sampling and fill 0,
 * centre crop, ToTensor and ImageNet normalisation) run where the batch is used. The host draws
 * each image's parameters and describes the image in a job; the backend computes the contrast
 * mean, the colour map and every output value from the cached uint8 images held in its own
 * memory (the store), so on the GPU the host only feeds indices and a few numbers per image.
 * The results equal transform_image's bit for bit on every backend. */
typedef struct {
    uint64_t offset;       /* the image's first byte in the store: (height, width, 3) uint8 RGB */
    int32_t width, height; /* both >= crop */
    int32_t top, left;     /* the centre crop's offsets (transform_crop_offset) */
    int32_t augment;       /* 0: eval preprocessing only, the fields below are ignored */
    int32_t hflip;
    int32_t use_brightness, use_contrast, contrast_first;
    float brightness_factor, contrast_factor;
    int32_t use_affine;
    int32_t affine_fixed; /* 1: Pillow's 16.16 fixed-point sampling (fixed[]); 0: its float
                           * loop over m[] (only images too large for fixed point) */
    int64_t fixed[6];     /* a0..a5 of Pillow's affine_fixed, from m[] */
    double m[6];          /* Pillow's inverse affine matrix (augment_affine_matrix) */
} kn_image_job;

/* out = the n images of jobs transformed, as transform_image writes them (crop, crop, 3) each.
 * store: the cached images in the context's memory; jobs: host memory, read before the call
 * returns (it may be reused at once); the work is queued like every op. */
int kn_images_to_batch(kn_ctx *ctx,
                       float *out,           // (N, crop, crop, 3)
                       const uint8_t *store, // the images the jobs' offsets point into
                       const kn_image_job *jobs, int n, int crop);

/* ---- linear (fully connected): out = inp @ weight^T + bias ----------------------------- */
typedef struct {
    int n, in_features, out_features;
    int has_bias;
    kn_dtype dtype; /* of inp, out, dout, dinp, as for convolutions */
} kn_linear_shape;

typedef struct kn_linear kn_linear;
kn_linear *kn_linear_create(kn_ctx *ctx, const kn_linear_shape *s);
int kn_linear_forward(kn_linear *plan,
                      void *out,           // (N, OUT) dtype
                      const void *inp,     // (N, IN) dtype
                      const float *weight, // (OUT, IN)
                      const float *bias);  // (OUT) or NULL
int kn_linear_backward_data(kn_linear *plan,
                            void *dinp,           // (N, IN) dtype
                            const void *dout,     // (N, OUT) dtype
                            const float *weight); // (OUT, IN)
int kn_linear_backward_weights(kn_linear *plan,
                               float *dweight,   // (OUT, IN)
                               float *dbias,     // (OUT) or NULL
                               const void *dout, // (N, OUT) dtype
                               const void *inp); // (N, IN) dtype
void kn_linear_destroy(kn_linear *plan);

/* ---- loss ------------------------------------------------------------------------------ */
/* Softmax cross-entropy, mean over the batch (PyTorch CrossEntropyLoss, no smoothing).
 * Writes dlogits = (softmax - onehot) / N when dlogits is not NULL. Results land in host
 * memory: *loss (the mean) and *correct (how many argmax == label; first max wins). */
int kn_cross_entropy(kn_ctx *ctx,
                     float *dlogits,        // (N, C) or NULL
                     float *loss,           // host scalar
                     int *correct,          // host scalar
                     const float *logits,   // (N, C)
                     const int32_t *labels, // (N), 0 <= label < C
                     int n, int c);

/* ---- optimizer ------------------------------------------------------------------------- */
/* One tensor (a contiguous range of the parameter buffer) that Adam updates. The list of
 * them passed to kn_adam_step is host memory (a description, not data). */
typedef struct {
    size_t offset; /* in floats, into params / grads / m / v */
    size_t count;
    float lr;
} kn_adam_tensor;

typedef struct {
    float beta1, beta2, eps, weight_decay; /* PyTorch Adam (L2 added to the gradient) */
    int64_t step;                          /* the step being taken, 1 for the first */
} kn_adam_hparams;

/* PyTorch's Adam for every listed tensor in one call:
 *   g = grad + wd * p; m = b1 m + (1-b1) g; v = b2 v + (1-b2) g^2
 *   p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps) */
int kn_adam_step(kn_ctx *ctx, float *params, const float *grads, float *m, float *v,
                 const kn_adam_tensor *tensors, int n_tensors, const kn_adam_hparams *hp);

/* ---- collectives over a data-parallel group's GPUs (NCCL) ----------------------------- *
 * A trial trained by several ranks on GPUs (worker/group.h) sums its gradients and shares its
 * model through an NCCL communicator, one per trial, every call queued on the context's stream
 * in call order. The caller moves the id between the ranks (over MPI). The CPU backend has
 * none: its groups move host memory over MPI, and these calls fail there. */
#define KN_COMM_ID_BYTES 128
typedef struct kn_comm kn_comm;
/* 1 when this build has NCCL communicators; 0 with the reason in why (when whylen > 0). */
int kn_comm_supported(char *why, size_t whylen);
/* A fresh communicator id (rank 0 makes it; every rank of the group then gets it). */
int kn_comm_id(kn_ctx *ctx, unsigned char id[KN_COMM_ID_BYTES]);
/* Joins id's communicator as `rank` of `nranks` on the context's device: every rank of the
 * group calls it (it waits for all). NULL + kn_error(ctx) on failure. */
kn_comm *kn_comm_create(kn_ctx *ctx, const unsigned char id[KN_COMM_ID_BYTES], int nranks,
                        int rank);
void kn_comm_destroy(kn_comm *comm);
/* buf = its sum over the group, in place (device memory). */
int kn_comm_sum(kn_comm *comm, float *buf, size_t count);
/* buf = rank 0's bytes (device memory). */
int kn_comm_broadcast(kn_comm *comm, void *buf, size_t bytes);

/* ==== devices, pinned staging and on-device totals ====================================== *
 * What a worker needs to pick its GPU and to keep the GPU busy: batches go up from pinned host
 * memory on a copy stream while the previous batch computes, and loss/accuracy add up on the
 * device, read once per epoch. On the CPU backend the same calls are plain copies and no-ops,
 * so one trainer serves both. */

/* CUDA devices this process can see (CUDA_VISIBLE_DEVICES applies): 0 in a build without
 * CUDA or where none is usable, with the reason in err (when errlen > 0). */
int kn_cuda_device_count(char *err, size_t errlen);

typedef struct {
    char name[96];      /* "NVIDIA H200" */
    size_t total_bytes; /* device memory */
    int major, minor;   /* compute capability */
} kn_device_info;
/* 0 with *info filled, or -1 with the reason in err. */
int kn_cuda_device_info(int device, kn_device_info *info, char *err, size_t errlen);

/* Host memory that uploads can read without an extra copy: page-locked on CUDA, plain (64-byte
 * aligned) on the CPU. NULL + kn_error on failure. */
void *kn_host_alloc(kn_ctx *ctx, size_t bytes);
void kn_host_free(kn_ctx *ctx, void *ptr);

/* A point in a stream's work; on the CPU backend every event has always passed. */
typedef struct kn_event kn_event;
kn_event *kn_event_create(kn_ctx *ctx); /* NULL + kn_error on failure */
void kn_event_destroy(kn_ctx *ctx, kn_event *ev);
/* Marks the compute work queued so far (ops, copies, Adam): the event passes once it has run. */
int kn_event_record(kn_ctx *ctx, kn_event *ev);
/* Blocks the calling thread until the event has passed (never recorded: returns at once). */
int kn_event_wait_host(kn_ctx *ctx, kn_event *ev);

/* Queues a host -> device copy on the context's copy stream, so it overlaps queued compute:
 * the copy first waits for dst_free (the compute that last read dst; NULL: none), then
 * src_free (if not NULL) is recorded after it (host_src may be rewritten once it has passed),
 * and compute queued after this call waits for the copy. host_src should come from
 * kn_host_alloc (pageable memory makes the copy synchronous). On the CPU backend: a copy,
 * done on return. */
int kn_upload_async(kn_ctx *ctx, void *dst, const void *host_src, size_t bytes, kn_event *dst_free,
                    kn_event *src_free);

/* Running totals of a stretch of batches, in the context's memory (kn_malloc), moved with
 * kn_copy_to_device / kn_copy_to_host. */
typedef struct {
    double loss_sum;      /* per-image losses, summed */
    int64_t correct;      /* images whose argmax was the label */
    int64_t bad_labels;   /* labels outside [0, C): a data error */
    int64_t diverged_at;  /* the step of the first batch with a non-finite loss; 0 = none */
    double diverged_loss; /* that batch's mean loss */
} kn_totals;

/* kn_cross_entropy without a wait: the batch's loss (mean x n; on the CPU exactly
 * (double)mean * n, on CUDA the per-image double sum) and correct count are added to *totals
 * where the backend computes; step (1-based, nonzero) is what diverged_at records. */
int kn_cross_entropy_accumulate(kn_ctx *ctx,
                                float *dlogits,        // (N, C) or NULL
                                kn_totals *totals,     // context memory
                                const float *logits,   // (N, C)
                                const int32_t *labels, // (N)
                                int n, int c, int64_t step);

/* ==== CUDA graphs: a training step queued as one launch ================================= *
 * A trainer that makes the same calls every step (the same ops on the same plans, buffers and
 * sizes; only Adam's step and learning rates, cross-entropy's step and dropout's seed and
 * offset change) can have the whole step queued as one graph:
 *   capture: kn_graph_capture_begin, the step's calls (recorded, not run), kn_graph_capture_end,
 *            kn_graph_launch (runs it);
 *   replay:  kn_graph_replay_begin, the same calls (they only hand over their per-step values
 *            and are checked against the capture), kn_graph_launch.
 * Eager and graph steps run the same kernels on the same values: they give the same bits.
 * Between a begin and kn_graph_launch only the step's ops may be called (the conv, batch
 * norm, pool and linear plans' calls but batch norm's synchronized ones, adaptive pooling,
 * the elementwise, dropout, layout and cast ops, kn_zero, kn_cross_entropy_accumulate,
 * kn_adam_step); copies, syncs, memory, plans, events, uploads and collectives fail there and
 * make the capture or replay fail. Capture after one eager step of the same shapes: a plan's first
 * calls grow the backend's scratch, which a capture cannot. A replay whose calls differ from
 * the capture's is refused by kn_graph_launch and nothing of it runs: make the step again
 * eagerly. After any failure the context is eager again. */
typedef struct kn_graph kn_graph;
/* 1 where the backend has graphs (CUDA); 0 with the reason in why (when whylen > 0). */
int kn_graphs_supported(kn_ctx *ctx, char *why, size_t whylen);
int kn_graph_capture_begin(kn_ctx *ctx);
/* The captured step, ready for kn_graph_launch; NULL + kn_error when a call failed. */
kn_graph *kn_graph_capture_end(kn_ctx *ctx);
/* 0: replaying; 1: the graph is stale (memory it uses was freed or moved since the capture:
 * destroy it and capture again); -1 + kn_error on failure. */
int kn_graph_replay_begin(kn_ctx *ctx, kn_graph *graph);
/* Queues the step just captured or replayed, with its per-step values. */
int kn_graph_launch(kn_ctx *ctx, kn_graph *graph);
/* Ends an open capture or replay without running anything of it. */
void kn_graph_abandon(kn_ctx *ctx);
void kn_graph_destroy(kn_ctx *ctx, kn_graph *graph);

#endif
