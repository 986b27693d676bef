/* Rank 0 of `tlsweep run` with workers, or the one rank of -np 1, once the sweep is checked and
 * every rank placed: the workers' HELLOs, the start checks and groups (run_start.h), the results
 * file, START, the start's lines (the run, each rank's device, the groups), the farm, and at
 * the end the summary and the run's exit status. */
#ifndef TLSWEEP_RUN_ROOT_H
#define TLSWEEP_RUN_ROOT_H

#include "orchestrator/farm.h"
#include "orchestrator/run_options.h"

/* Returns the exit status: 0 all done, 1 some failed, 2 refused before the start (the workers
 * told to leave), 3 stopped, 4 an internal error; negative (-3, -4) when MPI must abort since a
 * rank may be lost (the results file is closed by then). */
int run_root(const run_options *o, const sweep *s, const trial_list *trials, farm_options *f);

#endif
