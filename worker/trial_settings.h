/* The settings that decide a trial's numbers, as named text values: every trial_spec field
 * except the name, where it writes (out_dir) and how it runs (threads, device, progress).
 * A resume checkpoint keeps them (worker/checkpoint.h), so a rerun with other settings is
 * refused with the differences instead of continuing the old trial; `run --extend` compares
 * a stored sweep's trials with them. Numbers print with %.17g, so equal text is equal value. */
#ifndef TLSWEEP_TRIAL_SETTINGS_H
#define TLSWEEP_TRIAL_SETTINGS_H

#include <stddef.h>

#include "worker/trial.h"

#define TRIAL_SETTINGS_MAX 48

typedef struct {
    const char *key; /* "seed", "fine_tuning.lr", ... */
    char value[TRIAL_PATH_MAX + 16];
} trial_setting;

typedef struct {
    int count;
    trial_setting items[TRIAL_SETTINGS_MAX];
} trial_settings;

void trial_settings_of(const trial_spec *spec, trial_settings *out);
/* The settings phase 1 reads: all but the fine_tuning ones. Trials with equal phase-1
 * settings compute the same phase 1 (worker/phase1.h). */
void trial_settings_phase1(const trial_spec *spec, trial_settings *out);
/* 1 when a and b hold the same keys with the same values. */
int trial_settings_equal(const trial_settings *a, const trial_settings *b);

/* Appends a line "\n  KEY: A_LABEL A, B_LABEL B" to out for every key whose values differ (a
 * key that a lacks reads "(not recorded)") and returns how many differ. */
int trial_settings_diff(const trial_settings *a, const char *a_label, const trial_settings *b,
                        const char *b_label, char *out, size_t len);

#endif
