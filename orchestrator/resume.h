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

/* The folder beside a results file FILE: FILE.d (NAME.h5.d), for the writer lock and, under
 * `tlsweep run`, each trial's directory NAME.h5.d/TRIAL/. */
void resume_trials_dir(const char *results_path, char *dir, size_t len);

/* trials_dir/writer.lock holds "HOST PID"; a live writer on this host, or a lock touched in the
 * last RESUME_LOCK_STALE seconds from another host, refuses. */
#define RESUME_LOCK_STALE 60.0
int resume_lock(const char *trials_dir, const char *results_path, const char *host, char *err,
                size_t errlen);
void resume_touch_lock(const char *trials_dir);
/* 1 while a writer other than this process holds trials_dir's lock by the rules above: a
 * reader asks it to tell a running trial from one whose writer died. */
int resume_writer_alive(const char *trials_dir, const char *host);
void resume_unlock(const char *trials_dir);

/* Opens path, checks the sweep, repairs /curves and /lr, loads the trials' states into t
 * (built from s), appends new trials with extend, and starts SWMR. The changes are made in a
 * working copy that replaces path when they are all done (results_h5_open): a kill during a
 * resume leaves the file as it was. Returns 0 with *out, or -1 with err (which may hold several
 * lines; path is then unchanged). *kept_done counts the done trials it keeps. */
int resume_open(const char *path, const sweep *s, trial_table *t, int extend, results_h5 **out,
                int *kept_done, char *err, size_t errlen);

/* Creates path for sweep s with meta's attributes and t's rows as they are (ids, states, grid
 * values), then starts SWMR: `tlsweep run` makes a new sweep file with it, merge its output. */
int resume_create(const char *path, const sweep *s, const trial_table *t, const results_meta *meta,
                  results_h5 **out, char *err, size_t errlen);

/* Who starts writing a results file: `tlsweep run` (the root) or `tlsweep train --output`. */
typedef struct {
    const char *host;  /* this process's host: the writer lock names it */
    const char *hosts; /* a new file's hosts attribute */
    int ranks;         /* a new file's ranks attribute */
    int simulated;     /* a new file's mode */
    int extend;        /* resume_open's extend */
} resume_writer;

/* The start of every writer: makes path's folder and lock_dir, takes lock_dir's writer lock,
 * then resumes path when it exists (*kept_done >= 0: its done trials) or creates it with every
 * trial of t pending (*kept_done = -1). On failure nothing is held and err says why. */
int resume_start(const char *path, const char *lock_dir, const sweep *s, trial_table *t,
                 const resume_writer *w, results_h5 **out, int *kept_done, char *err,
                 size_t errlen);

#endif
