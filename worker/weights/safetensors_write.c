/* .safetensors writer: F32 tensors sorted by name, the header padded with spaces so the data
 * starts 8-byte aligned, written to PATH.tmp, fsynced and renamed over PATH so a reader never
 * sees half a file. */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "worker/weights/json.h"
#include "worker/weights/weights_internal.h"

typedef struct {
    char *data;
    size_t len, cap;
    int failed;
} strbuf;

static void sb_add(strbuf *b, const char *s, size_t n) {
    if (b->failed) return;
    if (b->len + n + 1 > b->cap) {
        size_t ncap = b->cap ? b->cap : 256;
        while (ncap < b->len + n + 1)
            ncap *= 2;
        char *p = realloc(b->data, ncap);
        if (!p) {
            b->failed = 1;
            return;
        }
        b->data = p;
        b->cap = ncap;
    }
    memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = 0;
}

static void sb_str(strbuf *b, const char *s) {
    sb_add(b, s, strlen(s));
}

static void sb_emit(void *b, const char *bytes, size_t n) {
    sb_add(b, bytes, n);
}

static void sb_json_string(strbuf *b, const char *s) {
    json_quote(s, sb_emit, b);
}

static void sb_u64(strbuf *b, uint64_t v) {
    char num[24];
    snprintf(num, sizeof num, "%llu", (unsigned long long)v);
    sb_str(b, num);
}

typedef struct {
    const weights_out_tensor *t;
    uint64_t count;
} sorted_tensor;

static int cmp_tensor(const void *a, const void *b) {
    return strcmp(((const sorted_tensor *)a)->t->name, ((const sorted_tensor *)b)->t->name);
}

static int validate(const weights_out_tensor *tensors, int count, sorted_tensor *sorted,
                    const char *const *kv, int pairs, const weights_err *e) {
    for (int i = 0; i < count; i++) {
        const weights_out_tensor *t = &tensors[i];
        if (!t->name || !*t->name || strcmp(t->name, "__metadata__") == 0)
            return weights_fail(e, "tensor %d has no usable name", i);
        if (t->ndim < 0 || t->ndim > WEIGHTS_MAX_DIMS || (t->ndim > 0 && !t->shape))
            return weights_fail(e, "tensor '%s' has %d dimensions", t->name, t->ndim);
        int64_t n = 1;
        for (int d = 0; d < t->ndim; d++)
            if (weights_mul_limit(n, t->shape[d], WEIGHTS_MAX_ELEMS, &n))
                return weights_fail(e, "tensor '%s' has an invalid shape", t->name);
        if (n > 0 && !t->data) return weights_fail(e, "tensor '%s' has no data", t->name);
        sorted[i] = (sorted_tensor){t, (uint64_t)n};
    }
    qsort(sorted, (size_t)count, sizeof *sorted, cmp_tensor);
    for (int i = 1; i < count; i++)
        if (strcmp(sorted[i - 1].t->name, sorted[i].t->name) == 0)
            return weights_fail(e, "tensor name '%s' appears twice", sorted[i].t->name);
    for (int i = 0; i < pairs; i++) {
        if (!kv[2 * i] || !kv[2 * i + 1])
            return weights_fail(e, "metadata pair %d has a NULL key or value", i);
        for (int j = 0; j < i; j++)
            if (strcmp(kv[2 * j], kv[2 * i]) == 0)
                return weights_fail(e, "metadata key '%s' appears twice", kv[2 * i]);
    }
    return 0;
}

/* The header JSON, padded with spaces to a multiple of 8 bytes. */
static int build_header(strbuf *b, const sorted_tensor *sorted, int count, const char *const *kv,
                        int pairs) {
    uint64_t offset = 0;
    sb_str(b, "{");
    if (pairs > 0) {
        sb_str(b, "\"__metadata__\":{");
        for (int i = 0; i < pairs; i++) {
            if (i) sb_str(b, ",");
            sb_json_string(b, kv[2 * i]);
            sb_str(b, ":");
            sb_json_string(b, kv[2 * i + 1]);
        }
        sb_str(b, "}");
    }
    for (int i = 0; i < count; i++) {
        const weights_out_tensor *t = sorted[i].t;
        if (i || pairs > 0) sb_str(b, ",");
        sb_json_string(b, t->name);
        sb_str(b, ":{\"dtype\":\"F32\",\"shape\":[");
        for (int d = 0; d < t->ndim; d++) {
            if (d) sb_str(b, ",");
            sb_u64(b, (uint64_t)t->shape[d]);
        }
        sb_str(b, "],\"data_offsets\":[");
        sb_u64(b, offset);
        sb_str(b, ",");
        offset += sorted[i].count * 4;
        sb_u64(b, offset);
        sb_str(b, "]}");
    }
    sb_str(b, "}");
    while (!b->failed && b->len % 8)
        sb_str(b, " ");
    return b->failed ? -1 : 0;
}

