/* .safetensors reader: an 8-byte little-endian header length, a JSON header
 * {name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {str: str}}, then the
 * data. Every entry is checked (offsets inside the data, sizes matching dtype and shape, no
 * overlap, no unindexed bytes) before any tensor is allocated. */
#include <stdlib.h>
#include <string.h>

#include "worker/weights/json.h"
#include "worker/weights/weights_internal.h"

/* the reference implementation's limit: larger headers are a denial-of-service attempt */
#define SAFETENSORS_MAX_HEADER ((uint64_t)100 << 20)

typedef struct {
    const char *name;
    weights_dtype dtype;
    int ndim;
    int64_t shape[WEIGHTS_MAX_DIMS];
    int64_t count;
    uint64_t begin, end;
} st_entry;

static const struct {
    const char *name;
    weights_dtype dtype;
} st_dtypes[] = {
    {"F32", WDT_F32}, {"F64", WDT_F64}, {"F16", WDT_F16}, {"BF16", WDT_BF16}, {"I64", WDT_I64},
    {"I32", WDT_I32}, {"I16", WDT_I16}, {"I8", WDT_I8},   {"U8", WDT_U8},     {"BOOL", WDT_BOOL},
    {"U16", WDT_U16}, {"U32", WDT_U32}, {"U64", WDT_U64},
};

static int parse_dtype(const json_value *v, const char *name, weights_dtype *dt,
                       const weights_err *e) {
    if (!v || v->kind != JSON_STRING)
        return weights_fail(e, "tensor '%s' has no dtype string", name);
    for (size_t i = 0; i < sizeof st_dtypes / sizeof st_dtypes[0]; i++)
        if (strcmp(v->str, st_dtypes[i].name) == 0) {
            *dt = st_dtypes[i].dtype;
            return 0;
        }
    return weights_fail(e, "tensor '%s' has dtype '%.32s', which is not supported", name, v->str);
}

static int parse_entry(const char *name, const json_value *v, uint64_t data_size, st_entry *out,
                       const weights_err *e) {
    if (strlen(name) > WEIGHTS_MAX_NAME) return weights_fail(e, "a tensor name is too long");
    if (v->kind != JSON_OBJECT)
        return weights_fail(e, "header entry '%s' is a %s, not an object", name,
                            json_kind_name(v->kind));
    for (size_t i = 0; i < v->n; i++)
        if (strcmp(v->keys[i], "dtype") && strcmp(v->keys[i], "shape") &&
            strcmp(v->keys[i], "data_offsets"))
            return weights_fail(e, "tensor '%s' has an unknown field '%.64s'", name, v->keys[i]);
    out->name = name;
    if (parse_dtype(json_object_get(v, "dtype"), name, &out->dtype, e)) return -1;
    const json_value *shape = json_object_get(v, "shape");
    if (!shape || shape->kind != JSON_ARRAY)
        return weights_fail(e, "tensor '%s' has no shape array", name);
    if (shape->n > WEIGHTS_MAX_DIMS)
        return weights_fail(e, "tensor '%s' has %zu dimensions, more than %d", name, shape->n,
                            WEIGHTS_MAX_DIMS);
    out->ndim = (int)shape->n;
    out->count = 1;
    for (size_t d = 0; d < shape->n; d++) {
        uint64_t dim;
        if (json_as_u64(&shape->items[d], &dim) || dim > (uint64_t)WEIGHTS_MAX_ELEMS)
            return weights_fail(e, "tensor '%s' has a shape entry that is not a valid size", name);
        out->shape[d] = (int64_t)dim;
        if (weights_mul_limit(out->count, (int64_t)dim, WEIGHTS_MAX_ELEMS, &out->count))
            return weights_fail(e, "tensor '%s' has too many elements", name);
    }
    const json_value *offsets = json_object_get(v, "data_offsets");
    if (!offsets || offsets->kind != JSON_ARRAY || offsets->n != 2 ||
        json_as_u64(&offsets->items[0], &out->begin) || json_as_u64(&offsets->items[1], &out->end))
        return weights_fail(e, "tensor '%s' needs data_offsets [begin, end] of two integers", name);
    if (out->begin > out->end || out->end > data_size)
        return weights_fail(e,
                            "tensor '%s' data_offsets [%llu, %llu] lie outside the %llu data "
                            "bytes",
                            name, (unsigned long long)out->begin, (unsigned long long)out->end,
                            (unsigned long long)data_size);
    int64_t bytes;
    size_t elem = weights_dtype_size(out->dtype);
    if (weights_mul_limit(out->count, (int64_t)elem, INT64_MAX, &bytes) ||
        (uint64_t)bytes != out->end - out->begin)
        return weights_fail(e,
                            "tensor '%s' is %s with %lld elements (%lld bytes) but its "
                            "data_offsets span %llu bytes",
                            name, weights_dtype_name(out->dtype), (long long)out->count,
                            (long long)out->count * (long long)elem,
                            (unsigned long long)(out->end - out->begin));
    return 0;
}

