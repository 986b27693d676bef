/* Running a built model on a kernel context: memory, per-batch-size plans, forward, backward
 * that stops at the first trainable layer, and the Adam step over the parameter buffer.
 *
 * bf16 precision (model_set_precision): convolutions and linear layers run as bf16 plans.
 * Activations between layers stay fp32: each bf16 layer casts its input to bf16 and its output
 * back, which rounds exactly where autocast's casts do (images, conv/linear outputs, their
 * output gradients); batch norm, pooling, ReLU, residual adds, the loss and Adam then run in
 * fp32, and the fp32 parameters are the masters (the plans keep the bf16 weight copies). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "worker/group.h"
#include "worker/models/model.h"
#include "worker/rng.h"

#define MAX_PLAN_SETS 4 /* full batch plus the train and validation remainders */
#define BN_EPS 1e-5f    /* torchvision's BatchNorm2d */
#define BN_MOMENTUM 0.1f

/* Kernel plans for every layer at one batch size. */
typedef struct {
    int n;
    void **plans; /* per layer: kn_conv*, kn_bn*, kn_pool*, kn_linear* or NULL */
} plan_set;

struct model_runtime {
    kn_ctx *ctx;
    int max_batch;
    float *values;          /* parameters then buffers */
    float *grads, *m1, *m2; /* parameters only; NULL without gradients */
    int64_t adam_step;
    float **act;            /* per slot, max_batch samples */
    float **grad_act;       /* per slot, allocated with the gradients */
    float *scratch;         /* one slot's worth, for gradients that accumulate */
    uint8_t *grad_written;  /* per slot, during one backward */
    float **bn_saved;       /* per layer: batch mean then variance (2 C) for batch norm */
    uint8_t **dropout_mask; /* per layer for dropout */
    plan_set sets[MAX_PLAN_SETS];
    int n_sets;
    int forwarded;     /* a forward ran: backward may follow */
    int last_n;        /* batch of the last forward (0: an empty shard of a group's batch) */
    int last_bn_train; /* whether that forward used batch statistics */
    kn_adam_tensor *adam_tensors;
    size_t largest;          /* floats of the largest slot at max_batch */
    kn_dtype precision;      /* of conv and linear layers */
    kn_bf16 *bf_in, *bf_out; /* bf16 precision: a layer's input and output, largest each */
    /* a data-parallel trial (model_set_group): batch norm with the whole batch's statistics */
    const trial_group *group;
    kn_comm *comm; /* the group's NCCL communicator on a GPU context */
    int sync_bn;
    double *bn_count;   /* per layer: values per channel of the last forward's whole batch */
    double *sync_part;  /* this rank's count, means, M2s or sums: 1 + 2 C of the widest BN */
    double *sync_all;   /* every rank's parts */
    double *sync_stats; /* (counts, means, M2s) by rank for kn_bn_combine_stats, then mean, var */
    char why[256];      /* a group operation's failure ("": a kernel's, in kn_error) */
};

static int fail(char *err, size_t errlen, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return -1;
}

static size_t slot_floats(const model *m, int slot, int n) {
    const slot_shape *s = &m->slots[slot];
    return (size_t)n * (size_t)s->c * (size_t)s->h * (size_t)s->w;
}

static float *param_ptr(const model *m, float *base, int index) {
    return index < 0 ? NULL : base + m->params.tensors[index].offset;
}

static int trainable(const model *m, int index) {
    return index >= 0 && m->params.tensors[index].trainable;
}

static float *alloc_floats(model_runtime *rt, size_t count) {
    return kn_malloc(rt->ctx, (count ? count : 1) * sizeof(float));
}

