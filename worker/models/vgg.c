/* torchvision VGGs with batch norm (configurations A, B, D, E). */
#include <stdio.h>
#include <string.h>

#include "worker/models/builder.h"

#define POOL 0 /* 'M' in torchvision's cfgs */

typedef struct {
    const char *name;
    int layers[21];
    int count;
} vgg_config;

static const vgg_config configs[] = {
    {"vgg11_bn", {64, POOL, 128, POOL, 256, 256, POOL, 512, 512, POOL, 512, 512, POOL}, 13},
    {"vgg13_bn",
     {64, 64, POOL, 128, 128, POOL, 256, 256, POOL, 512, 512, POOL, 512, 512, POOL},
     15},
    {"vgg16_bn",
     {64, 64, POOL, 128, 128, POOL, 256, 256, 256, POOL, 512, 512, 512, POOL, 512, 512, 512, POOL},
     18},
    {"vgg19_bn",
     {64,  64,  POOL, 128, 128,  POOL, 256, 256, 256, 256, POOL,
      512, 512, 512,  512, POOL, 512,  512, 512, 512, POOL},
     21},
};

static int channels(int c, int width) {
    return c / width > 0 ? c / width : 1;
}

int build_vgg(model_builder *b, const model_spec *spec) {
    const vgg_config *cfg = NULL;
    for (size_t i = 0; i < sizeof configs / sizeof configs[0]; i++)
        if (!strcmp(spec->backbone, configs[i].name)) cfg = &configs[i];
    if (!cfg) return -1;

    /* features.i modules: conv, bn, relu per channel entry, one maxpool per POOL. */
    int n_features = 0;
    for (int i = 0; i < cfg->count; i++)
        n_features += cfg->layers[i] == POOL ? 1 : 3;

    /* Groups from the output backwards: classifier, features.(n-1), ..., features.0; modules
     * without parameters keep their group so the linear decay formula sees every index. */
    char name[PARAM_NAME_MAX];
    const int group_classifier = mb_group(b, "classifier");
    for (int i = n_features - 1; i >= 0; i--) {
        snprintf(name, sizeof name, "features.%d", i);
        mb_group(b, name);
    }

    int x = 0, index = 0;
    for (int i = 0; i < cfg->count; i++) {
        if (cfg->layers[i] == POOL) {
            x = mb_maxpool(b, x, 2, 2, 0);
            index++;
            continue;
        }
        snprintf(name, sizeof name, "features.%d", index);
        x = mb_conv(b, name, x, channels(cfg->layers[i], spec->width), 3, 1, 1, 1,
                    group_classifier + n_features - index);
        snprintf(name, sizeof name, "features.%d", index + 1);
        x = mb_batchnorm(b, name, x, group_classifier + n_features - (index + 1));
        x = mb_relu(b, x);
        index += 3;
    }
    int hidden = channels(4096, spec->width);
    x = mb_flatten(b, mb_adaptive_avgpool(b, x, 7, 7));
    x = mb_relu(b, mb_linear(b, "classifier.0", x, hidden, group_classifier, 0));
    x = mb_dropout(b, x, spec->dropout);
    x = mb_relu(b, mb_linear(b, "classifier.3", x, hidden, group_classifier, 0));
    x = mb_dropout(b, x, spec->dropout);
    x = mb_linear(b, "classifier.6", x, spec->num_classes, group_classifier, 1);
    b->m->head_prefix = "classifier.6.";
    return b->failed ? -1 : 0;
}
