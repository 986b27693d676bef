#include "worker/pretrained.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* torchvision's file names, best weights first. */
static const struct {
    const char *backbone;
    const char *files[2];
} known[] = {
    {"resnet18", {"resnet18-f37072fd.pth", NULL}},
    {"resnet34", {"resnet34-b627a593.pth", NULL}},
    {"resnet50", {"resnet50-11ad3fa6.pth", "resnet50-0676ba61.pth"}},
    {"resnet101", {"resnet101-cd907fc2.pth", "resnet101-63fe2227.pth"}},
    {"resnet152", {"resnet152-f82ba261.pth", "resnet152-394f9c45.pth"}},
    {"vgg11_bn", {"vgg11_bn-6002323d.pth", NULL}},
    {"vgg13_bn", {"vgg13_bn-abd245e5.pth", NULL}},
    {"vgg16_bn", {"vgg16_bn-6c64b313.pth", NULL}},
    {"vgg19_bn", {"vgg19_bn-c79401a0.pth", NULL}},
};

static void cache_dir(char *out, size_t cap) {
    const char *torch_home = getenv("TORCH_HOME"), *xdg = getenv("XDG_CACHE_HOME");
    const char *home = getenv("HOME");
    if (torch_home && *torch_home)
        snprintf(out, cap, "%s/hub/checkpoints", torch_home);
    else if (xdg && *xdg)
        snprintf(out, cap, "%s/torch/hub/checkpoints", xdg);
    else
        snprintf(out, cap, "%s/.cache/torch/hub/checkpoints", home ? home : "");
}

int pretrained_resolve(char *path, size_t cap, const char *weights, const char *backbone, char *err,
                       size_t errlen) {
    if (strcmp(weights, "torchvision")) {
        snprintf(path, cap, "%s", weights);
        return 0;
    }
    char dir[1024];
    cache_dir(dir, sizeof dir);
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++) {
        if (strcmp(known[i].backbone, backbone)) continue;
        for (int f = 0; f < 2 && known[i].files[f]; f++) {
            snprintf(path, cap, "%s/%s", dir, known[i].files[f]);
            if (access(path, R_OK) == 0) return 0;
        }
        snprintf(err, errlen,
                 "weights: torchvision: %s/%s not found (download it with torchvision, e.g. "
                 "torchvision.models.%s(weights=\"DEFAULT\"), or set TORCH_HOME)",
                 dir, known[i].files[0], backbone);
        return -1;
    }
    snprintf(err, errlen, "weights: torchvision has no ImageNet weights for '%s'", backbone);
    return -1;
}
