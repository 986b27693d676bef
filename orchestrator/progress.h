/* Progress on rank 0's output: one plain line per event (assign, epoch, done, failure); on a
 * terminal also a live table of the running trials redrawn below them; elsewhere (a file,
 * `| tee`, a Slurm log) no cursor codes, and a one-line summary every PROGRESS_SUMMARY_EVERY
 * seconds instead of the table. */
#ifndef TLSWEEP_PROGRESS_H
#define TLSWEEP_PROGRESS_H

#include <stdio.h>

#include "orchestrator/trials.h"

typedef struct progress progress;

#define PROGRESS_SUMMARY_EVERY 30.0 /* seconds */

/* quiet: print nothing (-q, the benchmark). */
progress *progress_create(FILE *out, int quiet, double start_time);
void progress_free(progress *p);
/* A line about one event, prefixed with the elapsed time and the counts. */
void progress_event(progress *p, const trial_table *t, double now, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Redraws the live table (a terminal, at most twice a second), or prints the one-line summary
 * when it is due (not a terminal). */
void progress_tick(progress *p, const trial_table *t, double now);
/* Seconds left for the whole sweep, from the cost done so far per second; -1 if unknown. */
double progress_eta(const trial_table *t, double elapsed);

#endif
