/* kn_images_to_batch against transform_image on synthetic images; see image_batch_check.h. */
#include "tests/image_batch_check.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tests/testlib.h"
#include "worker/data/transform.h"

#define MAX_IMAGES 4
#define DRAWS 6 /* augmentations drawn per image and option set */

/* Batches share a crop, so images are grouped by the crop they are cut to. */
static const struct {
    int crop, count;
    int size[MAX_IMAGES][2]; /* width, height */
} groups[] = {
    /* odd sizes, odd and even margins; 24x24 is all crop, so the affine sends its corners
     * outside and they are filled */
    {24, 4, {{37, 29}, {64, 48}, {24, 24}, {25, 31}}},
    /* so wide that a corner maps beyond 32768: Pillow's float loop instead of fixed point */
    {32, 2, {{36000, 32}, {33, 40}}},
};

static const struct {
    const char *name;
    augment_options o; /* hflip_p, brightness, contrast, rotate_deg, shear_deg */
} option_sets[] = {
    {"seed", {0.5, 0.3, 0.3, 30, 20}},
    {"strong", {0.5, 1.0, 1.0, 180, 45}}, /* factors down to 0, clipping, any angle */
    {"always flip", {1.0, 0.3, 0.3, 30, 20}},
    {"no flip", {0.0, 0.3, 0.3, 30, 20}},
    {"no brightness", {0.5, 0.0, 0.3, 30, 20}},
    {"no contrast", {0.5, 0.3, 0.0, 30, 20}},
    {"no rotation", {0.5, 0.3, 0.3, 0, 20}},
    {"no shear", {0.5, 0.3, 0.3, 30, 0}},
    {"no affine", {0.5, 0.3, 0.3, 0, 0}},
    {"all off", {0.0, 0.0, 0.0, 0, 0}},
    {"eval", {0, 0, 0, 0, 0}}, /* no augmentation at all: transform_image with aug NULL */
};
#define SETS ((int)(sizeof option_sets / sizeof option_sets[0]))
#define EVAL_SET (SETS - 1)

/* Noise with a per-image bias, so that contrast means differ between images. */
static void fill_image(image_u8 *img, uint64_t seed) {
    size_t bytes = (size_t)img->width * img->height * 3;
    uint64_t s = seed * 0x9E3779B97F4A7C15ull + 1;
    for (size_t i = 0; i < bytes; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        img->pixels[i] = (uint8_t)((s >> 56) / (1 + seed % 3) + 40 * (seed % 4));
    }
}

/* Compares batch (jobs' outputs, job order) with transform_image; counts differing images. */
static int compare(const float *got, const image_u8 *images, const int *image_of,
                   const augment_params *params, int n, int crop, const char *set, int group) {
    const size_t values = (size_t)crop * crop * 3;
    float *expect = malloc(values * sizeof *expect);
    CHECK(expect, "out of memory");
    int differing = 0;
    for (int k = 0; expect && k < n; k++) {
        const image_u8 *img = &images[image_of[k]];
        transform_image(expect, img, params ? &params[k] : NULL, crop);
        const float *g = got + k * values;
        if (memcmp(g, expect, values * sizeof *expect) == 0) continue;
        size_t at = 0;
        while (memcmp(&g[at], &expect[at], sizeof *expect) == 0)
            at++;
        if (differing++ == 0)
            tl_fail(__FILE__, __LINE__,
                    "options '%s', %dx%d image (group %d), job %d: value %zu (y %zu, x %zu, c %zu)"
                    " is %.9g, transform_image %.9g",
                    set, img->width, img->height, group, k, at, at / 3 / crop, at / 3 % crop,
                    at % 3, (double)g[at], (double)expect[at]);
    }
    free(expect);
    return differing;
}

