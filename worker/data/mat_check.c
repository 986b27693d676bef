/* Walks the element tags of a MATLAB v5 .mat file (MathWorks, "MAT-File Format", ch. 1). */
#include "worker/data/mat_check.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

enum {
    MI_INT32 = 5,
    MI_UINT32 = 6,
    MI_MATRIX = 14,
    MI_COMPRESSED = 15,
    MAX_DEPTH = 16,
    HEADER = 128,
    /* the smallest matrix: array flags (8 + 8 bytes), dimensions (8 + 8), an empty name's tag */
    MIN_MATRIX = 40
};

typedef struct {
    const char *path;
    char *err;
    size_t errlen;
    int swap; /* the file was written big-endian */
} check_ctx;

static uint32_t read_u32(const check_ctx *c, const uint8_t *p) {
    uint32_t v = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
    return c->swap ? __builtin_bswap32(v) : v;
}

static int fail(const check_ctx *c, const char *what, size_t at, size_t a, size_t b) {
    snprintf(c->err, c->errlen, "%s: corrupt .mat file: %s (element at byte %zu: %zu > %zu)",
             c->path, what, at, a, b);
    return -1;
}

static int check_elements(const check_ctx *c, const uint8_t *p, size_t len, int depth,
                          int in_matrix);

/* Inflates one compressed element (bounded) and checks what it holds. */
static int check_compressed(const check_ctx *c, const uint8_t *p, size_t len, size_t at,
                            int depth) {
    size_t cap = 4096, used = 0;
    uint8_t *out = malloc(cap);
    z_stream z;
    memset(&z, 0, sizeof z);
    if (!out || inflateInit(&z) != Z_OK) {
        free(out);
        snprintf(c->err, c->errlen, "%s: out of memory checking the .mat file", c->path);
        return -1;
    }
    z.next_in = (Bytef *)p;
    z.avail_in = (uInt)len; /* len came from a 32-bit tag */
    int zrc = Z_OK;
    while (zrc == Z_OK) {
        if (used == cap) {
            if (cap >= MAT_CHECK_MAX_INFLATED) {
                inflateEnd(&z);
                free(out);
                return fail(c, "a compressed element inflates past the limit", at, used + 1,
                            MAT_CHECK_MAX_INFLATED);
            }
            uint8_t *grown = realloc(out, cap * 2);
            if (!grown) break;
            out = grown;
            cap *= 2;
        }
        z.next_out = out + used;
        z.avail_out = (uInt)(cap - used);
        zrc = inflate(&z, Z_NO_FLUSH);
        used = cap - z.avail_out;
        if (zrc == Z_BUF_ERROR && z.avail_out == 0) zrc = Z_OK; /* only needed more room */
    }
    inflateEnd(&z);
    int rc;
    if (zrc != Z_STREAM_END) {
        snprintf(c->err, c->errlen,
                 "%s: corrupt .mat file: the compressed element at byte %zu "
                 "does not inflate (%s)",
                 c->path, at, z.msg ? z.msg : "truncated");
        rc = -1;
    } else {
        rc = check_elements(c, out, used, depth + 1, 0);
    }
    free(out);
    return rc;
}

/* The dimensions sub-element of a matrix: non-negative int32s whose product is bounded. */
static int check_dims(const check_ctx *c, const uint8_t *p, size_t len, uint32_t type, size_t at) {
    if (type != MI_INT32 || len % 4 != 0 || len < 8)
        return fail(c, "a matrix's dimensions are not int32 x >= 2", at, len, len);
    size_t count = 1;
    for (size_t i = 0; i < len; i += 4) {
        uint32_t d = read_u32(c, p + i);
        if (d > INT32_MAX) return fail(c, "a negative dimension", at, d, INT32_MAX);
        if (d != 0 && count > MAT_CHECK_MAX_ELEMS / d)
            return fail(c, "a matrix has too many elements", at, (size_t)count * d,
                        MAT_CHECK_MAX_ELEMS);
        count *= d;
    }
    return 0;
}

