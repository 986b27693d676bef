/* Dynamic scheduling: a free worker gets the pending trial with the longest path ahead (its
 * priority: its estimated cost, and for the computer of a shared phase 1 the longest phase 2
 * waiting on it), so the long ones do not end up last and stretch the makespan. A trial whose
 * shared phase 1 is not computed yet waits (phase1_plan.h). */
#ifndef TLSWEEP_SCHEDULE_H
#define TLSWEEP_SCHEDULE_H

#include "orchestrator/trials.h"
#include "worker/trial.h"

/* Relative cost of a trial: forward GFLOPs of the backbone at its crop and width, phase-1
 * epochs at forward cost, phase-2 epochs at forward + backward (3x). Units: GFLOP-epochs per
 * image. */
double schedule_estimate_cost(const trial_spec *spec);
/* Cost of one epoch of the given phase (1 or 2). */
double schedule_epoch_cost(const trial_spec *spec, int phase);

/* The pending trial a free rank should run next (index), or -1 when none is ready. Among
 * equal choices a retry goes to a rank other than the one it failed on, when there is one. */
int schedule_next(const trial_table *t, int rank);

#endif
