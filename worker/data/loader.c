/* The batch loader: cache at creation, then a pool of threads filling a ring of batch slots
 * in batch order while the consumer takes them one by one. */
#include "worker/data/loader.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "worker/data/cache.h"
#include "worker/data/cache_file.h"
#include "worker/data/transform.h"
#include "worker/rng.h"

enum slot_state { SLOT_FREE, SLOT_FILLING, SLOT_READY };

typedef struct {
    float *images;      /* (batch_size, crop, crop, 3); NULL in jobs mode */
    kn_image_job *jobs; /* (batch_size) in jobs mode; else NULL */
    int32_t *labels;    /* (batch_size) */
    int count, batch;
    int offset, total; /* this shard's place in the whole batch, and the whole batch's size */
    enum slot_state state;
} batch_slot;

struct loader {
    loader_options opt;
    image_cache cache;       /* only the images that decoded */
    uint64_t *store_offsets; /* (count) each image's place in the store (loader_store_image) */
    size_t store_bytes;
    int32_t *labels; /* (count) */
    int count, skipped, num_batches;
    int *order; /* (count) this epoch's image order */
    int epoch;
    batch_slot *slots; /* (prefetch + 1): the one the consumer holds + the ones ahead */
    int num_slots;
    int first;   /* the epoch's first batch: the consumer holds no batch before it */
    int claimed; /* batches of this epoch taken by a thread (counting from 0) */
    int handed;  /* batches of this epoch given to the consumer (counting from 0) */
    int started; /* an epoch was started: before that there is nothing to hand */
    int stop;
    pthread_mutex_t lock;
    pthread_cond_t work;  /* a batch can be claimed, or stop */
    pthread_cond_t ready; /* a slot became READY, or a fill finished */
    pthread_t *threads;
    int num_threads;
};

/* Shard `shard` of a batch of `total`: the first total % shards shards take one image more,
 * so shard 0 (the group's voice) is never empty. */
void shard_of(int total, int shard, int shards, int *offset, int *count) {
    int base = total / shards, extra = total % shards;
    *offset = shard * base + (shard < extra ? shard : extra);
    *count = base + (shard < extra);
}

static void fill_batch(const loader *l, batch_slot *s, int batch, int epoch) {
    int bs = l->opt.batch_size, crop = l->opt.crop;
    int first = batch * bs;
    s->total = first + bs <= l->count ? bs : l->count - first;
    shard_of(s->total, l->opt.shard, l->opt.shards, &s->offset, &s->count);
    s->batch = batch;
    for (int i = 0; i < s->count; i++) {
        int position = first + s->offset + i, image = l->order[position];
        augment_params p;
        if (l->opt.augment)
            augment_draw(&p, &l->opt.augment_opts, l->opt.seed, (uint64_t)epoch,
                         (uint64_t)position);
        const augment_params *aug = l->opt.augment ? &p : NULL;
        const image_u8 *img = &l->cache.images[image];
        if (l->opt.jobs)
            transform_job(&s->jobs[i], l->store_offsets[image], img->width, img->height, aug, crop);
        else
            transform_image(s->images + (size_t)i * crop * crop * 3, img, aug, crop);
        s->labels[i] = l->labels[image];
    }
}

static int can_claim(const loader *l) {
    return l->claimed < l->num_batches && l->claimed < l->handed + l->opt.prefetch &&
           l->slots[l->claimed % l->num_slots].state == SLOT_FREE;
}

static void *worker(void *arg) {
    loader *l = arg;
    pthread_mutex_lock(&l->lock);
    for (;;) {
        while (!l->stop && !can_claim(l))
            pthread_cond_wait(&l->work, &l->lock);
        if (l->stop) break;
        int batch = l->claimed++, epoch = l->epoch;
        batch_slot *s = &l->slots[batch % l->num_slots];
        s->state = SLOT_FILLING;
        pthread_mutex_unlock(&l->lock);
        /* order and cache are only written while no slot is FILLING, so reading is safe */
        fill_batch(l, s, batch, epoch);
        pthread_mutex_lock(&l->lock);
        s->state = SLOT_READY;
        pthread_cond_broadcast(&l->ready);
        pthread_cond_broadcast(&l->work); /* another thread may now claim the next one */
    }
    pthread_mutex_unlock(&l->lock);
    return NULL;
}

/* Keeps the images that decoded, compacted to the front of the cache; reports the first
 * failure, or skips and counts every failure when skip_corrupt. */
