/* The strict pickle machine (see pickle.h). Every length is checked against the bytes left
 * before it is used, every pop against the stack (and the open MARK), every memo index
 * against a limit; anything outside what torch.save emits is refused by name. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "worker/weights/pickle.h"

#define PICKLE_MAX_MEMO ((size_t)1 << 24)
#define PICKLE_MAX_LINE 256 /* GLOBAL module and name lines */

typedef struct {
    pickle_ctx *ctx;
    const weights_err *e;
    const unsigned char *buf;
    size_t len, pos;
    pickle_value **stack;
    size_t sp, stack_cap;
    size_t *marks;
    size_t nmarks, marks_cap;
    pickle_value **memo;
    size_t memo_cap, memo_count;
} machine;

const char *pickle_kind_name(pickle_kind kind) {
    switch (kind) {
    case PV_NONE:
        return "None";
    case PV_BOOL:
        return "bool";
    case PV_INT:
        return "int";
    case PV_FLOAT:
        return "float";
    case PV_STR:
        return "str";
    case PV_TUPLE:
        return "tuple";
    case PV_LIST:
        return "list";
    case PV_DICT:
        return "dict";
    case PV_GLOBAL:
        return "global";
    case PV_STORAGE:
        return "storage";
    case PV_TENSOR:
        return "tensor";
    }
    return "?";
}

/* Grows *arr (elements of ELEM bytes) to hold at least NEED; -1 when out of memory. */
static int grow(void **arr, size_t *cap, size_t need, size_t elem) {
    if (need <= *cap) return 0;
    size_t ncap = *cap ? *cap : 16;
    while (ncap < need) {
        if (ncap > SIZE_MAX / 2 / elem) return -1;
        ncap *= 2;
    }
    void *p = realloc(*arr, ncap * elem);
    if (!p) return -1;
    *arr = p;
    *cap = ncap;
    return 0;
}

static int fail_oom(machine *m) {
    return weights_fail(m->e, "out of memory reading the pickle");
}

static pickle_value *new_value(machine *m, pickle_kind kind) {
    pickle_ctx *c = m->ctx;
    if (grow((void **)&c->values, &c->cap, c->nvalues + 1, sizeof *c->values)) return NULL;
    pickle_value *v = calloc(1, sizeof *v);
    if (!v) return NULL;
    v->kind = kind;
    c->values[c->nvalues++] = v;
    return v;
}

static int add_item(pickle_value *container, pickle_value *item) {
    if (grow((void **)&container->items, &container->cap, container->n + 1,
             sizeof *container->items))
        return -1;
    container->items[container->n++] = item;
    return 0;
}

static int push(machine *m, pickle_value *v) {
    if (!v) return fail_oom(m);
    if (grow((void **)&m->stack, &m->stack_cap, m->sp + 1, sizeof *m->stack)) return fail_oom(m);
    m->stack[m->sp++] = v;
    return 0;
}

/* Items above the innermost MARK are the only ones an opcode may take. */
static size_t frame_base(const machine *m) {
    return m->nmarks ? m->marks[m->nmarks - 1] : 0;
}

static pickle_value *pop(machine *m) {
    if (m->sp <= frame_base(m)) {
        weights_fail(m->e, "pickle stack underflow at byte %zu", m->pos);
        return NULL;
    }
    return m->stack[--m->sp];
}

static pickle_value *top(machine *m) {
    if (m->sp <= frame_base(m)) {
        weights_fail(m->e, "pickle stack underflow at byte %zu", m->pos);
        return NULL;
    }
    return m->stack[m->sp - 1];
}

/* Pops back to the innermost MARK; *first and *count describe the items above it. */
static int pop_mark(machine *m, size_t *first, size_t *count) {
    if (m->nmarks == 0) return weights_fail(m->e, "pickle uses a MARK that was never set");
    size_t base = m->marks[--m->nmarks];
    *first = base;
    *count = m->sp - base;
    m->sp = base;
    return 0;
}

