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
#include "orchestrator/sweep_yaml.h"
#include "worker/models/model.h"
#include "worker/paths.h"

/* The validator knows exactly the backbones the model code builds. */
const char *const *const sweep_backbones = model_backbones;

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
    if (errs->messages[errs->count])
        errs->count++;
    else
        errs->dropped++;
}

void sweep_errors_free(sweep_errors *errs) {
    for (int i = 0; i < errs->count; i++)
        free(errs->messages[i]);
    errs->count = 0;
    errs->dropped = 0;
}

void sweep_errors_print(const sweep_errors *errs, FILE *out, const char *prefix) {
    for (int i = 0; i < errs->count; i++)
        fprintf(out, "%s%s\n", prefix, errs->messages[i]);
    if (errs->dropped) fprintf(out, "(%d more problems)\n", errs->dropped);
}

static void known_in_section(const char *section, char *out, size_t len) {
    out[0] = 0;
    size_t plen = strlen(section);
    for (int i = 0; sweep_keys[i].key; i++)
        if (!strncmp(sweep_keys[i].key, section, plen) && sweep_keys[i].key[plen] == '.') {
            size_t used = strlen(out);
            snprintf(out + used, len - used, "%s%s", used ? ", " : "",
                     sweep_keys[i].key + plen + 1);
        }
}

/* data:, augment:, train:, model: */
static void parse_section(parse_ctx *ctx, const char *section, yaml_node_t *n) {
    if (sy_check_mapping(ctx, n, section)) return;
    for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top; p++) {
        yaml_node_t *k = sy_node(ctx, p->key), *v = sy_node(ctx, p->value);
        char dotted[SWEEP_KEY_MAX * 2];
        snprintf(dotted, sizeof dotted, "%s.%s", section, sy_key(k));
        int key = sweep_key_find(dotted);
        if (key < 0) {
            char known[512];
            known_in_section(section, known, sizeof known);
            FAIL(ctx, k, dotted, "unknown key (known: %s)", known);
            continue;
        }
        sweep_value value;
        if (sy_parse_key_value(ctx, key, v, dotted, &value)) continue;
        if (sy_push_setting(&ctx->s->settings, &ctx->s->n_settings, key, &value))
            FAIL(ctx, k, dotted, "out of memory");
    }
}

static void parse_grid(parse_ctx *ctx, yaml_node_t *n) {
    if (sy_check_mapping(ctx, n, "grid")) return;
    sweep *s = ctx->s;
    for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top; p++) {
        yaml_node_t *k = sy_node(ctx, p->key), *v = sy_node(ctx, p->value);
        const char *name = sy_key(k);
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
                 v->type == YAML_SEQUENCE_NODE ? "an empty list" : sy_kind(v));
            continue;
        }
        sweep_axis *axis = &s->axes[s->n_axes];
        memset(axis, 0, sizeof *axis);
        snprintf(axis->key, sizeof axis->key, "%s", name);
        const char *dot = strrchr(name, '.');
        snprintf(axis->short_name, sizeof axis->short_name, "%s", dot ? dot + 1 : name);
        axis->key_index = key_index;
        axis->line = sy_line(k);
        int count = (int)(v->data.sequence.items.top - v->data.sequence.items.start);
        axis->values = calloc((size_t)count, sizeof *axis->values);
        if (!axis->values) {
            FAIL(ctx, k, dotted, "out of memory");
            continue;
        }
        for (int i = 0; i < count; i++) {
            yaml_node_t *item = sy_node(ctx, v->data.sequence.items.start[i]);
            sweep_value *value = &axis->values[axis->n_values];
            int rc;
            if (key_index >= 0)
                rc = sy_parse_key_value(ctx, key_index, item, dotted, value);
            else if (key_index == AXIS_BACKBONE) {
                rc = sy_parse_typed(ctx, item, dotted, KEY_STRING, NULL, value);
                if (!rc && !sy_in_choices(sweep_backbones, value->s)) {
                    char known[256];
                    sy_choices_text(sweep_backbones, known, sizeof known);
                    FAIL(ctx, item, dotted, "unknown backbone '%s' (known: %s)", value->s, known);
                    rc = -1;
                }
            } else
                rc = sy_parse_typed(ctx, item, dotted, KEY_STRING, NULL, value);
            if (rc) continue;
            for (int j = 0; j < axis->n_values; j++)
                if (!strcmp(axis->values[j].text, value->text)) {
                    FAIL(ctx, item, dotted, "value '%s' appears twice", value->text);
                    rc = -1;
                }
            if (!rc) axis->n_values++;
        }
        for (int j = 0; j < s->n_axes; j++)
            if (!strcmp(s->axes[j].short_name, axis->short_name))
                FAIL(ctx, k, dotted, "two grid axes named '%s' would make trial names ambiguous",
                     axis->short_name);
        s->n_axes++;
    }
}

