#include "worker/params.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int params_add(param_table *t, const char *name, int ndim, const int64_t *shape, int group,
               int is_buffer) {
    if (ndim < 0 || ndim > PARAM_MAX_DIMS || strlen(name) >= PARAM_NAME_MAX) return -1;
    if (t->count == t->capacity) {
        int capacity = t->capacity ? 2 * t->capacity : 64;
        param_tensor *grown = realloc(t->tensors, (size_t)capacity * sizeof *grown);
        if (!grown) return -1;
        t->tensors = grown;
        t->capacity = capacity;
    }
    param_tensor *p = &t->tensors[t->count];
    memset(p, 0, sizeof *p);
    strcpy(p->name, name);
    p->ndim = ndim;
    p->count = 1;
    for (int d = 0; d < ndim; d++) {
        p->shape[d] = shape[d];
        p->count *= (size_t)shape[d];
    }
    p->group = group;
    p->is_buffer = is_buffer;
    return t->count++;
}

void params_finalize(param_table *t) {
    size_t offset = 0;
    for (int pass = 0; pass < 2; pass++) {
        for (int i = 0; i < t->count; i++) {
            param_tensor *p = &t->tensors[i];
            if (p->is_buffer != pass) continue;
            p->offset = offset;
            offset += p->count;
        }
        if (pass == 0) t->param_count = offset;
    }
    t->total_count = offset;
}

int params_find(const param_table *t, const char *name) {
    for (int i = 0; i < t->count; i++)
        if (!strcmp(t->tensors[i].name, name)) return i;
    return -1;
}

void params_free(param_table *t) {
    free(t->tensors);
    memset(t, 0, sizeof *t);
}

size_t params_count_trainable(const param_table *t) {
    size_t n = 0;
    for (int i = 0; i < t->count; i++)
        if (!t->tensors[i].is_buffer && t->tensors[i].trainable) n += t->tensors[i].count;
    return n;
}

/* Appends "; what name" to a bounded message, noting how many did not fit. */
typedef struct {
    char *buf;
    size_t len, cap;
    int problems, omitted;
} problem_list;

static void problem(problem_list *l, const char *fmt, ...) {
    l->problems++;
    if (l->len + 96 > l->cap) {
        l->omitted++;
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(l->buf + l->len, l->cap - l->len, fmt, ap);
    va_end(ap);
    if (n > 0) l->len += (size_t)n < l->cap - l->len ? (size_t)n : l->cap - l->len - 1;
}

static int same_shape(const param_tensor *p, const weights_tensor *w) {
    if (p->ndim != w->ndim) return 0;
    for (int d = 0; d < p->ndim; d++)
        if (p->shape[d] != w->shape[d]) return 0;
    return 1;
}

static void shape_text(char *out, size_t cap, int ndim, const int64_t *shape) {
    size_t len = (size_t)snprintf(out, cap, "(");
    for (int d = 0; d < ndim && len < cap; d++)
        len += (size_t)snprintf(out + len, cap - len, d ? ", %lld" : "%lld", (long long)shape[d]);
    if (len < cap) snprintf(out + len, cap - len, ")");
}

static int is_counter(const char *name) {
    const char *suffix = "num_batches_tracked";
    size_t n = strlen(name), s = strlen(suffix);
    return n >= s && !strcmp(name + n - s, suffix);
}

int params_load(const param_table *t, float *values, const weights_file *w, const char *path,
                char *err, size_t errlen) {
    char detail[2048];
    problem_list l = {detail, 0, sizeof detail, 0, 0};
    detail[0] = 0;
    for (int i = 0; i < t->count; i++) {
        const param_tensor *p = &t->tensors[i];
        const weights_tensor *src = weights_find(w, p->name);
        if (!src) {
            problem(&l, "; missing %s", p->name);
            continue;
        }
        if (!same_shape(p, src)) {
            if (p->is_head) continue; /* the replaced head keeps its fresh initialisation */
            char want[96], got[96];
            shape_text(want, sizeof want, p->ndim, p->shape);
            shape_text(got, sizeof got, src->ndim, src->shape);
            problem(&l, "; wrong shape %s: file has %s, model needs %s", p->name, got, want);
            continue;
        }
        memcpy(values + p->offset, src->data, p->count * sizeof(float));
    }
    for (int i = 0; i < w->count; i++) {
        const char *name = w->tensors[i].name;
        if (params_find(t, name) < 0 && !is_counter(name)) problem(&l, "; unexpected %s", name);
    }
    if (!l.problems) return 0;
    snprintf(err, errlen, "%s: %d tensor(s) do not match the model%s%s", path, l.problems, detail,
             l.omitted ? " (and more)" : "");
    return -1;
}
