/* Parallel decode + resize into the cache. */
#include "worker/data/cache.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
    image_cache *cache;
    char *const *paths;
    int resize;
    atomic_int next; /* next image to claim: threads take images in any order */
} build_job;

static void *build_thread(void *arg) {
    build_job *job = arg;
    char err[1024];
    for (;;) {
        int i = atomic_fetch_add(&job->next, 1);
        if (i >= job->cache->count) return NULL;
        if (image_load_resized(job->paths[i], job->resize, &job->cache->images[i], err,
                               sizeof err) != 0) {
            /* NULL pixels mark the failure even if this strdup fails */
            job->cache->errors[i] = strdup(err);
        }
    }
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
    build_job job = {.cache = c, .paths = paths, .resize = resize};
    atomic_init(&job.next, 0);
    if (threads < 1) threads = 1;
    pthread_t *ids = malloc((size_t)threads * sizeof *ids);
    if (!ids) {
        snprintf(err, errlen, "out of memory for %d cache threads", threads);
        image_cache_free(c);
        return -1;
    }
    int started = 0;
    for (; started < threads; started++)
        if (pthread_create(&ids[started], NULL, build_thread, &job) != 0) break;
    if (started == 0) build_thread(&job); /* no thread could start: do the work here */
    for (int t = 0; t < started; t++)
        pthread_join(ids[t], NULL);
    free(ids);
    for (int i = 0; i < count; i++)
        if (c->images[i].pixels) c->bytes += (size_t)c->images[i].width * c->images[i].height * 3;
    return 0;
}

void image_cache_free(image_cache *c) {
    for (int i = 0; c->images && i < c->count; i++)
        free(c->images[i].pixels);
    for (int i = 0; c->errors && i < c->count; i++)
        free(c->errors[i]);
    free(c->images);
    free(c->errors);
    memset(c, 0, sizeof *c);
}
