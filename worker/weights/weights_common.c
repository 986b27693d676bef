/* What every reader shares: one-line error messages that name the file, the read-only file
 * mapping, and size arithmetic that refuses to overflow or pass a limit. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "worker/paths.h"
#include "worker/trial.h"
#include "worker/weights/weights_internal.h"

int weights_fail(const weights_err *e, const char *fmt, ...) {
    if (!e->buf || e->len == 0) return -1;
    int n = snprintf(e->buf, e->len, "%s: ", e->path);
    if (n < 0 || (size_t)n >= e->len) return -1;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->buf + n, e->len - (size_t)n, fmt, ap);
    va_end(ap);
    return -1;
}

int weights_map_open(const char *path, weights_map *m, const weights_err *e) {
    m->data = NULL;
    m->size = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        char tried[TRIAL_PATH_MAX + 16];
        int saved = errno;
        return weights_fail(e, "cannot open%s: %s", path_tried(path, tried, sizeof tried),
                            strerror(saved));
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int saved = errno;
        close(fd);
        return weights_fail(e, "cannot stat: %s", strerror(saved));
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return weights_fail(e, "not a regular file");
    }
    if (st.st_size == 0) {
        close(fd);
        return 0;
    }
    /* mapping instead of reading keeps a 500 MB checkpoint out of the heap; only the
     * converted fp32 tensors are allocated */
    void *p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    int saved = errno;
    close(fd);
    if (p == MAP_FAILED) return weights_fail(e, "cannot map: %s", strerror(saved));
    m->data = p;
    m->size = (size_t)st.st_size;
    return 0;
}

void weights_map_close(weights_map *m) {
    if (m->data) munmap((void *)m->data, m->size);
    m->data = NULL;
    m->size = 0;
}

int weights_mul_limit(int64_t a, int64_t b, int64_t limit, int64_t *out) {
    if (a < 0 || b < 0) return -1;
    if (a != 0 && b > limit / a) return -1;
    *out = a * b;
    return *out <= limit ? 0 : -1;
}

int weights_add_limit(int64_t a, int64_t b, int64_t limit, int64_t *out) {
    if (a < 0 || b < 0 || a > limit - b) return -1;
    *out = a + b;
    return 0;
}