int model_bind(model *m, kn_ctx *ctx, int max_batch, int with_grads, char *err, size_t errlen) {
    if (m->rt) model_unbind(m);
    model_runtime *rt = calloc(1, sizeof *rt);
    if (!rt) return fail(err, errlen, "out of memory");
    m->rt = rt;
    rt->ctx = ctx;
    rt->max_batch = max_batch;
    rt->act = calloc((size_t)m->n_slots, sizeof *rt->act);
    rt->grad_act = calloc((size_t)m->n_slots, sizeof *rt->grad_act);
    rt->grad_written = calloc((size_t)m->n_slots, 1);
    rt->bn_saved = calloc((size_t)m->n_layers, sizeof *rt->bn_saved);
    rt->dropout_mask = calloc((size_t)m->n_layers, sizeof *rt->dropout_mask);
    rt->adam_tensors = calloc((size_t)m->params.count, sizeof *rt->adam_tensors);
    if (!rt->act || !rt->grad_act || !rt->grad_written || !rt->bn_saved || !rt->dropout_mask ||
        !rt->adam_tensors)
        goto oom;
    if (!(rt->values = alloc_floats(rt, m->params.total_count))) goto oom;
    if (kn_zero(ctx, rt->values, m->params.total_count)) goto oom;
    size_t largest = 0;
    for (int s = 0; s < m->n_slots; s++) {
        size_t count = slot_floats(m, s, max_batch);
        if (count > largest) largest = count;
        if (s > 0 && !(rt->act[s] = alloc_floats(rt, count))) goto oom;
        if (with_grads && s > 0 && !(rt->grad_act[s] = alloc_floats(rt, count))) goto oom;
    }
    rt->largest = largest;
    for (int i = 0; i < m->n_layers; i++) {
        const layer *l = &m->layers[i];
        if (l->kind == LAYER_BATCHNORM &&
            !(rt->bn_saved[i] = alloc_floats(rt, 2 * (size_t)m->slots[l->out].c)))
            goto oom;
        if (l->kind == LAYER_DROPOUT &&
            !(rt->dropout_mask[i] = kn_malloc(ctx, slot_floats(m, l->out, max_batch))))
            goto oom;
    }
    if (with_grads) {
        size_t p = m->params.param_count;
        if (!(rt->grads = alloc_floats(rt, p)) || !(rt->m1 = alloc_floats(rt, p)) ||
            !(rt->m2 = alloc_floats(rt, p)) || !(rt->scratch = alloc_floats(rt, largest)))
            goto oom;
        if (kn_zero(ctx, rt->grads, p) || model_adam_reset(m)) goto oom;
    }
    return 0;
oom:
    fail(err, errlen, "%s: cannot allocate memory for batch %d: %s", m->backbone, max_batch,
         kn_error(ctx));
    model_unbind(m);
    return -1;
}

size_t model_bind_bytes(const model *m, int max_batch, int with_grads) {
    size_t floats = m->params.total_count, largest = 0, mask_bytes = 0;
    for (int s = 1; s < m->n_slots; s++) {
        size_t count = slot_floats(m, s, max_batch);
        if (count > largest) largest = count;
        floats += count * (with_grads ? 2 : 1);
    }
    for (int i = 0; i < m->n_layers; i++) {
        const layer *l = &m->layers[i];
        if (l->kind == LAYER_BATCHNORM) floats += 2 * (size_t)m->slots[l->out].c;
        if (l->kind == LAYER_DROPOUT) mask_bytes += slot_floats(m, l->out, max_batch);
    }
    if (with_grads) floats += 3 * m->params.param_count + largest;
    return floats * sizeof(float) + mask_bytes;
}

static void destroy_plans(model *m, plan_set *set) {
    if (!set->plans) return;
    for (int i = 0; i < m->n_layers; i++) {
        void *p = set->plans[i];
        if (!p) continue;
        switch (m->layers[i].kind) {
        case LAYER_CONV:
            kn_conv_destroy(p);
            break;
        case LAYER_BATCHNORM:
            kn_bn_destroy(p);
            break;
        case LAYER_MAXPOOL:
            kn_pool_destroy(p);
            break;
        case LAYER_LINEAR:
            kn_linear_destroy(p);
            break;
        default:
            break;
        }
    }
    free(set->plans);
    set->plans = NULL;
}

void model_unbind(model *m) {
    model_runtime *rt = m->rt;
    if (!rt) return;
    for (int i = 0; i < rt->n_sets; i++)
        destroy_plans(m, &rt->sets[i]);
    for (int s = 1; s < m->n_slots; s++) { /* slot 0 is the caller's images */
        if (rt->act) kn_free(rt->ctx, rt->act[s]);
        if (rt->grad_act) kn_free(rt->ctx, rt->grad_act[s]);
    }
    for (int i = 0; i < m->n_layers; i++) {
        if (rt->bn_saved) kn_free(rt->ctx, rt->bn_saved[i]);
        if (rt->dropout_mask) kn_free(rt->ctx, rt->dropout_mask[i]);
    }
    kn_free(rt->ctx, rt->values);
    kn_free(rt->ctx, rt->grads);
    kn_free(rt->ctx, rt->m1);
    kn_free(rt->ctx, rt->m2);
    kn_free(rt->ctx, rt->scratch);
    kn_free(rt->ctx, rt->bf_in);
    kn_free(rt->ctx, rt->bf_out);
    free(rt->act);
    free(rt->grad_act);
    free(rt->grad_written);
    free(rt->bn_saved);
    free(rt->dropout_mask);
    free(rt->adam_tensors);
    free(rt->bn_count);
    free(rt->sync_part);
    free(rt->sync_all);
    free(rt->sync_stats);
    free(rt);
    m->rt = NULL;
}

