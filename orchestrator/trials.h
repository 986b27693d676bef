/* The trial table: one entry per grid point with its explicit life cycle
 *   pending -> running -> done | failed | preempted;  failed -> pending (while attempts
 *   remain);  preempted -> pending;  pending -> failed (the shared phase 1 it was to start
 *   from failed for good)
 * An illegal transition is a bug: trial_set_state refuses it and says which. */
#ifndef TLSWEEP_TRIALS_H
#define TLSWEEP_TRIALS_H

#include <stddef.h>

#include "orchestrator/grid.h"
#include "orchestrator/results_h5.h"

typedef enum { TS_PENDING = 0, TS_RUNNING, TS_DONE, TS_FAILED, TS_PREEMPTED, TS_COUNT } trial_state;

typedef struct {
    grid_point point;
    trial_state state;
    results_trial_row row; /* what /trials holds for it; row.id is its row in the file */
    char grid_values[SWEEP_MAX_AXES][RESULTS_VALUE_MAX];
    int total_epochs, phase1_epochs;
    unsigned char *epoch_written;     /* [total_epochs + 1]: epochs already in /curves */
    int attempts_this_run;            /* retries are counted per run; row.attempts over all runs */
    int last_failed_rank;             /* a retry prefers another rank */
    trial_failure failure;            /* the last failure's kind: retried only if training */
    int current_epoch, current_phase; /* last epoch heard of while running */
    double last_epoch_seconds;
    /* Shared phase 1 (phase1_plan.h): phase1_from is the index of the trial that computes
     * this one's phase 1 (-1: it computes its own); phase1_node says whether that phase 1 is
     * a shared node (this trial's or phase1_from's). priority orders the queue: the longest
     * path from this trial on. */
    int phase1_from, phase1_node;
    double priority;
} trial_entry;

typedef struct {
    trial_entry *items; /* in grid order: the index is what ASSIGN names */
    int count;
    int max_attempts; /* retries + 1 */
} trial_table;

const char *trial_state_name(trial_state s);
int trial_state_parse(const char *name, trial_state *out);

/* One entry per grid point, all pending, ids = grid order, costs estimated, phase 1 shared as
 * the sweep's share_phase1 says (phase1_plan). */
int trial_table_build(trial_table *t, const sweep *s, const trial_list *trials, char *err,
                      size_t errlen);
void trial_table_free(trial_table *t);
int trial_table_find(const trial_table *t, const char *name); /* index or -1 */

/* Moves a trial to a new state; -1 (with the reason in err) for an illegal transition or a
 * retry without attempts left. Keeps row.status in step. */
int trial_set_state(trial_table *t, int index, trial_state to, char *err, size_t errlen);

/* Counts per state. */
void trial_table_counts(const trial_table *t, int counts[TS_COUNT]);

#endif
