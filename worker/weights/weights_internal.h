/* Shared by the files of worker/weights/ only: element types, error reporting, the read-only
 * file mapping and the limits every reader checks before it allocates. */
#ifndef TLSWEEP_WEIGHTS_INTERNAL_H
#define TLSWEEP_WEIGHTS_INTERNAL_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include "worker/weights/weights.h"

/* Element types found in .pth storages and .safetensors headers. */
typedef enum {
    WDT_F32,
    WDT_F64,
    WDT_F16,
    WDT_BF16,
    WDT_I64,
    WDT_I32,
    WDT_I16,
    WDT_I8,
    WDT_U8,
    WDT_BOOL,
    WDT_U16,
    WDT_U32,
    WDT_U64,
} weights_dtype;

/* Sane limits: real checkpoints are far below them; a hostile header that claims more is
 * refused before anything is allocated. */
#define WEIGHTS_MAX_NAME 4096                      /* bytes in one tensor name */
#define WEIGHTS_MAX_PICKLE ((size_t)1 << 30)       /* bytes of data.pkl */
#define WEIGHTS_MAX_ELEMS ((int64_t)1 << 40)       /* elements in one tensor or storage */
#define WEIGHTS_BROADCAST_SLACK ((int64_t)1 << 24) /* elements a stride-0 view may add */

size_t weights_dtype_size(weights_dtype dt);
const char *weights_dtype_name(weights_dtype dt);
/* Converts COUNT contiguous little-endian elements at SRC to fp32. */
void weights_convert(float *dst, const unsigned char *src, size_t count, weights_dtype dt);

/* Where an error goes: "PATH: message" into buf. */
typedef struct {
    char *buf;
    size_t len;
    const char *path;
} weights_err;

/* Formats the message and returns -1, so callers can `return weights_fail(...)`. */
int weights_fail(const weights_err *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* A whole file mapped read-only (data is NULL for an empty file). */
typedef struct {
    const unsigned char *data;
    size_t size;
} weights_map;

int weights_map_open(const char *path, weights_map *m, const weights_err *e);
void weights_map_close(weights_map *m);

/* a*b and a+b for non-negative sizes; return -1 when the result would pass LIMIT. */
int weights_mul_limit(int64_t a, int64_t b, int64_t limit, int64_t *out);
int weights_add_limit(int64_t a, int64_t b, int64_t limit, int64_t *out);

/* The two .pth containers, behind weights_read_pth (which maps the file and sniffs it). */
int pth_read_zip(const weights_map *m, weights_file *out, const weights_err *e);
int pth_read_legacy(const weights_map *m, weights_file *out, const weights_err *e);
/* The 15 bytes torch's legacy format starts with: the pickled magic number. */
int pth_is_legacy(const unsigned char *data, size_t size);

#endif
