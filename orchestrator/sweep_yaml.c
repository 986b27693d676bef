/* YAML nodes with line numbers and typed values for the sweep parser (see sweep_yaml.h). */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "orchestrator/sweep_yaml.h"
int sy_line(const yaml_node_t *n) {
    return (int)n->start_mark.line + 1;
}

void sy_problem(parse_ctx *ctx, int line, const char *key, const char *fmt, ...) {
    char what[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    sweep_errors_add(ctx->errs, "%s:%d: %s: %s", ctx->file, line, key, what);
}

const char *sy_scalar(const yaml_node_t *n) {
    return n && n->type == YAML_SCALAR_NODE ? (const char *)n->data.scalar.value : NULL;
}

/* The text of a mapping key (check_mapping has made sure keys are scalars). */
const char *sy_key(const yaml_node_t *n) {
    const char *s = sy_scalar(n);
    return s ? s : "?";
}

yaml_node_t *sy_node(parse_ctx *ctx, int id) {
    return yaml_document_get_node(ctx->doc, id);
}

const char *sy_kind(const yaml_node_t *n) {
    switch (n->type) {
    case YAML_MAPPING_NODE:
        return "a mapping";
    case YAML_SEQUENCE_NODE:
        return "a list";
    default:
        return "a scalar";
    }
}

/* Checks n is a mapping whose keys are scalars and unique; returns 0 or -1 (reported). */
int sy_check_mapping(parse_ctx *ctx, yaml_node_t *n, const char *key) {
    if (n->type != YAML_MAPPING_NODE) {
        FAIL(ctx, n, key, "expected a mapping, got %s", sy_kind(n));
        return -1;
    }
    int bad = 0;
    for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top; p++) {
        yaml_node_t *k = sy_node(ctx, p->key);
        if (!sy_scalar(k)) {
            FAIL(ctx, k, key, "a key must be a plain name, got %s", sy_kind(k));
            bad = 1;
            continue;
        }
        for (yaml_node_pair_t *q = n->data.mapping.pairs.start; q < p; q++)
            if (sy_scalar(sy_node(ctx, q->key)) &&
                !strcmp(sy_scalar(sy_node(ctx, q->key)), sy_key(k))) {
                FAIL(ctx, k, key, "duplicate key '%s' (first at line %d)", sy_key(k),
                     sy_line(sy_node(ctx, q->key)));
                bad = 1;
            }
    }
    return bad ? -1 : 0;
}

const char *sy_type_words(sweep_key_type t) {
    switch (t) {
    case KEY_INT_POSITIVE:
        return "a positive integer";
    case KEY_INT_NONNEG:
        return "an integer >= 0";
    case KEY_PROBABILITY:
        return "a number in [0, 1]";
    case KEY_DOUBLE_NONNEG:
        return "a number >= 0";
    case KEY_DOUBLE_POSITIVE:
        return "a number > 0";
    case KEY_GAMMA:
        return "a number in (0, 1]";
    case KEY_FACTOR:
        return "a number >= 1";
    case KEY_ANGLE:
        return "an angle in degrees in [0, 90)";
    case KEY_STRING:
        return "a string";
    case KEY_CHOICE:
        return "one of";
    case KEY_BOOL:
        return "true or false";
    case KEY_SPLITS:
        return "a list of split names";
    }
    return "?";
}

void sy_choices_text(const char *const *choices, char *out, size_t len) {
    out[0] = 0;
    for (int i = 0; choices && choices[i]; i++) {
        size_t used = strlen(out);
        snprintf(out + used, len - used, "%s%s", i ? ", " : "", choices[i]);
    }
}

int sy_in_choices(const char *const *choices, const char *v) {
    for (int i = 0; choices && choices[i]; i++)
        if (!strcmp(choices[i], v)) return 1;
    return 0;
}

