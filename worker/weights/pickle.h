/* A strict pickle machine for what torch.save writes: dicts, lists, tuples, strings, numbers,
 * persistent storage ids and tensors rebuilt from an allow-list of torch globals. It never
 * calls anything: allowed globals are recognised by name and evaluated as data. */
#ifndef TLSWEEP_WEIGHTS_PICKLE_H
#define TLSWEEP_WEIGHTS_PICKLE_H

#include <stddef.h>
#include <stdint.h>

#include "worker/weights/weights_internal.h"

typedef enum {
    PV_NONE,
    PV_BOOL,
    PV_INT,
    PV_FLOAT,
    PV_STR,
    PV_TUPLE,
    PV_LIST,
    PV_DICT, /* items hold key, value, key, value, ... in insertion order */
    PV_GLOBAL,
    PV_STORAGE,
    PV_TENSOR,
} pickle_kind;

typedef enum {
    PG_ORDERED_DICT,
    PG_REBUILD_TENSOR_V2,
    PG_REBUILD_TENSOR, /* torch < 0.4, as in the 2017 torchvision checkpoints */
    PG_REBUILD_PARAMETER,
    PG_SIZE,
    PG_STORAGE_TYPE, /* torch.FloatStorage and friends; dtype says which */
} pickle_global;

/* A storage as a persistent id names it; a legacy view adds an element offset and length. */
typedef struct {
    const char *key;
    weights_dtype dtype;
    int64_t numel;       /* elements of the whole storage */
    int64_t view_offset; /* first element this reference may touch */
    int64_t view_numel;  /* elements it may touch */
} pickle_storage;

typedef struct {
    const pickle_storage *storage;
    int64_t offset;
    int ndim;
    int64_t size[WEIGHTS_MAX_DIMS];
    int64_t stride[WEIGHTS_MAX_DIMS];
} pickle_tensor;

typedef struct pickle_value pickle_value;
struct pickle_value {
    pickle_kind kind;
    int64_t i; /* PV_BOOL, PV_INT; PV_GLOBAL: pickle_global */
    double f;  /* PV_FLOAT */
    char *s;   /* PV_STR (NUL-terminated, slen bytes) */
    size_t slen;
    pickle_value **items; /* PV_TUPLE, PV_LIST, PV_DICT */
    size_t n, cap;
    weights_dtype dtype;     /* PV_GLOBAL storage types */
    pickle_storage *storage; /* PV_STORAGE */
    pickle_tensor *tensor;   /* PV_TENSOR */
};

/* Owns every value made by the pickles loaded through it; values may be shared (memo). */
typedef struct {
    pickle_value **values;
    size_t nvalues, cap;
    pickle_storage **storages; /* every persistent id seen, in order */
    size_t nstorages, storage_cap;
} pickle_ctx;

/* Runs one pickle from BUF (at most LEN bytes): *root gets its result, *consumed the bytes up
 * to and including STOP. On error: -1 with the message in E. */
int pickle_load(pickle_ctx *ctx, const unsigned char *buf, size_t len, size_t *consumed,
                pickle_value **root, const weights_err *e);
void pickle_ctx_free(pickle_ctx *ctx);
/* Value in a PV_DICT for a string key, or NULL. */
const pickle_value *pickle_dict_get(const pickle_value *dict, const char *key);
const char *pickle_kind_name(pickle_kind kind);

#endif
