/* torch.save's zip container (the default since torch 1.6): PREFIX/data.pkl is the pickle,
 * PREFIX/data/KEY the raw bytes of storage KEY, PREFIX/byteorder (torch >= 2.1) the byte
 * order. Entries are only looked up by name and read into memory, never extracted. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zip.h>

#include "worker/weights/pth_tensors.h"

/* deflate cannot expand data by more than about 1032:1, so a larger claimed size is a lie */
#define ZIP_MAX_RATIO 1032

typedef struct {
    zip_t *archive;
    char *prefix; /* "archive/" or whatever folder torch named after the file */
    const weights_map *map;
    const weights_err *e;
} zip_pth;

/* Reads the first WANT bytes of entry INDEX into a new buffer. */
static int read_entry(zip_pth *z, zip_int64_t index, const char *name, size_t want,
                      unsigned char **out) {
    *out = NULL;
    unsigned char *buf = malloc(want ? want : 1);
    if (!buf) return weights_fail(z->e, "out of memory reading '%s'", name);
    zip_file_t *f = zip_fopen_index(z->archive, (zip_uint64_t)index, 0);
    if (!f) {
        free(buf);
        return weights_fail(z->e, "cannot open '%s' in the archive: %s", name,
                            zip_strerror(z->archive));
    }
    size_t got = 0;
    while (got < want) {
        zip_int64_t n = zip_fread(f, buf + got, want - got);
        if (n <= 0) {
            weights_fail(z->e, "cannot read '%s' in the archive (%zu of %zu bytes): %s", name, got,
                         want, n < 0 ? zip_file_strerror(f) : "entry ends early");
            zip_fclose(f);
            free(buf);
            return -1;
        }
        got += (size_t)n;
    }
    /* closing reports a checksum mismatch found while reading */
    int close_err = zip_fclose(f);
    if (close_err) {
        zip_error_t ze;
        zip_error_init_with_code(&ze, close_err);
        weights_fail(z->e, "cannot read '%s' in the archive: %s", name, zip_error_strerror(&ze));
        zip_error_fini(&ze);
        free(buf);
        return -1;
    }
    *out = buf;
    return 0;
}

/* The entry's uncompressed size, checked against the file so no claim is believed blindly. */
static int entry_size(zip_pth *z, zip_int64_t index, const char *name, size_t *size) {
    zip_stat_t st;
    zip_stat_init(&st);
    if (zip_stat_index(z->archive, (zip_uint64_t)index, 0, &st) != 0 || !(st.valid & ZIP_STAT_SIZE))
        return weights_fail(z->e, "cannot read the size of '%s' in the archive", name);
    uint64_t limit = (uint64_t)z->map->size * ZIP_MAX_RATIO;
    if (st.size > limit)
        return weights_fail(z->e,
                            "archive entry '%s' claims %llu bytes, more than the file "
                            "can hold",
                            name, (unsigned long long)st.size);
    *size = (size_t)st.size;
    return 0;
}

/* Finds PREFIX/data.pkl: the one entry of that name exactly one folder deep. */
static int find_pickle(zip_pth *z, zip_int64_t *index) {
    zip_int64_t n = zip_get_num_entries(z->archive, 0);
    for (zip_int64_t i = 0; i < n; i++) {
        const char *name = zip_get_name(z->archive, (zip_uint64_t)i, ZIP_FL_ENC_RAW);
        if (!name) continue;
        const char *slash = strchr(name, '/');
        if (!slash || strcmp(slash + 1, "data.pkl") != 0) continue;
        size_t len = (size_t)(slash - name) + 1;
        z->prefix = malloc(len + 1);
        if (!z->prefix) return weights_fail(z->e, "out of memory");
        memcpy(z->prefix, name, len);
        z->prefix[len] = 0;
        *index = i;
        return 0;
    }
    return weights_fail(z->e, "zip archive has no data.pkl: not a torch.save file");
}

static zip_int64_t locate(zip_pth *z, const char *suffix, char **name) {
    size_t len = strlen(z->prefix) + strlen(suffix) + 1;
    *name = malloc(len);
    if (!*name) {
        weights_fail(z->e, "out of memory");
        return -2;
    }
    snprintf(*name, len, "%s%s", z->prefix, suffix);
    return zip_name_locate(z->archive, *name, ZIP_FL_ENC_RAW);
}

