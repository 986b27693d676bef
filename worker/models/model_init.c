/* torchvision's initialisation, seeded: what a backbone gets with `weights: none`. */
#include <math.h>
#include <string.h>

#include "worker/models/model.h"
#include "worker/rng.h"

static void fill(float *x, size_t count, float value) {
    for (size_t i = 0; i < count; i++)
        x[i] = value;
}

static void fill_normal(float *x, size_t count, double std, rng_stream *r) {
    for (size_t i = 0; i < count; i++)
        x[i] = (float)(std * rng_normal(r));
}

static void fill_uniform(float *x, size_t count, double bound, rng_stream *r) {
    for (size_t i = 0; i < count; i++)
        x[i] = (float)rng_uniform(r, -bound, bound);
}

void model_init_backbone(const model *m, float *values, uint64_t seed) {
    rng_stream r = rng_stream_for(seed, 0, 0, RNG_INIT_BACKBONE);
    const param_tensor *t = m->params.tensors;
    int vgg = !strncmp(m->backbone, "vgg", 3);
    for (int i = 0; i < m->n_layers; i++) {
        const layer *l = &m->layers[i];
        if (l->kind == LAYER_CONV) {
            /* kaiming_normal_(mode="fan_out", nonlinearity="relu") */
            const param_tensor *w = &t[l->cfg.conv.weight];
            double fan_out = (double)(w->shape[0] * w->shape[2] * w->shape[3]);
            fill_normal(values + w->offset, w->count, sqrt(2.0 / fan_out), &r);
            if (l->cfg.conv.bias >= 0)
                fill(values + t[l->cfg.conv.bias].offset, t[l->cfg.conv.bias].count, 0.0f);
        } else if (l->kind == LAYER_BATCHNORM) {
            const batchnorm_config *c = &l->cfg.bn;
            fill(values + t[c->weight].offset, t[c->weight].count, 1.0f);
            fill(values + t[c->bias].offset, t[c->bias].count, 0.0f);
            fill(values + t[c->running_mean].offset, t[c->running_mean].count, 0.0f);
            fill(values + t[c->running_var].offset, t[c->running_var].count, 1.0f);
        } else if (l->kind == LAYER_LINEAR && vgg && !t[l->cfg.linear.weight].is_head) {
            /* VGG's classifier: normal(0, 0.01) weights, zero bias */
            const param_tensor *w = &t[l->cfg.linear.weight], *b = &t[l->cfg.linear.bias];
            fill_normal(values + w->offset, w->count, 0.01, &r);
            fill(values + b->offset, b->count, 0.0f);
        }
    }
    model_init_head(m, values, seed);
}

void model_init_head(const model *m, float *values, uint64_t seed) {
    rng_stream r = rng_stream_for(seed, 0, 0, RNG_INIT_HEAD);
    const param_tensor *t = m->params.tensors;
    for (int i = 0; i < m->n_layers; i++) {
        const layer *l = &m->layers[i];
        if (l->kind != LAYER_LINEAR || !t[l->cfg.linear.weight].is_head) continue;
        /* nn.Linear: kaiming_uniform_(a=sqrt(5)) gives bound 1/sqrt(fan_in), bias the same */
        const param_tensor *w = &t[l->cfg.linear.weight], *b = &t[l->cfg.linear.bias];
        double bound = 1.0 / sqrt((double)w->shape[1]);
        fill_uniform(values + w->offset, w->count, bound, &r);
        fill_uniform(values + b->offset, b->count, bound, &r);
    }
}
