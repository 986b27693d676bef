#include "worker/models/builder.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int fail(model_builder *b, const char *fmt, ...) {
    if (!b->failed) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(b->err, b->errlen, fmt, ap);
        va_end(ap);
    }
    b->failed = 1;
    return -1;
}

static int grow(void **items, int *cap, int count, size_t size) {
    if (count < *cap) return 0;
    int ncap = *cap ? 2 * *cap : 32;
    void *p = realloc(*items, (size_t)ncap * size);
    if (!p) return -1;
    *items = p;
    *cap = ncap;
    return 0;
}

static int new_slot(model_builder *b, int c, int h, int w) {
    model *m = b->m;
    if (h < 1 || w < 1 || c < 1)
        return fail(b, "%s: image size %d is too small (an activation would be %dx%dx%d)",
                    m->backbone, m->spec.image_size, c, h, w);
    if (grow((void **)&m->slots, &m->cap_slots, m->n_slots, sizeof *m->slots))
        return fail(b, "out of memory building %s", m->backbone);
    m->slots[m->n_slots] = (slot_shape){c, h, w};
    return m->n_slots++;
}

static layer *new_layer(model_builder *b, layer_kind kind, int in) {
    model *m = b->m;
    if (b->failed || in < 0) return NULL;
    if (grow((void **)&m->layers, &m->cap_layers, m->n_layers, sizeof *m->layers)) {
        fail(b, "out of memory building %s", m->backbone);
        return NULL;
    }
    layer *l = &m->layers[m->n_layers];
    memset(l, 0, sizeof *l);
    l->kind = kind;
    l->in = in;
    l->in2 = -1;
    return l;
}

/* Appends the layer prepared by new_layer with an output slot of the given shape. */
static int commit_layer(model_builder *b, layer *l, int c, int h, int w) {
    int out = new_slot(b, c, h, w);
    if (out < 0) return -1;
    l->out = out;
    b->m->n_layers++;
    return out;
}

static int add_tensor(model_builder *b, const char *prefix, const char *suffix, int ndim,
                      const int64_t *shape, int group, int is_buffer) {
    char name[PARAM_NAME_MAX];
    if (b->failed) return -1;
    if (snprintf(name, sizeof name, "%s.%s", prefix, suffix) >= (int)sizeof name)
        return fail(b, "tensor name too long: %s.%s", prefix, suffix);
    int index = params_add(&b->m->params, name, ndim, shape, group, is_buffer);
    if (index < 0) return fail(b, "out of memory adding %s", name);
    return index;
}

int mb_group(model_builder *b, const char *name) {
    model *m = b->m;
    if (b->failed) return -1;
    char **groups = realloc(m->groups, (size_t)(m->n_groups + 1) * sizeof *groups);
    if (!groups) return fail(b, "out of memory");
    m->groups = groups;
    if (!(m->groups[m->n_groups] = strdup(name))) return fail(b, "out of memory");
    return m->n_groups++;
}

int mb_conv(model_builder *b, const char *name, int in, int c_out, int kernel, int stride, int pad,
            int has_bias, int group) {
    layer *l = new_layer(b, LAYER_CONV, in);
    if (!l) return -1;
    slot_shape s = b->m->slots[in];
    int64_t wshape[4] = {c_out, s.c, kernel, kernel}, bshape[1] = {c_out};
    l->cfg.conv = (conv_config){c_out, kernel, stride, pad, -1, -1};
    l->cfg.conv.weight = add_tensor(b, name, "weight", 4, wshape, group, 0);
    if (has_bias) l->cfg.conv.bias = add_tensor(b, name, "bias", 1, bshape, group, 0);
    int h = (s.h + 2 * pad - kernel) / stride + 1, w = (s.w + 2 * pad - kernel) / stride + 1;
    if (s.h + 2 * pad < kernel) h = 0;
    return commit_layer(b, l, c_out, h, w);
}

