/* A sweep file (docs/sweep-file.md): parsed with libyaml into a sweep, validated as a whole
 * before anything starts. Every problem becomes one message "FILE:LINE: KEY: what is wrong".
 *
 * How a trial's settings are built (grid.c): trial_spec_defaults (docs/experiment.md), then its
 * schedule, then the data/augment/train/model sections, then the per-backbone overrides, then the
 * trial's grid values (an explicit grid value always wins). */
#ifndef TLSWEEP_SWEEP_H
#define TLSWEEP_SWEEP_H

#include <stddef.h>
#include <stdio.h>

#include "worker/trial.h"

#define SWEEP_NAME_MAX 64
#define SWEEP_KEY_MAX 64
#define SWEEP_TEXT_MAX 64 /* canonical text of one value, as it appears in trial names */
#define SWEEP_MAX_AXES 8
#define SWEEP_MAX_ERRORS 100

/* ---- the table of settable keys (sweep_keys.c) ------------------------------------------- */
typedef enum {
    KEY_INT_POSITIVE, /* > 0 */
    KEY_INT_NONNEG,   /* >= 0 */
    KEY_PROBABILITY,  /* [0, 1] */
    KEY_DOUBLE_NONNEG,
    KEY_DOUBLE_POSITIVE,
    KEY_GAMMA,  /* (0, 1] */
    KEY_FACTOR, /* >= 1 */
    KEY_ANGLE,  /* degrees, [0, 90) */
    KEY_STRING, /* free text (paths) */
    KEY_CHOICE, /* one of choices */
    KEY_BOOL,
    KEY_SPLITS /* a list of Flowers102 split names */
} sweep_key_type;

/* Where a key's value lands in a trial_spec. */
typedef enum {
    STORE_NONE, /* checked only (data.format, train.optimizer have one choice each) */
    STORE_INT,
    STORE_U64,
    STORE_DOUBLE,
    STORE_STRING,
    STORE_SPLITS,   /* offset of the list; the count follows at count_offset */
    STORE_BN_TRAIN, /* "train" -> 1, "eval" -> 0 */
    STORE_AUTO_BOOL /* "auto" -> -1, "true" -> 1, "false" -> 0 */
} sweep_key_store;

typedef struct {
    const char *key; /* dotted: "train.batch_size" */
    sweep_key_type type;
    const char *const *choices; /* KEY_CHOICE / KEY_SPLITS: NULL-terminated */
    sweep_key_store store;
    size_t offset, size, count_offset;
    long long max; /* KEY_INT_*: the largest value; 0 for the parser's general bound */
} sweep_key;

typedef struct {
    long long i;
    double d;
    char s[TRIAL_PATH_MAX];
    char list[TRIAL_MAX_SPLITS][16];
    int n_list;
    char text[SWEEP_TEXT_MAX]; /* canonical text: "16", "0.001", "tstid+trnid" */
    int line;
} sweep_value;

extern const sweep_key sweep_keys[];
int sweep_key_find(const char *dotted); /* index into sweep_keys, -1 if unknown */
/* Short names allowed under backbones.NAME (weights, width, batch_size...); -1 if not one. */
int sweep_override_find(const char *short_name);
/* Writes value into the spec field the key names. */
void sweep_key_apply(int key, const sweep_value *value, trial_spec *spec);

/* ---- the parsed sweep --------------------------------------------------------------------- */
typedef struct {
    int key; /* index into sweep_keys */
    int line;
    sweep_value value;
} sweep_setting;

enum { AXIS_BACKBONE = -2, AXIS_SCHEDULE = -3 }; /* -1 is "no such key" */

typedef struct {
    char key[SWEEP_KEY_MAX];        /* "backbone", "schedule", "train.seed" */
    char short_name[SWEEP_KEY_MAX]; /* used in trial names: "seed" */
    int key_index;                  /* AXIS_BACKBONE, AXIS_SCHEDULE or an index into sweep_keys */
    int line;
    sweep_value *values;
    int n_values;
} sweep_axis;

typedef struct {
    char name[SWEEP_KEY_MAX];
    int line;
    feature_extraction_phase feature_extraction;
    fine_tuning_phase fine_tuning;
} sweep_schedule;

typedef struct {
    char backbone[32];
    int line;
    sweep_setting *settings;
    int n_settings;
} sweep_override;

typedef struct {
    int line;
    int axis[SWEEP_MAX_AXES]; /* per axis: index of the value to match, -1 = any */
} sweep_exclude;

typedef struct {
    char file[TRIAL_PATH_MAX];
    char *text; /* the file's full text (it goes into the HDF5 file) */
    size_t text_len;
    char name[SWEEP_NAME_MAX];
    char output[TRIAL_PATH_MAX];
    int retries;
    int gpus_per_trial;
    int ranks_per_gpu;       /* worker ranks that may share one GPU (placement.h); default 1 */
    int ranks_per_trial;     /* worker ranks that train each trial together (1..64, default 1):
                                groups formed once at start (groups.h) */
    int share_phase1;        /* trials with equal phase-1 settings compute it once (default 1) */
    sweep_setting *settings; /* data/augment/train/model values, in file order */
    int n_settings;
    sweep_axis axes[SWEEP_MAX_AXES];
    int n_axes;
    sweep_schedule *schedules;
    int n_schedules;
    sweep_override *overrides;
    int n_overrides;
    sweep_exclude *excludes;
    int n_excludes;
} sweep;

/* Problems found while reading a sweep file, each one line. */
typedef struct {
    char *messages[SWEEP_MAX_ERRORS];
    int count;
    int dropped; /* past SWEEP_MAX_ERRORS */
} sweep_errors;

typedef struct {
    int check_paths; /* check that the dataset (and weights files) exist; off for --simulate */
} sweep_options;

/* Parses and validates text (read from file, which names it in messages). Returns 0 with *out
 * filled, or -1 with every problem in errs and *out empty (sweep_free on it is harmless). */
int sweep_parse(const char *file, const char *text, size_t len, const sweep_options *opt,
                sweep *out, sweep_errors *errs);
/* Reads file then sweep_parse; an unreadable file is one error. */
int sweep_load(const char *file, const sweep_options *opt, sweep *out, sweep_errors *errs);
void sweep_free(sweep *s);
void sweep_errors_free(sweep_errors *errs);
/* Every message to out, one a line after prefix ("" or "tlsweep train: "), then the count of
 * those dropped. */
void sweep_errors_print(const sweep_errors *errs, FILE *out, const char *prefix);
void sweep_errors_add(sweep_errors *errs, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* The backbones the model code knows (worker/models/model.h); NULL-terminated. */
extern const char *const *const sweep_backbones;
int sweep_schedule_find(const sweep *s, const char *name);
/* train.device: "auto" (the default), "cpu" or "cuda". */
const char *sweep_device(const sweep *s);

#endif
