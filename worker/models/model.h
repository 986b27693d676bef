/* A backbone with its classification head: an ordered list of layers over activation slots,
 * with every parameter and buffer named as in torchvision's state_dict.
 *
 * Life of a model: model_build (architecture, names, shapes, layer groups; no memory for
 * tensors, no backend) -> model_bind (a kernel context: parameter, gradient and activation
 * memory, one kernel plan per layer and batch size) -> forward / backward / Adam steps. */
#ifndef TLSWEEP_MODEL_H
#define TLSWEEP_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "kernels/kernels.h"
#include "worker/group.h"
#include "worker/params.h"

typedef struct {
    const char *backbone; /* resnet18/34/50/101/152, vgg11_bn/13_bn/16_bn/19_bn */
    int num_classes;      /* the new head's outputs */
    int width;            /* channel divisor: 1 is torchvision's network, 4 has 1/4 channels */
    int image_size;       /* input height = width */
    float dropout;        /* VGG classifier dropout (torchvision: 0.5) */
} model_spec;

typedef enum {
    LAYER_CONV,
    LAYER_BATCHNORM,
    LAYER_RELU,
    LAYER_MAXPOOL,
    LAYER_ADAPTIVE_AVGPOOL,
    LAYER_ADD,
    LAYER_FLATTEN, /* NHWC -> (N, C*H*W) in PyTorch's (C, H, W) order */
    LAYER_LINEAR,
    LAYER_DROPOUT,
} layer_kind;

typedef struct {
    int c_out, kernel, stride, pad;
    int weight, bias; /* parameter indices; bias -1 when absent */
} conv_config;

typedef struct {
    int weight, bias, running_mean, running_var;
} batchnorm_config;

typedef struct {
    int kernel, stride, pad;
} maxpool_config;

typedef struct {
    int h_out, w_out;
} adaptive_avgpool_config;

typedef struct {
    int out_features;
    int weight, bias;
} linear_config;

typedef struct {
    float p;
} dropout_config;

/* An activation: per sample (H, W, C) in NHWC; linear activations have h = w = 1. */
typedef struct {
    int c, h, w;
} slot_shape;

typedef struct {
    layer_kind kind;
    int in, in2, out; /* activation slots; in2 only for LAYER_ADD, else -1 */
    union {
        conv_config conv;
        batchnorm_config bn;
        maxpool_config maxpool;
        adaptive_avgpool_config avgpool;
        linear_config linear;
        dropout_config dropout;
    } cfg;
} layer;

typedef struct model_runtime model_runtime; /* memory and plans, from model_bind */

typedef struct {
    char backbone[32];
    model_spec spec;
    layer *layers;
    int n_layers, cap_layers;
    slot_shape *slots; /* slot 0 is the input image batch, the last is the logits */
    int n_slots, cap_slots;
    param_table params;
    char **groups; /* layer groups from the output backwards (docs/experiment.md): "fc", "layer4",
                      ... */
    int n_groups;
    const char *head_prefix; /* "fc." or "classifier.6." */
    model_runtime *rt;
} model;

/* Names of every backbone model_build knows, NULL-terminated. */
extern const char *const model_backbones[];

int model_build(model *m, const model_spec *spec, char *err, size_t errlen);
void model_free(model *m);
size_t model_param_count(const model *m);
int model_group_index(const model *m, const char *name);

/* ---- runtime (model_exec.c) -------------------------------------------------------------- */
typedef struct {
    int bn_train;      /* batch statistics and running-stat updates (train mode BN) */
    int dropout_train; /* dropout active */
    int first_sample;  /* a shard of a group's batch: its first image's place in the batch, so
                          that every image keeps its dropout draws */
} model_mode;

/* Allocates parameters (zeroed), gradients and Adam moments when with_grads, and activations
 * for batches up to max_batch; kernel plans are created per batch size on first use. */
int model_bind(model *m, kn_ctx *ctx, int max_batch, int with_grads, char *err, size_t errlen);
/* The bytes model_bind allocates for these arguments (kernel plans and workspaces aside):
 * what a trial's batch size costs, known before anything is allocated. */