int mb_batchnorm(model_builder *b, const char *name, int in, int group) {
    layer *l = new_layer(b, LAYER_BATCHNORM, in);
    if (!l) return -1;
    slot_shape s = b->m->slots[in];
    int64_t shape[1] = {s.c};
    l->cfg.bn.weight = add_tensor(b, name, "weight", 1, shape, group, 0);
    l->cfg.bn.bias = add_tensor(b, name, "bias", 1, shape, group, 0);
    l->cfg.bn.running_mean = add_tensor(b, name, "running_mean", 1, shape, group, 1);
    l->cfg.bn.running_var = add_tensor(b, name, "running_var", 1, shape, group, 1);
    return commit_layer(b, l, s.c, s.h, s.w);
}

int mb_relu(model_builder *b, int in) {
    layer *l = new_layer(b, LAYER_RELU, in);
    if (!l) return -1;
    slot_shape s = b->m->slots[in];
    return commit_layer(b, l, s.c, s.h, s.w);
}

int mb_maxpool(model_builder *b, int in, int kernel, int stride, int pad) {
    layer *l = new_layer(b, LAYER_MAXPOOL, in);
    if (!l) return -1;
    slot_shape s = b->m->slots[in];
    l->cfg.maxpool = (maxpool_config){kernel, stride, pad};
    int h = s.h + 2 * pad < kernel ? 0 : (s.h + 2 * pad - kernel) / stride + 1;
    int w = s.w + 2 * pad < kernel ? 0 : (s.w + 2 * pad - kernel) / stride + 1;
    return commit_layer(b, l, s.c, h, w);
}

int mb_adaptive_avgpool(model_builder *b, int in, int h_out, int w_out) {
    layer *l = new_layer(b, LAYER_ADAPTIVE_AVGPOOL, in);
    if (!l) return -1;
    l->cfg.avgpool = (adaptive_avgpool_config){h_out, w_out};
    return commit_layer(b, l, b->m->slots[in].c, h_out, w_out);
}

int mb_add(model_builder *b, int a, int c) {
    layer *l = new_layer(b, LAYER_ADD, a);
    if (!l || c < 0) return -1;
    slot_shape sa = b->m->slots[a], sc = b->m->slots[c];
    if (sa.c != sc.c || sa.h != sc.h || sa.w != sc.w)
        return fail(b, "%s: residual shapes differ (%dx%dx%d vs %dx%dx%d)", b->m->backbone, sa.h,
                    sa.w, sa.c, sc.h, sc.w, sc.c);
    l->in2 = c;
    return commit_layer(b, l, sa.c, sa.h, sa.w);
}

int mb_flatten(model_builder *b, int in) {
    layer *l = new_layer(b, LAYER_FLATTEN, in);
    if (!l) return -1;
    slot_shape s = b->m->slots[in];
    return commit_layer(b, l, s.c * s.h * s.w, 1, 1);
}

int mb_linear(model_builder *b, const char *name, int in, int out_features, int group,
              int is_head) {
    layer *l = new_layer(b, LAYER_LINEAR, in);
    if (!l) return -1;
    int64_t wshape[2] = {out_features, b->m->slots[in].c}, bshape[1] = {out_features};
    l->cfg.linear.out_features = out_features;
    l->cfg.linear.weight = add_tensor(b, name, "weight", 2, wshape, group, 0);
    l->cfg.linear.bias = add_tensor(b, name, "bias", 1, bshape, group, 0);
    if (!b->failed && is_head) {
        b->m->params.tensors[l->cfg.linear.weight].is_head = 1;
        b->m->params.tensors[l->cfg.linear.bias].is_head = 1;
    }
    return commit_layer(b, l, out_features, 1, 1);
}

int mb_dropout(model_builder *b, int in, float p) {
    layer *l = new_layer(b, LAYER_DROPOUT, in);
    if (!l) return -1;
    l->cfg.dropout.p = p;
    slot_shape s = b->m->slots[in];
    return commit_layer(b, l, s.c, s.h, s.w);
}
