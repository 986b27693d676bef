/* Who computes whose phase 1 (see phase1_plan.h). */
#include <stdlib.h>
#include <string.h>

#include "orchestrator/phase1_plan.h"
#include "orchestrator/schedule.h"
#include "worker/trial_settings.h"

static double phase_cost(const trial_spec *spec, int phase) {
    return (phase == 1 ? spec->feature_extraction.epochs : spec->fine_tuning.epochs) *
           schedule_epoch_cost(spec, phase);
}

static int index_of_id(const trial_table *t, int id) {
    for (int i = 0; i < t->count; i++)
        if (t->items[i].row.id == id) return i;
    return -1;
}

/* The fresh trials' lineage: groups by equal phase-1 settings. */
static void choose(trial_table *t, const trial_spec *specs, const unsigned char *fresh, int share) {
    const int n = t->count;
    trial_settings *settings = malloc(sizeof *settings * (size_t)(n ? n : 1));
    int *group = malloc(sizeof *group * (size_t)(n ? n : 1));
    if (!settings || !group) share = 0; /* out of memory: nothing shared, nothing wrong */
    for (int i = 0; i < n; i++) {
        trial_entry *e = &t->items[i];
        int is_fresh = !fresh || fresh[i];
        if (is_fresh) e->row.phase1_trial = e->row.id;
        if (!share) continue;
        trial_settings_phase1(&specs[i], &settings[i]);
        group[i] = i;
        for (int j = 0; j < i; j++)
            if (group[j] == j && trial_settings_equal(&settings[i], &settings[j])) {
                group[i] = j;
                break;
            }
    }
    for (int g = 0; share && g < n; g++) {
        if (group[g] != g || specs[g].feature_extraction.epochs == 0) continue;
        int computer = -1;
        for (int i = g; i < n && computer < 0; i++) /* a stored trial computing its own */
            if (group[i] == g && fresh && !fresh[i] &&
                t->items[i].row.phase1_trial == t->items[i].row.id)
                computer = i;
        int stored = computer >= 0;
        for (int i = g; i < n && !stored; i++)
            if (group[i] == g && (!fresh || fresh[i]) &&
                (computer < 0 || phase_cost(&specs[i], 2) > phase_cost(&specs[computer], 2)))
                computer = i;
        if (computer < 0) continue;
        for (int i = g; i < n; i++)
            if (group[i] == g && (!fresh || fresh[i]))
                t->items[i].row.phase1_trial = t->items[computer].row.id;
    }
    free(settings);
    free(group);
}

void phase1_plan(trial_table *t, const sweep *s, const unsigned char *fresh, int share) {
    const int n = t->count;
    /* a group of ranks trains each trial (ranks_per_trial > 1) and cannot compute or start from
     * a shared phase-1 node yet: every trial not done computes its own, a stored lineage (a
     * file made with ranks_per_trial 1, then --extend) included */
    const int groups = s->ranks_per_trial > 1;
    if (groups) share = 0;
    trial_spec *specs = malloc(sizeof *specs * (size_t)(n ? n : 1));
    if (!specs) share = 0;
    for (int i = 0; specs && i < n; i++)
        grid_trial_spec(s, &t->items[i].point, &specs[i]);
    choose(t, specs, fresh, share && specs);
    for (int i = 0; groups && i < n; i++)
        if (t->items[i].state != TS_DONE) t->items[i].row.phase1_trial = t->items[i].row.id;
    for (int i = 0; i < n; i++) {
        trial_entry *e = &t->items[i];
        int from = index_of_id(t, e->row.phase1_trial);
        e->phase1_from = from >= 0 && from != i ? from : -1;
        e->phase1_node = e->phase1_from >= 0;
    }
    for (int i = 0; i < n; i++)
        if (t->items[i].phase1_from >= 0) t->items[t->items[i].phase1_from].phase1_node = 1;
    for (int i = 0; specs && i < n; i++) {
        trial_entry *e = &t->items[i];
        double p1 = phase_cost(&specs[i], 1), p2 = phase_cost(&specs[i], 2);
        e->row.estimated_cost = e->phase1_from >= 0 ? p2 : p1 + p2;
        double longest = p2;
        for (int j = 0; j < n; j++)
            if (t->items[j].phase1_from == i && phase_cost(&specs[j], 2) > longest)
                longest = phase_cost(&specs[j], 2);
        e->priority = e->phase1_from >= 0 ? p2 : p1 + longest;
    }
    free(specs);
}

int phase1_ready(const trial_table *t, int index) {
    const trial_entry *e = &t->items[index];
    if (e->phase1_from < 0) return 1;
    const trial_entry *from = &t->items[e->phase1_from];
    const int fe = e->phase1_epochs;
    return from->state == TS_DONE || (fe <= from->total_epochs && from->epoch_written[fe]) ||
           e->epoch_written[fe];
}

void phase1_epochs(const trial_table *t, long with[2], long without[2]) {
    with[0] = with[1] = without[0] = without[1] = 0;
    for (int i = 0; i < t->count; i++) {
        const trial_entry *e = &t->items[i];
        without[0] += e->phase1_epochs;
        without[1] += e->total_epochs - e->phase1_epochs;
        with[0] += e->phase1_from >= 0 ? 0 : e->phase1_epochs;
        with[1] += e->total_epochs - e->phase1_epochs;
    }
}
