/* Building a model's layer list: each call appends one layer, registers its named tensors and
 * returns the output slot. After the first failure (out of memory, impossible shape) every
 * call returns -1 and the message stays in err. */
#ifndef TLSWEEP_MODELS_BUILDER_H
#define TLSWEEP_MODELS_BUILDER_H

#include <stddef.h>

#include "worker/models/model.h"

typedef struct {
    model *m;
    int failed;
    char *err;
    size_t errlen;
} model_builder;

int mb_group(model_builder *b, const char *name); /* appends a layer group, returns its index */
int mb_conv(model_builder *b, const char *name, int in, int c_out, int kernel, int stride, int pad,
            int has_bias, int group);
int mb_batchnorm(model_builder *b, const char *name, int in, int group);
int mb_relu(model_builder *b, int in);
int mb_maxpool(model_builder *b, int in, int kernel, int stride, int pad);
int mb_adaptive_avgpool(model_builder *b, int in, int h_out, int w_out);
int mb_add(model_builder *b, int a, int c);
int mb_flatten(model_builder *b, int in);
int mb_linear(model_builder *b, const char *name, int in, int out_features, int group, int is_head);
int mb_dropout(model_builder *b, int in, float p);

/* Family builders (resnet.c, vgg.c): the whole network for spec's backbone. */
int build_resnet(model_builder *b, const model_spec *spec);
int build_vgg(model_builder *b, const model_spec *spec);

#endif