static void check_group(kn_ctx *ctx, int group, int *fixed_jobs, int *float_jobs) {
    const int crop = groups[group].crop, count = groups[group].count;
    const int n = count * DRAWS; /* jobs per option set */
    const size_t values = (size_t)crop * crop * 3;
    image_u8 images[MAX_IMAGES];
    uint64_t offset[MAX_IMAGES];
    size_t store_bytes = 0;
    for (int i = 0; i < count; i++) {
        images[i].width = groups[group].size[i][0];
        images[i].height = groups[group].size[i][1];
        offset[i] = store_bytes;
        store_bytes += (size_t)images[i].width * images[i].height * 3;
    }
    uint8_t *store = malloc(store_bytes);
    augment_params *params = malloc((size_t)SETS * n * sizeof *params);
    kn_image_job *jobs = malloc((size_t)n * sizeof *jobs);
    int *image_of = malloc((size_t)n * sizeof *image_of);
    float *got = malloc((size_t)SETS * n * values * sizeof *got);
    uint8_t *dev_store = kn_malloc(ctx, store_bytes);
    float *dev_out = kn_malloc(ctx, (size_t)SETS * n * values * sizeof *dev_out);
    CHECK(store && params && jobs && image_of && got && dev_store && dev_out, "allocation: %s",
          kn_error(ctx));
    if (!store || !params || !jobs || !image_of || !got || !dev_store || !dev_out) goto done;
    for (int i = 0; i < count; i++) {
        images[i].pixels = store + offset[i];
        fill_image(&images[i], (uint64_t)(group * MAX_IMAGES + i + 1));
    }
    CHECK(kn_copy_to_device(ctx, dev_store, store, store_bytes) == 0, "upload: %s", kn_error(ctx));

    /* every option set's batch is queued before any is read back */
    for (int set = 0; set < SETS; set++) {
        for (int k = 0; k < n; k++) {
            augment_params *p = &params[set * n + k];
            image_of[k] = k % count;
            augment_draw(p, &option_sets[set].o, 7, (uint64_t)set, (uint64_t)(group * n + k));
            const image_u8 *img = &images[image_of[k]];
            transform_job(&jobs[k], offset[image_of[k]], img->width, img->height,
                          set == EVAL_SET ? NULL : p, crop);
            if (jobs[k].use_affine) ++*(jobs[k].affine_fixed ? fixed_jobs : float_jobs);
        }
        CHECK(kn_images_to_batch(ctx, dev_out + set * n * values, dev_store, jobs, n, crop) == 0,
              "options '%s': %s", option_sets[set].name, kn_error(ctx));
        memset(jobs, 0xff, (size_t)n * sizeof *jobs); /* kernels.h: reusable at once */
    }
    CHECK(kn_copy_to_host(ctx, got, dev_out, (size_t)SETS * n * values * sizeof *got) == 0,
          "download: %s", kn_error(ctx));
    int differing = 0;
    for (int set = 0; set < SETS; set++)
        differing += compare(got + set * n * values, images, image_of,
                             set == EVAL_SET ? NULL : &params[set * n], n, crop,
                             option_sets[set].name, group);
    CHECK(differing == 0, "group %d: %d of %d images differ from transform_image", group, differing,
          SETS * n);
done:
    kn_free(ctx, dev_store);
    kn_free(ctx, dev_out);
    free(store);
    free(params);
    free(jobs);
    free(image_of);
    free(got);
}

void image_batch_check(kn_ctx *ctx) {
    int fixed_jobs = 0, float_jobs = 0, groups_n = (int)(sizeof groups / sizeof groups[0]);
    for (int g = 0; g < groups_n; g++)
        check_group(ctx, g, &fixed_jobs, &float_jobs);
    /* both of Pillow's samplings must stay covered */
    CHECK(fixed_jobs > 0 && float_jobs > 0, "affine jobs: %d in fixed point, %d in float",
          fixed_jobs, float_jobs);
    printf("    %d groups x %d option sets x %d draws; affine jobs: %d fixed point, %d float\n",
           groups_n, SETS, DRAWS, fixed_jobs, float_jobs);
}

