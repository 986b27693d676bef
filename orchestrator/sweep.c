/* Sweep file parsing and validation with libyaml's document API (it keeps every node's line).
 * The whole file is checked and every problem reported before anything starts. */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <yaml.h>

#include "orchestrator/grid.h"
#include "orchestrator/sweep.h"
#include "worker/models/model.h"

/* The validator knows exactly the backbones the model code builds. */
const char *const *const sweep_backbones = model_backbones;

typedef struct {
    const char *file;
    yaml_document_t *doc;
    sweep *s;
    sweep_errors *errs;
    const sweep_options *opt;
} parse_ctx;

void sweep_errors_add(sweep_errors *errs, const char *fmt, ...) {
    if (errs->count >= SWEEP_MAX_ERRORS) {
        errs->dropped++;
        return;
    }
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    errs->messages[errs->count] = strdup(line);
    if (errs->messages[errs->count]) errs->count++;
    else errs->dropped++;
}

void sweep_errors_free(sweep_errors *errs) {
    for (int i = 0; i < errs->count; i++) free(errs->messages[i]);
    errs->count = 0;
    errs->dropped = 0;
}

static int line_of(const yaml_node_t *n) { return (int)n->start_mark.line + 1; }

#define FAIL(ctx, node, key, ...) problem(ctx, line_of(node), key, __VA_ARGS__)

__attribute__((format(printf, 4, 5))) static void problem(parse_ctx *ctx, int line,
                                                          const char *key, const char *fmt, ...) {
    char what[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    sweep_errors_add(ctx->errs, "%s:%d: %s: %s", ctx->file, line, key, what);
}

static const char *scalar(const yaml_node_t *n) {
    return n && n->type == YAML_SCALAR_NODE ? (const char *)n->data.scalar.value : NULL;
}

/* The text of a mapping key (check_mapping has made sure keys are scalars). */
static const char *key_name(const yaml_node_t *n) {
    const char *s = scalar(n);
    return s ? s : "?";
}

static yaml_node_t *node(parse_ctx *ctx, int id) { return yaml_document_get_node(ctx->doc, id); }

static const char *node_kind(const yaml_node_t *n) {
    switch (n->type) {
    case YAML_MAPPING_NODE: return "a mapping";
    case YAML_SEQUENCE_NODE: return "a list";
    default: return "a scalar";
    }
}

/* Checks n is a mapping whose keys are scalars and unique; returns 0 or -1 (reported). */
static int check_mapping(parse_ctx *ctx, yaml_node_t *n, const char *key) {
    if (n->type != YAML_MAPPING_NODE) {
        FAIL(ctx, n, key, "expected a mapping, got %s", node_kind(n));
        return -1;
    }
    int bad = 0;
    for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top; p++) {
        yaml_node_t *k = node(ctx, p->key);
        if (!scalar(k)) {
            FAIL(ctx, k, key, "a key must be a plain name, got %s", node_kind(k));
            bad = 1;
            continue;
        }
        for (yaml_node_pair_t *q = n->data.mapping.pairs.start; q < p; q++)
            if (scalar(node(ctx, q->key)) && !strcmp(scalar(node(ctx, q->key)), key_name(k))) {
                FAIL(ctx, k, key, "duplicate key '%s' (first at line %d)", key_name(k),
                     line_of(node(ctx, q->key)));
                bad = 1;
            }
    }
    return bad ? -1 : 0;
}

static const char *type_words(sweep_key_type t) {
    switch (t) {
    case KEY_INT_POSITIVE: return "a positive integer";
    case KEY_INT_NONNEG: return "an integer >= 0";
    case KEY_PROBABILITY: return "a number in [0, 1]";
    case KEY_DOUBLE_NONNEG: return "a number >= 0";
    case KEY_DOUBLE_POSITIVE: return "a number > 0";
    case KEY_GAMMA: return "a number in (0, 1]";
    case KEY_FACTOR: return "a number >= 1";
    case KEY_ANGLE: return "an angle in degrees in [0, 90)";
    case KEY_STRING: return "a string";
    case KEY_CHOICE: return "one of";
    case KEY_BOOL: return "true or false";
    case KEY_SPLITS: return "a list of split names";
    }
    return "?";
}

static void choices_text(const char *const *choices, char *out, size_t len) {
    out[0] = 0;
    for (int i = 0; choices && choices[i]; i++) {
        size_t used = strlen(out);
        snprintf(out + used, len - used, "%s%s", i ? ", " : "", choices[i]);
    }
}

