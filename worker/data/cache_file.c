/* The mapped image cache file: key, lock, build, check and map. */
#include "worker/data/cache_file.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jconfig.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "worker/data/jpeg.h"
#include "worker/paths.h"

#define MAGIC "TLSWIMG\0"
#define FORMAT 1
#define HEADER_BYTES 4096 /* one page: the table, and the pixels after it, start page-aligned */
#define HEADER_USED 96
#define ENTRY_BYTES 32
#define MAX_SIDE 65536 /* TRIAL_MAX_IMAGE: larger sides are a corrupt table */

static void put32(unsigned char *p, uint32_t v) {
    for (int i = 0; i < 4; i++)
        p[i] = (unsigned char)(v >> 8 * i);
}
static void put64(unsigned char *p, uint64_t v) {
    put32(p, (uint32_t)v);
    put32(p + 4, (uint32_t)(v >> 32));
}
static uint32_t get32(const unsigned char *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static uint64_t get64(const unsigned char *p) {
    return get32(p) | (uint64_t)get32(p + 4) << 32;
}

/* A 64-bit checksum at memory speed: four multiply-rotate lanes over 8-byte words (the shape
 * of xxHash64), then splitmix64's finalizer. Catches any changed byte, not an adversary. */
#define P1 0x9E3779B185EBCA87ull
#define P2 0xC2B2AE3D27D4EB4Full
static uint64_t rotl(uint64_t x, int r) {
    return x << r | x >> (64 - r);
}
static uint64_t lane(uint64_t acc, const unsigned char *p) {
    return rotl(acc + get64(p) * P2, 31) * P1;
}
static uint64_t hash_bytes(const void *data, size_t n, uint64_t seed) {
    const unsigned char *p = data;
    uint64_t v[4] = {seed + P1 + P2, seed + P2, seed, seed - P1}, h = seed ^ n;
    size_t i = 0;
    for (; i + 32 <= n; i += 32)
        for (int k = 0; k < 4; k++)
            v[k] = lane(v[k], p + i + 8 * k);
    for (int k = 0; k < 4; k++)
        h = (h ^ rotl(v[k], 1 + 7 * k)) * P1 + P2;
    for (; i + 8 <= n; i += 8)
        h = rotl(h ^ lane(0, p + i), 27) * P1 + P2;
    for (; i < n; i++)
        h = rotl(h ^ p[i] * P1, 11) * P2;
    h = (h ^ h >> 30) * 0xBF58476D1CE4E5B9ull;
    h = (h ^ h >> 27) * 0x94D049BB133111EBull;
    return h ^ h >> 31;
}

void image_cache_dir(const char *configured, const char *data_root, char *out, size_t outlen) {
    if (configured && configured[0]) {
        snprintf(out, outlen, "%s", strcmp(configured, "none") ? configured : "");
        return;
    }
    if (access(data_root, W_OK) == 0) {
        snprintf(out, outlen, "%s/tlsweep-cache", data_root);
        return;
    }
    const char *xdg = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
    if (xdg && xdg[0])
        snprintf(out, outlen, "%s/tlsweep", xdg);
    else
        snprintf(out, outlen, "%s/.cache/tlsweep", home && home[0] ? home : "/tmp");
}

int image_cache_key(char key[IMAGE_CACHE_KEY_CHARS + 1], char *const *paths, int count, int resize,
                    char *err, size_t errlen) {
    char text[PATH_MAX + 128];
    int n = snprintf(text, sizeof text, "%s libjpeg-turbo %d gap %d resize %d count %d",
                     IMAGE_CACHE_DECODER, LIBJPEG_TURBO_VERSION_NUMBER, JPEG_REDUCING_GAP, resize,
                     count);
    uint64_t h = hash_bytes(text, (size_t)n, 0);
    for (int i = 0; i < count; i++) {
        struct stat st;
        if (stat(paths[i], &st) != 0) {
            snprintf(err, errlen, "%s: %s", paths[i], strerror(errno));
            return -1;
        }
        /* the name without its folder: the same dataset reached by another path shares */
        const char *name = strrchr(paths[i], '/');
        n = snprintf(text, sizeof text, "%s %lld %lld.%09ld", name ? name + 1 : paths[i],
                     (long long)st.st_size, (long long)st.st_mtim.tv_sec, st.st_mtim.tv_nsec);
        h = hash_bytes(text, (size_t)n < sizeof text ? (size_t)n : sizeof text - 1, h);
    }
    snprintf(key, IMAGE_CACHE_KEY_CHARS + 1, "%016" PRIx64, h);
    return 0;
}

/* ---- reading ------------------------------------------------------------------------------ */

typedef struct {
    uint32_t resize, count, failed;
    uint64_t key, table_offset, data_offset, data_bytes, strings_offset, strings_bytes;
    uint64_t file_bytes, checksum;
} file_header;

static void header_put(unsigned char *p, const file_header *h) {
    memset(p, 0, HEADER_BYTES);
    memcpy(p, MAGIC, 8);
    put32(p + 8, FORMAT);
    put32(p + 12, h->resize);
    put32(p + 16, h->count);
    put32(p + 20, h->failed);
    put64(p + 24, h->key);
    put64(p + 32, h->table_offset);
    put64(p + 40, h->data_offset);
    put64(p + 48, h->data_bytes);
    put64(p + 56, h->strings_offset);
    put64(p + 64, h->strings_bytes);
    put64(p + 72, h->file_bytes);
    put64(p + 88, h->checksum);
}

/* The checksum of everything but the pixels (which each carry their own in the table) and
 * itself (header bytes 88..95). */
static uint64_t meta_checksum(const unsigned char *header, const unsigned char *table,
                              uint32_t count, const unsigned char *strings,
                              uint64_t strings_bytes) {
    uint64_t h = hash_bytes(strings, strings_bytes, 1);
    h = hash_bytes(table, (size_t)count * ENTRY_BYTES, h);
    h = hash_bytes(header + HEADER_USED, HEADER_BYTES - HEADER_USED, h); /* zeros, but checked */
    return hash_bytes(header, 88, h);
}

/* Every check of a mapped file but the pixels'; fills H. */
static int check_layout(const unsigned char *m, size_t len, file_header *h, char *why,
                        size_t whylen) {
    if (len < HEADER_BYTES || memcmp(m, MAGIC, 8) != 0) {
        snprintf(why, whylen, "not an image cache (%zu bytes, no header)", len);
        return -1;
    }
    if (get32(m + 8) != FORMAT) {
        snprintf(why, whylen, "format %u, this tlsweep writes %d", get32(m + 8), FORMAT);
        return -1;
    }
    *h = (file_header){get32(m + 12), get32(m + 16), get32(m + 20), get64(m + 24),
                       get64(m + 32), get64(m + 40), get64(m + 48), get64(m + 56),
                       get64(m + 64), get64(m + 72), get64(m + 88)};
    if (h->file_bytes != len) {
        snprintf(why, whylen, "truncated or extended: %zu bytes, the header says %" PRIu64, len,
                 h->file_bytes);
        return -1;
    }
    if (h->table_offset != HEADER_BYTES || h->count > INT_MAX / ENTRY_BYTES ||
        h->data_offset % HEADER_BYTES ||
        h->data_offset < h->table_offset + (uint64_t)h->count * ENTRY_BYTES ||
        h->data_offset > len || h->data_bytes > len - h->data_offset ||
        h->strings_offset != h->data_offset + h->data_bytes ||
        h->strings_bytes != len - h->strings_offset) {
        snprintf(why, whylen, "inconsistent offsets in the header");
        return -1;
    }
    if (meta_checksum(m, m + h->table_offset, h->count, m + h->strings_offset, h->strings_bytes) !=
        h->checksum) {
        snprintf(why, whylen, "header or table checksum mismatch (corrupt)");
        return -1;
    }
    uint32_t failed = 0;
    for (uint32_t i = 0; i < h->count; i++) {
        const unsigned char *e = m + h->table_offset + (size_t)i * ENTRY_BYTES;
        uint64_t offset = get64(e), w = get32(e + 8), ht = get32(e + 12);
        uint64_t err_offset = get32(e + 16), err_len = get32(e + 20);
        if (w == 0 && ht == 0) {
            failed++;
            if (err_len == 0 || err_offset + err_len > h->strings_bytes) {
                snprintf(why, whylen, "image %u: bad error text bounds", i);
                return -1;
            }
        } else if (w == 0 || ht == 0 || w > MAX_SIDE || ht > MAX_SIDE || offset > h->data_bytes ||
                   w * ht * 3 > h->data_bytes - offset) {
            snprintf(why, whylen, "image %u: %" PRIu64 "x%" PRIu64 " at %" PRIu64 " out of bounds",
                     i, w, ht, offset);
            return -1;
        }
    }
    if (failed != h->failed) {
        snprintf(why, whylen, "failed count %u, the table has %u", h->failed, failed);
        return -1;
    }
    return 0;
}

/* The pixels' checksums, in parallel: the first image whose pixels changed, or -1. */
static long first_bad_image(const unsigned char *m, const file_header *h, int threads) {
    long bad = -1;
#pragma omp parallel for num_threads(threads > 0 ? threads : 1) schedule(dynamic, 16)
    for (long i = 0; i < (long)h->count; i++) {
        const unsigned char *e = m + h->table_offset + (size_t)i * ENTRY_BYTES;
        size_t bytes = (size_t)get32(e + 8) * get32(e + 12) * 3;
        if (bytes && hash_bytes(m + h->data_offset + get64(e), bytes, 0) != get64(e + 24)) {
#pragma omp critical(image_cache_bad)
            if (bad < 0 || i < bad) bad = i;
        }
    }
    return bad;
}

/* Maps PATH and checks it all: 0 with the mapping, 1 when it does not exist, -1 with why. */
static int map_checked(const char *path, int threads, unsigned char **map, size_t *len,
                       file_header *h, char *why, size_t whylen) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT) return 1;
        snprintf(why, whylen, "%s", strerror(errno));
        return -1;
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || st.st_size < HEADER_BYTES) {
        snprintf(why, whylen, "truncated: %lld bytes", (long long)st.st_size);
        close(fd);
        return -1;
    }
    *len = (size_t)st.st_size;
    *map = mmap(NULL, *len, PROT_READ, MAP_SHARED, fd, 0);
    close(fd); /* the mapping keeps the file */
    if (*map == MAP_FAILED) {
        snprintf(why, whylen, "cannot map it: %s", strerror(errno));
        return -1;
    }
    if (check_layout(*map, *len, h, why, whylen) == 0) {
        long bad = first_bad_image(*map, h, threads);
        if (bad < 0) return 0;
        snprintf(why, whylen, "image %ld: pixel checksum mismatch (corrupt)", bad);
    }
    munmap(*map, *len);
    return -1;
}

