/* The end of `tlsweep run`: what happened (counts, the best trials, wall time, where the root's
 * time went) and where everything is (the results file, the checkpoints, how to draw the
 * figures, the line that opens the file in pandas). Printed also with -q: it is the run's
 * answer, not progress. */
#ifndef TLSWEEP_SUMMARY_H
#define TLSWEEP_SUMMARY_H

#include <stdio.h>

#include "orchestrator/trials.h"

typedef struct {
    const char *output;     /* the results file */
    const char *trials_dir; /* NAME.h5.d: each trial's directory */
    double seconds;         /* the run's wall time */
    double h5_seconds;      /* of which writing the results file */
    long messages;          /* messages the root handled ... */
    double handle_seconds;  /* ... and the time it took */
    int resumable;          /* stopped before the end: rerun the same command */
} run_summary;

/* The summary to out; each failed trial with its reason to err. */
void summary_print(FILE *out, FILE *err, const trial_table *t, const run_summary *s);

#endif
