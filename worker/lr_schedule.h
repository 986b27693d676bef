/* Learning rates of every layer group for one epoch of a phase (docs/experiment.md): StepLR on top
 * of the phase's base rates; in fine-tuning the base rate falls from the output-most group to the
 * input-most one, linearly or exponentially. */
#ifndef TLSWEEP_LR_SCHEDULE_H
#define TLSWEEP_LR_SCHEDULE_H

#include "worker/trial.h"

/* StepLR: base * gamma^floor(epoch / step_every), multiplied step by step as PyTorch's
 * chainable StepLR does (epoch is 0-based within the phase). */
double lr_step(double base, int step_every, double gamma, int epoch);

/* Feature extraction: every group at the phase's lr (only the trainable ones use it). */
void lr_feature_extraction(double *group_lr, int n_groups, const feature_extraction_phase *p,
                           int epoch);

/* Fine-tuning: group k of n (0 = output-most) starts at
 *   none:        lr
 *   linear:      lr + (lowest_lr - lr) * k / (n - 1)   (the seed's VGG rule for n = 45)
 *   exponential: lr / factor^k                           (the seed's ResNet rule)
 * and follows StepLR from there. */
void lr_fine_tuning(double *group_lr, int n_groups, const fine_tuning_phase *p, int epoch);

/* The seed's two schedules by name: "exp-decay-3" (the ResNets') and "linear-decay" (VGG's);
 * both share the feature-extraction phase. Returns -1 for any other name. */
int lr_schedule_preset(const char *name, feature_extraction_phase *fe, fine_tuning_phase *ft);
extern const char *const lr_schedule_presets[]; /* NULL-terminated */

#endif
