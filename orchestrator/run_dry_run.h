/* `tlsweep run --dry-run`: what a run of the sweep would do, printed by rank 0 after the sweep
 * and every input it reads were checked: the trials with their estimated costs, who computes
 * whose shared phase 1, the epochs that makes, and how ranks_per_trial would group the ranks. */
#ifndef TLSWEEP_RUN_DRY_RUN_H
#define TLSWEEP_RUN_DRY_RUN_H

#include "orchestrator/grid.h"
#include "orchestrator/run_options.h"

/* The listing to stdout, for a run of `size` ranks. 0 listed, else the exit status (4: the
 * trial table could not be built, reported). */
int run_dry_run(const run_options *o, const sweep *s, const trial_list *trials, int size);

#endif