static int in_choices(const char *const *choices, const char *v) {
    for (int i = 0; choices && choices[i]; i++)
        if (!strcmp(choices[i], v)) return 1;
    return 0;
}

/* Parses one value of the given type at node n into out; reports and returns -1 when bad. */
static int parse_typed(parse_ctx *ctx, yaml_node_t *n, const char *key, sweep_key_type type,
                       const char *const *choices, sweep_value *out) {
    memset(out, 0, sizeof *out);
    out->line = line_of(n);
    if (type == KEY_SPLITS) {
        char known[128];
        choices_text(choices, known, sizeof known);
        if (n->type != YAML_SEQUENCE_NODE) {
            FAIL(ctx, n, key, "expected a list of split names (%s), got %s", known, node_kind(n));
            return -1;
        }
        int count = (int)(n->data.sequence.items.top - n->data.sequence.items.start);
        if (count == 0 || count > TRIAL_MAX_SPLITS) {
            FAIL(ctx, n, key, "expected 1 to %d split names, got %d", TRIAL_MAX_SPLITS, count);
            return -1;
        }
        for (int i = 0; i < count; i++) {
            const char *v = scalar(node(ctx, n->data.sequence.items.start[i]));
            if (!v || !in_choices(choices, v)) {
                FAIL(ctx, n, key, "unknown split '%s' (known: %s)", v ? v : "?", known);
                return -1;
            }
            snprintf(out->list[out->n_list++], 16, "%s", v);
            size_t used = strlen(out->text);
            snprintf(out->text + used, sizeof out->text - used, "%s%s", i ? "+" : "", v);
        }
        return 0;
    }
    const char *v = scalar(n);
    if (!v) {
        FAIL(ctx, n, key, "expected %s, got %s", type_words(type), node_kind(n));
        return -1;
    }
    snprintf(out->text, sizeof out->text, "%s", v);
    char *end = NULL;
    errno = 0;
    switch (type) {
    case KEY_INT_POSITIVE:
    case KEY_INT_NONNEG:
        out->i = strtoll(v, &end, 10);
        if (!*v || *end || errno || out->i < (type == KEY_INT_POSITIVE ? 1 : 0) ||
            out->i > 1000000000LL) {
            FAIL(ctx, n, key, "expected %s, got '%s'", type_words(type), v);
            return -1;
        }
        out->d = (double)out->i;
        snprintf(out->text, sizeof out->text, "%lld", out->i);
        return 0;
    case KEY_PROBABILITY:
    case KEY_DOUBLE_NONNEG:
    case KEY_DOUBLE_POSITIVE:
    case KEY_GAMMA:
    case KEY_FACTOR:
    case KEY_ANGLE: {
        out->d = strtod(v, &end);
        int ok = *v && !*end && !errno && isfinite(out->d);
        if (ok) switch (type) {
            case KEY_PROBABILITY: ok = out->d >= 0 && out->d <= 1; break;
            case KEY_DOUBLE_NONNEG: ok = out->d >= 0; break;
            case KEY_DOUBLE_POSITIVE: ok = out->d > 0; break;
            case KEY_GAMMA: ok = out->d > 0 && out->d <= 1; break;
            case KEY_FACTOR: ok = out->d >= 1; break;
            default: ok = out->d >= 0 && out->d < 90; break;
            }
        if (!ok) {
            FAIL(ctx, n, key, "expected %s, got '%s'", type_words(type), v);
            return -1;
        }
        snprintf(out->text, sizeof out->text, "%g", out->d);
        return 0;
    }
    case KEY_STRING:
        if (!*v || strlen(v) >= TRIAL_PATH_MAX) {
            FAIL(ctx, n, key, "expected a non-empty string shorter than %d characters",
                 TRIAL_PATH_MAX);
            return -1;
        }
        snprintf(out->s, sizeof out->s, "%s", v);
        return 0;
    case KEY_CHOICE:
        if (!in_choices(choices, v)) {
            char known[256];
            choices_text(choices, known, sizeof known);
            FAIL(ctx, n, key, "expected one of %s, got '%s'", known, v);
            return -1;
        }
        snprintf(out->s, sizeof out->s, "%s", v);
        return 0;
    case KEY_BOOL:
        if (!strcmp(v, "true") || !strcmp(v, "yes")) out->i = 1;
        else if (!strcmp(v, "false") || !strcmp(v, "no")) out->i = 0;
        else {
            FAIL(ctx, n, key, "expected true or false, got '%s'", v);
            return -1;
        }
        snprintf(out->text, sizeof out->text, "%s", out->i ? "true" : "false");
        return 0;
    case KEY_SPLITS:
        break;
    }
    return -1;
}

