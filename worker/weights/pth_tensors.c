/* Named tensors out of a torch.save pickle (see pth_tensors.h). All checks that need a
 * tensor's name happen here, before any output is allocated. */
#include <stdlib.h>
#include <string.h>

#include "worker/weights/pth_tensors.h"

/* A state dict's values are all tensors; a wrapper dict has none at its top level. */
static int has_tensor(const pickle_value *dict) {
    for (size_t i = 1; i < dict->n; i += 2)
        if (dict->items[i]->kind == PV_TENSOR) return 1;
    return 0;
}

static const pickle_value *find_state_dict(const pickle_value *root, const weights_err *e) {
    if (root->kind != PV_DICT) {
        weights_fail(e, "holds a %s, not a state dict", pickle_kind_name(root->kind));
        return NULL;
    }
    if (has_tensor(root)) return root;
    static const char *const wrappers[] = {"state_dict", "model"};
    for (size_t i = 0; i < 2; i++) {
        const pickle_value *inner = pickle_dict_get(root, wrappers[i]);
        if (inner && inner->kind == PV_DICT && has_tensor(inner)) return inner;
    }
    if (root->n == 0) return root; /* an empty state dict is valid, if useless */
    weights_fail(e, "holds no tensors (expected a state dict, or one under 'state_dict' or "
                    "'model')");
    return NULL;
}

/* qsort has no context argument; the tensors are sorted through small index records. */
typedef struct {
    const char *key;
    size_t index;
} keyed;

static int cmp_keyed(const void *a, const void *b) {
    const keyed *x = a, *y = b;
    int c = strcmp(x->key, y->key);
    if (c) return c;
    return (x->index > y->index) - (x->index < y->index);
}

/* Checks one tensor's view against its storage and fills the output's name and shape. */
static int plan_tensor(const pickle_value *key, const pickle_value *value, weights_tensor *t,
                       int64_t *total_bytes, int64_t byte_limit, size_t file_size,
                       const weights_err *e) {
    if (key->kind != PV_STR || key->slen == 0 || key->slen > WEIGHTS_MAX_NAME ||
        strlen(key->s) != key->slen)
        return weights_fail(e, "state dict has a key that is not a usable tensor name");
    if (value->kind != PV_TENSOR)
        return weights_fail(e, "state dict entry '%s' is a %s, not a tensor", key->s,
                            pickle_kind_name(value->kind));
    const pickle_tensor *pt = value->tensor;
    const pickle_storage *st = pt->storage;
    int64_t count = 1, extent = 0, storage_bytes;
    for (int d = 0; d < pt->ndim; d++)
        if (weights_mul_limit(count, pt->size[d], WEIGHTS_MAX_ELEMS, &count))
            return weights_fail(e, "tensor '%s' has too many elements", key->s);
    if (count > 0) {
        for (int d = 0; d < pt->ndim; d++) {
            int64_t span;
            if (weights_mul_limit(pt->size[d] - 1, pt->stride[d], WEIGHTS_MAX_ELEMS, &span) ||
                weights_add_limit(extent, span, WEIGHTS_MAX_ELEMS, &extent))
                return weights_fail(e, "tensor '%s' has strides out of range", key->s);
        }
        if (pt->offset >= WEIGHTS_MAX_ELEMS ||
            weights_add_limit(extent, pt->offset + 1, WEIGHTS_MAX_ELEMS, &extent) ||
            extent > st->view_numel)
            return weights_fail(e,
                                "tensor '%s' (offset %lld, shape and strides reaching element "
                                "%lld) runs past the end of its storage '%s' of %lld elements",
                                key->s, (long long)pt->offset, (long long)extent - 1, st->key,
                                (long long)st->view_numel);
    }
    if (count > st->view_numel && count > WEIGHTS_BROADCAST_SLACK)
        return weights_fail(e, "tensor '%s' expands %lld storage elements to %lld", key->s,
                            (long long)st->view_numel, (long long)count);
    if (weights_mul_limit(st->numel, (int64_t)weights_dtype_size(st->dtype), (int64_t)file_size,
                          &storage_bytes))
        return weights_fail(e, "storage '%s' claims %lld elements, more than the file holds",
                            st->key, (long long)st->numel);
    if (weights_add_limit(*total_bytes, count * 4, byte_limit, total_bytes))
        return weights_fail(e, "tensors would need more memory than a file this size can hold");
    t->name = malloc(key->slen + 1);
    t->data = malloc(count ? (size_t)count * sizeof(float) : 1);
    if (!t->name || !t->data) return weights_fail(e, "out of memory for tensor '%s'", key->s);
    memcpy(t->name, key->s, key->slen + 1);
    t->ndim = pt->ndim;
    for (int d = 0; d < pt->ndim; d++)
        t->shape[d] = pt->size[d];
    t->count = (size_t)count;
    return 0;
}

