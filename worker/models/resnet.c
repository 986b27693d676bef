/* torchvision ResNets (v1.5: the stride sits on the 3x3 conv of a Bottleneck). */
#include <stdio.h>
#include <string.h>

#include "worker/models/builder.h"

typedef struct {
    const char *name;
    int bottleneck;
    int blocks[4];
} resnet_config;

static const resnet_config configs[] = {
    {"resnet18", 0, {2, 2, 2, 2}},   {"resnet34", 0, {3, 4, 6, 3}},   {"resnet50", 1, {3, 4, 6, 3}},
    {"resnet101", 1, {3, 4, 23, 3}}, {"resnet152", 1, {3, 8, 36, 3}},
};

static int channels(int c, int width) {
    return c / width > 0 ? c / width : 1;
}

/* One BasicBlock or Bottleneck named "layerL.J"; returns its output slot. */
static int residual_block(model_builder *b, const char *prefix, int in, int planes, int stride,
                          int bottleneck, int group) {
    char name[PARAM_NAME_MAX];
    int in_c = b->failed ? 0 : b->m->slots[in].c;
    int out_c = bottleneck ? 4 * planes : planes;
    int x = in;
    if (bottleneck) {
        snprintf(name, sizeof name, "%s.conv1", prefix);
        x = mb_conv(b, name, x, planes, 1, 1, 0, 0, group);
        snprintf(name, sizeof name, "%s.bn1", prefix);
        x = mb_relu(b, mb_batchnorm(b, name, x, group));
        snprintf(name, sizeof name, "%s.conv2", prefix);
        x = mb_conv(b, name, x, planes, 3, stride, 1, 0, group);
        snprintf(name, sizeof name, "%s.bn2", prefix);
        x = mb_relu(b, mb_batchnorm(b, name, x, group));
        snprintf(name, sizeof name, "%s.conv3", prefix);
        x = mb_conv(b, name, x, out_c, 1, 1, 0, 0, group);
        snprintf(name, sizeof name, "%s.bn3", prefix);
        x = mb_batchnorm(b, name, x, group);
    } else {
        snprintf(name, sizeof name, "%s.conv1", prefix);
        x = mb_conv(b, name, x, planes, 3, stride, 1, 0, group);
        snprintf(name, sizeof name, "%s.bn1", prefix);
        x = mb_relu(b, mb_batchnorm(b, name, x, group));
        snprintf(name, sizeof name, "%s.conv2", prefix);
        x = mb_conv(b, name, x, planes, 3, 1, 1, 0, group);
        snprintf(name, sizeof name, "%s.bn2", prefix);
        x = mb_batchnorm(b, name, x, group);
    }
    int shortcut = in;
    if (stride != 1 || in_c != out_c) {
        snprintf(name, sizeof name, "%s.downsample.0", prefix);
        shortcut = mb_conv(b, name, in, out_c, 1, stride, 0, 0, group);
        snprintf(name, sizeof name, "%s.downsample.1", prefix);
        shortcut = mb_batchnorm(b, name, shortcut, group);
    }
    return mb_relu(b, mb_add(b, x, shortcut));
}

int build_resnet(model_builder *b, const model_spec *spec) {
    const resnet_config *cfg = NULL;
    for (size_t i = 0; i < sizeof configs / sizeof configs[0]; i++)
        if (!strcmp(spec->backbone, configs[i].name)) cfg = &configs[i];
    if (!cfg) return -1;

    /* Layer groups from the output backwards, as the seed's exponential decay walks them. */
    const char *group_names[] = {"fc", "layer4", "layer3", "layer2", "layer1", "bn1", "conv1"};
    for (int g = 0; g < 7; g++)
        mb_group(b, group_names[g]);
    const int group_fc = 0, group_bn1 = 5, group_conv1 = 6;

    int x = mb_conv(b, "conv1", 0, channels(64, spec->width), 7, 2, 3, 0, group_conv1);
    x = mb_relu(b, mb_batchnorm(b, "bn1", x, group_bn1));
    x = mb_maxpool(b, x, 3, 2, 1);
    for (int stage = 0; stage < 4; stage++) {
        int planes = channels(64 << stage, spec->width);
        for (int j = 0; j < cfg->blocks[stage]; j++) {
            char prefix[32];
            snprintf(prefix, sizeof prefix, "layer%d.%d", stage + 1, j);
            int stride = (j == 0 && stage > 0) ? 2 : 1;
            x = residual_block(b, prefix, x, planes, stride, cfg->bottleneck, 4 - stage);
        }
    }
    x = mb_flatten(b, mb_adaptive_avgpool(b, x, 1, 1));
    x = mb_linear(b, "fc", x, spec->num_classes, group_fc, 1);
    b->m->head_prefix = "fc.";
    return b->failed ? -1 : 0;
}