static int check_elements(const check_ctx *c, const uint8_t *p, size_t len, int depth,
                          int in_matrix) {
    if (depth > MAX_DEPTH) return fail(c, "elements nested too deep", 0, depth, MAX_DEPTH);
    size_t pos = 0;
    for (int index = 0; pos < len; index++) {
        if (len - pos < 8) return fail(c, "a truncated element tag", pos, 8, len - pos);
        uint32_t type = read_u32(c, p + pos);
        size_t nbytes, data = pos + 8;
        if (type >> 16) { /* small data element: size and type in the first word */
            nbytes = type >> 16;
            type &= 0xffff;
            data = pos + 4;
            if (nbytes > 4) return fail(c, "a small data element over 4 bytes", pos, nbytes, 4);
        } else {
            nbytes = read_u32(c, p + pos + 4);
            if (nbytes > len - data)
                return fail(c, "an element larger than what holds it", pos, nbytes, len - data);
        }
        /* matio reads a matrix's first 24 bytes at fixed offsets (array flags as 8 bytes after
         * their tag, then the dimensions' tag), whatever the tags say; so the flags must be
         * exactly that, or the dimensions checked here would not be the ones matio uses */
        if (in_matrix && index == 0 && (type != MI_UINT32 || nbytes != 8 || data != pos + 8))
            return fail(c, "a matrix's array flags are not 8 bytes of uint32", pos, nbytes, 8);
        if (in_matrix && index == 1 && check_dims(c, p + data, nbytes, type, pos) != 0) return -1;
        /* matio reads a variable's flags and dimensions even from a matrix too short to hold
         * them, i.e. from whatever follows it; only a cell or field may be empty (0 bytes) */
        if (type == MI_MATRIX && nbytes < MIN_MATRIX && (nbytes != 0 || !in_matrix))
            return fail(c, "a matrix too short for its flags, dimensions and name", pos, MIN_MATRIX,
                        nbytes);
        if (type == MI_MATRIX && check_elements(c, p + data, nbytes, depth + 1, 1) != 0) return -1;
        if (type == MI_COMPRESSED) {
            if (depth > 0) return fail(c, "a compressed element inside another", pos, depth, 0);
            if (check_compressed(c, p + data, nbytes, pos, depth) != 0) return -1;
        }
        /* elements are padded to 8 bytes, except compressed ones and small ones */
        size_t next = data == pos + 4 ? pos + 8 : data + nbytes;
        if (data == pos + 8 && type != MI_COMPRESSED) next += (8 - nbytes % 8) % 8;
        if (next > len) break; /* the last element's padding may be missing; matio accepts it */
        pos = next;
    }
    return 0;
}

int mat_check_file(const char *path, char *err, size_t errlen) {
    check_ctx c = {path, err, errlen, 0};
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, errlen, "%s: missing or unreadable", path);
        return -1;
    }
    uint8_t *buf = NULL;
    long size = -1;
    if (fseek(f, 0, SEEK_END) == 0) size = ftell(f);
    int rc = -1;
    if (size < 0 || fseek(f, 0, SEEK_SET) != 0) {
        snprintf(err, errlen, "%s: cannot read", path);
    } else if ((size_t)size > MAT_CHECK_MAX_FILE) {
        snprintf(err, errlen, "%s: %ld bytes is larger than a label file can be (%zu)", path, size,
                 MAT_CHECK_MAX_FILE);
    } else if (!(buf = malloc((size_t)size + 1)) ||
               fread(buf, 1, (size_t)size, f) != (size_t)size) {
        snprintf(err, errlen, "%s: cannot read", path);
    } else if (size < HEADER ||
               !((buf[126] == 'I' && buf[127] == 'M') || (buf[126] == 'M' && buf[127] == 'I'))) {
        snprintf(err, errlen, "%s: not a MATLAB v5 or v7.3 .mat file", path);
    } else {
        c.swap = buf[126] == 'M';
        unsigned version =
            c.swap ? (unsigned)buf[124] << 8 | buf[125] : (unsigned)buf[125] << 8 | buf[124];
        if (version == 0x0200)
            rc = 0; /* v7.3: an HDF5 file */
        else if (version != 0x0100)
            snprintf(err, errlen, "%s: unknown .mat version 0x%04x", path, version);
        else
            rc = check_elements(&c, buf + HEADER, (size_t)size - HEADER, 0, 0);
    }
    free(buf);
    fclose(f);
    return rc;
}