/* Parses one value of the given type at node n into out; reports and returns -1 when bad. */
int sy_parse_typed(parse_ctx *ctx, yaml_node_t *n, const char *key, sweep_key_type type,
                   const char *const *choices, sweep_value *out) {
    memset(out, 0, sizeof *out);
    out->line = sy_line(n);
    if (type == KEY_SPLITS) {
        char known[128];
        sy_choices_text(choices, known, sizeof known);
        if (n->type != YAML_SEQUENCE_NODE) {
            FAIL(ctx, n, key, "expected a list of split names (%s), got %s", known, sy_kind(n));
            return -1;
        }
        int count = (int)(n->data.sequence.items.top - n->data.sequence.items.start);
        if (count == 0 || count > TRIAL_MAX_SPLITS) {
            FAIL(ctx, n, key, "expected 1 to %d split names, got %d", TRIAL_MAX_SPLITS, count);
            return -1;
        }
        for (int i = 0; i < count; i++) {
            const char *v = sy_scalar(sy_node(ctx, n->data.sequence.items.start[i]));
            if (!v || !sy_in_choices(choices, v)) {
                FAIL(ctx, n, key, "unknown split '%s' (known: %s)", v ? v : "?", known);
                return -1;
            }
            snprintf(out->list[out->n_list++], 16, "%s", v);
            size_t used = strlen(out->text);
            snprintf(out->text + used, sizeof out->text - used, "%s%s", i ? "+" : "", v);
        }
        return 0;
    }
    const char *v = sy_scalar(n);
    if (!v) {
        FAIL(ctx, n, key, "expected %s, got %s", sy_type_words(type), sy_kind(n));
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
            FAIL(ctx, n, key, "expected %s, got '%s'", sy_type_words(type), v);
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
            case KEY_PROBABILITY:
                ok = out->d >= 0 && out->d <= 1;
                break;
            case KEY_DOUBLE_NONNEG:
                ok = out->d >= 0;
                break;
            case KEY_DOUBLE_POSITIVE:
                ok = out->d > 0;
                break;
            case KEY_GAMMA:
                ok = out->d > 0 && out->d <= 1;
                break;
            case KEY_FACTOR:
                ok = out->d >= 1;
                break;
            default:
                ok = out->d >= 0 && out->d < 90;
                break;
            }
        if (!ok) {
            FAIL(ctx, n, key, "expected %s, got '%s'", sy_type_words(type), v);
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
        if (!sy_in_choices(choices, v)) {
            char known[256];
            sy_choices_text(choices, known, sizeof known);
            FAIL(ctx, n, key, "expected one of %s, got '%s'", known, v);
            return -1;
        }
        snprintf(out->s, sizeof out->s, "%s", v);
        return 0;
    case KEY_BOOL:
        if (!strcmp(v, "true") || !strcmp(v, "yes"))
            out->i = 1;
        else if (!strcmp(v, "false") || !strcmp(v, "no"))
            out->i = 0;
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

int sy_parse_key_value(parse_ctx *ctx, int key, yaml_node_t *n, const char *dotted,
                       sweep_value *out) {
    const sweep_key *k = &sweep_keys[key];
    if (sy_parse_typed(ctx, n, dotted, k->type, k->choices, out)) return -1;
    if (k->max && out->i > k->max) {
        FAIL(ctx, n, dotted, "expected at most %lld, got %lld", k->max, out->i);
        return -1;
    }
    return 0;
}

int sy_push_setting(sweep_setting **list, int *count, int key, const sweep_value *v) {
    sweep_setting *grown = realloc(*list, (size_t)(*count + 1) * sizeof **list);
    if (!grown) return -1;
    *list = grown;
    grown[*count].key = key;
    grown[*count].line = v->line;
    grown[*count].value = *v;
    (*count)++;
    return 0;
}

int sy_axis_find(const sweep *s, const char *key) {
    for (int i = 0; i < s->n_axes; i++)
        if (!strcmp(s->axes[i].key, key)) return i;
    return -1;
}
