/* The schedules:, backbones: and exclude: sections of a sweep file. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "orchestrator/sweep_yaml.h"

typedef struct {
    const char *key;
    sweep_key_type type;
    const char *const *choices;
    int phase; /* 1 feature_extraction, 2 fine_tuning */
} schedule_key;

static const char *const decays[] = {"none", "linear", "exponential", NULL};
static const schedule_key schedule_keys[] = {
    {"epochs", KEY_INT_NONNEG, NULL, 1},
    {"lr", KEY_DOUBLE_POSITIVE, NULL, 1},
    {"step_every", KEY_INT_POSITIVE, NULL, 1},
    {"gamma", KEY_GAMMA, NULL, 1},
    {"trainable", KEY_STRING, NULL, 1},
    {"epochs", KEY_INT_NONNEG, NULL, 2},
    {"lr", KEY_DOUBLE_POSITIVE, NULL, 2},
    {"layer_decay", KEY_CHOICE, decays, 2},
    {"factor", KEY_FACTOR, NULL, 2},
    {"lowest_lr", KEY_DOUBLE_POSITIVE, NULL, 2},
    {"step_every", KEY_INT_POSITIVE, NULL, 2},
    {"gamma", KEY_GAMMA, NULL, 2},
    {"default_lr", KEY_DOUBLE_NONNEG, NULL, 2},
    {NULL, 0, NULL, 0},
};

static void apply_schedule_key(sweep_schedule *sc, int phase, const char *key,
                               const sweep_value *v) {
    feature_extraction_phase *fe = &sc->feature_extraction;
    fine_tuning_phase *ft = &sc->fine_tuning;
    if (phase == 1) {
        if (!strcmp(key, "epochs"))
            fe->epochs = (int)v->i;
        else if (!strcmp(key, "lr"))
            fe->lr = v->d;
        else if (!strcmp(key, "step_every"))
            fe->step_every = (int)v->i;
        else if (!strcmp(key, "gamma"))
            fe->gamma = v->d;
        else if (!strcmp(key, "trainable"))
            snprintf(fe->trainable, sizeof fe->trainable, "%.63s", v->s);
        return;
    }
    if (!strcmp(key, "epochs"))
        ft->epochs = (int)v->i;
    else if (!strcmp(key, "lr"))
        ft->lr = v->d;
    else if (!strcmp(key, "layer_decay"))
        ft->decay = !strcmp(v->s, "linear")        ? LAYER_DECAY_LINEAR
                    : !strcmp(v->s, "exponential") ? LAYER_DECAY_EXPONENTIAL
                                                   : LAYER_DECAY_NONE;
    else if (!strcmp(key, "factor"))
        ft->factor = v->d;
    else if (!strcmp(key, "lowest_lr"))
        ft->lowest_lr = v->d;
    else if (!strcmp(key, "step_every"))
        ft->step_every = (int)v->i;
    else if (!strcmp(key, "gamma"))
        ft->gamma = v->d;
    else if (!strcmp(key, "default_lr"))
        ft->default_lr = v->d;
}

static void parse_phase(parse_ctx *ctx, sweep_schedule *sc, int phase, yaml_node_t *n,
                        const char *prefix) {
    if (sy_check_mapping(ctx, n, prefix)) return;
    for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top; p++) {
        yaml_node_t *k = sy_node(ctx, p->key), *v = sy_node(ctx, p->value);
        char dotted[256];
        snprintf(dotted, sizeof dotted, "%s.%s", prefix, sy_key(k));
        const schedule_key *sk = NULL;
        char known[256] = "";
        for (const schedule_key *c = schedule_keys; c->key; c++)
            if (c->phase == phase) {
                if (!strcmp(c->key, sy_key(k))) sk = c;
                size_t used = strlen(known);
                snprintf(known + used, sizeof known - used, "%s%s", used ? ", " : "", c->key);
            }
        if (!sk) {
            FAIL(ctx, k, dotted, "unknown key (known: %s)", known);
            continue;
        }
        sweep_value value;
        if (sy_parse_typed(ctx, v, dotted, sk->type, sk->choices, &value)) continue;
        apply_schedule_key(sc, phase, sk->key, &value);
    }
}

