/* `tlsweep models`: the exploratory model analysis of every backbone (docs/experiment.md). */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "worker/cli.h"
#include "worker/commands.h"
#include "worker/models/model.h"
#include "worker/trial.h"

static void usage(FILE *out) {
    fprintf(out,
            "usage: tlsweep models [--classes N] [--width W] [--image-size S] [--backbone NAME]\n"
            "                      [--groups] [--tensors]\n"
            "Every backbone with its parameters (torchvision's count for the new head), the\n"
            "parameters trained in feature extraction (the head), the head and the layer groups\n"
            "from the output backwards.\n"
            "  --classes N      classes of the new head (default 102)\n"
            "  --width W        channel divisor (default 1: torchvision's network)\n"
            "  --image-size S   input size (default 224)\n"
            "  --backbone NAME  only this backbone\n"
            "  --groups         each layer group with its parameter count\n"
            "  --tensors        every tensor: state_dict name, shape, group\n");
}

/* 134686886 -> "134,686,886" */
static const char *grouped(size_t value, char *buf, size_t cap) {
    char digits[32];
    int n = snprintf(digits, sizeof digits, "%zu", value), out = 0;
    for (int i = 0; i < n && out + 2 < (int)cap; i++) {
        if (i && (n - i) % 3 == 0) buf[out++] = ',';
        buf[out++] = digits[i];
    }
    buf[out] = 0;
    return buf;
}

static void print_groups(const model *m) {
    for (int g = 0; g < m->n_groups; g++) {
        size_t count = 0;
        int tensors = 0;
        for (int i = 0; i < m->params.count; i++) {
            const param_tensor *p = &m->params.tensors[i];
            if (p->group != g || p->is_buffer) continue;
            count += p->count;
            tensors++;
        }
        char buf[32];
        printf("    group %2d  %-14s %3d tensors %14s parameters\n", g, m->groups[g], tensors,
               grouped(count, buf, sizeof buf));
    }
}

static void print_tensors(const model *m) {
    for (int i = 0; i < m->params.count; i++) {
        const param_tensor *p = &m->params.tensors[i];
        char shape[64];
        int len = snprintf(shape, sizeof shape, "(");
        for (int d = 0; d < p->ndim; d++)
            len += snprintf(shape + len, sizeof shape - (size_t)len, d ? ", %lld" : "%lld",
                            (long long)p->shape[d]);
        snprintf(shape + len, sizeof shape - (size_t)len, ")");
        printf("    %-40s %-20s %-8s %s\n", p->name, shape, p->is_buffer ? "buffer" : "param",
               p->group >= 0 ? m->groups[p->group] : "-");
    }
}

static int describe(const model_spec *spec, int groups, int tensors) {
    char err[512];
    model m;
    if (model_build(&m, spec, err, sizeof err)) {
        fprintf(stderr, "tlsweep models: %s\n", err);
        return -1;
    }
    model_set_trainable(&m, m.head_prefix);
    const layer *head = &m.layers[m.n_layers - 1];
    char head_text[96], total[32], trainable[32];
    snprintf(head_text, sizeof head_text, "%.*s: Linear(%d, %d)", (int)strlen(m.head_prefix) - 1,
             m.head_prefix, m.slots[head->in].c, head->cfg.linear.out_features);
    printf("%-10s %14s %14s  %-32s %2d: %s, %s ... %s\n", m.backbone,
           grouped(model_param_count(&m), total, sizeof total),
           grouped(params_count_trainable(&m.params), trainable, sizeof trainable), head_text,
           m.n_groups, m.groups[0], m.groups[1], m.groups[m.n_groups - 1]);
    if (groups) print_groups(&m);
    if (tensors) print_tensors(&m);
    model_free(&m);
    return 0;
}

int cmd_models(int argc, char **argv) {
    static const struct option options[] = {
        {"classes", required_argument, NULL, 'c'},
        {"width", required_argument, NULL, 'w'},
        {"image-size", required_argument, NULL, 's'},
        {"backbone", required_argument, NULL, 'b'},
        {"groups", no_argument, NULL, 'g'},
        {"tensors", no_argument, NULL, 't'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    model_spec spec = {NULL, 102, 1, 224, 0.5f};
    const char *only = NULL;
    int groups = 0, tensors = 0, opt;
    long v = 0;
    optind = 1;
    while ((opt = getopt_long(argc, argv, "c:w:s:b:gth", options, NULL)) != -1) {
        switch (opt) {
        case 'c':
            if (cli_long("models", "classes", optarg, 1, 100000, &v, stderr)) return 2;
            spec.num_classes = (int)v;
            break;
        case 'w':
            if (cli_long("models", "width", optarg, 1, TRIAL_MAX_WIDTH, &v, stderr)) return 2;
            spec.width = (int)v;
            break;
        case 's':
            if (cli_long("models", "image-size", optarg, 1, 65536, &v, stderr)) return 2;
            spec.image_size = (int)v;
            break;
        case 'b':
            only = optarg;
            break;
        case 'g':
            groups = 1;
            break;
        case 't':
            tensors = 1;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "tlsweep models: unexpected argument '%s'\n", argv[optind]);
        return 2;
    }
    printf("%-10s %14s %14s  %-32s %s\n", "backbone", "parameters", "trained in FE", "new head",
           "layer groups (output first)");
    if (only) {
        spec.backbone = only;
        return describe(&spec, groups, tensors) ? 2 : 0;
    }
    for (int i = 0; model_backbones[i]; i++) {
        spec.backbone = model_backbones[i];
        if (describe(&spec, groups, tensors)) return 2;
    }
    return 0;
}