static int parse_key_value(parse_ctx *ctx, int key, yaml_node_t *n, const char *dotted,
                           sweep_value *out) {
    const sweep_key *k = &sweep_keys[key];
    return parse_typed(ctx, n, dotted, k->type, k->choices, out);
}

static void known_in_section(const char *section, char *out, size_t len) {
    out[0] = 0;
    size_t plen = strlen(section);
    for (int i = 0; sweep_keys[i].key; i++)
        if (!strncmp(sweep_keys[i].key, section, plen) && sweep_keys[i].key[plen] == '.') {
            size_t used = strlen(out);
            snprintf(out + used, len - used, "%s%s", used ? ", " : "", sweep_keys[i].key + plen + 1);
        }
}

static int push_setting(sweep_setting **list, int *count, int key, const sweep_value *v) {
    sweep_setting *grown = realloc(*list, (size_t)(*count + 1) * sizeof **list);
    if (!grown) return -1;
    *list = grown;
    grown[*count].key = key;
    grown[*count].line = v->line;
    grown[*count].value = *v;
    (*count)++;
    return 0;
}

/* data:, augment:, train:, model: */
static void parse_section(parse_ctx *ctx, const char *section, yaml_node_t *n) {
    if (check_mapping(ctx, n, section)) return;
    for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top; p++) {
        yaml_node_t *k = node(ctx, p->key), *v = node(ctx, p->value);
        char dotted[SWEEP_KEY_MAX * 2];
        snprintf(dotted, sizeof dotted, "%s.%s", section, key_name(k));
        int key = sweep_key_find(dotted);
        if (key < 0) {
            char known[512];
            known_in_section(section, known, sizeof known);
            FAIL(ctx, k, dotted, "unknown key (known: %s)", known);
            continue;
        }
        sweep_value value;
        if (parse_key_value(ctx, key, v, dotted, &value)) continue;
        if (push_setting(&ctx->s->settings, &ctx->s->n_settings, key, &value))
            FAIL(ctx, k, dotted, "out of memory");
    }
}

static void parse_grid(parse_ctx *ctx, yaml_node_t *n) {
    if (check_mapping(ctx, n, "grid")) return;
    sweep *s = ctx->s;
    for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top; p++) {
        yaml_node_t *k = node(ctx, p->key), *v = node(ctx, p->value);
        const char *name = key_name(k);
        char dotted[SWEEP_KEY_MAX * 2];
        snprintf(dotted, sizeof dotted, "grid.%s", name);
        int key_index = !strcmp(name, "backbone")   ? AXIS_BACKBONE
                        : !strcmp(name, "schedule") ? AXIS_SCHEDULE
                                                    : sweep_key_find(name);
        if (key_index == -1 || (key_index >= 0 && sweep_keys[key_index].store == STORE_NONE)) {
            FAIL(ctx, k, dotted,
                 "not a key that can vary (use backbone, schedule or a dotted key such as "
                 "train.seed)");
            continue;
        }
        if (s->n_axes == SWEEP_MAX_AXES) {
            FAIL(ctx, k, dotted, "too many grid axes (at most %d)", SWEEP_MAX_AXES);
            continue;
        }
        if (v->type != YAML_SEQUENCE_NODE ||
            v->data.sequence.items.top == v->data.sequence.items.start) {
            FAIL(ctx, v, dotted, "expected a non-empty list of values, got %s",
                 v->type == YAML_SEQUENCE_NODE ? "an empty list" : node_kind(v));
            continue;
        }
        sweep_axis *axis = &s->axes[s->n_axes];
        memset(axis, 0, sizeof *axis);
        snprintf(axis->key, sizeof axis->key, "%s", name);
        const char *dot = strrchr(name, '.');
        snprintf(axis->short_name, sizeof axis->short_name, "%s", dot ? dot + 1 : name);
        axis->key_index = key_index;
        axis->line = line_of(k);
        int count = (int)(v->data.sequence.items.top - v->data.sequence.items.start);
        axis->values = calloc((size_t)count, sizeof *axis->values);
        if (!axis->values) {
            FAIL(ctx, k, dotted, "out of memory");
            continue;
        }
        int bad = 0;
        for (int i = 0; i < count; i++) {
            yaml_node_t *item = node(ctx, v->data.sequence.items.start[i]);
            sweep_value *value = &axis->values[axis->n_values];
            int rc;
            if (key_index >= 0) rc = parse_key_value(ctx, key_index, item, dotted, value);
            else if (key_index == AXIS_BACKBONE) {
                rc = parse_typed(ctx, item, dotted, KEY_STRING, NULL, value);
                if (!rc && !in_choices(sweep_backbones, value->s)) {
                    char known[256];
                    choices_text(sweep_backbones, known, sizeof known);
                    FAIL(ctx, item, dotted, "unknown backbone '%s' (known: %s)", value->s, known);
                    rc = -1;
                }
            } else rc = parse_typed(ctx, item, dotted, KEY_STRING, NULL, value);
            if (rc) {
                bad = 1;
                continue;
            }
            for (int j = 0; j < axis->n_values; j++)
                if (!strcmp(axis->values[j].text, value->text)) {
                    FAIL(ctx, item, dotted, "value '%s' appears twice", value->text);
                    rc = -1;
                }
            if (!rc) axis->n_values++;
        }
        (void)bad;
        for (int j = 0; j < s->n_axes; j++)
            if (!strcmp(s->axes[j].short_name, axis->short_name))
                FAIL(ctx, k, dotted, "two grid axes named '%s' would make trial names ambiguous",
                     axis->short_name);
        s->n_axes++;
    }
}