static int keep_decoded(loader *l, const dataset_split *split, int skip_corrupt, char *err,
                        size_t errlen) {
    image_cache *c = &l->cache;
    int kept = 0, rc = 0;
    for (int i = 0; i < c->count; i++) {
        if (c->images[i].pixels) {
            image_u8 img = c->images[i];
            c->images[i] = (image_u8){0};
            c->images[kept] = img;
            l->labels[kept++] = split->labels[i];
        } else if (rc == 0) {
            char why[1024];
            if (c->errors[i])
                snprintf(why, sizeof why, "%s", c->errors[i]);
            else
                snprintf(why, sizeof why, "%s: decode failed (out of memory)", split->paths[i]);
            if (skip_corrupt) {
                fprintf(stderr, "tlsweep: warning: %s; skipped (skip_corrupt)\n", why);
                l->skipped++;
            } else {
                snprintf(err, errlen, "%s", why);
                rc = -1;
            }
        }
        free(c->errors[i]);
        c->errors[i] = NULL;
    }
    l->count = kept;
    return rc;
}

static int check_options(const loader_options *o, int count, char *err, size_t errlen) {
    if (o->batch_size < 1 || o->crop < 1 || o->resize < o->crop || o->threads < 1 ||
        o->prefetch < 1 || o->shard < 0 || (o->shards > 0 && o->shard >= o->shards)) {
        snprintf(err, errlen,
                 "loader: bad options (batch_size %d, resize %d, crop %d, threads %d, prefetch "
                 "%d, shard %d of %d): need batch_size, threads, prefetch >= 1, crop <= resize "
                 "and shard < shards",
                 o->batch_size, o->resize, o->crop, o->threads, o->prefetch, o->shard, o->shards);
        return -1;
    }
    if (count < 1) {
        snprintf(err, errlen, "loader: the split has no images");
        return -1;
    }
    return 0;
}

/* The cache, batch buffers and tables, then the loader itself (threads already stopped). */
static void free_loader_memory(loader *l) {
    image_cache_free(&l->cache);
    for (int i = 0; l->slots && i < l->num_slots; i++) {
        free(l->slots[i].images);
        free(l->slots[i].jobs);
        free(l->slots[i].labels);
    }
    free(l->slots);
    free(l->order);
    free(l->labels);
    free(l->store_offsets);
    free(l->threads);
    free(l);
}

int loader_create(loader **out, const dataset_split *split, int skip_corrupt,
                  const loader_options *o, char *err, size_t errlen) {
    *out = NULL;
    if (check_options(o, split->count, err, errlen) != 0) return -1;
    loader *l = calloc(1, sizeof *l);
    if (!l) {
        snprintf(err, errlen, "loader: out of memory");
        return -1;
    }
    l->opt = *o;
    l->opt.cache_dir = NULL; /* the caller's string: only read here */
    if (l->opt.shards < 1) {
        l->opt.shards = 1;
        l->opt.shard = 0;
    }
    int mapped = 0;
    if (o->cache_dir && o->cache_dir[0]) {
        char why[1024];
        mapped = image_cache_open(&l->cache, o->cache_dir, split->paths, split->count, o->resize,
                                  o->threads, why, sizeof why) == 0;
        if (!mapped)
            fprintf(stderr, "tlsweep: warning: image cache: %s; decoding into private memory\n",
                    why);
    }
    if (!mapped && image_cache_build(&l->cache, split->paths, split->count, o->resize, o->threads,
                                     err, errlen) != 0) {
        free(l);
        return -1;
    }
    l->labels = malloc((size_t)split->count * sizeof *l->labels);
    if (!l->labels) {
        snprintf(err, errlen, "loader: out of memory");
        goto fail;
    }
    if (keep_decoded(l, split, skip_corrupt, err, errlen) != 0) goto fail;
    if (l->count == 0) {
        snprintf(err, errlen, "loader: no image of the split could be read (%d skipped)",
                 l->skipped);
        goto fail;
    }
    l->num_batches = (l->count + o->batch_size - 1) / o->batch_size;
    l->num_slots = o->prefetch + 1;
    l->order = malloc((size_t)l->count * sizeof *l->order);
    l->store_offsets = malloc((size_t)l->count * sizeof *l->store_offsets);
    l->slots = calloc((size_t)l->num_slots, sizeof *l->slots);
    l->threads = malloc((size_t)o->threads * sizeof *l->threads);
    if (!l->order || !l->store_offsets || !l->slots || !l->threads) {
        snprintf(err, errlen, "loader: out of memory");
        goto fail;
    }
    for (int i = 0; i < l->count; i++) {
        const image_u8 *img = &l->cache.images[i];
        l->store_offsets[i] = l->store_bytes;
        l->store_bytes += ((size_t)img->width * img->height * 3 + 63) / 64 * 64;
    }
    size_t pixels = (size_t)o->batch_size * o->crop * o->crop * 3;
    for (int i = 0; i < l->num_slots; i++) {
        batch_slot *s = &l->slots[i];
        if (o->jobs)
            s->jobs = malloc((size_t)o->batch_size * sizeof *s->jobs);
        else
            s->images = malloc(pixels * sizeof(float));
        s->labels = malloc((size_t)o->batch_size * sizeof(int32_t));
        if ((o->jobs ? !s->jobs : !s->images) || !s->labels) {
            snprintf(err, errlen, "loader: out of memory for %d batch buffers", l->num_slots);
            goto fail;
        }
    }
    /* nothing to claim until the first epoch starts */
    l->claimed = l->num_batches;
    if (pthread_mutex_init(&l->lock, NULL) != 0 || pthread_cond_init(&l->work, NULL) != 0 ||
        pthread_cond_init(&l->ready, NULL) != 0) {
        snprintf(err, errlen, "loader: cannot create its mutex / condition variables");
        goto fail; /* destroying never-initialised sync objects is avoided below */
    }
    for (; l->num_threads < o->threads; l->num_threads++)
        if (pthread_create(&l->threads[l->num_threads], NULL, worker, l) != 0) {
            snprintf(err, errlen, "loader: cannot start thread %d of %d", l->num_threads + 1,
                     o->threads);
            loader_destroy(l);
            return -1;
        }
    *out = l;
    return 0;
fail:
    free_loader_memory(l);
    return -1;
}

