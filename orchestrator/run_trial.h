/* A worker runs one trial through this one function: it builds the trial_spec from the sweep,
 * makes NAME.h5.d/TRIAL/, and calls trial_run (or, with --simulate, simulate_trial). The
 * outcome comes back as the DONE or FAILED message for the root. */
#ifndef TLSWEEP_RUN_TRIAL_H
#define TLSWEEP_RUN_TRIAL_H

#include "orchestrator/grid.h"
#include "orchestrator/protocol.h"

typedef struct {
    int simulate;
    double seconds_per_cost;         /* --simulate: sleep per unit of schedule_epoch_cost */
    char trials_dir[TRIAL_PATH_MAX]; /* NAME.h5.d */
    char trial_dir[TRIAL_PATH_MAX];  /* non-empty: the trial's directory instead of
                                        trials_dir/TRIAL (tlsweep train --out) */
    int threads, device;             /* threads: this rank's share of the node's cores */
    int placement_failed;            /* device_text says why this rank cannot train */
    char device_text[PROTOCOL_TEXT]; /* where it trains, in words (placement.h) */
    int threads_forced;              /* --threads was given: it beats the sweep's train.threads */
    int rank, local_rank;            /* local_rank: on its node */
    char host[64];
    const trial_group *group; /* the ranks this one trains each trial with; NULL: alone */
} worker_options;

/* The trial's directory: o->trial_dir when set, else o->trials_dir/NAME. -1 when it does not
 * fit len. */
int run_trial_dir(const worker_options *o, const char *name, char *dir, size_t len);

/* Runs the trial at grid index `index` (attempt as the root numbered it) and, when phase1_of is
 * not empty, from the shared phase-1 node in trial phase1_of's folder (worker/phase1.h; its
 * own when phase1_of is its name; never with o->trial_dir); every epoch goes to
 * hooks->on_epoch, which returns once the root has the epoch in the file, and only then does the
 * trainer write its resume checkpoint: a checkpoint is never ahead of the file, and an epoch
 * that was recorded but not checkpointed is trained again and its repeat dropped by the root.
 * *final becomes DONE (done or stopped) or FAILED with "rank R on HOST: reason" and the kind
 * of failure (a directory that cannot be made is a setup failure). With o->group the trial is
 * trained by the whole group (spec.group): only its voice makes the directory (the group
 * learns together when it cannot, and fails the trial together), and no phase 1 is shared
 * (phase1_of is ignored: the group trainer computes its own). A group rank that fails where
 * the group cannot learn it ends the job instead of returning (trial_run, group_abort). */
void run_trial(const sweep *s, const grid_point *p, int index, int attempt, const char *phase1_of,
               const worker_options *o, const trial_hooks *hooks, message *final);

#endif
