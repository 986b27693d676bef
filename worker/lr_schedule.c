#include "worker/lr_schedule.h"

#include <math.h>
#include <string.h>

double lr_step(double base, int step_every, double gamma, int epoch) {
    double lr = base;
    for (int e = 1; e <= epoch; e++)
        if (step_every > 0 && e % step_every == 0) lr *= gamma;
    return lr;
}

void lr_feature_extraction(double *group_lr, int n_groups, const feature_extraction_phase *p,
                           int epoch) {
    double lr = lr_step(p->lr, p->step_every, p->gamma, epoch);
    for (int g = 0; g < n_groups; g++)
        group_lr[g] = lr;
}

void lr_fine_tuning(double *group_lr, int n_groups, const fine_tuning_phase *p, int epoch) {
    for (int k = 0; k < n_groups; k++) {
        double base = p->lr;
        if (p->decay == LAYER_DECAY_LINEAR && n_groups > 1)
            base = p->lr + (p->lowest_lr - p->lr) / (n_groups - 1) * k;
        else if (p->decay == LAYER_DECAY_EXPONENTIAL)
            base = p->lr / pow(p->factor, k);
        group_lr[k] = lr_step(base, p->step_every, p->gamma, epoch);
    }
}

const char *const lr_schedule_presets[] = {"exp-decay-3", "linear-decay", NULL};

int lr_schedule_preset(const char *name, feature_extraction_phase *fe, fine_tuning_phase *ft) {
    const feature_extraction_phase seed_fe = {
        .epochs = 16, .lr = 1e-3, .step_every = 6, .gamma = 0.3, .trainable = "", .bn_train = 1};
    /* both presets keep factor and lowest_lr, so a sweep can switch the decay alone */
    fine_tuning_phase seed_ft = {.epochs = 8,
                                 .lr = 1e-4,
                                 .factor = 3,
                                 .lowest_lr = 1e-7,
                                 .step_every = 2,
                                 .gamma = 0.7,
                                 .default_lr = 1e-8};
    if (!strcmp(name, "exp-decay-3"))
        seed_ft.decay = LAYER_DECAY_EXPONENTIAL;
    else if (!strcmp(name, "linear-decay"))
        seed_ft.decay = LAYER_DECAY_LINEAR;
    else
        return -1;
    *fe = seed_fe;
    *ft = seed_ft;
    return 0;
}