int model_set_precision(model *m, kn_dtype precision, char *err, size_t errlen) {
    model_runtime *rt = m->rt;
    char why[256];
    if (!rt) return fail(err, errlen, "%s: precision before model_bind", m->backbone);
    if (precision != KN_F32 && precision != KN_BF16)
        return fail(err, errlen, "%s: unknown precision %d", m->backbone, (int)precision);
    if (precision == KN_BF16 && !kn_bf16_supported(rt->ctx, why, sizeof why))
        return fail(err, errlen, "%s: bf16: %s", m->backbone, why);
    if (precision == rt->precision) return 0;
    for (int i = 0; i < rt->n_sets; i++) /* plans carry the dtype: remake them on demand */
        destroy_plans(m, &rt->sets[i]);
    rt->n_sets = 0;
    rt->precision = precision;
    if (precision == KN_F32 || rt->bf_in) return 0;
    size_t bytes = (rt->largest ? rt->largest : 1) * sizeof(kn_bf16);
    if (!(rt->bf_in = kn_malloc(rt->ctx, bytes)) || !(rt->bf_out = kn_malloc(rt->ctx, bytes)))
        return fail(err, errlen, "%s: bf16 buffers: %s", m->backbone, kn_error(rt->ctx));
    return 0;
}

kn_ctx *model_ctx(const model *m) {
    return m->rt ? m->rt->ctx : NULL;
}

const trial_group *model_group(const model *m) {
    return m->rt ? m->rt->group : NULL;
}

kn_comm *model_comm(const model *m) {
    return m->rt ? m->rt->comm : NULL;
}

int model_set_group(model *m, const trial_group *g, kn_comm *comm, int sync_bn, char *err,
                    size_t errlen) {
    model_runtime *rt = m->rt;
    if (!rt) return fail(err, errlen, "%s: group before model_bind", m->backbone);
    rt->group = group_active(g) ? g : NULL;
    rt->comm = rt->group ? comm : NULL;
    rt->sync_bn = sync_bn;
    if (!rt->group || !sync_bn || rt->bn_count) return 0;
    size_t widest = 0, ranks = (size_t)g->size;
    for (int i = 0; i < m->n_layers; i++)
        if (m->layers[i].kind == LAYER_BATCHNORM && (size_t)m->slots[m->layers[i].in].c > widest)
            widest = (size_t)m->slots[m->layers[i].in].c;
    rt->bn_count = calloc((size_t)m->n_layers, sizeof *rt->bn_count);
    rt->sync_part = calloc(1 + 2 * widest, sizeof *rt->sync_part);
    rt->sync_all = calloc(ranks * (1 + 2 * widest), sizeof *rt->sync_all);
    rt->sync_stats = calloc(ranks * (1 + 2 * widest) + 2 * widest, sizeof *rt->sync_stats);
    if (!rt->bn_count || !rt->sync_part || !rt->sync_all || !rt->sync_stats)
        return fail(err, errlen, "out of memory");
    return 0;
}

float *model_values(model *m) {
    return m->rt ? m->rt->values : NULL;
}
float *model_grads(model *m) {
    return m->rt ? m->rt->grads : NULL;
}

void model_set_trainable(model *m, const char *prefix) {
    size_t len = prefix ? strlen(prefix) : 0;
    for (int i = 0; i < m->params.count; i++) {
        param_tensor *p = &m->params.tensors[i];
        p->trainable = prefix && !p->is_buffer && !strncmp(p->name, prefix, len);
    }
}

int model_first_trainable_layer(const model *m) {
    for (int i = 0; i < m->n_layers; i++) {
        const layer *l = &m->layers[i];
        int w = -1;
        switch (l->kind) {
        case LAYER_CONV:
            w = l->cfg.conv.weight;
            break;
        case LAYER_BATCHNORM:
            w = l->cfg.bn.weight;
            break;
        case LAYER_LINEAR:
            w = l->cfg.linear.weight;
            break;
        default:
            break;
        }
        if (trainable(m, w)) return i;
    }
    return m->n_layers;
}