int image_cache_check(const char *path, int threads, image_cache_file_info *info, char *err,
                      size_t errlen) {
    unsigned char *m;
    size_t len;
    file_header h;
    char why[512];
    int rc = map_checked(path, threads, &m, &len, &h, why, sizeof why);
    if (rc != 0) {
        snprintf(err, errlen, "%s: %s", path, rc > 0 ? "no such file" : why);
        return -1;
    }
    snprintf(info->key, sizeof info->key, "%016" PRIx64, h.key);
    info->resize = (int)h.resize;
    info->count = (int)h.count;
    info->failed = (int)h.failed;
    info->pixel_bytes = 0;
    for (uint32_t i = 0; i < h.count; i++) {
        const unsigned char *e = m + h.table_offset + (size_t)i * ENTRY_BYTES;
        info->pixel_bytes += (uint64_t)get32(e + 8) * get32(e + 12) * 3;
    }
    info->file_bytes = len;
    munmap(m, len);
    return 0;
}

/* Fills C from a checked mapping of the cache for KEY, RESIZE and COUNT images. */
static int map_cache(image_cache *c, const char *path, const char *key, int resize, int count,
                     int threads, char *why, size_t whylen) {
    unsigned char *m;
    size_t len;
    file_header h;
    int rc = map_checked(path, threads, &m, &len, &h, why, whylen);
    if (rc != 0) return rc;
    char found[IMAGE_CACHE_KEY_CHARS + 1];
    snprintf(found, sizeof found, "%016" PRIx64, h.key);
    if (strcmp(found, key) != 0 || h.resize != (uint32_t)resize || h.count != (uint32_t)count) {
        snprintf(why, whylen, "key %s, resize %u, %u images: not this dataset's (%s, %d, %d)",
                 found, h.resize, h.count, key, resize, count);
        munmap(m, len);
        return -1;
    }
    memset(c, 0, sizeof *c);
    c->images = calloc(count > 0 ? (size_t)count : 1, sizeof *c->images);
    c->errors = calloc(count > 0 ? (size_t)count : 1, sizeof *c->errors);
    c->count = count;
    c->mapping = m;
    c->mapping_bytes = len;
    if (!c->images || !c->errors) {
        snprintf(why, whylen, "out of memory for the image table (%d images)", count);
        image_cache_free(c);
        return -1;
    }
    for (int i = 0; i < count; i++) {
        const unsigned char *e = m + h.table_offset + (size_t)i * ENTRY_BYTES;
        int w = (int)get32(e + 8), ht = (int)get32(e + 12);
        if (w > 0) {
            /* read-only pages: the loader only reads the cache, a stray write faults */
            c->images[i] = (image_u8){m + h.data_offset + get64(e), w, ht};
            c->bytes += (size_t)w * ht * 3;
        } else {
            c->errors[i] =
                strndup((const char *)m + h.strings_offset + get32(e + 16), get32(e + 20));
        }
    }
    return 0;
}

