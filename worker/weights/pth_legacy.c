/* torch.save's legacy container (before torch 1.6, and _use_new_zipfile_serialization=False):
 * five things back to back: a pickled magic number, a pickled protocol version (1001), a
 * pickled sys_info dict, the pickled object, a pickled list of storage keys; then, for each
 * key in that order, an 8-byte little-endian element count and the storage's raw bytes. */
#include <stdlib.h>
#include <string.h>

#include "worker/weights/pth_tensors.h"

/* pickle.dumps(0x1950a86a20f9469cfc6c, protocol=2) */
static const unsigned char legacy_magic[15] = {0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46,
                                               0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19, 0x2e};

#define LEGACY_PROTOCOL_VERSION 1001

int pth_is_legacy(const unsigned char *data, size_t size) {
    return size >= sizeof legacy_magic && memcmp(data, legacy_magic, sizeof legacy_magic) == 0;
}

/* Where each storage's bytes start in the file, found by walking the storage records. */
typedef struct {
    const char *key;
    weights_dtype dtype;
    int64_t numel;
    size_t offset; /* of the raw bytes; 0 until the key list places it */
    int placed;
} legacy_storage;

static int cmp_storage(const void *a, const void *b) {
    return strcmp(((const legacy_storage *)a)->key, ((const legacy_storage *)b)->key);
}

static legacy_storage *find_storage(legacy_storage *table, size_t n, const char *key) {
    legacy_storage probe = {.key = key};
    return bsearch(&probe, table, n, sizeof *table, cmp_storage);
}

/* Every storage the pickle named, deduplicated by key; one key with two types is refused,
 * since the record sizes below depend on it. */
static int storage_table(const pickle_ctx *ctx, legacy_storage **table, size_t *count,
                         const weights_err *e) {
    size_t n = ctx->nstorages;
    legacy_storage *t = malloc((n ? n : 1) * sizeof *t);
    if (!t) return weights_fail(e, "out of memory");
    for (size_t i = 0; i < n; i++)
        t[i] = (legacy_storage){ctx->storages[i]->key, ctx->storages[i]->dtype,
                                ctx->storages[i]->numel, 0, 0};
    qsort(t, n, sizeof *t, cmp_storage);
    size_t unique = 0;
    for (size_t i = 0; i < n; i++) {
        if (unique && strcmp(t[unique - 1].key, t[i].key) == 0) {
            if (t[unique - 1].dtype != t[i].dtype || t[unique - 1].numel != t[i].numel) {
                weights_fail(e, "storage '%s' is declared with two types or sizes", t[i].key);
                free(t);
                return -1;
            }
            continue;
        }
        t[unique++] = t[i];
    }
    *table = t;
    *count = unique;
    return 0;
}

/* Walks the storage records after the key list, checking each against the file's end. */
static int place_storages(const weights_map *m, size_t pos, const pickle_value *keys,
                          legacy_storage *table, size_t n, const weights_err *e) {
    if (keys->kind != PV_LIST)
        return weights_fail(e, "legacy storage key list is a %s, not a list",
                            pickle_kind_name(keys->kind));
    for (size_t i = 0; i < keys->n; i++) {
        const pickle_value *key = keys->items[i];
        if (key->kind != PV_STR)
            return weights_fail(e, "legacy storage key list holds a %s",
                                pickle_kind_name(key->kind));
        legacy_storage *s = find_storage(table, n, key->s);
        if (!s)
            return weights_fail(e, "storage key list names '%s' which the pickle never uses",
                                key->s);
        if (s->placed) return weights_fail(e, "storage key list names '%s' twice", key->s);
        if (m->size - pos < 8)
            return weights_fail(e,
                                "file is truncated: storage '%s' record at byte %zu is "
                                "missing its element count",
                                key->s, pos);
        uint64_t count = 0;
        for (int b = 0; b < 8; b++)
            count |= (uint64_t)m->data[pos + b] << (8 * b);
        pos += 8;
        if (count != (uint64_t)s->numel)
            return weights_fail(e,
                                "storage '%s' record holds %llu elements but the pickle says "
                                "%lld",
                                key->s, (unsigned long long)count, (long long)s->numel);
        size_t elem = weights_dtype_size(s->dtype);
        if (count > (m->size - pos) / elem)
            return weights_fail(e,
                                "file is truncated: storage '%s' needs %llu bytes at byte %zu "
                                "but the file ends after %zu",
                                key->s, (unsigned long long)count * elem, pos, m->size);
        s->offset = pos;
        s->placed = 1;
        pos += (size_t)count * elem;
    }
    if (pos != m->size)
        return weights_fail(e, "%zu unexpected bytes after the last storage", m->size - pos);
    return 0;
}

/* The magic number, protocol version and sys_info pickles that precede the object. */
static int read_preamble(pickle_ctx *ctx, const weights_map *m, size_t *pos, const weights_err *e) {
    pickle_value *v = NULL;
    size_t used = 0;
    *pos = sizeof legacy_magic;
    if (pickle_load(ctx, m->data + *pos, m->size - *pos, &used, &v, e)) return -1;
    *pos += used;
    if (v->kind != PV_INT || v->i != LEGACY_PROTOCOL_VERSION)
        return weights_fail(e, "legacy protocol version is not %d", LEGACY_PROTOCOL_VERSION);
    if (pickle_load(ctx, m->data + *pos, m->size - *pos, &used, &v, e)) return -1;
    *pos += used;
    if (v->kind != PV_DICT) return weights_fail(e, "legacy sys_info is not a dict");
    const pickle_value *little = pickle_dict_get(v, "little_endian");
    if (little && (little->kind != PV_BOOL || !little->i))
        return weights_fail(e, "file was saved on a big-endian machine, which is not supported");
    return 0;
}

int pth_read_legacy(const weights_map *m, weights_file *out, const weights_err *e) {
    pickle_ctx ctx = {0};
    pth_plan plan = {0};
    legacy_storage *table = NULL;
    size_t ntable = 0, pos = 0, used = 0;
    pickle_value *root = NULL, *keys = NULL;
    int rc = read_preamble(&ctx, m, &pos, e);
    if (rc == 0) rc = pickle_load(&ctx, m->data + pos, m->size - pos, &used, &root, e);
    if (rc == 0) {
        pos += used;
        rc = pickle_load(&ctx, m->data + pos, m->size - pos, &used, &keys, e);
    }
    if (rc == 0) rc = storage_table(&ctx, &table, &ntable, e);
    if (rc == 0) rc = place_storages(m, pos + used, keys, table, ntable, e);
    if (rc == 0) rc = pth_plan_build(root, m->size, &plan, out, e);
    for (size_t i = 0; rc == 0 && i < plan.nuses; i++) {
        const pth_storage_use *use = &plan.uses[i];
        const legacy_storage *s = find_storage(table, ntable, use->key);
        if (!s || !s->placed)
            rc = weights_fail(e, "pickle refers to storage '%s' which the file lacks", use->key);
        else
            pth_plan_fill(&plan, use, m->data + s->offset, out);
    }
    free(table);
    pth_plan_free(&plan);
    pickle_ctx_free(&ctx);
    return rc;
}
