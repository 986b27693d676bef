/* Trial table and the trial state machine. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "orchestrator/phase1_plan.h"
#include "orchestrator/schedule.h"
#include "orchestrator/trials.h"

static const char *const state_names[TS_COUNT] = {"pending", "running", "done", "failed",
                                                  "preempted"};

const char *trial_state_name(trial_state s) {
    return s >= 0 && s < TS_COUNT ? state_names[s] : "invalid";
}

int trial_state_parse(const char *name, trial_state *out) {
    for (int i = 0; i < TS_COUNT; i++)
        if (!strcmp(name, state_names[i])) {
            *out = (trial_state)i;
            return 0;
        }
    return -1;
}

/* allowed[from][to] */
static const unsigned char allowed[TS_COUNT][TS_COUNT] = {
    [TS_PENDING] = {[TS_RUNNING] = 1, [TS_FAILED] = 1}, /* its shared phase 1 failed */
    [TS_RUNNING] = {[TS_DONE] = 1, [TS_FAILED] = 1, [TS_PREEMPTED] = 1},
    [TS_FAILED] = {[TS_PENDING] = 1},
    [TS_PREEMPTED] = {[TS_PENDING] = 1},
};

int trial_set_state(trial_table *t, int index, trial_state to, char *err, size_t errlen) {
    if (index < 0 || index >= t->count) {
        snprintf(err, errlen, "trial state machine: no trial %d", index);
        return -1;
    }
    trial_entry *e = &t->items[index];
    if (to < 0 || to >= TS_COUNT || !allowed[e->state][to]) {
        snprintf(err, errlen, "trial %s: illegal transition %s -> %s (a bug)", e->row.name,
                 trial_state_name(e->state), trial_state_name(to));
        return -1;
    }
    if (e->state == TS_FAILED && to == TS_PENDING && e->attempts_this_run >= t->max_attempts) {
        snprintf(err, errlen, "trial %s: no attempts left (%d of %d used)", e->row.name,
                 e->attempts_this_run, t->max_attempts);
        return -1;
    }
    if (to == TS_RUNNING) {
        e->attempts_this_run++;
        e->row.attempts++;
    }
    e->state = to;
    snprintf(e->row.status, sizeof e->row.status, "%s", trial_state_name(to));
    return 0;
}

int trial_table_build(trial_table *t, const sweep *s, const trial_list *trials, char *err,
                      size_t errlen) {
    memset(t, 0, sizeof *t);
    t->max_attempts = s->retries + 1;
    t->items = calloc(trials->count ? (size_t)trials->count : 1, sizeof *t->items);
    if (!t->items) {
        snprintf(err, errlen, "out of memory for %d trials", trials->count);
        return -1;
    }
    for (int i = 0; i < trials->count; i++) {
        trial_entry *e = &t->items[i];
        e->point = trials->items[i];
        trial_spec spec;
        grid_trial_spec(s, &e->point, &spec);
        e->total_epochs = spec.feature_extraction.epochs + spec.fine_tuning.epochs;
        e->phase1_epochs = spec.feature_extraction.epochs;
        e->epoch_written = calloc((size_t)e->total_epochs + 1, 1);
        if (!e->epoch_written) {
            t->count = i;
            trial_table_free(t);
            snprintf(err, errlen, "out of memory");
            return -1;
        }
        e->state = TS_PENDING;
        e->last_failed_rank = -1;
        results_trial_row *r = &e->row;
        r->id = i;
        snprintf(r->name, sizeof r->name, "%s", e->point.name);
        snprintf(r->backbone, sizeof r->backbone, "%s", spec.backbone);
        snprintf(r->schedule, sizeof r->schedule, "%.63s", grid_schedule(s, &e->point));
        grid_values_text(s, &e->point, r->grid, sizeof r->grid);
        snprintf(r->status, sizeof r->status, "pending");
        r->rank = -1;
        r->device = -1;
        r->estimated_cost = schedule_estimate_cost(&spec);
        int c = 0;
        for (int a = 0; a < s->n_axes; a++)
            if (s->axes[a].key_index >= 0)
                snprintf(e->grid_values[c++], RESULTS_VALUE_MAX, "%s",
                         s->axes[a].values[e->point.value[a]].text);
        t->count = i + 1;
    }
    phase1_plan(t, s, NULL, s->share_phase1);
    return 0;
}

void trial_table_free(trial_table *t) {
    for (int i = 0; i < t->count; i++)
        free(t->items[i].epoch_written);
    free(t->items);
    memset(t, 0, sizeof *t);
}

int trial_table_find(const trial_table *t, const char *name) {
    for (int i = 0; i < t->count; i++)
        if (!strcmp(t->items[i].row.name, name)) return i;
    return -1;
}

void trial_table_counts(const trial_table *t, int counts[TS_COUNT]) {
    memset(counts, 0, sizeof(int) * TS_COUNT);
    for (int i = 0; i < t->count; i++)
        counts[t->items[i].state]++;
}