/* Creates the kernel plans of every layer for batch size n. */
static int create_plans(model *m, plan_set *set, int n, char *err, size_t errlen) {
    kn_ctx *ctx = m->rt->ctx;
    set->n = n;
    set->plans = calloc((size_t)m->n_layers, sizeof *set->plans);
    if (!set->plans) return fail(err, errlen, "out of memory");
    for (int i = 0; i < m->n_layers; i++) {
        const layer *l = &m->layers[i];
        const slot_shape in = m->slots[l->in];
        void *plan = NULL;
        switch (l->kind) {
        case LAYER_CONV: {
            const conv_config *c = &l->cfg.conv;
            kn_conv_shape s = {n,         in.c,      in.h,         in.w,
                               c->c_out,  c->kernel, c->kernel,    c->stride,
                               c->stride, c->pad,    c->pad,       1,
                               1,         1,         c->bias >= 0, m->rt->precision};
            plan = kn_conv_create(ctx, &s);
            break;
        }
        case LAYER_BATCHNORM: {
            kn_bn_shape s = {n, in.c, in.h, in.w, BN_EPS, BN_MOMENTUM};
            plan = kn_bn_create(ctx, &s);
            break;
        }
        case LAYER_MAXPOOL: {
            const maxpool_config *p = &l->cfg.maxpool;
            kn_pool_shape s = {KN_POOL_MAX, n,         in.c,   in.h,   in.w, p->kernel, p->kernel,
                               p->stride,   p->stride, p->pad, p->pad, 0,    0};
            plan = kn_pool_create(ctx, &s);
            break;
        }
        case LAYER_LINEAR: {
            kn_linear_shape s = {n, in.c, l->cfg.linear.out_features, 1, m->rt->precision};
            plan = kn_linear_create(ctx, &s);
            break;
        }
        default:
            continue;
        }
        if (!plan)
            return fail(err, errlen, "%s: layer %d (slot %d): %s", m->backbone, i, l->out,
                        kn_error(ctx));
        set->plans[i] = plan;
    }
    return 0;
}

static plan_set *plans_for(model *m, int n, char *err, size_t errlen) {
    model_runtime *rt = m->rt;
    for (int i = 0; i < rt->n_sets; i++)
        if (rt->sets[i].n == n) return &rt->sets[i];
    /* Batch sizes come from a fixed batch size and two remainders, so a full cache means an
     * unusual caller: recycle the oldest set rather than grow without bound. */
    if (rt->n_sets == MAX_PLAN_SETS) {
        destroy_plans(m, &rt->sets[0]);
        memmove(&rt->sets[0], &rt->sets[1], (MAX_PLAN_SETS - 1) * sizeof rt->sets[0]);
        rt->n_sets--;
    }
    plan_set *set = &rt->sets[rt->n_sets];
    memset(set, 0, sizeof *set);
    if (create_plans(m, set, n, err, errlen)) {
        destroy_plans(m, set);
        return NULL;
    }
    rt->n_sets++;
    return set;
}

/* Each dropout layer draws its mask from its own stream of the step's seed. */
static uint64_t layer_dropout_seed(uint64_t step_seed, int layer_index) {
    rng_stream r = rng_stream_for(step_seed, 0, (uint64_t)layer_index, RNG_DROPOUT);
    return rng_next(&r);
}

/* A conv or linear layer in bf16: input cast to bf16, the plan, output cast back to fp32. */
static int forward_bf16(model *m, const layer *l, void *plan, int n) {
    model_runtime *rt = m->rt;
    float *v = rt->values;
    if (kn_f32_to_bf16(rt->ctx, rt->bf_in, rt->act[l->in], slot_floats(m, l->in, n))) return -1;
    int rc =
        l->kind == LAYER_CONV
            ? kn_conv_forward(plan, rt->bf_out, rt->bf_in, param_ptr(m, v, l->cfg.conv.weight),
                              param_ptr(m, v, l->cfg.conv.bias))
            : kn_linear_forward(plan, rt->bf_out, rt->bf_in, param_ptr(m, v, l->cfg.linear.weight),
                                param_ptr(m, v, l->cfg.linear.bias));
    return rc ? rc
              : kn_bf16_to_f32(rt->ctx, rt->act[l->out], rt->bf_out, slot_floats(m, l->out, n));
}

/* Training batch norm with the statistics of the whole group's batch: this shard's count, means
 * and M2s go to every rank, each combines them in rank order (the same bits everywhere), and
 * normalizes its shard and updates the running statistics with them. A rank with an empty
 * shard (plan NULL) takes part and updates its running statistics all the same. */
