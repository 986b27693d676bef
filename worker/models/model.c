#include "worker/models/model.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "worker/models/builder.h"

const char *const model_backbones[] = {"resnet18", "resnet34", "resnet50", "resnet101", "resnet152",
                                       "vgg11_bn", "vgg13_bn", "vgg16_bn", "vgg19_bn",  NULL};

static int known_backbone(const char *name) {
    for (int i = 0; model_backbones[i]; i++)
        if (!strcmp(name, model_backbones[i])) return 1;
    return 0;
}

int model_build(model *m, const model_spec *spec, char *err, size_t errlen) {
    memset(m, 0, sizeof *m);
    if (!spec->backbone || !known_backbone(spec->backbone)) {
        size_t len = (size_t)snprintf(
            err, errlen, "unknown backbone '%s' (known:", spec->backbone ? spec->backbone : "");
        for (int i = 0; model_backbones[i] && len < errlen; i++)
            len += (size_t)snprintf(err + len, errlen - len, " %s", model_backbones[i]);
        if (len < errlen) snprintf(err + len, errlen - len, ")");
        return -1;
    }
    if (spec->num_classes < 1 || spec->width < 1 || spec->image_size < 1 || spec->dropout < 0 ||
        spec->dropout >= 1) {
        snprintf(err, errlen,
                 "%s: impossible model settings (classes %d, width %d, image size %d, "
                 "dropout %g)",
                 spec->backbone, spec->num_classes, spec->width, spec->image_size,
                 (double)spec->dropout);
        return -1;
    }
    snprintf(m->backbone, sizeof m->backbone, "%s", spec->backbone);
    m->spec = *spec;
    m->spec.backbone = m->backbone;

    model_builder b = {m, 0, err, errlen};
    m->slots = malloc(32 * sizeof *m->slots);
    if (!m->slots) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    m->cap_slots = 32;
    m->slots[0] = (slot_shape){3, spec->image_size, spec->image_size};
    m->n_slots = 1;

    int rc =
        strncmp(spec->backbone, "vgg", 3) ? build_resnet(&b, &m->spec) : build_vgg(&b, &m->spec);
    if (rc || b.failed) {
        model_free(m);
        return -1;
    }
    params_finalize(&m->params);
    return 0;
}

void model_free(model *m) {
    model_unbind(m);
    free(m->layers);
    free(m->slots);
    params_free(&m->params);
    for (int g = 0; g < m->n_groups; g++)
        free(m->groups[g]);
    free(m->groups);
    memset(m, 0, sizeof *m);
}

size_t model_param_count(const model *m) {
    return m->params.param_count;
}

int model_group_index(const model *m, const char *name) {
    for (int g = 0; g < m->n_groups; g++)
        if (!strcmp(m->groups[g], name)) return g;
    return -1;
}
