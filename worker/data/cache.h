/* The decoded-image cache: every image of a split decoded and resized (shorter side RESIZE)
 * once, by a pool of threads, and kept as uint8 for the life of the loader: in private memory
 * (image_cache_build), or in a file mapped read-only and shared by every process of the node
 * (image_cache_open, worker/data/cache_file.h). */
#ifndef TLSWEEP_CACHE_H
#define TLSWEEP_CACHE_H

#include <stddef.h>

#include "worker/data/image.h"

typedef struct {
    image_u8 *images; /* (count); pixels inside `mapping` when mapped, else owned */
    char **errors;    /* (count) why image i failed (NULL pixels), or NULL */
    int count;
    size_t bytes;         /* pixel bytes held */
    void *mapping;        /* the mapped cache file, or NULL */
    size_t mapping_bytes; /* its length */
} image_cache;

/* Where each decoded image goes: called once per index, from any thread. On success IMG holds
 * the pixels (the sink takes them) and ERROR is NULL; on failure IMG->pixels is NULL and ERROR
 * says why. Returns 0, or -1 to report that the sink itself failed (e.g. a write). */
typedef int (*image_sink)(void *ctx, int index, image_u8 *img, const char *error);

/* Decodes and resizes PATHS with THREADS threads (or this one, when none can start) into SINK.
 * Returns 0, or -1 once a sink call failed (the threads then stop; the sink keeps the reason). */
int image_decode_all(char *const *paths, int count, int resize, int threads, image_sink sink,
                     void *ctx);

/* Fills C from PATHS with THREADS threads. Per-image failures land in C->errors; returns -1
 * (with a message) only when the cache itself cannot be built (memory, threads). */
int image_cache_build(image_cache *c, char *const *paths, int count, int resize, int threads,
                      char *err, size_t errlen);
void image_cache_free(image_cache *c);

/* Decode + resize of one file, what each cache thread runs; exposed for tests and bench. */
int image_load_resized(const char *path, int resize, image_u8 *out, char *err, size_t errlen);

#endif