/* Checks __metadata__ (string values only) and keeps its pairs in out. */
static int read_metadata(const json_value *v, weights_file *out, const weights_err *e) {
    if (v->kind != JSON_OBJECT) return weights_fail(e, "__metadata__ is not an object");
    for (size_t i = 0; i < v->n; i++)
        if (v->items[i].kind != JSON_STRING)
            return weights_fail(e, "__metadata__ value '%.64s' is not a string", v->keys[i]);
    if (v->n > INT32_MAX / 2) return weights_fail(e, "__metadata__ has too many entries");
    out->metadata = calloc(2 * v->n + 1, sizeof *out->metadata);
    if (!out->metadata) return weights_fail(e, "out of memory");
    out->metadata_pairs = (int)v->n;
    for (size_t i = 0; i < v->n; i++)
        if (!(out->metadata[2 * i] = strdup(v->keys[i])) ||
            !(out->metadata[2 * i + 1] = strdup(v->items[i].str)))
            return weights_fail(e, "out of memory");
    return 0;
}

static int cmp_by_offset(const void *a, const void *b) {
    const st_entry *x = *(st_entry *const *)a, *y = *(st_entry *const *)b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    return (x->end > y->end) - (x->end < y->end);
}

/* Tensors may not share bytes, and every data byte must belong to a tensor (the format's
 * rule against polyglot files). */
static int check_layout(st_entry *entries, size_t n, uint64_t data_size, const weights_err *e) {
    st_entry **sorted = malloc((n ? n : 1) * sizeof *sorted);
    if (!sorted) return weights_fail(e, "out of memory");
    for (size_t i = 0; i < n; i++)
        sorted[i] = &entries[i];
    qsort(sorted, n, sizeof *sorted, cmp_by_offset);
    uint64_t at = 0;
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        if (sorted[i]->begin < at)
            rc = weights_fail(e, "tensors '%s' and '%s' overlap in the data (data_offsets)",
                              sorted[i - 1]->name, sorted[i]->name);
        else if (sorted[i]->begin > at)
            rc = weights_fail(e, "data bytes %llu to %llu belong to no tensor",
                              (unsigned long long)at, (unsigned long long)sorted[i]->begin);
        at = sorted[i]->end;
    }
    if (rc == 0 && at != data_size)
        rc = weights_fail(e, "data bytes %llu to %llu belong to no tensor", (unsigned long long)at,
                          (unsigned long long)data_size);
    free(sorted);
    return rc;
}

