/* The results file of `tlsweep run`, created or resumed (run_results.h). */
#include "orchestrator/run_results.h"

#include <stdio.h>

#include "orchestrator/ranks.h"
#include "orchestrator/resume.h"

int run_results_open(const run_options *o, const sweep *s, trial_table *t,
                     const worker_slot *workers, const farm_options *f, const char *output,
                     results_h5 **h5) {
    char err[8192], hosts[1024];
    ranks_hosts(workers, f->size, f->worker.host, hosts, sizeof hosts);
    const resume_writer writer = {.host = f->worker.host,
                                  .hosts = hosts,
                                  .ranks = f->size,
                                  .simulated = o->simulate,
                                  .extend = o->extend};
    int kept = 0;
    if (resume_start(output, f->worker.trials_dir, s, t, &writer, h5, &kept, err, sizeof err)) {
        fprintf(stderr, "tlsweep run: %s\n", err);
        return -1;
    }
    if (kept >= 0) printf("resuming %s: %d of %d trials already done\n", output, kept, t->count);
    return 0;
}
