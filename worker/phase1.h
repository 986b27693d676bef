/* Shared feature extraction. Trials whose phase-1 settings are equal (trial_settings_phase1)
 * compute the same phase 1: the frozen backbone, the same head initialisation, the same draws
 * keyed by (seed, epoch, position); phase 2 starts a fresh Adam. So one phase-1 node, a folder
 * (trial_spec.phase1_dir), is computed once and every trial of the group starts its phase 2
 * from it, with the numbers it would have had computing phase 1 itself.
 *
 * The node is a phase-1-only trial in its folder: resume.safetensors there holds its progress
 * (so a stopped or killed node resumes, whoever runs it next) and, once epochs_done is the
 * phase-1 epoch count, the end-of-phase-1 state, with the epoch records as its history;
 * best.safetensors is the best of phase 1. It is complete when that checkpoint is at the end of
 * phase 1. Whoever computes it holds an flock on NODE/lock, so trials that need it at the same
 * time (a job array's tasks) wait and then use it: it is computed exactly once. */
#ifndef TLSWEEP_PHASE1_H
#define TLSWEEP_PHASE1_H

#include <stddef.h>

#include "worker/trial.h"

/* Creates the node's folder and takes its lock (blocking while another process holds it);
 * *fd is the lock's descriptor for phase1_unlock. -1 with the reason in err. */
int phase1_lock(const char *dir, int *fd, char *err, size_t errlen);
void phase1_unlock(int fd);

/* 1 when DIR/resume.safetensors is at the end of phase 1 (fe_epochs epochs, no position
 * inside an epoch), 0 when it is not or does not exist, -1 when it cannot be read (err). */
int phase1_complete(const char *dir, int fe_epochs, char *err, size_t errlen);

/* Writes DIR/best.safetensors (the best of phase 1) as TO_DIR/best.safetensors under
 * trial_name: the same tensors, the trial's own name in the metadata. */
int phase1_copy_best(const char *dir, const char *to_dir, const char *trial_name, char *err,
                     size_t errlen);

/* Appends r to *history ("EPOCH_FIELDS... NGROUPS LR... ;" per epoch, numbers as %.17g so they
 * read back exactly). -1 when out of memory. */
int phase1_history_add(char **history, const epoch_record *r);

/* Calls hooks->on_epoch with every record of history, in order, with the model's group names.
 * -1 (err) on a malformed history; *stop becomes 1 if a callback asked to stop. */
int phase1_history_replay(const char *history, const char *const *group_names, int n_groups,
                          const trial_hooks *hooks, int *stop, char *err, size_t errlen);

#endif