static int read_tensors(const weights_map *m, const json_value *header, size_t data_start,
                        weights_file *out, const weights_err *e) {
    uint64_t data_size = m->size - data_start;
    st_entry *entries = calloc(header->n ? header->n : 1, sizeof *entries);
    if (!entries) return weights_fail(e, "out of memory");
    size_t n = 0;
    int rc = 0;
    for (size_t i = 0; i < header->n && rc == 0; i++) {
        if (strcmp(header->keys[i], "__metadata__") == 0)
            rc = read_metadata(&header->items[i], out, e);
        else
            rc = parse_entry(header->keys[i], &header->items[i], data_size, &entries[n++], e);
    }
    if (rc == 0) rc = check_layout(entries, n, data_size, e);
    if (rc == 0 && n > INT32_MAX) rc = weights_fail(e, "header has too many tensors");
    if (rc == 0) {
        out->tensors = calloc(n ? n : 1, sizeof *out->tensors);
        if (!out->tensors)
            rc = weights_fail(e, "out of memory");
        else
            out->count = (int)n;
    }
    /* every count is bounded by its byte span inside the file, so these allocations are too */
    for (size_t i = 0; i < n && rc == 0; i++) {
        weights_tensor *t = &out->tensors[i];
        size_t name_len = strlen(entries[i].name);
        t->name = malloc(name_len + 1);
        t->data = malloc(entries[i].count ? (size_t)entries[i].count * sizeof(float) : 1);
        if (!t->name || !t->data) {
            rc = weights_fail(e, "out of memory for tensor '%s'", entries[i].name);
            break;
        }
        memcpy(t->name, entries[i].name, name_len + 1);
        t->ndim = entries[i].ndim;
        memcpy(t->shape, entries[i].shape, sizeof t->shape);
        t->count = (size_t)entries[i].count;
        weights_convert(t->data, m->data + data_start + entries[i].begin, t->count,
                        entries[i].dtype);
    }
    free(entries);
    return rc;
}

/* The header's __metadata__ alone (absent: none). */
static int read_header_metadata(const json_value *header, weights_file *out, const weights_err *e) {
    if (header->kind != JSON_OBJECT) return weights_fail(e, "safetensors header is not an object");
    for (size_t i = 0; i < header->n; i++)
        if (strcmp(header->keys[i], "__metadata__") == 0)
            return read_metadata(&header->items[i], out, e);
    return 0;
}

/* Reads the file's header, then its tensors too unless metadata_only. */
static int read_file(const char *path, int metadata_only, weights_file *out, char *err,
                     size_t errlen) {
    weights_err e = {err, errlen, path};
    memset(out, 0, sizeof *out);
    weights_map m;
    if (weights_map_open(path, &m, &e)) return -1;
    int rc = 0;
    uint64_t header_len = 0;
    if (m.size == 0)
        rc = weights_fail(&e, "file is empty");
    else if (m.size < 8)
        rc = weights_fail(&e, "file is %zu bytes, too short for a safetensors header", m.size);
    if (rc == 0) {
        for (int b = 0; b < 8; b++)
            header_len |= (uint64_t)m.data[b] << (8 * b);
        if (header_len > m.size - 8)
            rc = weights_fail(&e,
                              "safetensors header length %llu is larger than the file "
                              "(%zu bytes)",
                              (unsigned long long)header_len, m.size);
        else if (header_len > SAFETENSORS_MAX_HEADER)
            rc = weights_fail(&e, "safetensors header of %llu bytes is over the 100 MiB limit",
                              (unsigned long long)header_len);
        else if (header_len < 2 || m.data[8] != '{')
            rc = weights_fail(&e, "safetensors header does not start with '{'");
    }
    json_value header = {0};
    char json_err[128];
    if (rc == 0 && json_parse((const char *)m.data + 8, (size_t)header_len, &header, json_err,
                              sizeof json_err))
        rc = weights_fail(&e, "safetensors header is not valid JSON (%s)", json_err);
    if (rc == 0)
        rc = metadata_only ? read_header_metadata(&header, out, &e)
                           : read_tensors(&m, &header, 8 + (size_t)header_len, out, &e);
    json_free(&header);
    weights_map_close(&m);
    if (rc) weights_free(out);
    return rc;
}

int weights_read_safetensors(const char *path, weights_file *out, char *err, size_t errlen) {
    return read_file(path, 0, out, err, errlen);
}

int weights_read_metadata(const char *path, weights_file *out, char *err, size_t errlen) {
    return read_file(path, 1, out, err, errlen);
}