static int forward_bn_sync(model *m, int i, void *plan, int n) {
    model_runtime *rt = m->rt;
    const layer *l = &m->layers[i];
    const batchnorm_config *cfg = &l->cfg.bn;
    const slot_shape in = m->slots[l->in];
    const size_t c = (size_t)in.c, ranks = (size_t)rt->group->size, part = 1 + 2 * c;
    float *v = rt->values;
    double *mine = rt->sync_part;
    memset(mine, 0, part * sizeof *mine);
    mine[0] = (double)n * in.h * in.w;
    if (n > 0 && kn_bn_shard_stats(plan, mine + 1, mine + 1 + c, rt->act[l->in])) return -1;
    if (group_gather_doubles(rt->group, mine, rt->sync_all, (int)part, rt->why, sizeof rt->why))
        return -1;
    double *counts = rt->sync_stats, *means = counts + ranks, *m2s = means + ranks * c;
    double *mean = m2s + ranks * c, *var = mean + c, total = 0;
    for (size_t r = 0; r < ranks; r++) {
        const double *got = rt->sync_all + r * part;
        counts[r] = got[0];
        total += got[0];
        memcpy(means + r * c, got + 1, c * sizeof *means);
        memcpy(m2s + r * c, got + 1 + c, c * sizeof *m2s);
    }
    kn_bn_combine_stats(mean, var, counts, means, m2s, (int)ranks, (int)c);
    rt->bn_count[i] = total;
    float *running_mean = param_ptr(m, v, cfg->running_mean);
    float *running_var = param_ptr(m, v, cfg->running_var);
    if (n == 0)
        return kn_bn_update_running(rt->ctx, running_mean, running_var, mean, var, total, in.c,
                                    BN_MOMENTUM);
    return kn_bn_forward_stats(plan, rt->act[l->out], rt->bn_saved[i], rt->bn_saved[i] + c,
                               running_mean, running_var, mean, var, total, rt->act[l->in],
                               param_ptr(m, v, cfg->weight), param_ptr(m, v, cfg->bias));
}

static int forward_layer(model *m, int i, void *plan, int n, model_mode mode, uint64_t seed) {
    model_runtime *rt = m->rt;
    kn_ctx *ctx = rt->ctx;
    const layer *l = &m->layers[i];
    const slot_shape in = m->slots[l->in];
    const float *input = rt->act[l->in];
    float *y = rt->act[l->out], *v = rt->values;
    size_t count = slot_floats(m, l->out, n);
    if (rt->precision == KN_BF16 && (l->kind == LAYER_CONV || l->kind == LAYER_LINEAR))
        return forward_bf16(m, l, plan, n);
    switch (l->kind) {
    case LAYER_CONV:
        return kn_conv_forward(plan, y, input, param_ptr(m, v, l->cfg.conv.weight),
                               param_ptr(m, v, l->cfg.conv.bias));
    case LAYER_BATCHNORM: {
        const batchnorm_config *c = &l->cfg.bn;
        if (mode.bn_train && rt->bn_count) return forward_bn_sync(m, i, plan, n);
        if (mode.bn_train)
            return kn_bn_forward_train(plan, y, rt->bn_saved[i], rt->bn_saved[i] + in.c,
                                       param_ptr(m, v, c->running_mean),
                                       param_ptr(m, v, c->running_var), input,
                                       param_ptr(m, v, c->weight), param_ptr(m, v, c->bias));
        return kn_bn_forward_infer(plan, y, input, param_ptr(m, v, c->weight),
                                   param_ptr(m, v, c->bias), param_ptr(m, v, c->running_mean),
                                   param_ptr(m, v, c->running_var));
    }
    case LAYER_RELU:
        return kn_relu_forward(ctx, y, input, count);
    case LAYER_MAXPOOL:
        return kn_pool_forward(plan, y, input);
    case LAYER_ADAPTIVE_AVGPOOL:
        return kn_adaptive_avgpool_forward(ctx, y, input, n, in.c, in.h, in.w, l->cfg.avgpool.h_out,
                                           l->cfg.avgpool.w_out);
    case LAYER_ADD:
        return kn_add(ctx, y, input, rt->act[l->in2], count);
    case LAYER_FLATTEN:
        return kn_nhwc_to_nchw(ctx, y, input, n, in.c, in.h, in.w);
    case LAYER_LINEAR:
        return kn_linear_forward(plan, y, input, param_ptr(m, v, l->cfg.linear.weight),
                                 param_ptr(m, v, l->cfg.linear.bias));
    case LAYER_DROPOUT:
        return kn_dropout_forward(
            ctx, y, rt->dropout_mask[i], input, count, mode.dropout_train ? l->cfg.dropout.p : 0.0f,
            layer_dropout_seed(seed, i), slot_floats(m, l->out, mode.first_sample));
    }
    return -1;
}

