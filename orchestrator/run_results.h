/* The root's results file for `tlsweep run`: created, or resumed when it exists (resume.h),
 * with the run's writer (host, hosts, ranks, --simulate, --extend) recorded in it. */
#ifndef TLSWEEP_RUN_RESULTS_H
#define TLSWEEP_RUN_RESULTS_H

#include "orchestrator/farm.h"
#include "orchestrator/run_options.h"

/* Creates or resumes output (trials' directory f->worker.trials_dir) into *h5, says how many
 * trials a resumed file has done already. 0 ok, -1 reported. */
int run_results_open(const run_options *o, const sweep *s, trial_table *t,
                     const worker_slot *workers, const farm_options *f, const char *output,
                     results_h5 **h5);

#endif