/* Groups tensors by storage key; one storage named with two types or sizes is refused. */
static int plan_groups(pth_plan *plan, size_t n, keyed *scratch, const weights_err *e) {
    for (size_t i = 0; i < n; i++)
        scratch[i] = (keyed){plan->tensors[i]->storage->key, i};
    qsort(scratch, n, sizeof *scratch, cmp_keyed);
    plan->order = malloc((n ? n : 1) * sizeof *plan->order);
    plan->uses = malloc((n ? n : 1) * sizeof *plan->uses);
    if (!plan->order || !plan->uses) return weights_fail(e, "out of memory");
    for (size_t i = 0; i < n; i++) {
        const pickle_storage *st = plan->tensors[scratch[i].index]->storage;
        plan->order[i] = scratch[i].index;
        pth_storage_use *last = plan->nuses ? &plan->uses[plan->nuses - 1] : NULL;
        if (last && strcmp(last->key, st->key) == 0) {
            if (last->dtype != st->dtype || last->numel != st->numel)
                return weights_fail(e, "storage '%s' is declared with two types or sizes", st->key);
            last->count++;
        } else {
            plan->uses[plan->nuses++] = (pth_storage_use){st->key, st->dtype, st->numel, i, 1};
        }
    }
    return 0;
}

int pth_plan_build(const pickle_value *root, size_t file_size, pth_plan *plan, weights_file *out,
                   const weights_err *e) {
    memset(plan, 0, sizeof *plan);
    memset(out, 0, sizeof *out);
    const pickle_value *dict = find_state_dict(root, e);
    if (!dict) return -1;
    size_t n = dict->n / 2;
    if (n > INT32_MAX) return weights_fail(e, "state dict has too many entries");
    out->tensors = calloc(n ? n : 1, sizeof *out->tensors);
    plan->tensors = calloc(n ? n : 1, sizeof *plan->tensors);
    keyed *scratch = malloc((n ? n : 1) * sizeof *scratch);
    if (!out->tensors || !plan->tensors || !scratch) {
        free(scratch);
        return weights_fail(e, "out of memory");
    }
    out->count = (int)n;
    /* fp32 output is at most 4x the smallest element type; tied weights double that */
    int64_t total = 0, limit = (int64_t)file_size * 16 + ((int64_t)1 << 28);
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        rc = plan_tensor(dict->items[2 * i], dict->items[2 * i + 1], &out->tensors[i], &total,
                         limit, file_size, e);
        if (rc == 0) plan->tensors[i] = dict->items[2 * i + 1]->tensor;
    }
    if (rc == 0) {
        for (size_t i = 0; i < n; i++)
            scratch[i] = (keyed){out->tensors[i].name, i};
        qsort(scratch, n, sizeof *scratch, cmp_keyed);
        for (size_t i = 1; i < n && rc == 0; i++)
            if (strcmp(scratch[i - 1].key, scratch[i].key) == 0)
                rc = weights_fail(e, "state dict has the key '%s' twice", scratch[i].key);
    }
    if (rc == 0) rc = plan_groups(plan, n, scratch, e);
    free(scratch);
    return rc;
}

/* Copies one tensor, in row-major order of its shape, from its strided view. */
static void gather(const pickle_tensor *pt, weights_dtype dtype, const unsigned char *bytes,
                   float *dst) {
    size_t elem = weights_dtype_size(dtype);
    int64_t base = pt->storage->view_offset + pt->offset;
    if (pt->ndim == 0) {
        weights_convert(dst, bytes + (size_t)base * elem, 1, dtype);
        return;
    }
    int last = pt->ndim - 1;
    int64_t run = pt->size[last], run_stride = pt->stride[last];
    int64_t index[WEIGHTS_MAX_DIMS] = {0};
    for (int d = 0; d < pt->ndim; d++)
        if (pt->size[d] == 0) return;
    for (;;) {
        int64_t at = base;
        for (int d = 0; d < last; d++)
            at += index[d] * pt->stride[d];
        if (run_stride == 1) {
            weights_convert(dst, bytes + (size_t)at * elem, (size_t)run, dtype);
        } else {
            for (int64_t k = 0; k < run; k++)
                weights_convert(dst + k, bytes + (size_t)(at + k * run_stride) * elem, 1, dtype);
        }
        dst += run;
        int d = last - 1;
        while (d >= 0 && ++index[d] == pt->size[d])
            index[d--] = 0;
        if (d < 0) return;
    }
}

void pth_plan_fill(const pth_plan *plan, const pth_storage_use *use, const unsigned char *bytes,
                   weights_file *out) {
    for (size_t i = use->first; i < use->first + use->count; i++) {
        size_t t = plan->order[i];
        gather(plan->tensors[t], use->dtype, bytes, out->tensors[t].data);
    }
}

void pth_plan_free(pth_plan *plan) {
    free(plan->tensors);
    free(plan->order);
    free(plan->uses);
    memset(plan, 0, sizeof *plan);
}