void sy_parse_schedules(parse_ctx *ctx, yaml_node_t *n) {
    if (sy_check_mapping(ctx, n, "schedules")) return;
    sweep *s = ctx->s;
    int count = (int)(n->data.mapping.pairs.top - n->data.mapping.pairs.start);
    s->schedules = calloc((size_t)(count ? count : 1), sizeof *s->schedules);
    if (!s->schedules) {
        FAIL(ctx, n, "schedules", "out of memory");
        return;
    }
    for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top; p++) {
        yaml_node_t *k = sy_node(ctx, p->key), *v = sy_node(ctx, p->value);
        char prefix[160];
        snprintf(prefix, sizeof prefix, "schedules.%s", sy_key(k));
        if (strlen(sy_key(k)) >= SWEEP_KEY_MAX || strpbrk(sy_key(k), "/ =")) {
            FAIL(ctx, k, prefix, "a schedule name is at most %d characters without '/', ' ' or '='",
                 SWEEP_KEY_MAX - 1);
            continue;
        }
        sweep_schedule *sc = &s->schedules[s->n_schedules];
        trial_spec defaults;
        trial_spec_defaults(&defaults);
        snprintf(sc->name, sizeof sc->name, "%s", sy_key(k));
        sc->line = sy_line(k);
        sc->feature_extraction = defaults.feature_extraction;
        sc->fine_tuning = defaults.fine_tuning;
        if (sy_check_mapping(ctx, v, prefix)) continue;
        for (yaml_node_pair_t *q = v->data.mapping.pairs.start; q < v->data.mapping.pairs.top;
             q++) {
            yaml_node_t *pk = sy_node(ctx, q->key), *pv = sy_node(ctx, q->value);
            char sub[200];
            snprintf(sub, sizeof sub, "%s.%s", prefix, sy_key(pk));
            if (!strcmp(sy_key(pk), "feature_extraction"))
                parse_phase(ctx, sc, 1, pv, sub);
            else if (!strcmp(sy_key(pk), "fine_tuning"))
                parse_phase(ctx, sc, 2, pv, sub);
            else
                FAIL(ctx, pk, sub, "unknown key (known: feature_extraction, fine_tuning)");
        }
        if (sc->feature_extraction.epochs + sc->fine_tuning.epochs == 0)
            FAIL(ctx, k, prefix, "both phases have 0 epochs: nothing to train");
        if (sc->fine_tuning.decay == LAYER_DECAY_LINEAR &&
            sc->fine_tuning.lowest_lr > sc->fine_tuning.lr)
            FAIL(ctx, k, prefix, "fine_tuning.lowest_lr %g is above fine_tuning.lr %g",
                 sc->fine_tuning.lowest_lr, sc->fine_tuning.lr);
        s->n_schedules++;
    }
}

