/* A trial's checkpoints in its directory, both .safetensors with torchvision's tensor names:
 * best.safetensors (the weights of the best validation accuracy so far; loads into torchvision)
 * and resume.safetensors (weights, Adam moments "adam.m.NAME"/"adam.v.NAME", and the progress
 * in the metadata), rewritten atomically at every epoch end and when a stop comes inside an
 * epoch. Such a stop happens at a training-batch boundary, and the metadata then also holds the
 * position in epoch epochs_done + 1 (epoch_batches_done, epoch_loss_sum, epoch_correct,
 * epoch_images, epoch_seconds, epoch_data_wait_s), so the resume continues that epoch at its
 * next batch with the running sums an uninterrupted epoch would have; a checkpoint without
 * these keys (written at an epoch end) is at position 0. The metadata also holds the trial's
 * settings (worker/trial_settings.h) as "setting.KEY" entries, checked on resume, and, in a
 * phase-1 node (worker/phase1.h), the epoch records so far ("history"). */
#ifndef TLSWEEP_CHECKPOINT_H
#define TLSWEEP_CHECKPOINT_H

#include <stddef.h>

#include "kernels/kernels.h"
#include "worker/models/model.h"
#include "worker/trial_settings.h"

/* Running sums over an epoch's batches. */
typedef struct {
    double loss_sum; /* per-image losses, summed */
    long correct, images;
    double data_wait_s; /* seconds the trainer waited for the loader's batches */
} epoch_totals;

typedef struct {
    int epochs_done;
    double best_val_acc;
    int best_epoch;
    double val_acc_end_of_feature_extraction;
    /* Inside epoch epochs_done + 1 (all 0 at an epoch end): its training batches done, their
     * totals and the seconds it has run; its validation has not started. */
    int batches_done;
    epoch_totals train_so_far;
    double seconds_so_far;
    /* A phase-1 node's epochs 1..epochs_done as recorded (worker/phase1.h's text; malloc'd),
     * which it hands to the trials that start from it; NULL in a trial's own checkpoint. */
    char *history;
} trial_progress;

int checkpoint_write_best(model *m, kn_ctx *ctx, const char *dir, const char *trial_name,
                          const trial_progress *p, char *err, size_t errlen);
int checkpoint_write_resume(model *m, kn_ctx *ctx, const char *dir, const trial_progress *p,
                            const trial_settings *settings, char *err, size_t errlen);
/* Restores DIR/resume.safetensors into the bound model: 1 when resumed, 0 when there is no
 * checkpoint, -1 (with a message naming the file) when it cannot be used: unreadable, or
 * written by a trial whose settings differ from these (every difference listed; keys the
 * checkpoint has beyond these are not compared). p->history is replaced. */
int checkpoint_resume(model *m, kn_ctx *ctx, const char *dir, const trial_settings *settings,
                      trial_progress *p, char *err, size_t errlen);

#endif