static int path_exists(const char *path, int want_dir) {
    struct stat st;
    if (stat(path, &st)) return 0;
    return want_dir ? S_ISDIR(st.st_mode) : S_ISREG(st.st_mode);
}

/* Whether a relative path has a ".." component (and so may climb out of where it starts). */
static int escapes_upwards(const char *path) {
    for (const char *p = path; *p;) {
        size_t len = strcspn(p, "/");
        if (len == 2 && p[0] == '.' && p[1] == '.') return 1;
        p += len;
        while (*p == '/')
            p++;
    }
    return 0;
}

/* The checks that need the whole file: required keys, schedule names, per-trial consistency,
 * and (outside --simulate) the dataset and weights files on disk. */
static void check_whole(parse_ctx *ctx, int seen_name, yaml_node_t *root) {
    sweep *s = ctx->s;
    if (!s->name[0] && !seen_name) sy_problem(ctx, sy_line(root), "name", "missing (required)");
    int root_line = -1;
    for (int i = 0; i < s->n_settings; i++)
        if (!strcmp(sweep_keys[s->settings[i].key].key, "data.root")) root_line = i;
    if (root_line < 0 && sy_axis_find(s, "data.root") < 0)
        sy_problem(ctx, sy_line(root), "data.root", "missing (required)");
    int b = sy_axis_find(s, "backbone"), c = sy_axis_find(s, "schedule");
    if (b < 0) sy_problem(ctx, sy_line(root), "grid.backbone", "missing (required)");
    if (c < 0) sy_problem(ctx, sy_line(root), "grid.schedule", "missing (required)");
    if (c >= 0)
        for (int i = 0; i < s->axes[c].n_values; i++)
            if (sweep_schedule_find(s, s->axes[c].values[i].s) < 0)
                sy_problem(ctx, s->axes[c].values[i].line, "grid.schedule",
                           "schedule '%s' is not defined under schedules", s->axes[c].values[i].s);
    if (ctx->errs->count) return; /* expansion needs a consistent sweep */

    trial_list trials;
    char err[256];
    if (grid_expand(s, &trials, err, sizeof err)) {
        sy_problem(ctx, sy_line(root), "grid", "%s", err);
        return;
    }
    if (trials.count == 0)
        sy_problem(ctx, sy_line(root), "exclude", "every grid point is excluded");
    /* Report each distinct problem once, not once per trial. */
    char last_root[TRIAL_PATH_MAX] = "", last_weights[TRIAL_PATH_MAX] = "";
    int crop_reported = 0;
    for (int t = 0; t < trials.count; t++) {
        trial_spec spec;
        grid_trial_spec(s, &trials.items[t], &spec);
        if (spec.crop > spec.resize && !crop_reported) {
            sy_problem(ctx, sy_line(root), "data.crop",
                       "crop %d is larger than resize %d (trial %s)", spec.crop, spec.resize,
                       spec.name);
            crop_reported = 1;
        }
        if (!ctx->opt->check_paths) continue;
        if (strcmp(last_root, spec.data_root)) {
            snprintf(last_root, sizeof last_root, "%s", spec.data_root);
            char p[TRIAL_PATH_MAX + 32];
            const char *missing = NULL;
            if (!path_exists(spec.data_root, 1))
                missing = "";
            else if (snprintf(p, sizeof p, "%s/jpg", spec.data_root), !path_exists(p, 1))
                missing = "jpg/";
            else if (snprintf(p, sizeof p, "%s/imagelabels.mat", spec.data_root),
                     !path_exists(p, 0))
                missing = "imagelabels.mat";
            else if (snprintf(p, sizeof p, "%s/setid.mat", spec.data_root), !path_exists(p, 0))
                missing = "setid.mat";
            char tried[TRIAL_PATH_MAX + 16];
            if (missing)
                sy_problem(
                    ctx, root_line >= 0 ? s->settings[root_line].line : sy_line(root), "data.root",
                    *missing ? "dataset '%s'%s has no %s (make one with tlsweep "
                               "synth-flowers)"
                             : "dataset '%s'%s does not exist%s (make one with tlsweep "
                               "synth-flowers)",
                    spec.data_root, path_tried(spec.data_root, tried, sizeof tried), missing);
        }
        if (strcmp(spec.weights, "none") && strcmp(spec.weights, "torchvision") &&
            strcmp(last_weights, spec.weights)) {
            snprintf(last_weights, sizeof last_weights, "%s", spec.weights);
            char tried[TRIAL_PATH_MAX + 16];
            if (!path_exists(spec.weights, 0))
                sy_problem(ctx, sy_line(root), "model.weights",
                           "weights file '%s'%s does not exist (trial %s)", spec.weights,
                           path_tried(spec.weights, tried, sizeof tried), spec.name);
        }
    }
    grid_trials_free(&trials);
}

