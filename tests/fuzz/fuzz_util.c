#include "tests/fuzz/fuzz_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

static void write_all(int fd, const uint8_t *data, size_t size, const char *what) {
    while (size > 0) {
        ssize_t n = write(fd, data, size);
        if (n <= 0) {
            perror(what);
            abort();
        }
        data += n;
        size -= (size_t)n;
    }
}

int fuzz_memfile(const uint8_t *data, size_t size, char *path, size_t pathlen) {
    int fd = memfd_create("fuzz-input", MFD_CLOEXEC);
    if (fd < 0) {
        perror("memfd_create");
        abort();
    }
    write_all(fd, data, size, "memfd write");
    snprintf(path, pathlen, "/proc/self/fd/%d", fd);
    return fd;
}

void fuzz_write_file(const char *path, const uint8_t *data, size_t size) {
    FILE *f = fopen(path, "wb");
    if (!f || (size > 0 && fwrite(data, 1, size, f) != size) || fclose(f) != 0) {
        perror(path);
        abort();
    }
}

uint8_t *fuzz_read_file(const char *path, size_t *size) {
    FILE *f = fopen(path, "rb");
    if (!f || fseek(f, 0, SEEK_END) != 0) {
        perror(path);
        abort();
    }
    long len = ftell(f);
    rewind(f);
    uint8_t *buf = malloc(len > 0 ? (size_t)len : 1);
    if (len < 0 || !buf || fread(buf, 1, (size_t)len, f) != (size_t)len) {
        perror(path);
        abort();
    }
    fclose(f);
    *size = (size_t)len;
    return buf;
}