void image_batch_check_full_size(kn_ctx *ctx, uint64_t far) {
    enum { N = 256, CROP = 224, KINDS = 4 };
    static const int size[KINDS][2] = {{340, 256}, {256, 384}, {256, 256}, {1021, 257}};
    const augment_options o = {0.5, 0.3, 0.3, 30, 20}; /* contrast > 0: every job has a mean */
    const size_t values = (size_t)CROP * CROP * 3;
    image_u8 images[KINDS];
    uint64_t offset[KINDS];
    size_t store_bytes = 0;
    for (int i = 0; i < KINDS; i++) {
        images[i].width = size[i][0];
        images[i].height = size[i][1];
        offset[i] = store_bytes; /* 64-byte aligned, as the loader's store */
        store_bytes += ((size_t)images[i].width * images[i].height * 3 + 63) / 64 * 64;
    }
    uint8_t *store = malloc(store_bytes);
    augment_params *params = malloc(N * sizeof *params);
    kn_image_job *jobs = malloc(N * sizeof *jobs);
    int *image_of = malloc(N * sizeof *image_of);
    float *got = malloc(N * values * sizeof *got);
    uint8_t *dev_store = kn_malloc(ctx, far + store_bytes);
    float *dev_out = kn_malloc(ctx, N * values * sizeof *dev_out);
    CHECK(store && params && jobs && image_of && got && dev_store && dev_out, "allocation: %s",
          kn_error(ctx));
    if (!store || !params || !jobs || !image_of || !got || !dev_store || !dev_out) goto done;
    for (int i = 0; i < KINDS; i++) {
        images[i].pixels = store + offset[i];
        fill_image(&images[i], (uint64_t)(100 + i));
    }
    CHECK(kn_copy_to_device(ctx, dev_store + far, store, store_bytes) == 0, "upload: %s",
          kn_error(ctx));
    for (int k = 0; k < N; k++) {
        image_of[k] = k % KINDS;
        augment_draw(&params[k], &o, 11, 1, (uint64_t)k);
        const image_u8 *img = &images[image_of[k]];
        transform_job(&jobs[k], far + offset[image_of[k]], img->width, img->height, &params[k],
                      CROP);
    }
    double seconds = 0;
    for (int run = 0; run < 2; run++) {
        struct timespec t0, t1;
        CHECK(kn_sync(ctx) == 0, "sync: %s", kn_error(ctx));
        clock_gettime(CLOCK_MONOTONIC, &t0);
        CHECK(kn_images_to_batch(ctx, dev_out, dev_store, jobs, N, CROP) == 0, "run %d: %s", run,
              kn_error(ctx));
        CHECK(kn_sync(ctx) == 0, "run %d: %s", run, kn_error(ctx));
        clock_gettime(CLOCK_MONOTONIC, &t1);
        seconds = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
    }
    CHECK(kn_copy_to_host(ctx, got, dev_out, N * values * sizeof *got) == 0, "download: %s",
          kn_error(ctx));
    const int differing = compare(got, images, image_of, params, N, CROP, "full size", -1);
    CHECK(differing == 0, "full size: %d of %d images differ from transform_image", differing, N);
    printf("    full size: %d images cut to %d, store at %.2f GiB: %.3f ms a batch\n", N, CROP,
           (double)far / (1u << 30), seconds * 1e3);
done:
    kn_free(ctx, dev_store);
    kn_free(ctx, dev_out);
    free(store);
    free(params);
    free(jobs);
    free(image_of);
    free(got);
}

void image_batch_check_reference(void) {
    int float_draws = 0, groups_n = (int)(sizeof groups / sizeof groups[0]);
    for (int g = 0; g < groups_n; g++) {
        const int crop = groups[g].crop;
        const size_t values = (size_t)crop * crop * 3;
        float *fused = malloc(values * sizeof *fused), *plain = malloc(values * sizeof *plain);
        CHECK(fused && plain, "out of memory");
        for (int i = 0; fused && plain && i < groups[g].count; i++) {
            const int w = groups[g].size[i][0], h = groups[g].size[i][1];
            const size_t bytes = (size_t)w * h * 3;
            image_u8 in = {malloc(bytes), w, h}, ref = {malloc(bytes), w, h};
            CHECK(in.pixels && ref.pixels, "out of memory");
            if (in.pixels && ref.pixels) fill_image(&in, (uint64_t)(g * MAX_IMAGES + i + 1));
            for (int set = 0; in.pixels && ref.pixels && set < EVAL_SET; set++)
                for (int k = 0; k < DRAWS; k++) {
                    augment_params p;
                    augment_draw(&p, &option_sets[set].o, 11, (uint64_t)set, (uint64_t)k);
                    kn_image_job job;
                    transform_job(&job, 0, w, h, &p, crop);
                    float_draws += job.use_affine && !job.affine_fixed;
                    CHECK(augment_reference(&ref, &in, &p) == 0, "augment_reference failed");
                    transform_image(fused, &in, &p, crop);
                    transform_image(plain, &ref, NULL, crop);
                    CHECK(memcmp(fused, plain, values * sizeof *fused) == 0,
                          "options '%s', %dx%d image, draw %d: the fused transform differs from "
                          "the op-by-op reference",
                          option_sets[set].name, w, h, k);
                }
            free(in.pixels);
            free(ref.pixels);
        }
        free(fused);
        free(plain);
    }
    CHECK(float_draws > 0, "no draw took Pillow's float loop");
}
