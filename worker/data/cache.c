/* Parallel decode + resize, into private memory or any other sink. */
#include "worker/data/cache.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "worker/data/jpeg.h"
#include "worker/data/resize.h"

int image_load_resized(const char *path, int resize, image_u8 *out, char *err, size_t errlen) {
    image_u8 decoded;
    if (jpeg_decode_file(path, resize, &decoded, err, errlen) != 0) return -1;
    int rc = resize_shorter_side(&decoded, resize, out, path, err, errlen);
    free(decoded.pixels);
    return rc;
}

typedef struct {
    char *const *paths;
    int count, resize;
    image_sink sink;
    void *ctx;
    atomic_int next;   /* next image to claim: threads take images in any order */
    atomic_int failed; /* a sink failed: stop claiming */
} decode_job;

static void *decode_thread(void *arg) {
    decode_job *job = arg;
    char err[1024];
    for (;;) {
        int i = atomic_fetch_add(&job->next, 1);
        if (i >= job->count || atomic_load(&job->failed)) return NULL;
        image_u8 img = {0};
        int ok = image_load_resized(job->paths[i], job->resize, &img, err, sizeof err) == 0;
        if (job->sink(job->ctx, i, &img, ok ? NULL : err) != 0) atomic_store(&job->failed, 1);
    }
}

int image_decode_all(char *const *paths, int count, int resize, int threads, image_sink sink,
                     void *ctx) {
    decode_job job = {.paths = paths, .count = count, .resize = resize, .sink = sink, .ctx = ctx};
    atomic_init(&job.next, 0);
    atomic_init(&job.failed, 0);
    if (threads < 1) threads = 1;
    pthread_t *ids = malloc((size_t)threads * sizeof *ids);
    int started = 0;
    for (; ids && started < threads; started++)
        if (pthread_create(&ids[started], NULL, decode_thread, &job) != 0) break;
    if (started == 0) decode_thread(&job); /* no thread could start: do the work here */
    for (int t = 0; t < started; t++)
        pthread_join(ids[t], NULL);
    free(ids);
    return atomic_load(&job.failed) ? -1 : 0;
}

/* The private-memory sink: the cache keeps the pixels, or a copy of the reason. */
static int memory_sink(void *ctx, int index, image_u8 *img, const char *error) {
    image_cache *c = ctx;
    c->images[index] = *img;
    /* NULL pixels mark the failure even if this strdup fails */
    if (error) c->errors[index] = strdup(error);
    return 0;
}

int image_cache_build(image_cache *c, char *const *paths, int count, int resize, int threads,
                      char *err, size_t errlen) {
    memset(c, 0, sizeof *c);
    c->count = count;
    c->images = calloc(count > 0 ? (size_t)count : 1, sizeof *c->images);
    c->errors = calloc(count > 0 ? (size_t)count : 1, sizeof *c->errors);
    if (!c->images || !c->errors) {
        snprintf(err, errlen, "out of memory for the image cache (%d images)", count);
        image_cache_free(c);
        return -1;
    }
    image_decode_all(paths, count, resize, threads, memory_sink, c);
    for (int i = 0; i < count; i++)
        if (c->images[i].pixels) c->bytes += (size_t)c->images[i].width * c->images[i].height * 3;
    return 0;
}

void image_cache_free(image_cache *c) {
    if (c->mapping)
        munmap(c->mapping, c->mapping_bytes);
    else
        for (int i = 0; c->images && i < c->count; i++)
            free(c->images[i].pixels);
    for (int i = 0; c->errors && i < c->count; i++)
        free(c->errors[i]);
    free(c->images);
    free(c->errors);
    memset(c, 0, sizeof *c);
}
