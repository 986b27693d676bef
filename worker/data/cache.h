/* The decoded-image cache: every image of a split decoded and resized (shorter side RESIZE)
 * once, by a pool of threads, and kept as uint8 for the life of the loader. */
#ifndef TLSWEEP_CACHE_H
#define TLSWEEP_CACHE_H

#include <stddef.h>

#include "worker/data/image.h"

typedef struct {
    image_u8 *images; /* (count) */
    char **errors;    /* (count) why image i failed (NULL pixels), or NULL */
    int count;
    size_t bytes; /* pixel bytes held */
} image_cache;

/* Fills C from PATHS with THREADS threads. Per-image failures land in C->errors; returns -1
 * (with a message) only when the cache itself cannot be built (memory, threads). */
int image_cache_build(image_cache *c, char *const *paths, int count, int resize, int threads,
                      char *err, size_t errlen);
void image_cache_free(image_cache *c);

/* Decode + resize of one file, what each cache thread runs; exposed for tests and bench. */
int image_load_resized(const char *path, int resize, image_u8 *out, char *err, size_t errlen);

#endif
