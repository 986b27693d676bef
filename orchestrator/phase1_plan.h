/* Shared feature extraction in the trial table. Trials whose phase-1 settings are equal
 * (trial_settings_phase1) compute the same phase 1 (worker/phase1.h says why exactly): one of
 * them computes it as the phase-1 node TRIALS/NAME/phase1 of its folder, and the others start
 * their phase 2 from that node. Who computes a trial's phase 1 is its row.phase1_trial (an id,
 * its own unless shared), which the results file keeps, so a resumed sweep keeps its lineage. */
#ifndef TLSWEEP_PHASE1_PLAN_H
#define TLSWEEP_PHASE1_PLAN_H

#include "orchestrator/sweep.h"
#include "orchestrator/trials.h"

/* Chooses the lineage of the trials marked in `fresh` (NULL: every trial) and keeps the others'
 * row.phase1_trial (a resumed file's). A fresh trial joins a group member that computes its
 * own phase 1 and is not fresh, when there is one; else the group's fresh trial with the longest
 * phase 2 computes it (the first in grid order among equals). share = 0 (the sweep's
 * share_phase1: false, or a file without lineage columns): fresh trials compute their own.
 * With the sweep's ranks_per_trial above 1 nothing is shared: every trial not done computes
 * its own phase 1 (the group trainer cannot use a shared node yet).
 * Then sets every trial's phase1_from, phase1_node, estimated_cost (what it computes) and
 * priority (the longest path from it: a computer's phase 1 and the longest phase 2 after it). */
void phase1_plan(trial_table *t, const sweep *s, const unsigned char *fresh, int share);

/* 1 when the trial may start: it computes its own phase 1, or its computer has its phase-1
 * epochs in the file or is done. (A computer that fails for good before that fails the trials
 * waiting on it: root.c.) */
int phase1_ready(const trial_table *t, int index);

/* Epochs the table computes as planned (*with) and with every trial computing its own phase 1
 * (*without), by phase. */
void phase1_epochs(const trial_table *t, long with[2], long without[2]);

#endif