static int need(machine *m, size_t n, const char *what) {
    if (n > m->len - m->pos)
        return weights_fail(m->e, "pickle is truncated: %s at byte %zu needs %zu bytes, %zu left",
                            what, m->pos, n, m->len - m->pos);
    return 0;
}

static uint64_t read_le(const unsigned char *p, size_t n) {
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

static int push_int(machine *m, int64_t value) {
    pickle_value *v = new_value(m, PV_INT);
    if (v) v->i = value;
    return push(m, v);
}

static int push_string(machine *m, size_t n) {
    if (need(m, n, "string")) return -1;
    pickle_value *v = new_value(m, PV_STR);
    if (!v) return fail_oom(m);
    v->s = malloc(n + 1);
    if (!v->s) return fail_oom(m);
    memcpy(v->s, m->buf + m->pos, n);
    v->s[n] = 0;
    v->slen = n;
    m->pos += n;
    return push(m, v);
}

static int push_sequence(machine *m, pickle_kind kind, size_t first, size_t count) {
    pickle_value *v = new_value(m, kind);
    if (!v) return fail_oom(m);
    for (size_t i = 0; i < count; i++)
        if (add_item(v, m->stack[first + i])) return fail_oom(m);
    return push(m, v);
}

static int tuple_n(machine *m, size_t n) {
    if (m->sp - frame_base(m) < n)
        return weights_fail(m->e, "pickle stack underflow at byte %zu", m->pos);
    m->sp -= n;
    return push_sequence(m, PV_TUPLE, m->sp, n);
}

static int memo_put(machine *m, size_t index) {
    if (index >= PICKLE_MAX_MEMO || index > m->len)
        return weights_fail(m->e, "pickle memo index %zu is out of range", index);
    pickle_value *v = top(m);
    if (!v) return -1;
    size_t old = m->memo_cap;
    if (grow((void **)&m->memo, &m->memo_cap, index + 1, sizeof *m->memo)) return fail_oom(m);
    if (m->memo_cap > old) memset(m->memo + old, 0, (m->memo_cap - old) * sizeof *m->memo);
    if (!m->memo[index]) m->memo_count++;
    m->memo[index] = v;
    return 0;
}

static int memo_get(machine *m, size_t index) {
    if (index >= m->memo_cap || !m->memo[index])
        return weights_fail(m->e, "pickle reads memo entry %zu which was never stored", index);
    return push(m, m->memo[index]);
}

static const struct {
    const char *module, *name;
    pickle_global id;
    weights_dtype dtype;
} allowed_globals[] = {
    {"collections", "OrderedDict", PG_ORDERED_DICT, WDT_F32},
    {"torch._utils", "_rebuild_tensor_v2", PG_REBUILD_TENSOR_V2, WDT_F32},
    {"torch._utils", "_rebuild_tensor", PG_REBUILD_TENSOR, WDT_F32},
    {"torch._utils", "_rebuild_parameter", PG_REBUILD_PARAMETER, WDT_F32},
    {"torch", "Size", PG_SIZE, WDT_F32},
    {"torch", "FloatStorage", PG_STORAGE_TYPE, WDT_F32},
    {"torch", "DoubleStorage", PG_STORAGE_TYPE, WDT_F64},
    {"torch", "HalfStorage", PG_STORAGE_TYPE, WDT_F16},
    {"torch", "BFloat16Storage", PG_STORAGE_TYPE, WDT_BF16},
    {"torch", "LongStorage", PG_STORAGE_TYPE, WDT_I64},
    {"torch", "IntStorage", PG_STORAGE_TYPE, WDT_I32},
    {"torch", "ShortStorage", PG_STORAGE_TYPE, WDT_I16},
    {"torch", "CharStorage", PG_STORAGE_TYPE, WDT_I8},
    {"torch", "ByteStorage", PG_STORAGE_TYPE, WDT_U8},
    {"torch", "BoolStorage", PG_STORAGE_TYPE, WDT_BOOL},
};

/* Recognises an allowed global by name; anything else is refused and named, never called. */
static int push_global(machine *m, const char *module, size_t module_len, const char *name,
                       size_t name_len) {
    for (size_t i = 0; i < sizeof allowed_globals / sizeof allowed_globals[0]; i++) {
        if (strlen(allowed_globals[i].module) == module_len &&
            strlen(allowed_globals[i].name) == name_len &&
            !memcmp(allowed_globals[i].module, module, module_len) &&
            !memcmp(allowed_globals[i].name, name, name_len)) {
            pickle_value *v = new_value(m, PV_GLOBAL);
            if (!v) return fail_oom(m);
            v->i = allowed_globals[i].id;
            v->dtype = allowed_globals[i].dtype;
            return push(m, v);
        }
    }
    /* print the name safely: it comes from the file and may hold control bytes */
    char shown[2 * PICKLE_MAX_LINE + 2];
    size_t k = 0;
    for (size_t i = 0; i < module_len + 1 + name_len && k + 1 < sizeof shown; i++) {
        char ch = i < module_len ? module[i] : i == module_len ? '.' : name[i - module_len - 1];
        shown[k++] = (ch >= 32 && ch < 127) ? ch : '?';
    }
    shown[k] = 0;
    return weights_fail(
        m->e, "pickle refers to global '%s', which is not allowed in a weights file", shown);
}

static int read_line(machine *m, const char **start, size_t *n) {
    *start = (const char *)m->buf + m->pos;
    size_t max = m->len - m->pos;
    if (max > PICKLE_MAX_LINE) max = PICKLE_MAX_LINE;
    const unsigned char *nl = memchr(m->buf + m->pos, '\n', max);
    if (!nl) return weights_fail(m->e, "pickle GLOBAL at byte %zu has no end of line", m->pos);
    *n = (size_t)(nl - (m->buf + m->pos));
    m->pos += *n + 1;
    return 0;
}

static int as_int(machine *m, const pickle_value *v, const char *what, int64_t *out) {
    if (!v || v->kind != PV_INT)
        return weights_fail(m->e, "pickle: %s is a %s, expected an int", what,
                            v ? pickle_kind_name(v->kind) : "nothing");
    *out = v->i;
    return 0;
}

static int as_dims(machine *m, const pickle_value *v, const char *what, int *ndim, int64_t *dims) {
    if (!v || v->kind != PV_TUPLE)
        return weights_fail(m->e, "pickle: tensor %s is a %s, expected a tuple", what,
                            v ? pickle_kind_name(v->kind) : "nothing");
    if (v->n > WEIGHTS_MAX_DIMS)
        return weights_fail(m->e, "pickle: tensor %s has %zu dimensions, more than %d", what, v->n,
                            WEIGHTS_MAX_DIMS);
    char label[32];
    snprintf(label, sizeof label, "tensor %s entry", what);
    for (size_t i = 0; i < v->n; i++) {
        if (as_int(m, v->items[i], label, &dims[i])) return -1;
        if (dims[i] < 0) return weights_fail(m->e, "pickle: tensor %s has a negative entry", what);
    }
    *ndim = (int)v->n;
    return 0;
}

/* _rebuild_tensor_v2(storage, offset, size, stride, requires_grad, hooks[, metadata]) and the
 * older _rebuild_tensor(storage, offset, size, stride): recorded as data, checked later
 * against the storage (pth_tensors.c) where the tensor's name is known. */
static int rebuild_tensor(machine *m, const pickle_value *args, int v2) {
    if (v2 ? (args->n != 6 && args->n != 7) : args->n != 4)
        return weights_fail(m->e, "pickle: tensor rebuild takes %d arguments, got %zu", v2 ? 6 : 4,
                            args->n);
    const pickle_value *storage = args->items[0];
    if (storage->kind != PV_STORAGE)
        return weights_fail(m->e, "pickle: tensor rebuilt from a %s, expected a storage",
                            pickle_kind_name(storage->kind));
    pickle_value *v = new_value(m, PV_TENSOR);
    if (!v) return fail_oom(m);
    v->tensor = calloc(1, sizeof *v->tensor);
    if (!v->tensor) return fail_oom(m);
    pickle_tensor *t = v->tensor;
    t->storage = storage->storage;
    int stride_ndim = 0;
    if (as_int(m, args->items[1], "tensor storage offset", &t->offset)) return -1;
    if (t->offset < 0) return weights_fail(m->e, "pickle: tensor has a negative storage offset");
    if (as_dims(m, args->items[2], "size", &t->ndim, t->size)) return -1;
    if (as_dims(m, args->items[3], "stride", &stride_ndim, t->stride)) return -1;
    if (stride_ndim != t->ndim)
        return weights_fail(m->e, "pickle: tensor has %d sizes but %d strides", t->ndim,
                            stride_ndim);
    if (v2 && args->items[4]->kind != PV_BOOL)
        return weights_fail(m->e, "pickle: tensor requires_grad is a %s, expected a bool",
                            pickle_kind_name(args->items[4]->kind));
    return push(m, v);
}

/* OrderedDict() or, as Python 2 pickled it, OrderedDict([[key, value], ...]). */
static int rebuild_dict(machine *m, const pickle_value *args) {
    pickle_value *d = new_value(m, PV_DICT);
    if (!d) return fail_oom(m);
    if (args->n == 1 && args->items[0]->kind == PV_LIST) {
        const pickle_value *pairs = args->items[0];
        for (size_t i = 0; i < pairs->n; i++) {
            const pickle_value *p = pairs->items[i];
            if ((p->kind != PV_LIST && p->kind != PV_TUPLE) || p->n != 2)
                return weights_fail(m->e, "pickle: OrderedDict item %zu is not a pair", i);
            if (add_item(d, p->items[0]) || add_item(d, p->items[1])) return fail_oom(m);
        }
    } else if (args->n != 0) {
        return weights_fail(m->e, "pickle: OrderedDict called with %zu arguments", args->n);
    }
    return push(m, d);
}

static int op_reduce(machine *m) {
    pickle_value *args = pop(m);
    pickle_value *callable = args ? pop(m) : NULL;
    if (!callable) return -1;
    if (args->kind != PV_TUPLE)
        return weights_fail(m->e, "pickle REDUCE at byte %zu has %s arguments", m->pos,
                            pickle_kind_name(args->kind));
    if (callable->kind != PV_GLOBAL)
        return weights_fail(m->e, "pickle REDUCE at byte %zu calls a %s", m->pos,
                            pickle_kind_name(callable->kind));
    switch ((pickle_global)callable->i) {
    case PG_ORDERED_DICT:
        return rebuild_dict(m, args);
    case PG_REBUILD_TENSOR_V2:
        return rebuild_tensor(m, args, 1);
    case PG_REBUILD_TENSOR:
        return rebuild_tensor(m, args, 0);
    case PG_REBUILD_PARAMETER:
        /* _rebuild_parameter(data, requires_grad, hooks): the parameter is its data */
        if (args->n != 3 || args->items[0]->kind != PV_TENSOR)
            return weights_fail(m->e, "pickle: _rebuild_parameter needs (tensor, bool, hooks)");
        return push(m, args->items[0]);
    case PG_SIZE:
        if (args->n != 1 || args->items[0]->kind != PV_TUPLE)
            return weights_fail(m->e, "pickle: torch.Size needs one tuple");
        return push(m, args->items[0]);
    case PG_STORAGE_TYPE:
        break;
    }
    return weights_fail(m->e, "pickle REDUCE at byte %zu calls a storage type", m->pos);
}

/* BINPERSID: ('storage', type, key, location, numel[, view]) names a storage in the file;
 * the legacy format's view is (view_key, offset, view_numel) into that storage. */
static int op_persid(machine *m) {
    pickle_value *pid = pop(m);
    if (!pid) return -1;
    if (pid->kind != PV_TUPLE || (pid->n != 5 && pid->n != 6) || pid->items[0]->kind != PV_STR ||
        strcmp(pid->items[0]->s, "storage") != 0)
        return weights_fail(m->e, "pickle: persistent id at byte %zu is not a storage reference",
                            m->pos);
    const pickle_value *type = pid->items[1], *key = pid->items[2];
    if (type->kind != PV_GLOBAL || type->i != PG_STORAGE_TYPE)
        return weights_fail(m->e, "pickle: storage reference with a %s as its type",
                            pickle_kind_name(type->kind));
    if (key->kind != PV_STR || key->slen == 0 || key->slen > WEIGHTS_MAX_NAME ||
        strlen(key->s) != key->slen)
        return weights_fail(m->e, "pickle: storage reference with a bad key");
    pickle_value *v = new_value(m, PV_STORAGE);
    if (!v) return fail_oom(m);
    v->storage = calloc(1, sizeof *v->storage);
    if (!v->storage) return fail_oom(m);
    pickle_storage *s = v->storage;
    s->key = key->s;
    s->dtype = type->dtype;
    if (as_int(m, pid->items[4], "storage size", &s->numel)) return -1;
    if (s->numel < 0 || s->numel > WEIGHTS_MAX_ELEMS)
        return weights_fail(m->e, "pickle: storage '%s' claims %lld elements", s->key,
                            (long long)s->numel);
    s->view_offset = 0;
    s->view_numel = s->numel;
    if (pid->n == 6 && pid->items[5]->kind != PV_NONE) {
        const pickle_value *view = pid->items[5];
        if (view->kind != PV_TUPLE || view->n != 3)
            return weights_fail(m->e, "pickle: storage '%s' has a malformed view", s->key);
        if (as_int(m, view->items[1], "storage view offset", &s->view_offset) ||
            as_int(m, view->items[2], "storage view size", &s->view_numel))
            return -1;
        if (s->view_offset < 0 || s->view_numel < 0 || s->view_offset > s->numel ||
            s->view_numel > s->numel - s->view_offset)
            return weights_fail(m->e, "pickle: view of storage '%s' lies outside it", s->key);
    }
    pickle_ctx *c = m->ctx;
    if (grow((void **)&c->storages, &c->storage_cap, c->nstorages + 1, sizeof *c->storages))
        return fail_oom(m);
    c->storages[c->nstorages++] = s;
    return push(m, v);
}

static int op_setitems(machine *m, pickle_value *const *items, size_t count) {
    pickle_value *d = top(m);
    if (!d) return -1;
    if (d->kind != PV_DICT)
        return weights_fail(m->e, "pickle sets items on a %s at byte %zu",
                            pickle_kind_name(d->kind), m->pos);
    if (count % 2) return weights_fail(m->e, "pickle SETITEMS with an odd number of items");
    for (size_t i = 0; i < count; i++)
        if (add_item(d, items[i])) return fail_oom(m);
    return 0;
}

static int op_appends(machine *m, pickle_value *const *items, size_t count) {
    pickle_value *l = top(m);
    if (!l) return -1;
    if (l->kind != PV_LIST)
        return weights_fail(m->e, "pickle appends to a %s at byte %zu", pickle_kind_name(l->kind),
                            m->pos);
    for (size_t i = 0; i < count; i++)
        if (add_item(l, items[i])) return fail_oom(m);
    return 0;
}

/* BUILD sets state on an object; torch.save only does this to put `_metadata` on the
 * state_dict's OrderedDict, which holds nothing a reader needs, so it is accepted and dropped. */
static int op_build(machine *m) {
    pickle_value *state = pop(m);
    pickle_value *target = state ? top(m) : NULL;
    if (!target) return -1;
    if (target->kind != PV_DICT || state->kind != PV_DICT)
        return weights_fail(m->e, "pickle BUILD on a %s with a %s state is not supported",
                            pickle_kind_name(target->kind), pickle_kind_name(state->kind));
    return 0;
}

static int step(machine *m, int *stopped) {
    unsigned char op = m->buf[m->pos++];
    const unsigned char *p = m->buf + m->pos;
    size_t first = 0, count = 0;
    switch (op) {
    case 0x80: /* PROTO */
        if (need(m, 1, "PROTO")) return -1;
        if (p[0] < 2 || p[0] > 5)
            return weights_fail(m->e, "pickle protocol %d is not supported", p[0]);
        m->pos += 1;
        return 0;
    case 0x95: { /* FRAME: a length hint only */
        if (need(m, 8, "FRAME")) return -1;
        uint64_t n = read_le(p, 8);
        m->pos += 8;
        if (n > m->len - m->pos) return weights_fail(m->e, "pickle frame runs past the end");
        return 0;
    }
    case '}':
        return push(m, new_value(m, PV_DICT));
    case ']':
        return push(m, new_value(m, PV_LIST));
    case ')':
        return push(m, new_value(m, PV_TUPLE));
    case '(':
        if (grow((void **)&m->marks, &m->marks_cap, m->nmarks + 1, sizeof *m->marks))
            return fail_oom(m);
        m->marks[m->nmarks++] = m->sp;
        return 0;
    case 't':
        if (pop_mark(m, &first, &count)) return -1;
        return push_sequence(m, PV_TUPLE, first, count);
    case 0x85:
        return tuple_n(m, 1);
    case 0x86:
        return tuple_n(m, 2);
    case 0x87:
        return tuple_n(m, 3);
    case 'X': /* BINUNICODE */
        if (need(m, 4, "BINUNICODE")) return -1;
        m->pos += 4;
        return push_string(m, (size_t)read_le(p, 4));
    case 0x8c: /* SHORT_BINUNICODE */
    case 'U':  /* SHORT_BINSTRING (Python 2 str) */
        if (need(m, 1, "string length")) return -1;
        m->pos += 1;
        return push_string(m, p[0]);
    case 'T': /* BINSTRING (Python 2 str), a signed length */
        if (need(m, 4, "BINSTRING")) return -1;
        if ((int32_t)read_le(p, 4) < 0) return weights_fail(m->e, "pickle: negative string length");
        m->pos += 4;
        return push_string(m, (size_t)read_le(p, 4));
    case 0x8d: { /* BINUNICODE8 */
        if (need(m, 8, "BINUNICODE8")) return -1;
        uint64_t n = read_le(p, 8);
        m->pos += 8;
        if (n > m->len - m->pos)
            return weights_fail(m->e, "pickle is truncated: string of %llu bytes at byte %zu",
                                (unsigned long long)n, m->pos);
        return push_string(m, (size_t)n);
    }
    case 'J':
        if (need(m, 4, "BININT")) return -1;
        m->pos += 4;
        return push_int(m, (int32_t)(uint32_t)read_le(p, 4));
    case 'K':
        if (need(m, 1, "BININT1")) return -1;
        m->pos += 1;
        return push_int(m, p[0]);
    case 'M':
        if (need(m, 2, "BININT2")) return -1;
        m->pos += 2;
        return push_int(m, (int64_t)read_le(p, 2));
    case 0x8a: { /* LONG1: little-endian two's complement of n bytes */
        if (need(m, 1, "LONG1")) return -1;
        size_t n = p[0];
        if (n > 8) return weights_fail(m->e, "pickle integer of %zu bytes is too large", n);
        if (need(m, 1 + n, "LONG1")) return -1;
        uint64_t v = read_le(p + 1, n);
        if (n > 0 && n < 8 && (p[n] & 0x80)) v |= ~(uint64_t)0 << (8 * n);
        m->pos += 1 + n;
        return push_int(m, (int64_t)v);
    }
    case 'G': { /* BINFLOAT: big-endian double */
        if (need(m, 8, "BINFLOAT")) return -1;
        uint64_t bits = 0;
        for (int i = 0; i < 8; i++)
            bits = bits << 8 | p[i];
        m->pos += 8;
        pickle_value *v = new_value(m, PV_FLOAT);
        if (v) memcpy(&v->f, &bits, sizeof v->f);
        return push(m, v);
    }
    case 0x88:
    case 0x89: {
        pickle_value *v = new_value(m, PV_BOOL);
        if (v) v->i = op == 0x88;
        return push(m, v);
    }
    case 'N':
        return push(m, new_value(m, PV_NONE));
    case 'q':
        if (need(m, 1, "BINPUT")) return -1;
        m->pos += 1;
        return memo_put(m, p[0]);
    case 'r':
        if (need(m, 4, "LONG_BINPUT")) return -1;
        m->pos += 4;
        return memo_put(m, (size_t)read_le(p, 4));
    case 0x94:
        return memo_put(m, m->memo_count); /* MEMOIZE */
    case 'h':
        if (need(m, 1, "BINGET")) return -1;
        m->pos += 1;
        return memo_get(m, p[0]);
    case 'j':
        if (need(m, 4, "LONG_BINGET")) return -1;
        m->pos += 4;
        return memo_get(m, (size_t)read_le(p, 4));
    case 'c': {
        const char *module, *name;
        size_t module_len, name_len;
        if (read_line(m, &module, &module_len) || read_line(m, &name, &name_len)) return -1;
        return push_global(m, module, module_len, name, name_len);
    }
    case 0x93: { /* STACK_GLOBAL */
        pickle_value *name = pop(m);
        pickle_value *module = name ? pop(m) : NULL;
        if (!module) return -1;
        if (module->kind != PV_STR || name->kind != PV_STR)
            return weights_fail(m->e, "pickle STACK_GLOBAL needs two strings");
        return push_global(m, module->s, module->slen, name->s, name->slen);
    }
    case 'R':
        return op_reduce(m);
    case 'b':
        return op_build(m);
    case 's': {
        pickle_value *value = pop(m);
        pickle_value *key = value ? pop(m) : NULL;
        if (!key) return -1;
        pickle_value *pair[2] = {key, value};
        return op_setitems(m, pair, 2);
    }
    /* the popped items stay in the stack array until the next push; an empty MARK may
     * come before anything was pushed, when there is no stack array to point into */
    case 'u':
        if (pop_mark(m, &first, &count)) return -1;
        return op_setitems(m, count ? m->stack + first : NULL, count);
    case 'a': {
        pickle_value *item = pop(m);
        if (!item) return -1;
        return op_appends(m, &item, 1);
    }
    case 'e':
        if (pop_mark(m, &first, &count)) return -1;
        return op_appends(m, count ? m->stack + first : NULL, count);
    case 'Q':
        return op_persid(m);
    case '.':
        if (m->nmarks != 0 || m->sp != 1)
            return weights_fail(m->e, "pickle STOP with %zu values and %zu open MARKs", m->sp,
                                m->nmarks);
        *stopped = 1;
        return 0;
    default:
        return weights_fail(m->e, "pickle opcode 0x%02x at byte %zu is not supported", op,
                            m->pos - 1);
    }
}

int pickle_load(pickle_ctx *ctx, const unsigned char *buf, size_t len, size_t *consumed,
                pickle_value **root, const weights_err *e) {
    machine m = {.ctx = ctx, .e = e, .buf = buf, .len = len};
    int stopped = 0, rc = 0;
    while (!stopped) {
        if (m.pos >= m.len) {
            rc =
                weights_fail(e, "pickle is truncated: it ends after %zu bytes without STOP", m.len);
            break;
        }
        if (step(&m, &stopped)) {
            rc = -1;
            break;
        }
    }
    if (rc == 0) {
        *root = m.stack[0];
        *consumed = m.pos;
    }
    free(m.stack);
    free(m.marks);
    free(m.memo);
    return rc;
}

void pickle_ctx_free(pickle_ctx *ctx) {
    for (size_t i = 0; i < ctx->nvalues; i++) {
        pickle_value *v = ctx->values[i];
        free(v->s);
        free(v->items);
        free(v->storage);
        free(v->tensor);
        free(v);
    }
    free(ctx->values);
    free(ctx->storages);
    memset(ctx, 0, sizeof *ctx);
}

const pickle_value *pickle_dict_get(const pickle_value *dict, const char *key) {
    if (!dict || dict->kind != PV_DICT) return NULL;
    for (size_t i = 0; i + 1 < dict->n; i += 2)
        if (dict->items[i]->kind == PV_STR && strcmp(dict->items[i]->s, key) == 0)
            return dict->items[i + 1];
    return NULL;
}