/* torch >= 2.1 records the byte order; older files are little-endian by construction. */
static int check_byteorder(zip_pth *z) {
    char *name;
    zip_int64_t index = locate(z, "byteorder", &name);
    if (index == -2) return -1;
    int rc = 0;
    size_t size;
    unsigned char *text = NULL;
    if (index >= 0) {
        rc = entry_size(z, index, name, &size);
        if (rc == 0 && size > 16) rc = weights_fail(z->e, "archive byteorder entry is too long");
        if (rc == 0) rc = read_entry(z, index, name, size, &text);
        if (rc == 0 && !(size == 6 && memcmp(text, "little", 6) == 0))
            rc = weights_fail(z->e, "archive stores big-endian data, which is not supported");
    }
    free(text);
    free(name);
    return rc;
}

static int read_storage(zip_pth *z, const pth_plan *plan, const pth_storage_use *use,
                        weights_file *out) {
    char *suffix = malloc(strlen(use->key) + 6);
    if (!suffix) return weights_fail(z->e, "out of memory");
    memcpy(suffix, "data/", 5);
    strcpy(suffix + 5, use->key);
    char *name = NULL;
    zip_int64_t index = locate(z, suffix, &name);
    free(suffix);
    if (index == -2) return -1;
    int rc = 0;
    size_t size = 0;
    unsigned char *bytes = NULL;
    /* pth_plan_build has bounded numel * element size by the file size */
    size_t want = (size_t)use->numel * weights_dtype_size(use->dtype);
    if (index < 0)
        rc = weights_fail(z->e, "pickle refers to storage '%s' which the archive lacks", use->key);
    if (rc == 0) rc = entry_size(z, index, name, &size);
    if (rc == 0 && size < want)
        rc = weights_fail(z->e,
                          "storage '%s' holds %zu bytes but the pickle says %lld %s "
                          "elements (%zu bytes)",
                          use->key, size, (long long)use->numel, weights_dtype_name(use->dtype),
                          want);
    if (rc == 0) rc = read_entry(z, index, name, want, &bytes);
    if (rc == 0) pth_plan_fill(plan, use, bytes, out);
    free(bytes);
    free(name);
    return rc;
}

static int read_archive(zip_pth *z, weights_file *out) {
    zip_int64_t pickle_index = -1;
    if (find_pickle(z, &pickle_index) || check_byteorder(z)) return -1;
    size_t pickle_size = 0;
    const char *pickle_name = "data.pkl";
    if (entry_size(z, pickle_index, pickle_name, &pickle_size)) return -1;
    if (pickle_size > WEIGHTS_MAX_PICKLE)
        return weights_fail(z->e, "data.pkl is %zu bytes, more than the %zu allowed", pickle_size,
                            WEIGHTS_MAX_PICKLE);
    unsigned char *pickle_bytes;
    if (read_entry(z, pickle_index, pickle_name, pickle_size, &pickle_bytes)) return -1;
    pickle_ctx ctx = {0};
    pth_plan plan = {0};
    pickle_value *root = NULL;
    size_t consumed = 0;
    int rc = pickle_load(&ctx, pickle_bytes, pickle_size, &consumed, &root, z->e);
    if (rc == 0 && consumed != pickle_size)
        rc = weights_fail(z->e, "data.pkl has %zu bytes after its STOP opcode",
                          pickle_size - consumed);
    if (rc == 0) rc = pth_plan_build(root, z->map->size, &plan, out, z->e);
    for (size_t i = 0; rc == 0 && i < plan.nuses; i++)
        rc = read_storage(z, &plan, &plan.uses[i], out);
    pth_plan_free(&plan);
    pickle_ctx_free(&ctx);
    free(pickle_bytes);
    return rc;
}

int pth_read_zip(const weights_map *m, weights_file *out, const weights_err *e) {
    zip_error_t zerr;
    zip_error_init(&zerr);
    zip_source_t *src = zip_source_buffer_create(m->data, m->size, 0, &zerr);
    if (!src) {
        weights_fail(e, "cannot read as a zip archive: %s", zip_error_strerror(&zerr));
        zip_error_fini(&zerr);
        return -1;
    }
    zip_t *archive = zip_open_from_source(src, ZIP_RDONLY | ZIP_CHECKCONS, &zerr);
    if (!archive) {
        weights_fail(e, "not a readable zip archive (truncated or corrupt): %s",
                     zip_error_strerror(&zerr));
        zip_source_free(src);
        zip_error_fini(&zerr);
        return -1;
    }
    zip_error_fini(&zerr);
    zip_pth z = {.archive = archive, .map = m, .e = e};
    int rc = read_archive(&z, out);
    free(z.prefix);
    zip_discard(archive); /* read-only: nothing to write back; also frees src */
    return rc;
}
