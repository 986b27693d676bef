/* Progress on rank 0's terminal: one plain line per event (assign, epoch, done, failure), and
 * on a terminal also a live table of the running trials redrawn below them. */
#ifndef TLSWEEP_PROGRESS_H
#define TLSWEEP_PROGRESS_H

#include <stdio.h>

#include "orchestrator/trials.h"

typedef struct progress progress;

/* quiet: print nothing (the benchmark). */
progress *progress_create(FILE *out, int quiet, double start_time);
void progress_free(progress *p);
/* A line about one event, prefixed with the elapsed time and the counts. */
void progress_event(progress *p, const trial_table *t, double now, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Redraws the live table (terminal only, at most twice a second). */
void progress_tick(progress *p, const trial_table *t, double now);
/* Seconds left for the whole sweep, from the cost done so far per second; -1 if unknown. */
double progress_eta(const trial_table *t, double elapsed);

#endif
