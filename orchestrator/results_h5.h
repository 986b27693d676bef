/* The results file (documented in results/SCHEMA.md, docs/architecture.md): root
 * provenance attributes and three chunked, extendible compound tables written by rank 0 in SWMR
 * mode, so notebooks can read while a sweep runs and a killed run leaves a readable file.
 *
 * Commit order per epoch: the /lr rows first, then the /curves row, each flushed; a /curves row
 * is what makes an epoch count (resume drops /lr rows without one). */
#ifndef TLSWEEP_RESULTS_H5_H
#define TLSWEEP_RESULTS_H5_H

#include <stddef.h>
#include <stdint.h>

#include "orchestrator/sweep.h"
#include "worker/epoch_fields.h"

/* The root attribute "schema": the version of results/SCHEMA.md a file follows. 2: /curves
 * has data_wait_s. 3: /trials has phase1_trial and /curves computed_by (shared phase 1).
 * Files of older schemas are read (a missing f64 reads as NaN, a missing lineage column as
 * the row's own trial) and resumed as they are: the columns they lack stay absent, and their
 * trials do not share phase 1. */
#define RESULTS_SCHEMA "tlsweep-results-3"
#define RESULTS_STATUS_MAX 12
#define RESULTS_HOST_MAX 64
#define RESULTS_ERROR_MAX 256
#define RESULTS_GRID_MAX 256
#define RESULTS_GROUP_MAX 32
#define RESULTS_VALUE_MAX 64

/* One row of /trials (fixed columns; one string column per extra grid axis follows). */
typedef struct {
    int32_t id; /* 0-based, the trial's grid order */
    char name[TRIAL_NAME_MAX];
    char backbone[32];
    char schedule[SWEEP_KEY_MAX];
    char grid[RESULTS_GRID_MAX]; /* "train.seed=1;data.crop=224" */
    char status[RESULTS_STATUS_MAX];
    int32_t attempts;
    int32_t rank;
    char host[RESULTS_HOST_MAX];
    int32_t device;
    int64_t params;
    double estimated_cost; /* of what it computes (a shared phase 1 counts for its computer) */
    int32_t phase1_trial;  /* the trial whose phase 1 its curves hold: its own id unless shared */
    double start_time, end_time; /* seconds since the epoch; 0 = not yet */
    double seconds;
    double val_acc_end_of_feature_extraction;
    double best_val_acc;
    int32_t best_epoch;
    int32_t epochs_done;
    char error[RESULTS_ERROR_MAX];
} results_trial_row;

typedef struct {
    int32_t trial_id;
    char trial[TRIAL_NAME_MAX];
    int32_t attempt;
    int32_t computed_by;             /* the trial that computed the epoch (phase1_trial's) */
    EPOCH_FIELDS(EPOCH_FIELD_MEMBER) /* the epoch record (worker/epoch_fields.h) */
    double time;                     /* when the root received it, seconds since the epoch */
} results_curve_row;

typedef struct {
    int32_t trial_id;
    char trial[TRIAL_NAME_MAX];
    int32_t epoch;
    int32_t phase;
    int32_t group_index; /* 0 = output-most */
    char group[RESULTS_GROUP_MAX];
    double lr;
} results_lr_row;

/* Root attributes written when the file is created. */
typedef struct {
    const char *tool_version, *git_revision, *compiler, *compiler_flags;
    const char *mpi_version, *onednn_version, *cuda_version, *cudnn_version, *nccl_version;
    const char *hdf5_version; /* NULL: the linked library's (merge keeps its inputs') */
    const char *sweep_name, *sweep_file, *sweep_text;
    const char *hosts;
    int ranks;
    int simulated;            /* --simulate: no training happened; every number is synthetic */
    const char *merged_from;  /* tlsweep merge: its input files, comma-separated; NULL: none */
    const char *image_caches; /* the image cache files the trials read; NULL: not recorded */
} results_meta;

typedef struct results_h5 results_h5;

/* Grid columns of /trials: the sweep's axes other than backbone and schedule. */
typedef struct {
    int count;
    char names[SWEEP_MAX_AXES][SWEEP_KEY_MAX];
} results_grid_columns;

/* Creates path (refusing to replace an existing file), writes the attributes and every trial
 * row (grid_values: count x columns->count strings), then enters SWMR write mode. The file is
 * built as PATH.creating and renamed into place (results_h5_replace), so path never exists
 * half-made. */
