/* `tlsweep run --simulate`: a documented test and benchmark mode, never the default. A
 * simulated trial trains nothing: it sleeps for its scaled estimated cost per epoch and reports
 * plausible synthetic epoch records with the model's real layer-group names and the schedule's
 * real learning rates. Its epoch sleeps in "batches" of at most SIMULATE_BATCH_SECONDS, between
 * which it polls should_stop as a real trial does. It keeps a small resume checkpoint in out_dir
 * like a real trial (with the part of the epoch slept when stopped inside one), and
 * checks a weights file's format (so a broken file fails the trial as a real one would).
 * A group trial (spec->group) sleeps on every rank of the group, which stop together at the
 * same batch; only the voice writes the checkpoint.
 * The results file says mode=simulated. */
#ifndef TLSWEEP_SIMULATE_H
#define TLSWEEP_SIMULATE_H

#include <stddef.h>

#include "worker/trial.h"

#define SIMULATE_MAX_GROUPS 64
#define SIMULATE_BATCH_SECONDS 0.05

/* The model's layer groups, output first: ResNet fc, layer4 ... conv1; VGG classifier,
 * features.(n-1) ... features.0. Returns the count, 0 for an unknown backbone. */
int simulate_layer_groups(const char *backbone, char names[][32], int max);

/* The lr of every group in an epoch (1-based over both phases), as the schedule sets it. */
void simulate_group_lr(const trial_spec *spec, int epoch, int n_groups, double *lr);

/* Same contract as trial_run; seconds_per_cost turns schedule_epoch_cost into sleep time. */
int simulate_trial(const trial_spec *spec, double seconds_per_cost, const trial_hooks *hooks,
                   trial_summary *summary, char *err, size_t errlen);

#endif
