/* A trial's checkpoints in its directory, both .safetensors with torchvision's tensor names:
 * best.safetensors (the weights of the best validation accuracy so far; loads into torchvision)
 * and resume.safetensors (weights, Adam moments "adam.m.NAME"/"adam.v.NAME", and the progress
 * in the metadata), rewritten atomically at every epoch end. */
#ifndef TLSWEEP_CHECKPOINT_H
#define TLSWEEP_CHECKPOINT_H

#include <stddef.h>

#include "kernels/kernels.h"
#include "worker/models/model.h"

typedef struct {
    int epochs_done;
    double best_val_acc;
    int best_epoch;
    double val_acc_end_of_feature_extraction;
} trial_progress;

int checkpoint_write_best(model *m, kn_ctx *ctx, const char *dir, const char *trial_name,
                          const trial_progress *p, char *err, size_t errlen);
int checkpoint_write_resume(model *m, kn_ctx *ctx, const char *dir, const trial_progress *p,
                            char *err, size_t errlen);
/* Restores DIR/resume.safetensors into the bound model: 1 when resumed, 0 when there is no
 * checkpoint, -1 (with a message naming the file) when it cannot be used. */
int checkpoint_resume(model *m, kn_ctx *ctx, const char *dir, trial_progress *p, char *err,
                      size_t errlen);

#endif