typedef struct {
    const char *key;
    sweep_key_type type;
    const char *const *choices;
    int phase; /* 1 feature_extraction, 2 fine_tuning */
} schedule_key;

static const char *const decays[] = {"none", "linear", "exponential", NULL};
static const schedule_key schedule_keys[] = {
    {"epochs", KEY_INT_NONNEG, NULL, 1},      {"lr", KEY_DOUBLE_POSITIVE, NULL, 1},
    {"step_every", KEY_INT_POSITIVE, NULL, 1}, {"gamma", KEY_GAMMA, NULL, 1},
    {"trainable", KEY_STRING, NULL, 1},        {"epochs", KEY_INT_NONNEG, NULL, 2},
    {"lr", KEY_DOUBLE_POSITIVE, NULL, 2},      {"layer_decay", KEY_CHOICE, decays, 2},
    {"factor", KEY_FACTOR, NULL, 2},           {"lowest_lr", KEY_DOUBLE_POSITIVE, NULL, 2},
    {"step_every", KEY_INT_POSITIVE, NULL, 2}, {"gamma", KEY_GAMMA, NULL, 2},
    {"default_lr", KEY_DOUBLE_NONNEG, NULL, 2}, {NULL, 0, NULL, 0},
};

static void apply_schedule_key(sweep_schedule *sc, int phase, const char *key,
                               const sweep_value *v) {
    feature_extraction_phase *fe = &sc->feature_extraction;
    fine_tuning_phase *ft = &sc->fine_tuning;
    if (phase == 1) {
        if (!strcmp(key, "epochs")) fe->epochs = (int)v->i;
        else if (!strcmp(key, "lr")) fe->lr = v->d;
        else if (!strcmp(key, "step_every")) fe->step_every = (int)v->i;
        else if (!strcmp(key, "gamma")) fe->gamma = v->d;
        else if (!strcmp(key, "trainable")) snprintf(fe->trainable, sizeof fe->trainable, "%.63s", v->s);
        return;
    }
    if (!strcmp(key, "epochs")) ft->epochs = (int)v->i;
    else if (!strcmp(key, "lr")) ft->lr = v->d;
    else if (!strcmp(key, "layer_decay"))
        ft->decay = !strcmp(v->s, "linear")        ? LAYER_DECAY_LINEAR
                    : !strcmp(v->s, "exponential") ? LAYER_DECAY_EXPONENTIAL
                                                   : LAYER_DECAY_NONE;
    else if (!strcmp(key, "factor")) ft->factor = v->d;
    else if (!strcmp(key, "lowest_lr")) ft->lowest_lr = v->d;
    else if (!strcmp(key, "step_every")) ft->step_every = (int)v->i;
    else if (!strcmp(key, "gamma")) ft->gamma = v->d;
    else if (!strcmp(key, "default_lr")) ft->default_lr = v->d;
}

static void parse_phase(parse_ctx *ctx, sweep_schedule *sc, int phase, yaml_node_t *n,
                        const char *prefix) {
    if (check_mapping(ctx, n, prefix)) return;
    for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top; p++) {
        yaml_node_t *k = node(ctx, p->key), *v = node(ctx, p->value);
        char dotted[256];
        snprintf(dotted, sizeof dotted, "%s.%s", prefix, key_name(k));
        const schedule_key *sk = NULL;
        char known[256] = "";
        for (const schedule_key *c = schedule_keys; c->key; c++)
            if (c->phase == phase) {
                if (!strcmp(c->key, key_name(k))) sk = c;
                size_t used = strlen(known);
                snprintf(known + used, sizeof known - used, "%s%s", used ? ", " : "", c->key);
            }
        if (!sk) {
            FAIL(ctx, k, dotted, "unknown key (known: %s)", known);
            continue;
        }
        sweep_value value;
        if (parse_typed(ctx, v, dotted, sk->type, sk->choices, &value)) continue;
        apply_schedule_key(sc, phase, sk->key, &value);
    }
}