/* ---- building ----------------------------------------------------------------------------- */

typedef struct {
    int fd;
    uint64_t data_offset;
    atomic_uint_fast64_t end; /* pixel bytes claimed so far: each image takes the next range */
    unsigned char *table;     /* (count, ENTRY_BYTES) */
    char **errors;            /* (count) */
    atomic_int write_errno;
} file_sink_ctx;

static int write_all(int fd, const void *data, size_t n, uint64_t offset) {
    const unsigned char *p = data;
    while (n > 0) {
        ssize_t w = pwrite(fd, p, n, (off_t)offset);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return w < 0 ? errno : EIO;
        p += w;
        n -= (size_t)w;
        offset += (uint64_t)w;
    }
    return 0;
}

static int file_sink(void *ctx, int index, image_u8 *img, const char *error) {
    file_sink_ctx *f = ctx;
    unsigned char *e = f->table + (size_t)index * ENTRY_BYTES;
    if (error) {
        f->errors[index] = strdup(error);
        if (f->errors[index]) return 0;
        atomic_store(&f->write_errno, ENOMEM);
        return -1;
    }
    size_t bytes = (size_t)img->width * img->height * 3;
    uint64_t offset = atomic_fetch_add(&f->end, bytes);
    int e_no = write_all(f->fd, img->pixels, bytes, f->data_offset + offset);
    put64(e, offset);
    put32(e + 8, (uint32_t)img->width);
    put32(e + 12, (uint32_t)img->height);
    put64(e + 24, hash_bytes(img->pixels, bytes, 0));
    free(img->pixels);
    if (e_no == 0) return 0;
    atomic_store(&f->write_errno, e_no);
    return -1;
}

