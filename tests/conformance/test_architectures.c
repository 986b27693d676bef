/* Every backbone's tensors against torchvision's state_dict (export_architectures.py): the same
 * names in the same order with the same shapes, and the same parameter count. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/testlib.h"
#include "worker/models/model.h"

static void compare_backbone(const char *backbone) {
    char path[1024], line[512], err[512];
    snprintf(path, sizeof path, "%s/%s.txt", tl_data_dir("architectures"), backbone);
    FILE *f = fopen(path, "r");
    if (!f) {
        tl_fail(__FILE__, __LINE__, "cannot open %s (run export_architectures.py)", path);
        return;
    }
    model m;
    model_spec spec = {backbone, 102, 1, 224, 0.5f};
    if (model_build(&m, &spec, err, sizeof err)) {
        tl_fail(__FILE__, __LINE__, "model_build %s: %s", backbone, err);
        fclose(f);
        return;
    }
    int index = 0, mismatches = 0;
    size_t torch_params = 0;
    while (fgets(line, sizeof line, f)) {
        if (sscanf(line, "# parameters %zu", &torch_params) == 1) continue;
        char name[256];
        long long shape[8];
        int consumed = 0, ndim = 0;
        if (sscanf(line, "%255s%n", name, &consumed) != 1) continue;
        for (char *p = line + consumed; ndim < 8;) {
            int used = 0;
            if (sscanf(p, "%lld%n", &shape[ndim], &used) != 1) break;
            ndim++;
            p += used;
        }
        if (index >= m.params.count) {
            tl_fail(__FILE__, __LINE__, "%s: torchvision has %s beyond our %d tensors", backbone,
                    name, m.params.count);
            mismatches++;
            break;
        }
        const param_tensor *t = &m.params.tensors[index++];
        int same = !strcmp(t->name, name) && t->ndim == ndim;
        for (int d = 0; same && d < ndim; d++)
            same = t->shape[d] == shape[d];
        if (!same && mismatches++ < 3)
            tl_fail(__FILE__, __LINE__, "%s tensor %d: ours %s (%d dims), torchvision %s (%d dims)",
                    backbone, index - 1, t->name, t->ndim, name, ndim);
    }
    fclose(f);
    CHECK(index == m.params.count, "%s: torchvision has %d tensors, we have %d", backbone, index,
          m.params.count);
    CHECK(torch_params == model_param_count(&m), "%s: %zu parameters, torchvision %zu", backbone,
          model_param_count(&m), torch_params);
    model_free(&m);
}

static void resnet18(void) {
    compare_backbone("resnet18");
}
static void resnet34(void) {
    compare_backbone("resnet34");
}
static void resnet50(void) {
    compare_backbone("resnet50");
}
static void resnet101(void) {
    compare_backbone("resnet101");
}
static void resnet152(void) {
    compare_backbone("resnet152");
}
static void vgg11_bn(void) {
    compare_backbone("vgg11_bn");
}
static void vgg13_bn(void) {
    compare_backbone("vgg13_bn");
}
static void vgg16_bn(void) {
    compare_backbone("vgg16_bn");
}
static void vgg19_bn(void) {
    compare_backbone("vgg19_bn");
}

/* The seed's layer groups (docs/experiment.md): the ResNet walk and VGG's classifier then
 * features.43 ... 0. */
static void layer_groups(void) {
    char err[256];
    model m;
    model_spec spec = {"vgg16_bn", 102, 1, 224, 0.5f};
    if (model_build(&m, &spec, err, sizeof err)) {
        tl_fail(__FILE__, __LINE__, "%s", err);
        return;
    }
    CHECK(m.n_groups == 45, "vgg16_bn: %d groups, expected 45", m.n_groups);
    CHECK(!strcmp(m.groups[0], "classifier") && !strcmp(m.groups[1], "features.43") &&
              !strcmp(m.groups[44], "features.0"),
          "vgg16_bn group order");
    int i = params_find(&m.params, "features.41.running_var");
    CHECK(i >= 0 && !strcmp(m.groups[m.params.tensors[i].group], "features.41"),
          "features.41.running_var in its group");
    model_free(&m);
    spec.backbone = "resnet152";
    if (model_build(&m, &spec, err, sizeof err)) {
        tl_fail(__FILE__, __LINE__, "%s", err);
        return;
    }
    const char *expect[] = {"fc", "layer4", "layer3", "layer2", "layer1", "bn1", "conv1"};
    CHECK(m.n_groups == 7, "resnet152: %d groups", m.n_groups);
    for (int g = 0; g < 7 && g < m.n_groups; g++)
        CHECK(!strcmp(m.groups[g], expect[g]), "resnet group %d: %s", g, m.groups[g]);
    i = params_find(&m.params, "layer3.35.bn3.weight");
    CHECK(i >= 0 && !strcmp(m.groups[m.params.tensors[i].group], "layer3"), "layer3.35 group");
    model_free(&m);
}

int main(void) {
    static const char *const names[] = {"resnet18",  "resnet34",    "resnet50", "resnet101",
                                        "resnet152", "vgg11_bn",    "vgg13_bn", "vgg16_bn",
                                        "vgg19_bn",  "layer_groups"};
    static const tl_case_fn fns[] = {resnet18, resnet34, resnet50, resnet101, resnet152,
                                     vgg11_bn, vgg13_bn, vgg16_bn, vgg19_bn,  layer_groups};
    return TL_RUN("architectures", names, fns);
}
