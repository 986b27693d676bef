/* TEMPORARY (delete at integration, when worker/trial.c lands): stands in for the trial runner
 * of issue 4 so this branch links. trial_run fails every trial with a clear reason;
 * trial_spec_defaults fills SEED.md's defaults. Only `tlsweep run --simulate` trains nothing
 * and so works without the real runner. */
#include <stdio.h>
#include <string.h>

#include "worker/trial.h"

int trial_run(const trial_spec *spec, epoch_callback on_epoch, void *user, trial_summary *summary,
              char *err, size_t errlen) {
    (void)on_epoch;
    (void)user;
    memset(summary, 0, sizeof *summary);
    snprintf(err, errlen, "trial %s: trial runner not built yet", spec->name);
    return TRIAL_FAILED;
}

void trial_spec_defaults(trial_spec *spec) {
    memset(spec, 0, sizeof *spec);
    spec->width = 1;
    snprintf(spec->weights, sizeof spec->weights, "torchvision");
    spec->dropout = 0.5;
    snprintf(spec->train_splits[0], sizeof spec->train_splits[0], "tstid");
    spec->n_train_splits = 1;
    snprintf(spec->val_splits[0], sizeof spec->val_splits[0], "trnid");
    snprintf(spec->val_splits[1], sizeof spec->val_splits[1], "valid");
    spec->n_val_splits = 2;
    spec->resize = 256;
    spec->crop = 224;
    spec->shuffle = 1;
    spec->hflip = 0.5;
    spec->brightness = 0.3;
    spec->contrast = 0.3;
    spec->rotate_deg = 30;
    spec->shear_deg = 20;
    spec->batch_size = 16;
    spec->seed = 0;
    snprintf(spec->precision, sizeof spec->precision, "fp32");
    spec->feature_extraction = (feature_extraction_phase){
        .epochs = 16, .lr = 1e-3, .step_every = 6, .gamma = 0.3, .trainable = "", .bn_train = 1};
    spec->fine_tuning = (fine_tuning_phase){.epochs = 8,
                                            .lr = 1e-4,
                                            .decay = LAYER_DECAY_EXPONENTIAL,
                                            .factor = 3,
                                            .lowest_lr = 1e-7,
                                            .step_every = 2,
                                            .gamma = 0.7,
                                            .default_lr = 1e-8};
    spec->threads = 0;
    spec->device = -1;
}