void loader_start_epoch(loader *l, int epoch) {
    loader_start_epoch_at(l, epoch, 0);
}

void loader_start_epoch_at(loader *l, int epoch, int first_batch) {
    if (first_batch < 0) first_batch = 0;
    if (first_batch > l->num_batches) first_batch = l->num_batches;
    pthread_mutex_lock(&l->lock);
    /* stop claims and wait for fills in flight: they read the order being replaced */
    l->claimed = l->num_batches;
    for (;;) {
        int filling = 0;
        for (int i = 0; i < l->num_slots; i++)
            filling |= l->slots[i].state == SLOT_FILLING;
        if (!filling) break;
        pthread_cond_wait(&l->ready, &l->lock);
    }
    for (int i = 0; i < l->num_slots; i++)
        l->slots[i].state = SLOT_FREE;
    for (int i = 0; i < l->count; i++)
        l->order[i] = i;
    if (l->opt.shuffle) {
        rng_stream r = rng_stream_for(l->opt.seed, (uint64_t)epoch, 0, RNG_SHUFFLE);
        for (int i = l->count - 1; i > 0; i--) {
            int j = (int)rng_below(&r, (uint64_t)i + 1), t = l->order[i];
            l->order[i] = l->order[j];
            l->order[j] = t;
        }
    }
    l->epoch = epoch;
    l->started = 1;
    /* the order is the whole epoch's, so batch k holds the images it always holds */
    l->first = first_batch;
    l->claimed = first_batch;
    l->handed = first_batch;
    pthread_cond_broadcast(&l->work);
    pthread_mutex_unlock(&l->lock);
}

int loader_next(loader *l, loader_batch *batch) {
    pthread_mutex_lock(&l->lock);
    if (l->handed > l->first) { /* the consumer is done with the batch it held */
        l->slots[(l->handed - 1) % l->num_slots].state = SLOT_FREE;
        pthread_cond_broadcast(&l->work);
    }
    if (!l->started || l->handed >= l->num_batches) {
        pthread_mutex_unlock(&l->lock);
        return 0;
    }
    batch_slot *s = &l->slots[l->handed % l->num_slots];
    while (!(s->state == SLOT_READY && s->batch == l->handed))
        pthread_cond_wait(&l->ready, &l->lock);
    l->handed++;
    pthread_cond_broadcast(&l->work);
    pthread_mutex_unlock(&l->lock);
    *batch = (loader_batch){s->images, s->jobs, s->labels, s->count, s->batch, s->offset, s->total};
    return 1;
}

int loader_num_images(const loader *l) {
    return l->count;
}
int loader_num_batches(const loader *l) {
    return l->num_batches;
}
int loader_num_skipped(const loader *l) {
    return l->skipped;
}
size_t loader_cache_bytes(const loader *l) {
    return l->cache.bytes;
}
size_t loader_store_bytes(const loader *l) {
    return l->store_bytes;
}

void loader_store_image(const loader *l, int i, const uint8_t **pixels, size_t *bytes,
                        uint64_t *offset) {
    const image_u8 *img = &l->cache.images[i];
    *pixels = img->pixels;
    *bytes = (size_t)img->width * img->height * 3;
    *offset = l->store_offsets[i];
}

void loader_destroy(loader *l) {
    if (!l) return;
    pthread_mutex_lock(&l->lock);
    l->stop = 1;
    pthread_cond_broadcast(&l->work);
    pthread_mutex_unlock(&l->lock);
    for (int i = 0; i < l->num_threads; i++)
        pthread_join(l->threads[i], NULL);
    pthread_mutex_destroy(&l->lock);
    pthread_cond_destroy(&l->work);
    pthread_cond_destroy(&l->ready);
    free_loader_memory(l);
}
