/* Longest-estimated-cost-first dynamic queue. */
#include <string.h>

#include "orchestrator/phase1_plan.h"
#include "orchestrator/schedule.h"

/* Forward GFLOPs at 224x224 and full width (torchvision's networks, multiply-adds). */
static const struct {
    const char *backbone;
    double gflops;
} backbone_gflops[] = {
    {"resnet18", 1.82},  {"resnet34", 3.67},   {"resnet50", 4.11},
    {"resnet101", 7.83}, {"resnet152", 11.56}, {"vgg11_bn", 7.63},
    {"vgg13_bn", 11.34}, {"vgg16_bn", 15.5},   {"vgg19_bn", 19.67},
};

static double gflops_of(const trial_spec *spec) {
    double g = 4.0; /* an unknown backbone costs like a mid-size one */
    for (size_t i = 0; i < sizeof backbone_gflops / sizeof backbone_gflops[0]; i++)
        if (!strcmp(backbone_gflops[i].backbone, spec->backbone)) g = backbone_gflops[i].gflops;
    double side = spec->crop > 0 ? spec->crop / 224.0 : 1.0;
    double width = spec->width > 0 ? spec->width : 1;
    /* convolutions scale with pixels and with channels in times channels out */
    return g * side * side / (width * width);
}

double schedule_epoch_cost(const trial_spec *spec, int phase) {
    /* Phase 1 runs the frozen backbone forward only (and the head); phase 2 also backward. */
    return gflops_of(spec) * (phase == 1 ? 1.0 : 3.0);
}

double schedule_estimate_cost(const trial_spec *spec) {
    return spec->feature_extraction.epochs * schedule_epoch_cost(spec, 1) +
           spec->fine_tuning.epochs * schedule_epoch_cost(spec, 2);
}

int schedule_next(const trial_table *t, int rank) {
    int best = -1, best_elsewhere = -1;
    for (int i = 0; i < t->count; i++) {
        const trial_entry *e = &t->items[i];
        if (e->state != TS_PENDING || !phase1_ready(t, i)) continue;
        if (best < 0 || e->priority > t->items[best].priority) best = i;
        if (e->last_failed_rank != rank &&
            (best_elsewhere < 0 || e->priority > t->items[best_elsewhere].priority))
            best_elsewhere = i;
    }
    return best_elsewhere >= 0 ? best_elsewhere : best;
}