void sy_parse_backbones(parse_ctx *ctx, yaml_node_t *n) {
    if (sy_check_mapping(ctx, n, "backbones")) return;
    sweep *s = ctx->s;
    int count = (int)(n->data.mapping.pairs.top - n->data.mapping.pairs.start);
    s->overrides = calloc((size_t)(count ? count : 1), sizeof *s->overrides);
    if (!s->overrides) {
        FAIL(ctx, n, "backbones", "out of memory");
        return;
    }
    for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top; p++) {
        yaml_node_t *k = sy_node(ctx, p->key), *v = sy_node(ctx, p->value);
        char prefix[160];
        snprintf(prefix, sizeof prefix, "backbones.%s", sy_key(k));
        if (!sy_in_choices(sweep_backbones, sy_key(k))) {
            char known[256];
            sy_choices_text(sweep_backbones, known, sizeof known);
            FAIL(ctx, k, prefix, "unknown backbone '%s' (known: %s)", sy_key(k), known);
            continue;
        }
        if (sy_check_mapping(ctx, v, prefix)) continue;
        sweep_override *o = &s->overrides[s->n_overrides++];
        snprintf(o->backbone, sizeof o->backbone, "%s", sy_key(k));
        o->line = sy_line(k);
        for (yaml_node_pair_t *q = v->data.mapping.pairs.start; q < v->data.mapping.pairs.top;
             q++) {
            yaml_node_t *ok = sy_node(ctx, q->key), *ov = sy_node(ctx, q->value);
            char dotted[256];
            snprintf(dotted, sizeof dotted, "%s.%s", prefix, sy_key(ok));
            int key = sweep_override_find(sy_key(ok));
            if (key < 0) {
                FAIL(ctx, ok, dotted,
                     "unknown key (known: weights, width, dropout, batch_size, precision, resize, "
                     "crop)");
                continue;
            }
            sweep_value value;
            if (sy_parse_key_value(ctx, key, ov, dotted, &value)) continue;
            if (sy_push_setting(&o->settings, &o->n_settings, key, &value))
                FAIL(ctx, ok, dotted, "out of memory");
        }
    }
}

void sy_parse_exclude(parse_ctx *ctx, yaml_node_t *n) {
    sweep *s = ctx->s;
    if (n->type != YAML_SEQUENCE_NODE) {
        FAIL(ctx, n, "exclude", "expected a list of mappings (axis: value), got %s", sy_kind(n));
        return;
    }
    int count = (int)(n->data.sequence.items.top - n->data.sequence.items.start);
    s->excludes = calloc((size_t)(count ? count : 1), sizeof *s->excludes);
    if (!s->excludes) {
        FAIL(ctx, n, "exclude", "out of memory");
        return;
    }
    for (int i = 0; i < count; i++) {
        yaml_node_t *item = sy_node(ctx, n->data.sequence.items.start[i]);
        char prefix[64];
        snprintf(prefix, sizeof prefix, "exclude[%d]", i);
        if (sy_check_mapping(ctx, item, prefix)) continue;
        sweep_exclude *e = &s->excludes[s->n_excludes];
        e->line = sy_line(item);
        for (int a = 0; a < SWEEP_MAX_AXES; a++)
            e->axis[a] = -1;
        int bad = 0;
        for (yaml_node_pair_t *p = item->data.mapping.pairs.start; p < item->data.mapping.pairs.top;
             p++) {
            yaml_node_t *k = sy_node(ctx, p->key), *v = sy_node(ctx, p->value);
            char dotted[160];
            snprintf(dotted, sizeof dotted, "%s.%s", prefix, sy_key(k));
            int a = sy_axis_find(s, sy_key(k));
            if (a < 0) {
                FAIL(ctx, k, dotted, "'%s' is not a grid axis", sy_key(k));
                bad = 1;
                continue;
            }
            sweep_value value;
            sweep_key_type type =
                s->axes[a].key_index >= 0 ? sweep_keys[s->axes[a].key_index].type : KEY_STRING;
            const char *const *choices =
                s->axes[a].key_index >= 0 ? sweep_keys[s->axes[a].key_index].choices : NULL;
            if (sy_parse_typed(ctx, v, dotted, type, choices, &value)) {
                bad = 1;
                continue;
            }
            for (int j = 0; j < s->axes[a].n_values; j++)
                if (!strcmp(s->axes[a].values[j].text, value.text)) e->axis[a] = j;
            if (e->axis[a] < 0) {
                FAIL(ctx, v, dotted, "'%s' is not a value of grid.%s", value.text, sy_key(k));
                bad = 1;
            }
        }
        if (!bad) s->n_excludes++;
    }
}