static void parse_schedules(parse_ctx *ctx, yaml_node_t *n) {
    if (check_mapping(ctx, n, "schedules")) return;
    sweep *s = ctx->s;
    int count = (int)(n->data.mapping.pairs.top - n->data.mapping.pairs.start);
    s->schedules = calloc((size_t)(count ? count : 1), sizeof *s->schedules);
    if (!s->schedules) {
        FAIL(ctx, n, "schedules", "out of memory");
        return;
    }
    for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top; p++) {
        yaml_node_t *k = node(ctx, p->key), *v = node(ctx, p->value);
        char prefix[160];
        snprintf(prefix, sizeof prefix, "schedules.%s", key_name(k));
        if (strlen(key_name(k)) >= SWEEP_KEY_MAX || strpbrk(key_name(k), "/ =")) {
            FAIL(ctx, k, prefix, "a schedule name is at most %d characters without '/', ' ' or '='",
                 SWEEP_KEY_MAX - 1);
            continue;
        }
        sweep_schedule *sc = &s->schedules[s->n_schedules];
        trial_spec defaults;
        trial_spec_defaults(&defaults);
        snprintf(sc->name, sizeof sc->name, "%s", key_name(k));
        sc->line = line_of(k);
        sc->feature_extraction = defaults.feature_extraction;
        sc->fine_tuning = defaults.fine_tuning;
        if (check_mapping(ctx, v, prefix)) continue;
        for (yaml_node_pair_t *q = v->data.mapping.pairs.start; q < v->data.mapping.pairs.top;
             q++) {
            yaml_node_t *pk = node(ctx, q->key), *pv = node(ctx, q->value);
            char sub[200];
            snprintf(sub, sizeof sub, "%s.%s", prefix, key_name(pk));
            if (!strcmp(key_name(pk), "feature_extraction")) parse_phase(ctx, sc, 1, pv, sub);
            else if (!strcmp(key_name(pk), "fine_tuning")) parse_phase(ctx, sc, 2, pv, sub);
            else FAIL(ctx, pk, sub, "unknown key (known: feature_extraction, fine_tuning)");
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

static void parse_backbones(parse_ctx *ctx, yaml_node_t *n) {
    if (check_mapping(ctx, n, "backbones")) return;
    sweep *s = ctx->s;
    int count = (int)(n->data.mapping.pairs.top - n->data.mapping.pairs.start);
    s->overrides = calloc((size_t)(count ? count : 1), sizeof *s->overrides);
    if (!s->overrides) {
        FAIL(ctx, n, "backbones", "out of memory");
        return;
    }
    for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top; p++) {
        yaml_node_t *k = node(ctx, p->key), *v = node(ctx, p->value);
        char prefix[160];
        snprintf(prefix, sizeof prefix, "backbones.%s", key_name(k));
        if (!in_choices(sweep_backbones, key_name(k))) {
            char known[256];
            choices_text(sweep_backbones, known, sizeof known);
            FAIL(ctx, k, prefix, "unknown backbone '%s' (known: %s)", key_name(k), known);
            continue;
        }
        if (check_mapping(ctx, v, prefix)) continue;
        sweep_override *o = &s->overrides[s->n_overrides++];
        snprintf(o->backbone, sizeof o->backbone, "%s", key_name(k));
        o->line = line_of(k);
        for (yaml_node_pair_t *q = v->data.mapping.pairs.start; q < v->data.mapping.pairs.top;
             q++) {
            yaml_node_t *ok = node(ctx, q->key), *ov = node(ctx, q->value);
            char dotted[256];
            snprintf(dotted, sizeof dotted, "%s.%s", prefix, key_name(ok));
            int key = sweep_override_find(key_name(ok));
            if (key < 0) {
                FAIL(ctx, ok, dotted,
                     "unknown key (known: weights, width, dropout, batch_size, precision, resize, "
                     "crop)");
                continue;
            }
            sweep_value value;
            if (parse_key_value(ctx, key, ov, dotted, &value)) continue;
            if (push_setting(&o->settings, &o->n_settings, key, &value))
                FAIL(ctx, ok, dotted, "out of memory");
        }
    }
}

static int axis_find(const sweep *s, const char *key) {
    for (int i = 0; i < s->n_axes; i++)
        if (!strcmp(s->axes[i].key, key)) return i;
    return -1;
}

static void parse_exclude(parse_ctx *ctx, yaml_node_t *n) {
    sweep *s = ctx->s;
    if (n->type != YAML_SEQUENCE_NODE) {
        FAIL(ctx, n, "exclude", "expected a list of mappings (axis: value), got %s",
             node_kind(n));
        return;
    }
    int count = (int)(n->data.sequence.items.top - n->data.sequence.items.start);
    s->excludes = calloc((size_t)(count ? count : 1), sizeof *s->excludes);
    if (!s->excludes) {
        FAIL(ctx, n, "exclude", "out of memory");
        return;
    }
    for (int i = 0; i < count; i++) {
        yaml_node_t *item = node(ctx, n->data.sequence.items.start[i]);
        char prefix[64];
        snprintf(prefix, sizeof prefix, "exclude[%d]", i);
        if (check_mapping(ctx, item, prefix)) continue;
        sweep_exclude *e = &s->excludes[s->n_excludes];
        e->line = line_of(item);
        for (int a = 0; a < SWEEP_MAX_AXES; a++) e->axis[a] = -1;
        int bad = 0;
        for (yaml_node_pair_t *p = item->data.mapping.pairs.start;
             p < item->data.mapping.pairs.top; p++) {
            yaml_node_t *k = node(ctx, p->key), *v = node(ctx, p->value);
            char dotted[160];
            snprintf(dotted, sizeof dotted, "%s.%s", prefix, key_name(k));
            int a = axis_find(s, key_name(k));
            if (a < 0) {
                FAIL(ctx, k, dotted, "'%s' is not a grid axis", key_name(k));
                bad = 1;
                continue;
            }
            sweep_value value;
            sweep_key_type type = s->axes[a].key_index >= 0 ? sweep_keys[s->axes[a].key_index].type
                                                            : KEY_STRING;
            const char *const *choices =
                s->axes[a].key_index >= 0 ? sweep_keys[s->axes[a].key_index].choices : NULL;
            if (parse_typed(ctx, v, dotted, type, choices, &value)) {
                bad = 1;
                continue;
            }
            for (int j = 0; j < s->axes[a].n_values; j++)
                if (!strcmp(s->axes[a].values[j].text, value.text)) e->axis[a] = j;
            if (e->axis[a] < 0) {
                FAIL(ctx, v, dotted, "'%s' is not a value of grid.%s", value.text, key_name(k));
                bad = 1;
            }
        }
        if (!bad) s->n_excludes++;
    }
}

static int path_exists(const char *path, int want_dir) {
    struct stat st;
    if (stat(path, &st)) return 0;
    return want_dir ? S_ISDIR(st.st_mode) : S_ISREG(st.st_mode);
}

/* The checks that need the whole file: required keys, schedule names, per-trial consistency,
 * and (outside --simulate) the dataset and weights files on disk. */
static void check_whole(parse_ctx *ctx, const int *seen_line, yaml_node_t *root) {
    sweep *s = ctx->s;
    if (!s->name[0] && !seen_line[0]) problem(ctx, line_of(root), "name", "missing (required)");
    int root_line = -1;
    for (int i = 0; i < s->n_settings; i++)
        if (!strcmp(sweep_keys[s->settings[i].key].key, "data.root")) root_line = i;
    if (root_line < 0 && axis_find(s, "data.root") < 0)
        problem(ctx, line_of(root), "data.root", "missing (required)");
    int b = axis_find(s, "backbone"), c = axis_find(s, "schedule");
    if (b < 0) problem(ctx, line_of(root), "grid.backbone", "missing (required)");
    if (c < 0) problem(ctx, line_of(root), "grid.schedule", "missing (required)");
    if (c >= 0)
        for (int i = 0; i < s->axes[c].n_values; i++)
            if (sweep_schedule_find(s, s->axes[c].values[i].s) < 0)
                problem(ctx, s->axes[c].values[i].line, "grid.schedule",
                        "schedule '%s' is not defined under schedules", s->axes[c].values[i].s);
    if (ctx->errs->count) return; /* expansion needs a consistent sweep */

    trial_list trials;
    char err[256];
    if (grid_expand(s, &trials, err, sizeof err)) {
        problem(ctx, line_of(root), "grid", "%s", err);
        return;
    }
    if (trials.count == 0) problem(ctx, line_of(root), "exclude", "every grid point is excluded");
    /* Report each distinct problem once, not once per trial. */
    char last_root[TRIAL_PATH_MAX] = "", last_weights[TRIAL_PATH_MAX] = "";
    int crop_reported = 0;
    for (int t = 0; t < trials.count; t++) {
        trial_spec spec;
        grid_trial_spec(s, &trials.items[t], &spec);
        if (spec.crop > spec.resize && !crop_reported) {
            problem(ctx, line_of(root), "data.crop", "crop %d is larger than resize %d (trial %s)",
                    spec.crop, spec.resize, spec.name);
            crop_reported = 1;
        }
        if (!ctx->opt->check_paths) continue;
        if (strcmp(last_root, spec.data_root)) {
            snprintf(last_root, sizeof last_root, "%s", spec.data_root);
            char p[TRIAL_PATH_MAX + 32];
            const char *missing = NULL;
            if (!path_exists(spec.data_root, 1)) missing = "";
            else if (snprintf(p, sizeof p, "%s/jpg", spec.data_root), !path_exists(p, 1))
                missing = "jpg/";
            else if (snprintf(p, sizeof p, "%s/imagelabels.mat", spec.data_root),
                     !path_exists(p, 0))
                missing = "imagelabels.mat";
            else if (snprintf(p, sizeof p, "%s/setid.mat", spec.data_root), !path_exists(p, 0))
                missing = "setid.mat";
            if (missing)
                problem(ctx, root_line >= 0 ? s->settings[root_line].line : line_of(root),
                        "data.root",
                        *missing ? "dataset '%s' has no %s (make one with tlsweep synth-flowers)"
                                 : "dataset '%s' does not exist%s (make one with tlsweep "
                                   "synth-flowers)",
                        spec.data_root, missing);
        }
        if (strcmp(spec.weights, "none") && strcmp(spec.weights, "torchvision") &&
            strcmp(last_weights, spec.weights)) {
            snprintf(last_weights, sizeof last_weights, "%s", spec.weights);
            if (!path_exists(spec.weights, 0))
                problem(ctx, line_of(root), "model.weights",
                        "weights file '%s' does not exist (trial %s)", spec.weights, spec.name);
        }
    }
    grid_trials_free(&trials);
}

static void parse_root(parse_ctx *ctx, yaml_node_t *root) {
    sweep *s = ctx->s;
    if (root->type != YAML_MAPPING_NODE) {
        problem(ctx, line_of(root), "(top level)", "expected a mapping of sections, got %s",
                node_kind(root));
        return;
    }
    if (check_mapping(ctx, root, "(top level)")) return;
    int seen_name = 0;
    yaml_node_t *exclude = NULL;
    static const char *const known =
        "name, data, augment, train, model, grid, exclude, backbones, schedules, retries, "
        "gpus_per_trial, output";
    int saw_schedules = 0, saw_grid = 0;
    for (yaml_node_pair_t *p = root->data.mapping.pairs.start; p < root->data.mapping.pairs.top;
         p++) {
        yaml_node_t *k = node(ctx, p->key), *v = node(ctx, p->value);
        const char *key = key_name(k);
        sweep_value value;
        if (!strcmp(key, "name")) {
            seen_name = 1;
            if (parse_typed(ctx, v, "name", KEY_STRING, NULL, &value)) continue;
            if (strlen(value.s) >= SWEEP_NAME_MAX ||
                strspn(value.s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") !=
                    strlen(value.s))
                FAIL(ctx, v, "name", "expected letters, digits, '.', '_' or '-' (at most %d), got '%s'",
                     SWEEP_NAME_MAX - 1, value.s);
            else snprintf(s->name, sizeof s->name, "%.63s", value.s);
        } else if (!strcmp(key, "data") || !strcmp(key, "augment") || !strcmp(key, "train") ||
                   !strcmp(key, "model"))
            parse_section(ctx, key, v);
        else if (!strcmp(key, "grid")) {
            saw_grid = 1;
            parse_grid(ctx, v);
        } else if (!strcmp(key, "exclude")) exclude = v;
        else if (!strcmp(key, "backbones")) parse_backbones(ctx, v);
        else if (!strcmp(key, "schedules")) {
            saw_schedules = 1;
            parse_schedules(ctx, v);
        } else if (!strcmp(key, "retries")) {
            if (!parse_typed(ctx, v, "retries", KEY_INT_NONNEG, NULL, &value)) {
                if (value.i > 100) FAIL(ctx, v, "retries", "expected at most 100, got %lld", value.i);
                s->retries = (int)value.i;
            }
        } else if (!strcmp(key, "gpus_per_trial")) {
            if (!parse_typed(ctx, v, "gpus_per_trial", KEY_INT_POSITIVE, NULL, &value)) {
                if (value.i != 1)
                    FAIL(ctx, v, "gpus_per_trial",
                         "only 1 is supported by this version, got %lld", value.i);
                s->gpus_per_trial = (int)value.i;
            }
        } else if (!strcmp(key, "output")) {
            if (!parse_typed(ctx, v, "output", KEY_STRING, NULL, &value))
                snprintf(s->output, sizeof s->output, "%s", value.s);
        } else
            FAIL(ctx, k, key, "unknown key (known: %s)", known);
    }
    if (exclude) parse_exclude(ctx, exclude);
    if (!saw_grid) problem(ctx, line_of(root), "grid", "missing (required)");
    if (!saw_schedules) problem(ctx, line_of(root), "schedules", "missing (required)");
    int seen[1] = {seen_name};
    if (!saw_grid || !saw_schedules) return;
    check_whole(ctx, seen, root);
}

int sweep_parse(const char *file, const char *text, size_t len, const sweep_options *opt,
                sweep *out, sweep_errors *errs) {
    memset(out, 0, sizeof *out);
    snprintf(out->file, sizeof out->file, "%s", file);
    out->retries = 2;
    out->gpus_per_trial = 1;
    out->text = malloc(len + 1);
    if (!out->text) {
        sweep_errors_add(errs, "%s: out of memory", file);
        return -1;
    }
    memcpy(out->text, text, len);
    out->text[len] = 0;
    out->text_len = len;
    if (memchr(text, 0, len)) {
        sweep_errors_add(errs, "%s: not a text file (it contains NUL bytes)", file);
        return -1;
    }

    yaml_parser_t parser;
    yaml_document_t doc;
    if (!yaml_parser_initialize(&parser)) {
        sweep_errors_add(errs, "%s: cannot initialize the YAML parser", file);
        return -1;
    }
    yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
    if (!yaml_parser_load(&parser, &doc)) {
        sweep_errors_add(errs, "%s:%d: YAML syntax error: %s%s%s", file,
                         (int)parser.problem_mark.line + 1,
                         parser.problem ? parser.problem : "unknown",
                         parser.context ? " " : "", parser.context ? parser.context : "");
        yaml_parser_delete(&parser);
        return -1;
    }
    parse_ctx ctx = {file, &doc, out, errs, opt};
    yaml_node_t *root = yaml_document_get_root_node(&doc);
    if (!root) sweep_errors_add(errs, "%s:1: (top level): the file is empty", file);
    else parse_root(&ctx, root);
    if (!out->output[0] && out->name[0])
        snprintf(out->output, sizeof out->output, "runs/%s.h5", out->name);
    yaml_document_delete(&doc);
    yaml_parser_delete(&parser);
    return errs->count || errs->dropped ? -1 : 0;
}

int sweep_load(const char *file, const sweep_options *opt, sweep *out, sweep_errors *errs) {
    memset(out, 0, sizeof *out);
    FILE *f = fopen(file, "rb");
    if (!f) {
        sweep_errors_add(errs, "%s: cannot open the sweep file: %s", file, strerror(errno));
        return -1;
    }
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap);
    while (buf) {
        size_t got = fread(buf + len, 1, cap - len, f);
        len += got;
        if (got == 0) break;
        if (len == cap) {
            if (cap >= (1u << 24)) break; /* a sweep file is small; stop a runaway read */
            char *grown = realloc(buf, cap * 2);
            if (!grown) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = grown;
            cap *= 2;
        }
    }
    int read_error = ferror(f);
    fclose(f);
    if (!buf || read_error || len >= (1u << 24)) {
        sweep_errors_add(errs, "%s: cannot read the sweep file%s", file,
                         len >= (1u << 24) ? " (larger than 16 MiB)" : "");
        free(buf);
        return -1;
    }
    int rc = sweep_parse(file, buf, len, opt, out, errs);
    free(buf);
    return rc;
}

int sweep_schedule_find(const sweep *s, const char *name) {
    for (int i = 0; i < s->n_schedules; i++)
        if (!strcmp(s->schedules[i].name, name)) return i;
    return -1;
}

void sweep_free(sweep *s) {
    free(s->text);
    free(s->settings);
    for (int i = 0; i < s->n_axes; i++) free(s->axes[i].values);
    free(s->schedules);
    for (int i = 0; i < s->n_overrides; i++) free(s->overrides[i].settings);
    free(s->overrides);
    free(s->excludes);
    memset(s, 0, sizeof *s);
}