const float *model_forward(model *m, const float *images, int n, model_mode mode,
                           uint64_t dropout_seed, char *err, size_t errlen) {
    model_runtime *rt = m->rt;
    if (!rt) {
        fail(err, errlen, "%s: forward before model_bind", m->backbone);
        return NULL;
    }
    if (n < (rt->group ? 0 : 1) || n > rt->max_batch) {
        fail(err, errlen, "%s: batch of %d images (bound for 1..%d)", m->backbone, n,
             rt->max_batch);
        return NULL;
    }
    plan_set *set = n > 0 ? plans_for(m, n, err, errlen) : NULL;
    if (n > 0 && !set) return NULL;
    rt->act[0] = (float *)images; /* read only: layers never write their input slot */
    rt->why[0] = 0;
    for (int i = 0; i < m->n_layers; i++) {
        /* an empty shard only takes part in what the group does together */
        if (n == 0 && !(m->layers[i].kind == LAYER_BATCHNORM && mode.bn_train && rt->bn_count))
            continue;
        if (forward_layer(m, i, set ? set->plans[i] : NULL, n, mode, dropout_seed)) {
            fail(err, errlen, "%s: forward layer %d: %s", m->backbone, i,
                 rt->why[0] ? rt->why : kn_error(rt->ctx));
            return NULL;
        }
    }
    rt->forwarded = 1;
    rt->last_n = n;
    rt->last_bn_train = mode.bn_train;
    return rt->act[m->n_slots - 1];
}

/* Where the gradient for slot s goes: straight into its buffer the first time, into scratch
 * (to be accumulated by finish_grad) after that. */
static float *grad_target(model_runtime *rt, int s) {
    return rt->grad_written[s] ? rt->scratch : rt->grad_act[s];
}

static int finish_grad(model *m, int s, size_t count) {
    model_runtime *rt = m->rt;
    if (!rt->grad_written[s]) {
        rt->grad_written[s] = 1;
        return 0;
    }
    return kn_accumulate(rt->ctx, rt->grad_act[s], rt->scratch, count);
}

/* The gradient of slot s is needed when the layer producing it (slot s is the output of
 * layer s - 1) is at or after the first trainable layer. */
static int needs_grad(int s, int first) {
    return s > 0 && s - 1 >= first;
}

/* Adds dout into slot s's gradient (the residual add passes its gradient to both inputs). */
static int pass_grad(model *m, int s, const float *dout, size_t count) {
    model_runtime *rt = m->rt;
    if (!rt->grad_written[s]) {
        if (kn_zero(rt->ctx, rt->grad_act[s], count)) return -1;
        rt->grad_written[s] = 1;
    }
    return kn_accumulate(rt->ctx, rt->grad_act[s], dout, count);
}

/* The backward of a bf16 conv or linear layer: the output gradient cast to bf16 once, the
 * weight gradient (fp32) from it and the input cast again, then the input gradient cast back
 * into dinp (NULL: not wanted). */
static int backward_bf16(model *m, const layer *l, void *plan, int n, float *dinp) {
    model_runtime *rt = m->rt;
    const int conv = l->kind == LAYER_CONV;
    const int wi = conv ? l->cfg.conv.weight : l->cfg.linear.weight;
    const int bi = conv ? l->cfg.conv.bias : l->cfg.linear.bias;
    float *dw = param_ptr(m, rt->grads, wi);
    float *db = trainable(m, bi) ? param_ptr(m, rt->grads, bi) : NULL;
    const float *w = param_ptr(m, rt->values, wi);
    size_t in_count = slot_floats(m, l->in, n);
    if (kn_f32_to_bf16(rt->ctx, rt->bf_out, rt->grad_act[l->out], slot_floats(m, l->out, n)))
        return -1;
    if (trainable(m, wi)) {
        if (kn_f32_to_bf16(rt->ctx, rt->bf_in, rt->act[l->in], in_count)) return -1;
        int rc = conv ? kn_conv_backward_weights(plan, dw, db, rt->bf_out, rt->bf_in)
                      : kn_linear_backward_weights(plan, dw, db, rt->bf_out, rt->bf_in);
        if (rc) return rc;
    }
    if (!dinp) return 0;
    int rc = conv ? kn_conv_backward_data(plan, rt->bf_in, rt->bf_out, w)
                  : kn_linear_backward_data(plan, rt->bf_in, rt->bf_out, w);
    return rc ? rc : kn_bf16_to_f32(rt->ctx, dinp, rt->bf_in, in_count);
}

/* The backward of forward_bn_sync: this shard's sums of dout and dout * xhat, summed over the
 * group, give every rank the whole batch's input gradient for its shard; gamma and beta get
 * this shard's part of their gradients (the group sums those with the rest). */
