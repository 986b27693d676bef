/* Batches for the trainer: one loader per split. On creation every image is decoded once
 * (DCT-scaled where it helps), resized to the `resize` shorter side and kept as uint8 (the
 * cache), by a pool of threads; afterwards each epoch only augments, crops and normalises.
 * Worker threads prepare up to `prefetch` batches ahead; batches come out in order, and each
 * image's draw depends only on (seed, epoch, position in the epoch), so the output is the
 * same whatever the number of threads or their timing. One consumer thread drives a loader
 * (start_epoch / next); its own threads do the rest. In jobs mode (the device data path) the
 * threads only draw and describe each image's transform; the backend runs it from its own copy
 * of the cache (the store).
 *
 *   dataset ds;
 *   const char *train[] = {"tstid"}, *val[] = {"trnid", "valid"};
 *   if (dataset_open(&ds, root, train, 1, val, 2, skip_corrupt, err, sizeof err)) fail(err);
 *   loader_options o = {.batch_size = 16, .resize = 256, .crop = 224, .augment = 1,
 *                       .augment_opts = {0.5, 0.3, 0.3, 30, 20}, .shuffle = 1,
 *                       .seed = trial_seed, .threads = 4, .prefetch = 8};
 *   loader *l;
 *   if (loader_create(&l, &ds.train, ds.skip_corrupt, &o, err, sizeof err)) fail(err);
 *   for (int epoch = 1; epoch <= epochs; epoch++) {
 *       loader_batch b;
 *       loader_start_epoch(l, epoch);
 *       while (loader_next(l, &b)) train_step(b.images, b.labels, b.count);
 *   }
 *   loader_destroy(l);
 *   dataset_free(&ds); */
#ifndef TLSWEEP_LOADER_H
#define TLSWEEP_LOADER_H

#include <stddef.h>
#include <stdint.h>

#include "kernels/kernels.h"
#include "worker/data/augment.h"
#include "worker/data/dataset.h"

typedef struct {
    int batch_size; /* 16 */
    int resize;     /* shorter side of the cached images (256) */
    int crop;       /* centre crop, the network's input size (224); <= resize */
    int augment;    /* 0: eval preprocessing only */
    augment_options augment_opts;
    int shuffle;   /* reshuffle every epoch (train); 0 keeps the split order (val) */
    uint64_t seed; /* the trial's seed */
    int threads;   /* worker threads, >= 1 */
    int prefetch;  /* batches prepared ahead of the consumer, >= 1 */
    /* the folder of the mapped cache file shared by the node's processes (cache_file.h);
     * NULL or "": the images are decoded into this loader's private memory */
    const char *cache_dir;
    /* A data-parallel trial's rank takes shard `shard` of `shards` of every batch (shard_of;
     * 0 and 0: the whole batch), each image with the draw of its place in the epoch. */
    int shard, shards;
    /* 1: the device data path: batches carry a kn_image_job per image (drawn as the images
     * would be, offsets into the store that loader_store_image describes) for
     * kn_images_to_batch to transform, and no images */
    int jobs;
} loader_options;

typedef struct {
    const float *images;      /* (count, crop, crop, 3): NHWC, ImageNet-normalised; NULL in
                                 jobs mode */
    const kn_image_job *jobs; /* (count) in jobs mode: the images to transform; else NULL */
    const int32_t *labels;    /* (count) 0-based classes */
    int count;                /* batch_size, or less for the last batch (drop_last=False) */
    int index;                /* batch number within the epoch */
    int offset, total;        /* a shard: its first image's place in the whole batch, and that
                                 batch's size (count = total, offset 0 without shards); a shard of
                                 a short last batch may be empty */
} loader_batch;

typedef struct loader loader;

/* Where shard `shard` of `shards` of a batch of `total` images begins, and how many it has:
 * contiguous, in shard order, sizes differing by at most one, the larger ones first. */
void shard_of(int total, int shard, int shards, int *offset, int *count);

/* Builds the loader and its cache for SPLIT (copied; the dataset may be freed afterwards): maps
 * the cache file in cache_dir (building it first if needed), or decodes into private memory
 * when there is none or it cannot be built (with a warning).
 * An image that fails to decode is an error (-1, message naming the file) unless
 * skip_corrupt: then it is dropped with a warning on stderr and counted. */
int loader_create(loader **out, const dataset_split *split, int skip_corrupt,
                  const loader_options *o, char *err, size_t errlen);

/* Starts epoch EPOCH (any number; the trainer counts from 0 or 1): fixes its order and lets
 * the threads begin. An unfinished previous epoch is abandoned. */
void loader_start_epoch(loader *l, int epoch);

/* The same from batch FIRST_BATCH (0 .. num_batches) on: the batches that follow are those an
 * uninterrupted epoch hands out there, same order, same draws (a resume inside an epoch). */
void loader_start_epoch_at(loader *l, int epoch, int first_batch);

/* The next batch of the epoch: returns 1 and fills BATCH (valid until the next call of
 * loader_next or loader_start_epoch), or 0 at the end of the epoch (and before the first
 * loader_start_epoch). */
int loader_next(loader *l, loader_batch *batch);

int loader_num_images(const loader *l);
int loader_num_batches(const loader *l);
int loader_num_skipped(const loader *l); /* images dropped as corrupt */
size_t loader_cache_bytes(const loader *l);

/* The store for the device data path (jobs mode): the cached images one after another in
 * cache order (i = 0 .. loader_num_images - 1), each at a 64-byte aligned offset. Its size in
 * bytes, and image i's pixels ((height, width, 3) uint8), their byte count and offset: the
 * trainer copies each to store + offset, and the jobs point there. */
size_t loader_store_bytes(const loader *l);
void loader_store_image(const loader *l, int i, const uint8_t **pixels, size_t *bytes,
                        uint64_t *offset);

void loader_destroy(loader *l);

#endif