size_t model_bind_bytes(const model *m, int max_batch, int with_grads);
/* Conv and linear layers in KN_BF16 (PyTorch autocast's mixed precision, see model_exec.c)
 * or KN_F32 (the default). -1 with the reason where the context cannot run bf16 at speed. */
int model_set_precision(model *m, kn_dtype precision, char *err, size_t errlen);
/* Trains as one rank of a data-parallel group (worker/group.h; NULL or size 1: alone): with
 * sync_bn, training batch norm uses the statistics of the whole batch, every rank's shard
 * (the one-rank numbers); without, each shard's own (PyTorch DDP's default). A forward may
 * then take an empty shard (n = 0), which only joins the group's batch-norm sums. comm: the
 * group's NCCL communicator on a GPU context (the model's buffers are device memory), NULL on
 * the CPU (host memory, moved over MPI). */
int model_set_group(model *m, const trial_group *g, kn_comm *comm, int sync_bn, char *err,
                    size_t errlen);
/* The group's operations on the model (model_group.c); each is nothing for a model alone.
 * model_sum_grads: the trainable gradients summed over the group (each rank's are its shard's
 * part of the whole batch's mean loss). */
int model_sum_grads(model *m, char *err, size_t errlen);
/* The voice's buffers (batch-norm running statistics) to every rank of the group: what
 * PyTorch DDP does before each forward, for shards that keep their own statistics. */
int model_share_buffers(model *m, char *err, size_t errlen);
/* The voice's parameters, buffers and Adam state to every rank (after it loaded them). */
int model_share_state(model *m, char *err, size_t errlen);
/* -1 with err unless every rank holds the same parameters and buffers bit for bit. */
int model_check_same(model *m, char *err, size_t errlen);
/* What model_bind and model_set_group were given. */
kn_ctx *model_ctx(const model *m);
const trial_group *model_group(const model *m);
kn_comm *model_comm(const model *m);
/* Releases what model_bind allocated (model_free calls it). */
void model_unbind(model *m);
/* Device pointers of the bound buffers, laid out by m->params (grads, m, v: parameters only). */
float *model_values(model *m);
float *model_grads(model *m);

/* Marks parameters trainable when their name starts with prefix: "" marks all, NULL none. */
void model_set_trainable(model *m, const char *prefix);

/* Forward of n images (N, image_size, image_size, 3) NHWC; returns logits (N, num_classes)
 * in device memory, or NULL with the reason in err. */
const float *model_forward(model *m, const float *images, int n, model_mode mode,
                           uint64_t dropout_seed, char *err, size_t errlen);
/* Backward from dlogits for the batch of the last forward. Computes gradients of trainable
 * parameters only and stops at the first layer that has one: with the backbone frozen, no
 * backbone backward runs at all. */
int model_backward(model *m, const float *dlogits, char *err, size_t errlen);
/* Index of the first layer whose parameters are trainable (n_layers when none). */
int model_first_trainable_layer(const model *m);

/* One Adam step over every trainable parameter; the lr of a tensor is group_lr[its group].
 * model_adam_reset zeroes the moments and the step count (a fresh optimizer). */
int model_adam_step(model *m, const float *group_lr, float beta1, float beta2, float eps,
                    float weight_decay, char *err, size_t errlen);
int model_adam_reset(model *m);
/* Adam's moments (device, laid out like the gradients) and its step count, for checkpoints. */
float *model_adam_m(model *m);
float *model_adam_v(model *m);
int64_t model_adam_steps(const model *m);
void model_set_adam_steps(model *m, int64_t steps);

/* ---- initialisation (model_init.c) -------------------------------------------------------- */
/* torchvision's initialisation (kaiming-normal fan_out convs, BN 1/0, per-family linear init)
 * into host memory laid out by m->params; seeded. */
void model_init_backbone(const model *m, float *values, uint64_t seed);
/* The new head as nn.Linear initialises it: U(-1/sqrt(fan_in), 1/sqrt(fan_in)); seeded. */
void model_init_head(const model *m, float *values, uint64_t seed);

#endif
