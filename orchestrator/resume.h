/* Resume: `tlsweep run` on a sweep whose results file exists continues it. done trials are
 * kept; running, preempted, failed and pending ones run (from their last checkpoint in
 * NAME.h5.d/TRIAL/). The tables are repaired first so every (trial, epoch) is in /curves once,
 * and the file's consistency flags are cleared only after the writer lock shows that no
 * writer is alive. A changed sweep file is refused with what changed, unless --extend and the
 * change only adds grid points. */
#ifndef TLSWEEP_RESUME_H
#define TLSWEEP_RESUME_H

#include <stddef.h>

#include "orchestrator/results_h5.h"
#include "orchestrator/trials.h"

/* trials_dir/writer.lock holds "HOST PID"; a live writer on this host, or a lock touched in the
 * last RESUME_LOCK_STALE seconds from another host, refuses. */
#define RESUME_LOCK_STALE 60.0
int resume_lock(const char *trials_dir, const char *results_path, const char *host, char *err,
                size_t errlen);
void resume_touch_lock(const char *trials_dir);
void resume_unlock(const char *trials_dir);

/* Opens path, checks the sweep, repairs /curves and /lr, loads the trials' states into t
 * (built from s), appends new trials with extend, and starts SWMR. Returns 0 with *out, or -1
 * with err (which may hold several lines). *resumed counts trials that were not done. */
int resume_open(const char *path, const sweep *s, trial_table *t, int extend, results_h5 **out,
                int *kept_done, char *err, size_t errlen);

#endif
