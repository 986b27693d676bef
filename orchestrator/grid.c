/* Grid expansion, trial names and exclusion. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "orchestrator/grid.h"

#define GRID_MAX_TRIALS 100000

static int find_axis(const sweep *s, int key_index) {
    for (int a = 0; a < s->n_axes; a++)
        if (s->axes[a].key_index == key_index) return a;
    return -1;
}

const char *grid_backbone(const sweep *s, const grid_point *p) {
    int a = find_axis(s, AXIS_BACKBONE);
    return a < 0 ? "" : s->axes[a].values[p->value[a]].s;
}

const char *grid_schedule(const sweep *s, const grid_point *p) {
    int a = find_axis(s, AXIS_SCHEDULE);
    return a < 0 ? "" : s->axes[a].values[p->value[a]].s;
}

static int excluded(const sweep *s, const grid_point *p) {
    for (int e = 0; e < s->n_excludes; e++) {
        int match = 1;
        for (int a = 0; a < s->n_axes && match; a++)
            if (s->excludes[e].axis[a] >= 0 && s->excludes[e].axis[a] != p->value[a]) match = 0;
        if (match) return 1;
    }
    return 0;
}

/* Names carry values as typed, with path separators made safe for NAME.h5.d/TRIAL/. */
static void append_safe(char *out, size_t len, const char *text) {
    size_t used = strlen(out);
    for (const char *c = text; *c && used + 1 < len; c++)
        out[used++] = *c == '/' ? '_' : *c;
    out[used] = 0;
}

static int make_name(const sweep *s, const grid_point *p, char *out, size_t len) {
    out[0] = 0;
    append_safe(out, len, grid_backbone(s, p));
    append_safe(out, len, "__");
    append_safe(out, len, grid_schedule(s, p));
    for (int a = 0; a < s->n_axes; a++) {
        if (s->axes[a].key_index < 0) continue;
        append_safe(out, len, "__");
        append_safe(out, len, s->axes[a].short_name);
        append_safe(out, len, "=");
        append_safe(out, len, s->axes[a].values[p->value[a]].text);
    }
    return strlen(out) + 1 >= len ? -1 : 0;
}

int grid_expand(const sweep *s, trial_list *out, char *err, size_t errlen) {
    memset(out, 0, sizeof *out);
    long total = 1;
    for (int a = 0; a < s->n_axes; a++) {
        total *= s->axes[a].n_values;
        if (total > GRID_MAX_TRIALS) {
            snprintf(err, errlen, "the grid has more than %d points", GRID_MAX_TRIALS);
            return -1;
        }
    }
    out->items = calloc((size_t)total, sizeof *out->items);
    if (!out->items) {
        snprintf(err, errlen, "out of memory for %ld trials", total);
        return -1;
    }
    for (long i = 0; i < total; i++) {
        grid_point p;
        memset(&p, 0, sizeof p);
        long rest = i;
        for (int a = s->n_axes - 1; a >= 0; a--) {
            p.value[a] = (int)(rest % s->axes[a].n_values);
            rest /= s->axes[a].n_values;
        }
        if (excluded(s, &p)) continue;
        if (make_name(s, &p, p.name, sizeof p.name)) {
            snprintf(err, errlen, "trial name '%s...' is longer than %d characters", p.name,
                     TRIAL_NAME_MAX - 1);
            grid_trials_free(out);
            return -1;
        }
        out->items[out->count++] = p;
    }
    return 0;
}

void grid_trials_free(trial_list *list) {
    free(list->items);
    list->items = NULL;
    list->count = 0;
}

static void apply_settings(const sweep_setting *settings, int count, trial_spec *spec) {
    for (int i = 0; i < count; i++)
        sweep_key_apply(settings[i].key, &settings[i].value, spec);
}

void grid_trial_spec(const sweep *s, const grid_point *p, trial_spec *spec) {
    trial_spec_defaults(spec);
    snprintf(spec->name, sizeof spec->name, "%s", p->name);
    snprintf(spec->backbone, sizeof spec->backbone, "%.31s", grid_backbone(s, p));
    int sc = sweep_schedule_find(s, grid_schedule(s, p));
    if (sc >= 0) {
        int bn_train = spec->feature_extraction.bn_train;
        spec->feature_extraction = s->schedules[sc].feature_extraction;
        spec->feature_extraction.bn_train = bn_train;
        spec->fine_tuning = s->schedules[sc].fine_tuning;
    }
    apply_settings(s->settings, s->n_settings, spec);
    for (int o = 0; o < s->n_overrides; o++)
        if (!strcmp(s->overrides[o].backbone, spec->backbone))
            apply_settings(s->overrides[o].settings, s->overrides[o].n_settings, spec);
    for (int a = 0; a < s->n_axes; a++)
        if (s->axes[a].key_index >= 0)
            sweep_key_apply(s->axes[a].key_index, &s->axes[a].values[p->value[a]], spec);
}

void grid_values_text(const sweep *s, const grid_point *p, char *out, size_t len) {
    out[0] = 0;
    for (int a = 0; a < s->n_axes; a++) {
        if (s->axes[a].key_index < 0) continue;
        size_t used = strlen(out);
        snprintf(out + used, len - used, "%s%s=%s", used ? ";" : "", s->axes[a].key,
                 s->axes[a].values[p->value[a]].text);
    }
}
