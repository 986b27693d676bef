/* The grid: the cartesian product of a sweep's axes (in file order, the last axis fastest),
 * less the excluded combinations; each point is one trial with a stable, readable name. */
#ifndef TLSWEEP_GRID_H
#define TLSWEEP_GRID_H

#include <stddef.h>

#include "orchestrator/sweep.h"

typedef struct {
    char name[TRIAL_NAME_MAX]; /* "resnet50__exp-decay-3__seed=1" */
    int value[SWEEP_MAX_AXES]; /* per axis: index into the axis's values */
} grid_point;

typedef struct {
    grid_point *items;
    int count;
} trial_list;

/* Expands s into trials; -1 with err when the grid is too large or names collide. */
int grid_expand(const sweep *s, trial_list *out, char *err, size_t errlen);
void grid_trials_free(trial_list *list);

/* Builds the full trial_spec of one grid point (everything except out_dir, threads, device). */
void grid_trial_spec(const sweep *s, const grid_point *p, trial_spec *spec);

/* "train.seed=1;train.batch_size=16": the point's values of the axes other than backbone and
 * schedule, for the results table. */
void grid_values_text(const sweep *s, const grid_point *p, char *out, size_t len);

/* The schedule axis's value of a point (its name). */
const char *grid_schedule(const sweep *s, const grid_point *p);
const char *grid_backbone(const sweep *s, const grid_point *p);

#endif