static void parse_root(parse_ctx *ctx, yaml_node_t *root) {
    sweep *s = ctx->s;
    if (root->type != YAML_MAPPING_NODE) {
        sy_problem(ctx, sy_line(root), "(top level)", "expected a mapping of sections, got %s",
                   sy_kind(root));
        return;
    }
    if (sy_check_mapping(ctx, root, "(top level)")) return;
    int seen_name = 0;
    yaml_node_t *exclude = NULL;
    static const char *const known =
        "name, data, augment, train, model, grid, exclude, backbones, schedules, retries, "
        "gpus_per_trial, ranks_per_gpu, ranks_per_trial, share_phase1, output";
    int saw_schedules = 0, saw_grid = 0, ranks_given = 0;
    yaml_node_t *gpus_node = NULL; /* gpus_per_trial, where it was given */
    for (yaml_node_pair_t *p = root->data.mapping.pairs.start; p < root->data.mapping.pairs.top;
         p++) {
        yaml_node_t *k = sy_node(ctx, p->key), *v = sy_node(ctx, p->value);
        const char *key = sy_key(k);
        sweep_value value;
        if (!strcmp(key, "name")) {
            seen_name = 1;
            if (sy_parse_typed(ctx, v, "name", KEY_STRING, NULL, &value)) continue;
            if (strlen(value.s) >= SWEEP_NAME_MAX ||
                strspn(value.s,
                       "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") !=
                    strlen(value.s))
                FAIL(ctx, v, "name",
                     "expected letters, digits, '.', '_' or '-' (at most %d), got '%s'",
                     SWEEP_NAME_MAX - 1, value.s);
            else
                snprintf(s->name, sizeof s->name, "%.63s", value.s);
        } else if (!strcmp(key, "data") || !strcmp(key, "augment") || !strcmp(key, "train") ||
                   !strcmp(key, "model"))
            parse_section(ctx, key, v);
        else if (!strcmp(key, "grid")) {
            saw_grid = 1;
            parse_grid(ctx, v);
        } else if (!strcmp(key, "exclude"))
            exclude = v;
        else if (!strcmp(key, "backbones"))
            sy_parse_backbones(ctx, v);
        else if (!strcmp(key, "schedules")) {
            saw_schedules = 1;
            sy_parse_schedules(ctx, v);
        } else if (!strcmp(key, "retries")) {
            if (!sy_parse_typed(ctx, v, "retries", KEY_INT_NONNEG, NULL, &value)) {
                if (value.i > 100)
                    FAIL(ctx, v, "retries", "expected at most 100, got %lld", value.i);
                s->retries = (int)value.i;
            }
        } else if (!strcmp(key, "gpus_per_trial")) {
            /* ranks_per_trial's name for GPU workers (a rank has one GPU) */
            if (!sy_parse_typed(ctx, v, "gpus_per_trial", KEY_INT_POSITIVE, NULL, &value)) {
                if (value.i > 64)
                    FAIL(ctx, v, "gpus_per_trial", "expected at most 64, got %lld", value.i);
                s->gpus_per_trial = (int)value.i;
                gpus_node = v;
            }
        } else if (!strcmp(key, "ranks_per_gpu")) {
            if (!sy_parse_typed(ctx, v, "ranks_per_gpu", KEY_INT_POSITIVE, NULL, &value)) {
                if (value.i > 64)
                    FAIL(ctx, v, "ranks_per_gpu", "expected at most 64, got %lld", value.i);
                s->ranks_per_gpu = (int)value.i;
            }
        } else if (!strcmp(key, "ranks_per_trial")) {
            if (!sy_parse_typed(ctx, v, "ranks_per_trial", KEY_INT_POSITIVE, NULL, &value)) {
                if (value.i > 64)
                    FAIL(ctx, v, "ranks_per_trial", "expected at most 64, got %lld", value.i);
                s->ranks_per_trial = (int)value.i;
                ranks_given = 1;
            }
        } else if (!strcmp(key, "share_phase1")) {
            if (!sy_parse_typed(ctx, v, "share_phase1", KEY_BOOL, NULL, &value))
                s->share_phase1 = (int)value.i;
        } else if (!strcmp(key, "output")) {
            if (sy_parse_typed(ctx, v, "output", KEY_STRING, NULL, &value)) continue;
            if (value.s[0] != '/' && escapes_upwards(value.s))
                FAIL(ctx, v, "output",
                     "'%s' leaves the working directory ('..'); give an absolute path to write "
                     "elsewhere",
                     value.s);
            else
                snprintf(s->output, sizeof s->output, "%s", value.s);
        } else
            FAIL(ctx, k, key, "unknown key (known: %s)", known);
    }
    if (gpus_node && ranks_given && s->gpus_per_trial != s->ranks_per_trial)
        FAIL(ctx, gpus_node, "gpus_per_trial",
             "%d, but ranks_per_trial is %d: they name the same group size (a rank per GPU); give "
             "one",
             s->gpus_per_trial, s->ranks_per_trial);
    else if (gpus_node)
        s->ranks_per_trial = s->gpus_per_trial;
    if (exclude) sy_parse_exclude(ctx, exclude);
    if (!saw_grid) sy_problem(ctx, sy_line(root), "grid", "missing (required)");
    if (!saw_schedules) sy_problem(ctx, sy_line(root), "schedules", "missing (required)");
    if (!saw_grid || !saw_schedules) return;
    check_whole(ctx, seen_name, root);
}