static int backward_bn_sync(model *m, int i, void *plan, int n, float *dinp) {
    model_runtime *rt = m->rt;
    const layer *l = &m->layers[i];
    const batchnorm_config *cfg = &l->cfg.bn;
    const size_t c = (size_t)m->slots[l->in].c;
    const int learn = trainable(m, cfg->weight);
    float *g = rt->grads, *saved = rt->bn_saved[i];
    const float *dout = rt->grad_act[l->out], *x = rt->act[l->in];
    double *sums = rt->sync_part;
    memset(sums, 0, 2 * c * sizeof *sums);
    if (n > 0 && kn_bn_shard_backward_sums(
                     plan, sums, sums + c, learn ? param_ptr(m, g, cfg->weight) : NULL,
                     learn ? param_ptr(m, g, cfg->bias) : NULL, dout, x, saved, saved + c))
        return -1;
    if (group_sum_doubles(rt->group, sums, (int)(2 * c), rt->why, sizeof rt->why)) return -1;
    if (n == 0) return 0;
    return kn_bn_backward_stats(plan, dinp ? dinp : rt->scratch, dout, x, saved, saved + c,
                                param_ptr(m, rt->values, cfg->weight), sums, sums + c,
                                rt->bn_count[i]);
}

/* An empty shard's backward: no gradient of its own (zero), but a part in every sum the group's
 * batch norm takes. */
static int backward_empty(model *m, int first) {
    model_runtime *rt = m->rt;
    for (int t = 0; t < m->params.count; t++)
        if (trainable(m, t) &&
            kn_zero(rt->ctx, rt->grads + m->params.tensors[t].offset, m->params.tensors[t].count))
            return -1;
    for (int i = m->n_layers - 1; i >= first; i--)
        if (m->layers[i].kind == LAYER_BATCHNORM && rt->bn_count &&
            backward_bn_sync(m, i, NULL, 0, NULL))
            return -1;
    return 0;
}

static int backward_layer(model *m, int i, void *plan, int n, int first) {
    model_runtime *rt = m->rt;
    kn_ctx *ctx = rt->ctx;
    const layer *l = &m->layers[i];
    const slot_shape in = m->slots[l->in];
    const float *dout = rt->grad_act[l->out], *x = rt->act[l->in];
    float *v = rt->values, *g = rt->grads;
    size_t in_count = slot_floats(m, l->in, n), out_count = slot_floats(m, l->out, n);
    int want_dinp = needs_grad(l->in, first);
    float *dinp = want_dinp ? grad_target(rt, l->in) : NULL;
    int rc = 0;
    if (rt->precision == KN_BF16 && (l->kind == LAYER_CONV || l->kind == LAYER_LINEAR)) {
        rc = backward_bf16(m, l, plan, n, dinp);
        return !rc && want_dinp ? finish_grad(m, l->in, in_count) : rc;
    }
    switch (l->kind) {
    case LAYER_CONV: {
        const conv_config *c = &l->cfg.conv;
        if (want_dinp) rc = kn_conv_backward_data(plan, dinp, dout, param_ptr(m, v, c->weight));
        if (!rc && trainable(m, c->weight))
            rc = kn_conv_backward_weights(plan, param_ptr(m, g, c->weight),
                                          trainable(m, c->bias) ? param_ptr(m, g, c->bias) : NULL,
                                          dout, x);
        break;
    }
    case LAYER_BATCHNORM: {
        const batchnorm_config *c = &l->cfg.bn;
        int learn = trainable(m, c->weight);
        if (rt->bn_count) {
            rc = backward_bn_sync(m, i, plan, n, want_dinp ? dinp : NULL);
            break;
        }
        /* oneDNN always produces dinp; without a consumer it lands in scratch. */
        rc = kn_bn_backward(plan, want_dinp ? dinp : rt->scratch,
                            learn ? param_ptr(m, g, c->weight) : NULL,
                            learn ? param_ptr(m, g, c->bias) : NULL, dout, x, rt->bn_saved[i],
                            rt->bn_saved[i] + in.c, param_ptr(m, v, c->weight));
        break;
    }
    case LAYER_RELU:
        if (want_dinp) rc = kn_relu_backward(ctx, dinp, dout, rt->act[l->out], out_count);
        break;
    case LAYER_MAXPOOL:
        if (want_dinp) rc = kn_pool_backward(plan, dinp, dout);
        break;
    case LAYER_ADAPTIVE_AVGPOOL:
        if (want_dinp)
            rc = kn_adaptive_avgpool_backward(ctx, dinp, dout, n, in.c, in.h, in.w,
                                              l->cfg.avgpool.h_out, l->cfg.avgpool.w_out);
        break;
    case LAYER_ADD:
        if (want_dinp) rc = pass_grad(m, l->in, dout, out_count);
        if (!rc && needs_grad(l->in2, first)) rc = pass_grad(m, l->in2, dout, out_count);
        return rc;
    case LAYER_FLATTEN:
        if (want_dinp) rc = kn_nchw_to_nhwc(ctx, dinp, dout, n, in.c, in.h, in.w);
        break;
    case LAYER_LINEAR: {
        const linear_config *c = &l->cfg.linear;
        if (want_dinp) rc = kn_linear_backward_data(plan, dinp, dout, param_ptr(m, v, c->weight));
        if (!rc && trainable(m, c->weight))
            rc = kn_linear_backward_weights(plan, param_ptr(m, g, c->weight),
                                            trainable(m, c->bias) ? param_ptr(m, g, c->bias) : NULL,
                                            dout, x);
        break;
    }
    case LAYER_DROPOUT:
        if (want_dinp)
            rc = kn_dropout_backward(ctx, dinp, dout, rt->dropout_mask[i], out_count,
                                     l->cfg.dropout.p);
        break;
    }
    if (!rc && want_dinp) rc = finish_grad(m, l->in, in_count);
    return rc;
}

