/* Data-path throughput on one core (process CPU time, so other load on the machine matters
 * less): decode + resize, and the seed's training transform with
 * and without the decoded cache, over the JPEGs of a synthetic Flowers102 (made here when
 * missing). Prints "ours KIND IMAGES_PER_S" lines for tests/bench/data.sh.
 * Then the loader itself with THREADS threads (wall time): cache build and augmented epochs.
 * usage: bench_data DIR [SECONDS_PER_KIND [THREADS]] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "worker/data/augment.h"
#include "worker/data/cache.h"
#include "worker/data/dataset.h"
#include "worker/data/loader.h"
#include "worker/data/synth.h"
#include "worker/data/transform.h"

#define RESIZE 256
#define CROP 224

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return (double)t.tv_sec + t.tv_nsec * 1e-9;
}

typedef struct {
    char **paths;
    int count;
    image_u8 *cached; /* (count) */
    float *out;       /* (CROP, CROP, 3) */
    augment_options aug;
} bench;

/* One image of each kind; returns 0 or -1 (message printed). */
static int decode_resize(bench *b, int i, uint64_t round) {
    (void)round;
    image_u8 img;
    char err[1024];
    if (image_load_resized(b->paths[i], RESIZE, &img, err, sizeof err) != 0) {
        fprintf(stderr, "bench_data: %s\n", err);
        return -1;
    }
    free(img.pixels);
    return 0;
}

static int train_uncached(bench *b, int i, uint64_t round) {
    image_u8 img;
    char err[1024];
    if (image_load_resized(b->paths[i], RESIZE, &img, err, sizeof err) != 0) {
        fprintf(stderr, "bench_data: %s\n", err);
        return -1;
    }
    augment_params p;
    augment_draw(&p, &b->aug, 0, round, (uint64_t)i);
    transform_image(b->out, &img, &p, CROP);
    free(img.pixels);
    return 0;
}

static int train_cached(bench *b, int i, uint64_t round) {
    augment_params p;
    augment_draw(&p, &b->aug, 0, round, (uint64_t)i);
    transform_image(b->out, &b->cached[i], &p, CROP);
    return 0;
}

static int eval_cached(bench *b, int i, uint64_t round) {
    (void)round;
    transform_image(b->out, &b->cached[i], NULL, CROP);
    return 0;
}

static double measure(bench *b, int (*one)(bench *, int, uint64_t), double seconds) {
    double start = now(), elapsed = 0;
    long done = 0;
    uint64_t round = 0;
    do { /* whole rounds over the images, at least one */
        for (int i = 0; i < b->count; i++, done++)
            if (one(b, i, round) != 0) return -1;
        round++;
        elapsed = now() - start;
    } while (elapsed < seconds);
    return done / elapsed;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: bench_data DIR [SECONDS_PER_KIND [THREADS]]\n");
        return 2;
    }
    const char *dir = argv[1];
    double seconds = argc > 2 ? atof(argv[2]) : 3.0;
    char err[1024], labels[4096];
    snprintf(labels, sizeof labels, "%s/imagelabels.mat", dir);
    if (access(labels, R_OK) != 0) {
        /* Flowers102-like: 500 x 600 pixels, JPEG quality 90 */
        synth_options o;
        synth_default_options(&o);
        o.classes = 4;
        o.per_class = 40;
        o.trnid_per_class = 5;
        o.valid_per_class = 5;
        if (synth_flowers_write(dir, &o, err, sizeof err) != 0) {
            fprintf(stderr, "bench_data: %s\n", err);
            return 1;
        }
    }
    static const char *const all[] = {"trnid", "valid", "tstid"};
    dataset ds;
    if (dataset_open(&ds, dir, all, 3, NULL, 0, 0, err, sizeof err) != 0) {
        fprintf(stderr, "bench_data: %s\n", err);
        return 1;
    }
    bench b = {.paths = ds.train.paths, .count = ds.train.count, .aug = {0.5, 0.3, 0.3, 30, 20}};
    b.cached = calloc((size_t)b.count, sizeof *b.cached);
    b.out = malloc(sizeof(float) * CROP * CROP * 3);
    if (!b.cached || !b.out) {
        fprintf(stderr, "bench_data: out of memory\n");
        return 1;
    }
    for (int i = 0; i < b.count; i++)
        if (image_load_resized(b.paths[i], RESIZE, &b.cached[i], err, sizeof err) != 0) {
            fprintf(stderr, "bench_data: %s\n", err);
            return 1;
        }
    printf("ours images %d\n", b.count);
    struct {
        const char *name;
        int (*one)(bench *, int, uint64_t);
    } kinds[] = {{"decode_resize", decode_resize},
                 {"train_uncached", train_uncached},
                 {"train_cached", train_cached},
                 {"eval_cached", eval_cached}};
    int rc = 0;
    for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++) {
        double rate = measure(&b, kinds[k].one, seconds);
        if (rate < 0) rc = 1;
        printf("ours %s %.1f\n", kinds[k].name, rate);
        fflush(stdout);
    }
    /* the loader as the trainer uses it: cache build, then augmented epochs, wall time */
    int threads = argc > 3 ? atoi(argv[3]) : 2;
    loader_options lo = {.batch_size = 16,
                         .resize = RESIZE,
                         .crop = CROP,
                         .augment = 1,
                         .augment_opts = b.aug,
                         .shuffle = 1,
                         .seed = 0,
                         .threads = threads,
                         .prefetch = 2 * threads};
    loader *l;
    struct timespec t0, t1, t2;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    if (loader_create(&l, &ds.train, 0, &lo, err, sizeof err) != 0) {
        fprintf(stderr, "bench_data: %s\n", err);
        return 1;
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    long images = 0;
    for (int epoch = 0; epoch < 3; epoch++) {
        loader_batch batch;
        loader_start_epoch(l, epoch);
        while (loader_next(l, &batch) == 1)
            images += batch.count;
    }
    clock_gettime(CLOCK_MONOTONIC, &t2);
    double build = (t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) * 1e-9;
    double run = (t2.tv_sec - t1.tv_sec) + (t2.tv_nsec - t1.tv_nsec) * 1e-9;
    printf("ours loader_threads %d\n", threads);
    printf("ours loader_cache_build %.1f\n", b.count / build);
    printf("ours loader_epochs %.1f\n", images / run);
    printf("ours loader_cache_mib %.1f\n", loader_cache_bytes(l) / 1048576.0);
    loader_destroy(l);
    for (int i = 0; i < b.count; i++)
        free(b.cached[i].pixels);
    free(b.cached);
    free(b.out);
    dataset_free(&ds);
    return rc;
}