static int write_all(int fd, const void *buf, size_t n) {
    const char *p = buf;
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Data in little-endian order whatever the host, through a small staging buffer. */
static int write_floats(int fd, const float *data, uint64_t count) {
    unsigned char chunk[1 << 16];
    size_t per_chunk = sizeof chunk / 4;
    while (count > 0) {
        size_t n = count < per_chunk ? (size_t)count : per_chunk;
        for (size_t i = 0; i < n; i++) {
            uint32_t bits;
            memcpy(&bits, &data[i], 4);
            chunk[4 * i] = (unsigned char)bits;
            chunk[4 * i + 1] = (unsigned char)(bits >> 8);
            chunk[4 * i + 2] = (unsigned char)(bits >> 16);
            chunk[4 * i + 3] = (unsigned char)(bits >> 24);
        }
        if (write_all(fd, chunk, n * 4)) return -1;
        data += n;
        count -= n;
    }
    return 0;
}

static int write_file(int fd, const strbuf *header, const sorted_tensor *sorted, int count) {
    unsigned char len_bytes[8];
    for (int b = 0; b < 8; b++)
        len_bytes[b] = (unsigned char)((uint64_t)header->len >> (8 * b));
    if (write_all(fd, len_bytes, 8) || write_all(fd, header->data, header->len)) return -1;
    for (int i = 0; i < count; i++)
        if (write_floats(fd, sorted[i].t->data, sorted[i].count)) return -1;
    return 0;
}

/* After the rename, the directory entry itself must reach the disk too. */
static int sync_parent(const char *path) {
    char *copy = strdup(path);
    if (!copy) return -1;
    int fd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    free(copy);
    if (fd < 0) return -1;
    int rc = fsync(fd);
    close(fd);
    return rc;
}

int weights_write_safetensors(const char *path, const weights_out_tensor *tensors, int count,
                              const char *const *metadata_kv, int metadata_pairs, char *err,
                              size_t errlen) {
    weights_err e = {err, errlen, path};
    if (count < 0 || metadata_pairs < 0 || (count > 0 && !tensors) ||
        (metadata_pairs > 0 && !metadata_kv))
        return weights_fail(&e, "invalid arguments to the safetensors writer");
    sorted_tensor *sorted = malloc((count ? (size_t)count : 1) * sizeof *sorted);
    strbuf header = {0};
    char *tmp = malloc(strlen(path) + 5);
    int rc = 0, fd = -1;
    if (!sorted || !tmp) rc = weights_fail(&e, "out of memory");
    if (rc == 0) rc = validate(tensors, count, sorted, metadata_kv, metadata_pairs, &e);
    if (rc == 0 && build_header(&header, sorted, count, metadata_kv, metadata_pairs))
        rc = weights_fail(&e, "out of memory building the header");
    if (rc == 0) {
        strcpy(tmp, path);
        strcat(tmp, ".tmp");
        fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (fd < 0) rc = weights_fail(&e, "cannot create %s: %s", tmp, strerror(errno));
    }
    if (rc == 0 && (write_file(fd, &header, sorted, count) || fsync(fd)))
        rc = weights_fail(&e, "cannot write %s: %s", tmp, strerror(errno));
    if (fd >= 0 && close(fd) && rc == 0)
        rc = weights_fail(&e, "cannot write %s: %s", tmp, strerror(errno));
    if (rc == 0 && rename(tmp, path))
        rc = weights_fail(&e, "cannot rename %s into place: %s", tmp, strerror(errno));
    if (rc == 0 && sync_parent(path))
        rc = weights_fail(&e, "cannot sync the folder after writing: %s", strerror(errno));
    if (rc && fd >= 0) unlink(tmp); /* a failed write leaves neither a partial file nor a tmp */
    free(tmp);
    free(header.data);
    free(sorted);
    return rc;
}