/* Decodes PATHS into TMP (the lock holder's alone) and renames it to PATH. */
static int build_cache(const char *path, const char *tmp, const char *key, char *const *paths,
                       int count, int resize, int threads, char *err, size_t errlen) {
    file_sink_ctx f = {0};
    size_t table_bytes = (size_t)count * ENTRY_BYTES;
    f.data_offset = HEADER_BYTES + (table_bytes + HEADER_BYTES - 1) / HEADER_BYTES * HEADER_BYTES;
    atomic_init(&f.end, 0);
    atomic_init(&f.write_errno, 0);
    f.table = calloc(table_bytes + 1, 1);
    f.errors = calloc((size_t)count + 1, sizeof *f.errors);
    unsigned char *header = calloc(HEADER_BYTES, 1);
    char *strings = NULL;
    int rc = -1;
    f.fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (f.fd < 0) {
        snprintf(err, errlen, "cannot create %s: %s", tmp, strerror(errno));
        goto done;
    }
    if (!f.table || !f.errors || !header) {
        snprintf(err, errlen, "out of memory building %s", tmp);
        goto done;
    }
    if (image_decode_all(paths, count, resize, threads, file_sink, &f) != 0) {
        snprintf(err, errlen, "cannot write %s: %s", tmp, strerror(atomic_load(&f.write_errno)));
        goto done;
    }
    size_t strings_bytes = 0;
    for (int i = 0; i < count; i++)
        strings_bytes += f.errors[i] ? strlen(f.errors[i]) : 0;
    strings = malloc(strings_bytes + 1);
    if (!strings) {
        snprintf(err, errlen, "out of memory building %s", tmp);
        goto done;
    }
    file_header h = {.resize = (uint32_t)resize,
                     .count = (uint32_t)count,
                     .key = strtoull(key, NULL, 16),
                     .table_offset = HEADER_BYTES,
                     .data_offset = f.data_offset,
                     .data_bytes = atomic_load(&f.end),
                     .strings_bytes = strings_bytes};
    size_t at = 0;
    for (int i = 0; i < count; i++) {
        if (!f.errors[i]) continue;
        size_t n = strlen(f.errors[i]);
        unsigned char *e = f.table + (size_t)i * ENTRY_BYTES;
        put32(e + 16, (uint32_t)at);
        put32(e + 20, (uint32_t)n);
        memcpy(strings + at, f.errors[i], n);
        at += n;
        h.failed++;
    }
    h.strings_offset = h.data_offset + h.data_bytes;
    h.file_bytes = h.strings_offset + h.strings_bytes;
    header_put(header, &h);
    h.checksum = meta_checksum(header, f.table, h.count, (unsigned char *)strings, h.strings_bytes);
    header_put(header, &h);
    int e_no = write_all(f.fd, strings, strings_bytes, h.strings_offset);
    if (!e_no) e_no = write_all(f.fd, f.table, table_bytes, HEADER_BYTES);
    if (!e_no) e_no = write_all(f.fd, header, HEADER_BYTES, 0);
    /* no fsync: a file the kernel lost part of fails its checksums and is rebuilt */
    if (!e_no && close(f.fd) != 0) e_no = errno;
    f.fd = -1;
    if (!e_no && rename(tmp, path) != 0) e_no = errno;
    if (e_no) {
        snprintf(err, errlen, "cannot write %s: %s", path, strerror(e_no));
        goto done;
    }
    rc = 0;
done:
    if (f.fd >= 0) close(f.fd);
    if (rc != 0) unlink(tmp);
    for (int i = 0; f.errors && i < count; i++)
        free(f.errors[i]);
    free(f.errors);
    free(f.table);
    free(header);
    free(strings);
    return rc;
}