int model_backward(model *m, const float *dlogits, char *err, size_t errlen) {
    model_runtime *rt = m->rt;
    if (!rt || !rt->grads) return fail(err, errlen, "%s: backward without gradients", m->backbone);
    if (!rt->forwarded) return fail(err, errlen, "%s: backward before forward", m->backbone);
    int first = model_first_trainable_layer(m);
    if (first == m->n_layers) return 0;
    for (int i = first; i < m->n_layers; i++)
        if (m->layers[i].kind == LAYER_BATCHNORM && !rt->last_bn_train)
            return fail(err, errlen,
                        "%s: backward through batch norm needs a forward with batch statistics",
                        m->backbone);
    rt->why[0] = 0;
    if (rt->last_n == 0) {
        if (backward_empty(m, first))
            return fail(err, errlen, "%s: backward of an empty shard: %s", m->backbone,
                        rt->why[0] ? rt->why : kn_error(rt->ctx));
        return 0;
    }
    plan_set *set = plans_for(m, rt->last_n, err, errlen);
    if (!set) return -1;
    int last = m->n_slots - 1, n = rt->last_n;
    memset(rt->grad_written, 0, (size_t)m->n_slots);
    rt->grad_written[last] = 1;
    /* dlogits is the caller's device memory: the head reads it through the last slot. */
    float *own = rt->grad_act[last];
    rt->grad_act[last] = (float *)dlogits;
    int rc = 0;
    for (int i = m->n_layers - 1; i >= first && !rc; i--) {
        rc = backward_layer(m, i, set->plans[i], n, first);
        if (rc)
            fail(err, errlen, "%s: backward layer %d: %s", m->backbone, i,
                 rt->why[0] ? rt->why : kn_error(rt->ctx));
    }
    rt->grad_act[last] = own;
    return rc;
}

int model_adam_reset(model *m) {
    model_runtime *rt = m->rt;
    rt->adam_step = 0;
    return kn_zero(rt->ctx, rt->m1, m->params.param_count) ||
                   kn_zero(rt->ctx, rt->m2, m->params.param_count)
               ? -1
               : 0;
}

float *model_adam_m(model *m) {
    return m->rt ? m->rt->m1 : NULL;
}
float *model_adam_v(model *m) {
    return m->rt ? m->rt->m2 : NULL;
}
int64_t model_adam_steps(const model *m) {
    return m->rt ? m->rt->adam_step : 0;
}
void model_set_adam_steps(model *m, int64_t steps) {
    m->rt->adam_step = steps;
}

int model_adam_step(model *m, const float *group_lr, float beta1, float beta2, float eps,
                    float weight_decay, char *err, size_t errlen) {
    model_runtime *rt = m->rt;
    if (!rt || !rt->grads) return fail(err, errlen, "%s: Adam without gradients", m->backbone);
    int count = 0;
    for (int i = 0; i < m->params.count; i++) {
        const param_tensor *p = &m->params.tensors[i];
        if (p->is_buffer || !p->trainable) continue;
        rt->adam_tensors[count++] = (kn_adam_tensor){p->offset, p->count, group_lr[p->group]};
    }
    kn_adam_hparams hp = {beta1, beta2, eps, weight_decay, ++rt->adam_step};
    if (kn_adam_step(rt->ctx, rt->values, rt->grads, rt->m1, rt->m2, rt->adam_tensors, count, &hp))
        return fail(err, errlen, "%s: Adam step: %s", m->backbone, kn_error(rt->ctx));
    return 0;
}