/* A sweep nests a few levels; libyaml's loader takes quadratic time in the depth (100,000
 * '[' took 15-30 s to refuse), so its events are walked first and a deep file stops early. */
#define SWEEP_MAX_NESTING 32
static int check_nesting(const char *file, const char *text, size_t len, sweep_errors *errs) {
    yaml_parser_t parser;
    if (!yaml_parser_initialize(&parser)) {
        sweep_errors_add(errs, "%s: cannot initialize the YAML parser", file);
        return -1;
    }
    yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
    int depth = 0, rc = 0;
    for (;;) {
        yaml_event_t event;
        if (!yaml_parser_parse(&parser, &event)) break; /* the loader reports syntax errors */
        yaml_event_type_t type = event.type;
        int line = (int)event.start_mark.line + 1;
        yaml_event_delete(&event);
        if (type == YAML_STREAM_END_EVENT) break;
        if (type == YAML_SEQUENCE_START_EVENT || type == YAML_MAPPING_START_EVENT) depth++;
        if (type == YAML_SEQUENCE_END_EVENT || type == YAML_MAPPING_END_EVENT) depth--;
        if (depth > SWEEP_MAX_NESTING) {
            sweep_errors_add(errs, "%s:%d: nested more than %d levels deep", file, line,
                             SWEEP_MAX_NESTING);
            rc = -1;
            break;
        }
    }
    yaml_parser_delete(&parser);
    return rc;
}

static int parse_text(const char *file, const char *text, size_t len, const sweep_options *opt,
                      sweep *out, sweep_errors *errs) {
    memset(out, 0, sizeof *out);
    snprintf(out->file, sizeof out->file, "%s", file);
    out->retries = 2;
    out->gpus_per_trial = 1;
    out->ranks_per_gpu = 1;
    out->ranks_per_trial = 1;
    out->share_phase1 = 1;
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

    if (check_nesting(file, text, len, errs)) return -1;
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
                         parser.problem ? parser.problem : "unknown", parser.context ? " " : "",
                         parser.context ? parser.context : "");
        yaml_parser_delete(&parser);
        return -1;
    }
    parse_ctx ctx = {file, &doc, out, errs, opt};
    yaml_node_t *root = yaml_document_get_root_node(&doc);
    if (!root)
        sweep_errors_add(errs, "%s:1: (top level): the file is empty", file);
    else
        parse_root(&ctx, root);
    if (!out->output[0] && out->name[0])
        snprintf(out->output, sizeof out->output, "runs/%s.h5", out->name);
    yaml_document_delete(&doc);
    yaml_parser_delete(&parser);
    return errs->count || errs->dropped ? -1 : 0;
}

int sweep_parse(const char *file, const char *text, size_t len, const sweep_options *opt,
                sweep *out, sweep_errors *errs) {
    /* a rejected sweep owns nothing: callers that only print the errors leak nothing */
    if (parse_text(file, text, len, opt, out, errs) == 0) return 0;
    sweep_free(out);
    return -1;
}

int sweep_load(const char *file, const sweep_options *opt, sweep *out, sweep_errors *errs) {
    memset(out, 0, sizeof *out);
    FILE *f = fopen(file, "rb");
    if (!f) {
        char tried[TRIAL_PATH_MAX + 16];
        int saved = errno;
        sweep_errors_add(errs, "%s: cannot open the sweep file%s: %s", file,
                         path_tried(file, tried, sizeof tried), strerror(saved));
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
    for (int i = 0; i < s->n_axes; i++)
        free(s->axes[i].values);
    free(s->schedules);
    for (int i = 0; i < s->n_overrides; i++)
        free(s->overrides[i].settings);
    free(s->overrides);
    free(s->excludes);
    memset(s, 0, sizeof *s);
}
