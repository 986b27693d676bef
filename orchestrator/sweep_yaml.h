/* Internal to the sweep parser (sweep.c, sweep_yaml.c, sweep_sections.c): YAML nodes with
 * their line numbers, typed values, and the one way problems are reported. */
#ifndef TLSWEEP_SWEEP_YAML_H
#define TLSWEEP_SWEEP_YAML_H

#include <stddef.h>
#include <yaml.h>

#include "orchestrator/sweep.h"

typedef struct {
    const char *file;
    yaml_document_t *doc;
    sweep *s;
    sweep_errors *errs;
    const sweep_options *opt;
} parse_ctx;

/* "FILE:LINE: KEY: what" into ctx->errs */
void sy_problem(parse_ctx *ctx, int line, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
#define FAIL(ctx, node, key, ...) sy_problem(ctx, sy_line(node), key, __VA_ARGS__)

int sy_line(const yaml_node_t *n);
const char *sy_scalar(const yaml_node_t *n); /* NULL unless a scalar */
const char *sy_key(const yaml_node_t *n);    /* a mapping key's text (checked to be a scalar) */
yaml_node_t *sy_node(parse_ctx *ctx, int id);
const char *sy_kind(const yaml_node_t *n); /* "a mapping", "a list", "a scalar" */
/* n is a mapping with plain, unique keys; -1 (reported) if not */
int sy_check_mapping(parse_ctx *ctx, yaml_node_t *n, const char *key);
const char *sy_type_words(sweep_key_type t);
void sy_choices_text(const char *const *choices, char *out, size_t len);
int sy_in_choices(const char *const *choices, const char *v);
/* One value of a type at node n; -1 (reported) when it is not one. */
int sy_parse_typed(parse_ctx *ctx, yaml_node_t *n, const char *key, sweep_key_type type,
                   const char *const *choices, sweep_value *out);
int sy_parse_key_value(parse_ctx *ctx, int key, yaml_node_t *n, const char *dotted,
                       sweep_value *out);
int sy_push_setting(sweep_setting **list, int *count, int key, const sweep_value *v);
int sy_axis_find(const sweep *s, const char *key);

/* sweep_sections.c: schedules:, backbones:, exclude: (after grid:) */
void sy_parse_schedules(parse_ctx *ctx, yaml_node_t *n);
void sy_parse_backbones(parse_ctx *ctx, yaml_node_t *n);
void sy_parse_exclude(parse_ctx *ctx, yaml_node_t *n);

#endif