/* ---- the lock ----------------------------------------------------------------------------- */

static void read_holder(int fd, char *holder, size_t holderlen) {
    ssize_t n = pread(fd, holder, holderlen - 1, 0);
    holder[n > 0 ? n : 0] = 0;
    holder[strcspn(holder, "\n")] = 0;
}

/* Takes the builder's lock LOCK_PATH (waiting for a holder, with a message naming it) and
 * writes this process's pid and host into it. Returns the descriptor; -2 when the lock file was
 * removed while this process waited (its holder is done: look for the cache again); or -1 with
 * a message. */
static int lock_cache(const char *lock_path, const char *what, char *err, size_t errlen) {
    int fd = open(lock_path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) {
        snprintf(err, errlen, "cannot open the lock %s: %s", lock_path, strerror(errno));
        return -1;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        char holder[256];
        read_holder(fd, holder, sizeof holder);
        fprintf(stderr, "tlsweep: waiting for %s to build the image cache %s\n",
                holder[0] ? holder : "another process", what);
        int rc;
        while ((rc = flock(fd, LOCK_EX)) != 0 && errno == EINTR) {
        }
        if (rc != 0) {
            snprintf(err, errlen, "cannot lock %s: %s", lock_path, strerror(errno));
            close(fd);
            return -1;
        }
    }
    /* the last holder removes the file when done: a lock on a removed file locks nothing */
    struct stat held, named;
    if (fstat(fd, &held) == 0 && stat(lock_path, &named) == 0 && held.st_ino == named.st_ino &&
        held.st_dev == named.st_dev) {
        char host[256] = "?", text[320];
        gethostname(host, sizeof host - 1);
        int n = snprintf(text, sizeof text, "pid %ld on %s\n", (long)getpid(), host);
        if (ftruncate(fd, 0) != 0 || pwrite(fd, text, (size_t)n, 0) != n) {
            /* only the waiters' message reads it */
        }
        return fd;
    }
    close(fd);
    return -2;
}