int results_h5_create(const char *path, const results_meta *meta,
                      const results_grid_columns *columns, const results_trial_row *rows,
                      const char (*grid_values)[SWEEP_MAX_AXES][RESULTS_VALUE_MAX], int count,
                      results_h5 **out, char *err, size_t errlen);

/* Opens an existing results file for writing, as a working copy PATH.resuming (a leftover of
 * a killed resume is replaced): resume repairs and extends the copy, starts SWMR on it, and
 * results_h5_replace puts it in place whole, so a kill at any moment leaves path as it was or
 * as resumed, and a refused resume (results_h5_close before the replace) leaves path
 * byte-identical. Messages name path. Not yet SWMR. */
int results_h5_open(const char *path, results_h5 **out, char *err, size_t errlen);
/* Renames the open working copy (results_h5_create's or results_h5_open's, complete and in
 * SWMR mode) over the file, and goes on writing it: a reader that opens the name from then on
 * finds the whole file. Test hook: TLSWEEP_TEST_KILL_BEFORE_RENAME in the environment kills
 * the process (SIGKILL) just before. */
int results_h5_replace(results_h5 *h, char *err, size_t errlen);
int results_h5_start_swmr(results_h5 *h, char *err, size_t errlen);

/* Reading back (malloc'd arrays; *count rows). */
int results_h5_read_trials(results_h5 *h, results_trial_row **rows, int *count, char *err,
                           size_t errlen);
int results_h5_read_curves(results_h5 *h, results_curve_row **rows, int *count, char *err,
                           size_t errlen);
int results_h5_read_lr(results_h5 *h, results_lr_row **rows, int *count, char *err, size_t errlen);
/* Replaces a table's contents (resume's compaction; not in SWMR mode). */
int results_h5_rewrite_curves(results_h5 *h, const results_curve_row *rows, int count, char *err,
                              size_t errlen);
int results_h5_rewrite_lr(results_h5 *h, const results_lr_row *rows, int count, char *err,
                          size_t errlen);
/* A string attribute of the root (sweep_text, mode...); malloc'd. */
char *results_h5_attr(results_h5 *h, const char *name, char *err, size_t errlen);
/* An integer attribute of the root (ranks, simulated); -1 when missing or not a number. */
int results_h5_attr_int(results_h5 *h, const char *name, long long *value);
int results_h5_grid_columns(results_h5 *h, results_grid_columns *columns);
/* 1 when the file has the lineage columns of a shared phase 1 (schema 3 on). */
int results_h5_has_lineage(const results_h5 *h);
/* Replaces (or adds) a string attribute of the root (--extend's new sweep_text; not in SWMR). */
int results_h5_set_attr(results_h5 *h, const char *name, const char *value, char *err,
                        size_t errlen);

/* Appends trials (--extend; not in SWMR mode). */
int results_h5_add_trials(results_h5 *h, const results_trial_row *rows,
                          const char (*grid_values)[SWEEP_MAX_AXES][RESULTS_VALUE_MAX], int count,
                          char *err, size_t errlen);

/* Rewrites one /trials row in place (its id is its row) and flushes. Grid columns are kept. */
int results_h5_write_trial(results_h5 *h, const results_trial_row *row, char *err, size_t errlen);
/* Appends one epoch: its /lr rows then its /curves row, each flushed.
 * Test hook: with TLSWEEP_TEST_KILL_AFTER_LR=N in the environment the process kills itself
 * (SIGKILL) between the /lr and /curves writes of its Nth epoch, the worst moment for a crash;
 * the resume tests use it. TLSWEEP_TEST_HANG_AFTER_EPOCH (farm.h) hangs a worker instead. */
int results_h5_append_epoch(results_h5 *h, const results_curve_row *curve, const results_lr_row *lr,
                            int n_lr, char *err, size_t errlen);

/* Seconds spent inside the write calls above (the benchmark's HDF5 share). */
double results_h5_write_seconds(const results_h5 *h);
int results_h5_close(results_h5 *h, char *err, size_t errlen);

/* Opens a results file read-only, in SWMR mode when a writer may be at work (merge reads its
 * inputs so: they are never changed). */
int results_h5_open_read(const char *path, results_h5 **out, char *err, size_t errlen);
/* Opens a results file read-only in SWMR mode (status, tests) and reads /trials. */
int results_h5_read_file(const char *path, results_trial_row **rows, int *count, char *err,
                         size_t errlen);

#endif