void image_cache_path(char *out, size_t outlen, const char *dir, const char *key, int resize,
                      int count) {
    snprintf(out, outlen, "%s/images-%d-%d-%s" IMAGE_CACHE_SUFFIX, dir, resize, count, key);
}

int image_cache_open(image_cache *c, const char *dir, char *const *paths, int count, int resize,
                     int threads, char *err, size_t errlen) {
    memset(c, 0, sizeof *c);
    char key[IMAGE_CACHE_KEY_CHARS + 1];
    if (image_cache_key(key, paths, count, resize, err, errlen) != 0) return -1;
    if (make_dirs(dir, err, errlen) != 0) return -1;
    char path[PATH_MAX], lock_path[PATH_MAX + 8], tmp[PATH_MAX + 8], why[512];
    image_cache_path(path, sizeof path, dir, key, resize, count);
    snprintf(lock_path, sizeof lock_path, "%s.lock", path);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    int lock;
    do {
        if (map_cache(c, path, key, resize, count, threads, why, sizeof why) == 0) return 0;
        lock = lock_cache(lock_path, path, err, errlen);
    } while (lock == -2);
    if (lock < 0) return -1;
    /* another process may have built it while this one waited */
    int rc = map_cache(c, path, key, resize, count, threads, why, sizeof why);
    if (rc != 0) {
        if (rc < 0) fprintf(stderr, "tlsweep: image cache %s: %s; rebuilding it\n", path, why);
        rc = build_cache(path, tmp, key, paths, count, resize, threads, err, errlen);
        if (rc == 0 && map_cache(c, path, key, resize, count, threads, why, sizeof why) != 0) {
            snprintf(err, errlen, "%s: just built, yet %s", path, why);
            rc = -1;
        }
    }
    unlink(lock_path);
    close(lock);
    return rc;
}

int image_cache_builder(const char *cache_path, char *holder, size_t holderlen) {
    char lock_path[PATH_MAX + 8];
    snprintf(lock_path, sizeof lock_path, "%s.lock", cache_path);
    int fd = open(lock_path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return 0;
    int held = flock(fd, LOCK_SH | LOCK_NB) != 0 && errno == EWOULDBLOCK;
    if (held) read_holder(fd, holder, holderlen);
    close(fd); /* also releases the shared lock taken to look */
    return held;
}

int image_cache_remove(const char *cache_path, char *holder, size_t holderlen, char *err,
                       size_t errlen) {
    char lock_path[PATH_MAX + 8], tmp[PATH_MAX + 8];
    snprintf(lock_path, sizeof lock_path, "%s.lock", cache_path);
    snprintf(tmp, sizeof tmp, "%s.tmp", cache_path);
    int fd = open(lock_path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) {
        snprintf(err, errlen, "cannot open the lock %s: %s", lock_path, strerror(errno));
        return -1;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        read_holder(fd, holder, holderlen);
        close(fd);
        return 1;
    }
    int rc = 0;
    const char *files[] = {tmp, cache_path, lock_path};
    for (int i = 0; i < 3; i++)
        if (unlink(files[i]) != 0 && errno != ENOENT && rc == 0) {
            snprintf(err, errlen, "cannot remove %s: %s", files[i], strerror(errno));
            rc = -1;
        }
    close(fd);
    return rc;
}
