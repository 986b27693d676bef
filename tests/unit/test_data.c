/* The data path: synthetic Flowers102 through matio and libjpeg-turbo, preprocessing and
 * augmentation against torchvision (PIL backend, via tests/unit/ref_data.py), loader
 * determinism across thread counts, the device data path against the loader's own batches, and
 * the error messages for bad files. */
#include <dirent.h>
#include <fcntl.h>
#include <math.h>
#include <matio.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <turbojpeg.h>
#include <unistd.h>

#include "kernels/kernels.h"
#include "tests/testlib.h"
#include "worker/data/augment.h"
#include "worker/data/cache.h"
#include "worker/data/cache_file.h"
#include "worker/data/dataset.h"
#include "worker/data/jpeg.h"
#include "worker/data/loader.h"
#include "worker/data/resize.h"
#include "worker/data/synth.h"
#include "worker/data/transform.h"

#define CLASSES 5
#define PER_CLASS 8
#define RESIZE 64
#define CROP 56

static char work[1024];    /* $TLSWEEP_TESTDATA/data */
static char flowers[1200]; /* the shared generated dataset */

static const char *const train_splits[] = {"tstid"};
static const char *const val_splits[] = {"trnid", "valid"};

static synth_options small_options(int classes, int per_class) {
    synth_options o;
    synth_default_options(&o);
    o.classes = classes;
    o.per_class = per_class;
    o.width = 120;
    o.height = 100;
    o.trnid_per_class = 1;
    o.valid_per_class = 1;
    o.seed = 7;
    return o;
}

/* Generates a small dataset at WORK/NAME into DIR. */
static int make_dataset(char *dir, size_t len, const char *name, int classes, int per_class) {
    snprintf(dir, len, "%s/%s", work, name);
    synth_options o = small_options(classes, per_class);
    char err[1024];
    if (synth_flowers_write(dir, &o, err, sizeof err) != 0) {
        tl_fail(__FILE__, __LINE__, "synth_flowers_write: %s", err);
        return -1;
    }
    return 0;
}

static void setup(void) {
    snprintf(work, sizeof work, "%s", tl_data_dir("data"));
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "rm -rf '%s' && mkdir -p '%s'", work, work);
    CHECK(system(cmd) == 0, "cannot prepare %s", work);
    make_dataset(flowers, sizeof flowers, "flowers", CLASSES, PER_CLASS);
}

static void compute_references(void);

static float *load_ref(const char *name, size_t expect) {
    char dir[1200];
    snprintf(dir, sizeof dir, "%s/ref", work);
    size_t n = 0;
    float *ref = tl_load_f32(dir, name, &n);
    if (ref && n != expect) {
        tl_fail(__FILE__, __LINE__, "reference %s has %zu values, expected %zu", name, n, expect);
        free(ref);
        return NULL;
    }
    return ref;
}

/* ---------------------------------------------------------------------------------------- */

static void test_open_splits(void) {
    dataset ds;
    char err[1024];
    int rc = dataset_open(&ds, flowers, train_splits, 1, val_splits, 2, 0, err, sizeof err);
    CHECK(rc == 0, "dataset_open: %s", err);
    if (rc != 0) return;
    CHECK(ds.num_classes == CLASSES, "num_classes %d", ds.num_classes);
    CHECK(ds.num_images == CLASSES * PER_CLASS, "num_images %d", ds.num_images);
    CHECK(ds.train.count == CLASSES * (PER_CLASS - 2), "train count %d", ds.train.count);
    CHECK(ds.val.count == CLASSES * 2, "val count %d", ds.val.count);
    int per_class[CLASSES] = {0};
    for (int i = 0; i < ds.train.count; i++) {
        CHECK(ds.train.labels[i] >= 0 && ds.train.labels[i] < CLASSES, "label %d",
              ds.train.labels[i]);
        if (ds.train.labels[i] >= 0 && ds.train.labels[i] < CLASSES)
            per_class[ds.train.labels[i]]++;
    }
    for (int c = 0; c < CLASSES; c++)
        CHECK(per_class[c] == PER_CLASS - 2, "class %d has %d train images", c, per_class[c]);
    CHECK(strstr(ds.val.paths[0], "/jpg/image_") != NULL, "path %s", ds.val.paths[0]);
    dataset_free(&ds);
}

/* ---- conformance against torchvision: every case's inputs and jobs are written first, so
 * one Python process (importing torch takes seconds) computes all references ------------- */

enum {
    EVAL_N = 6,
    SMALL = 24,
    UPSCALE = 150,
    AUG_IMAGES = 2,
    AUG_DRAWN = 16,
    SEED_R = 256,
    SEED_C = 224
};
enum { SEED_AUGS = 3 };

static const augment_options seed_options = {0.5, 0.3, 0.3, 30, 20};

/* the hand-picked cases (extremes, both orders, 90 degrees), then the seed's own draws */
static int aug_cases(augment_params *cases /* (AUG_FIXED + AUG_DRAWN) */) {
    static const augment_params fixed[] = {
        /* hflip, use_b, use_c, contrast_first, b, c, use_affine, angle, shear */
        {0, 1, 1, 0, 1.3f, 0.7f, 0, 0.0, 0.0},     {1, 1, 1, 1, 0.7f, 1.3f, 0, 0.0, 0.0},
        {1, 1, 1, 0, 1.21f, 1.17f, 1, 30.0, 0.0},  {0, 1, 1, 1, 0.83f, 0.91f, 1, -17.3, 12.5},
        {1, 1, 1, 0, 1.05f, 1.29f, 1, 7.7, -20.0}, {0, 0, 1, 0, 1.0f, 0.75f, 1, -29.9, 19.9},
        {1, 1, 0, 1, 1.12f, 1.0f, 1, 90.0, 0.0},
    };
    int n = (int)(sizeof fixed / sizeof fixed[0]);
    memcpy(cases, fixed, sizeof fixed);
    for (int k = 0; k < AUG_DRAWN; k++)
        augment_draw(&cases[n + k], &seed_options, 9, 0, k);
    return n + AUG_DRAWN;
}
#define AUG_MAX 32

static void aug_job(FILE *f, const char *name, const char *path, int resize,
                    const augment_params *p) {
    fprintf(f, "%s aug %s %d %d %d %.9g %.9g %.17g %.17g\n", name, path, resize, p->hflip,
            p->contrast_first, p->use_brightness ? p->brightness_factor : 0.0,
            p->use_contrast ? p->contrast_factor : 0.0, p->use_affine ? p->angle_deg : 0,
            p->use_affine ? p->shear_deg : 0);
}

static void seed_size_path(char *path, size_t len) {
    snprintf(path, len, "%s/seed_size.jpg", work);
}

static int write_gray_and_cmyk(void);

/* Writes every input file and job line; returns 0 when all were written. */
static int write_reference_jobs(FILE *f, const dataset *ds) {
    char name[64], path[1200], err[1024];
    for (int i = 0; i < EVAL_N; i++) {
        fprintf(f, "resized%d resized %s %d\n", i, ds->val.paths[i], RESIZE);
        fprintf(f, "eval%d eval %s %d %d\n", i, ds->val.paths[i], RESIZE, CROP);
        fprintf(f, "small%d resized %s %d\n", i, ds->val.paths[i], SMALL);
        fprintf(f, "up%d resized %s %d\n", i, ds->val.paths[i], UPSCALE);
    }
    augment_params cases[AUG_MAX];
    int ncases = aug_cases(cases);
    for (int img = 0; img < AUG_IMAGES; img++)
        for (int k = 0; k < ncases; k++) {
            snprintf(name, sizeof name, "aug%d_%d", img, k);
            aug_job(f, name, ds->train.paths[img], RESIZE, &cases[k]);
        }

    /* a Flowers102-sized image for the seed's own sizes */
    synth_options o = small_options(3, 1);
    o.width = 500;
    o.height = 600;
    image_u8 rgb;
    if (synth_render(&rgb, &o, 2, 0) != 0) return -1;
    seed_size_path(path, sizeof path);
    int wrote = synth_write_jpeg(path, &rgb, 90, err, sizeof err);
    free(rgb.pixels);
    if (wrote != 0) {
        tl_fail(__FILE__, __LINE__, "%s", err);
        return -1;
    }
    fprintf(f, "seed_eval eval %s %d %d\n", path, SEED_R, SEED_C);
    for (int k = 0; k < SEED_AUGS; k++) {
        augment_params p;
        augment_draw(&p, &seed_options, 0, 1, (uint64_t)k);
        snprintf(name, sizeof name, "seed_aug%d", k);
        aug_job(f, name, path, SEED_R, &p);
    }

    if (write_gray_and_cmyk() != 0) return -1;
    for (int i = 0; i < 2; i++) {
        const char *kind = i == 0 ? "gray" : "cmyk";
        fprintf(f, "%s decode %s/%s.jpg\n", kind, work, kind);
    }
    return 0;
}

/* 0 when the references were computed (in setup); otherwise this case fails. */
static int reference_status = -1;
static int reference_ready(void) {
    CHECK(reference_status == 0, "no torchvision reference (see the setup failure above)");
    return reference_status;
}

static void compute_references(void) {
    dataset ds;
    char err[1024], jobs[1200], cmd[4096];
    if (dataset_open(&ds, flowers, train_splits, 1, val_splits, 2, 0, err, sizeof err) != 0) {
        printf("    setup: dataset_open: %s\n", err);
        return;
    }
    snprintf(jobs, sizeof jobs, "%s/reference_jobs.txt", work);
    FILE *f = fopen(jobs, "w");
    int ok = f && write_reference_jobs(f, &ds) == 0;
    if (f) ok = fclose(f) == 0 && ok;
    dataset_free(&ds);
    if (!ok) {
        printf("    setup: cannot write the reference inputs in %s\n", work);
        return;
    }
    const char *python = getenv("PYTHON");
    snprintf(cmd, sizeof cmd, "'%s' tests/unit/ref_data.py '%s' '%s/ref'",
             python && *python ? python : "/usr/bin/python3", jobs, work);
    int rc = system(cmd);
    if (rc != 0) printf("    setup: reference failed (exit %d): %s\n", rc, cmd);
    reference_status = rc == 0 ? 0 : -1;
}

static long count_differences(const image_u8 *out, const char *name);

/* Decode (no DCT scaling) + resize and the full eval transform against torchvision; also a
 * DCT-scaled decode against PIL's full decode. */
static void test_eval_matches_torchvision(void) {
    dataset ds;
    char err[1024];
    if (reference_ready() != 0) return;
    if (dataset_open(&ds, flowers, train_splits, 1, val_splits, 2, 0, err, sizeof err) != 0) {
        tl_fail(__FILE__, __LINE__, "dataset_open: %s", err);
        return;
    }
    double worst_eval = 0, worst_small = 0;
    for (int i = 0; i < EVAL_N; i++) {
        image_u8 img;
        char name[64];
        if (image_load_resized(ds.val.paths[i], RESIZE, &img, err, sizeof err) != 0) {
            tl_fail(__FILE__, __LINE__, "%s", err);
            continue;
        }
        /* 120x100 -> shorter side 64: 76x64, too small for DCT scaling: must be bit-exact */
        CHECK(img.width == 76 && img.height == 64, "resized to %dx%d", img.width, img.height);
        size_t n = (size_t)img.width * img.height * 3;
        snprintf(name, sizeof name, "resized%d", i);
        float *ref = load_ref(name, n);
        if (ref) {
            int mismatches = 0;
            for (size_t k = 0; k < n; k++)
                mismatches += (float)img.pixels[k] != ref[k];
            CHECK(mismatches == 0, "%s: %d of %zu resized values differ from PIL", name, mismatches,
                  n);
        }
        free(ref);
        float *out = malloc(sizeof(float) * CROP * CROP * 3);
        CHECK(out != NULL, "out of memory");
        snprintf(name, sizeof name, "eval%d", i);
        ref = load_ref(name, (size_t)CROP * CROP * 3);
        if (out && ref) {
            transform_image(out, &img, NULL, CROP);
            static const double std[3] = {0.229, 0.224, 0.225};
            double sum = 0;
            for (int k = 0; k < CROP * CROP * 3; k++)
                sum += fabs(out[k] - ref[k]) * std[k % 3];
            double mean = sum / (CROP * CROP * 3);
            if (mean > worst_eval) worst_eval = mean;
            CHECK_CLOSE(name, out, ref, (size_t)CROP * CROP * 3, 1e-6);
        }
        free(ref);
        free(out);
        free(img.pixels);

        /* shorter side 100 -> 150: PIL's bilinear upscaling, bit-exact too */
        if (image_load_resized(ds.val.paths[i], UPSCALE, &img, err, sizeof err) != 0) {
            tl_fail(__FILE__, __LINE__, "%s", err);
            continue;
        }
        snprintf(name, sizeof name, "up%d", i);
        long up_diff = count_differences(&img, name);
        CHECK(up_diff == 0, "%s: %ld values differ from PIL", name, up_diff);
        free(img.pixels);

        /* shorter side 100 -> 24: the decoder scales by 1/2 first (50 >= 2 x 24) */
        if (image_load_resized(ds.val.paths[i], SMALL, &img, err, sizeof err) != 0) {
            tl_fail(__FILE__, __LINE__, "%s", err);
            continue;
        }
        n = (size_t)img.width * img.height * 3;
        snprintf(name, sizeof name, "small%d", i);
        ref = load_ref(name, n);
        if (ref) {
            double sum = 0;
            for (size_t k = 0; k < n; k++)
                sum += fabs(img.pixels[k] - ref[k]);
            double mean = sum / n / 255.0;
            if (mean > worst_small) worst_small = mean;
        }
        free(ref);
        free(img.pixels);
    }
    printf("    eval vs torchvision: worst mean |diff| %.2e (of [0,1]); DCT-scaled decode "
           "(1/2) + resize vs PIL full decode: %.4f/255\n",
           worst_eval, worst_small * 255);
    CHECK(worst_eval <= 1.0 / 255, "eval: mean abs diff %.4g > 1/255", worst_eval);
    CHECK(worst_small <= 1.0 / 255, "DCT-scaled: mean abs diff %.4g > 1/255", worst_small);
    dataset_free(&ds);
}

/* Counts values of OUT (uint8) that differ from the reference NAME; -1 if it is missing. */
static long count_differences(const image_u8 *out, const char *name) {
    size_t n = (size_t)out->width * out->height * 3;
    float *ref = load_ref(name, n);
    if (!ref) return -1;
    long diff = 0;
    for (size_t i = 0; i < n; i++)
        diff += (float)out->pixels[i] != ref[i];
    free(ref);
    return diff;
}

/* Fixed augmentation parameters: our op-by-op reference against torchvision's functional
 * transforms, and the fused crop path against our reference. */
static void test_augment_matches_torchvision(void) {
    dataset ds;
    char err[1024];
    if (reference_ready() != 0) return;
    if (dataset_open(&ds, flowers, train_splits, 1, val_splits, 2, 0, err, sizeof err) != 0) {
        tl_fail(__FILE__, __LINE__, "dataset_open: %s", err);
        return;
    }
    augment_params cases[AUG_MAX];
    int ncases = aug_cases(cases);
    size_t total = 0, differing = 0;
    for (int img = 0; img < AUG_IMAGES; img++) {
        image_u8 in;
        if (image_load_resized(ds.train.paths[img], RESIZE, &in, err, sizeof err) != 0) {
            tl_fail(__FILE__, __LINE__, "%s", err);
            continue;
        }
        size_t n = (size_t)in.width * in.height * 3;
        image_u8 out = {malloc(n), in.width, in.height};
        float *fused = malloc(sizeof(float) * CROP * CROP * 3);
        float *plain = malloc(sizeof(float) * CROP * CROP * 3);
        CHECK(out.pixels && fused && plain, "out of memory");
        for (int k = 0; k < ncases && out.pixels && fused && plain; k++) {
            char name[64];
            snprintf(name, sizeof name, "aug%d_%d", img, k);
            CHECK(augment_reference(&out, &in, &cases[k]) == 0, "augment_reference failed");
            long diff = count_differences(&out, name);
            CHECK(diff == 0, "%s: %ld of %zu values differ from torchvision", name, diff, n);
            if (diff > 0) differing += (size_t)diff;
            total += n;
            /* the fused path must equal crop + normalise of the reference, exactly */
            transform_image(fused, &in, &cases[k], CROP);
            transform_image(plain, &out, NULL, CROP);
            CHECK(memcmp(fused, plain, sizeof(float) * CROP * CROP * 3) == 0,
                  "%s: fused transform differs from the op-by-op reference", name);
        }
        free(out.pixels);
        free(fused);
        free(plain);
        free(in.pixels);
    }
    printf("    augmentation vs torchvision: %zu of %zu values differ\n", differing, total);
    dataset_free(&ds);
}

/* The seed's own sizes on a Flowers102-sized JPEG (500x600 -> 256x307, crop 224): eval and
 * three drawn augmentations, against torchvision. */
static void test_seed_size_matches_torchvision(void) {
    char path[1200], err[1024];
    if (reference_ready() != 0) return;
    seed_size_path(path, sizeof path);
    image_u8 in;
    if (image_load_resized(path, SEED_R, &in, err, sizeof err) != 0) {
        tl_fail(__FILE__, __LINE__, "%s", err);
        return;
    }
    CHECK(in.width == 256 && in.height == 307, "resized to %dx%d", in.width, in.height);
    size_t n = (size_t)in.width * in.height * 3;
    float *out = malloc(sizeof(float) * SEED_C * SEED_C * 3);
    image_u8 aug = {malloc(n), in.width, in.height};
    float *ref = load_ref("seed_eval", (size_t)SEED_C * SEED_C * 3);
    if (out && ref) {
        transform_image(out, &in, NULL, SEED_C);
        CHECK_CLOSE("seed_eval", out, ref, (size_t)SEED_C * SEED_C * 3, 1e-6);
    }
    free(ref);
    for (int k = 0; k < SEED_AUGS && aug.pixels; k++) {
        char name[32];
        augment_params p;
        augment_draw(&p, &seed_options, 0, 1, (uint64_t)k);
        snprintf(name, sizeof name, "seed_aug%d", k);
        CHECK(augment_reference(&aug, &in, &p) == 0, "augment_reference failed");
        long diff = count_differences(&aug, name);
        CHECK(diff == 0, "%s: %ld of %zu values differ from torchvision", name, diff, n);
    }
    free(aug.pixels);
    free(out);
    free(in.pixels);
}

/* WORK/gray.jpg and WORK/cmyk.jpg (TurboJPEG writes CMYK as Adobe YCCK) from one flower. */
static int write_gray_and_cmyk(void) {
    synth_options o = small_options(1, 1);
    image_u8 rgb;
    if (synth_render(&rgb, &o, 0, 0) != 0) return -1;
    size_t pixels = (size_t)rgb.width * rgb.height;
    unsigned char *gray = malloc(pixels), *cmyk = malloc(pixels * 4);
    int rc = gray && cmyk ? 0 : -1;
    for (size_t i = 0; rc == 0 && i < pixels; i++) {
        const uint8_t *p = rgb.pixels + 3 * i;
        gray[i] = (uint8_t)((p[0] * 299 + p[1] * 587 + p[2] * 114) / 1000);
        int k = 255 - (p[0] > p[1] ? (p[0] > p[2] ? p[0] : p[2]) : (p[1] > p[2] ? p[1] : p[2]));
        for (int c = 0; c < 3; c++)
            cmyk[4 * i + c] = (uint8_t)(255 - p[c] - k < 0 ? 0 : 255 - p[c] - k);
        cmyk[4 * i + 3] = (uint8_t)k;
    }
    struct {
        const char *name;
        unsigned char *data;
        int format, subsamp;
    } files[2] = {{"gray", gray, TJPF_GRAY, TJSAMP_GRAY}, {"cmyk", cmyk, TJPF_CMYK, TJSAMP_444}};
    for (int i = 0; rc == 0 && i < 2; i++) {
        char path[1200];
        snprintf(path, sizeof path, "%s/%s.jpg", work, files[i].name);
        tjhandle tj = tjInitCompress();
        unsigned char *jpeg = NULL;
        unsigned long size = 0;
        int ok = tj && tjCompress2(tj, files[i].data, rgb.width, 0, rgb.height, files[i].format,
                                   &jpeg, &size, files[i].subsamp, 90, 0) == 0;
        FILE *out = ok ? fopen(path, "wb") : NULL;
        ok = out && fwrite(jpeg, 1, size, out) == size;
        if (out) ok = fclose(out) == 0 && ok;
        if (!ok) rc = -1;
        tjFree(jpeg);
        if (tj) tjDestroy(tj);
    }
    free(gray);
    free(cmyk);
    free(rgb.pixels);
    return rc;
}

/* Grayscale and CMYK JPEGs decode as PIL's convert("RGB") does. */
static void test_gray_and_cmyk(void) {
    if (reference_ready() != 0) return;
    for (int i = 0; i < 2; i++) {
        const char *kind = i == 0 ? "gray" : "cmyk";
        char path[1200], err[1024];
        image_u8 img;
        snprintf(path, sizeof path, "%s/%s.jpg", work, kind);
        if (jpeg_decode_file(path, 0, &img, err, sizeof err) != 0) {
            tl_fail(__FILE__, __LINE__, "%s", err);
            continue;
        }
        long diff = count_differences(&img, kind);
        CHECK(diff == 0, "%s: %ld values differ from PIL", kind, diff);
        free(img.pixels);
    }
}

/* The random draws follow torchvision's distributions (ranges, flip rate, order), are a pure
 * function of (seed, epoch, position), and the small helpers round as Python does. */
static void test_draws_and_sizes(void) {
    augment_options o = {0.5, 0.3, 0.3, 30, 20};
    enum { N = 20000 };
    int flips = 0, contrast_first = 0;
    double lo_b = 9, hi_b = 0, lo_a = 99, hi_a = -99, lo_s = 99, hi_s = -99;
    for (int i = 0; i < N; i++) {
        augment_params p, q;
        augment_draw(&p, &o, 5, 3, (uint64_t)i);
        augment_draw(&q, &o, 5, 3, (uint64_t)i);
        CHECK(memcmp(&p, &q, sizeof p) == 0, "draw %d is not reproducible", i);
        flips += p.hflip;
        contrast_first += p.contrast_first;
        lo_b = fmin(lo_b, fmin(p.brightness_factor, p.contrast_factor));
        hi_b = fmax(hi_b, fmax(p.brightness_factor, p.contrast_factor));
        lo_a = fmin(lo_a, p.angle_deg), hi_a = fmax(hi_a, p.angle_deg);
        lo_s = fmin(lo_s, p.shear_deg), hi_s = fmax(hi_s, p.shear_deg);
        CHECK(p.use_brightness && p.use_contrast && p.use_affine, "an op is off");
    }
    CHECK(fabs(flips / (double)N - 0.5) < 0.02, "flip rate %.3f", flips / (double)N);
    CHECK(fabs(contrast_first / (double)N - 0.5) < 0.02, "contrast-first rate %.3f",
          contrast_first / (double)N);
    CHECK(lo_b >= 0.7f && lo_b < 0.71 && hi_b <= 1.3f && hi_b > 1.29, "factors in [%g, %g]", lo_b,
          hi_b);
    CHECK(lo_a >= -30 && lo_a < -29.9 && hi_a <= 30 && hi_a > 29.9, "angles in [%g, %g]", lo_a,
          hi_a);
    CHECK(lo_s >= -20 && lo_s < -19.9 && hi_s <= 20 && hi_s > 19.9, "shears in [%g, %g]", lo_s,
          hi_s);
    augment_params a, b;
    augment_draw(&a, &o, 5, 3, 0);
    augment_draw(&b, &o, 5, 4, 0);
    CHECK(a.angle_deg != b.angle_deg, "epochs 3 and 4 draw the same angle");
    augment_options off = {0, 0, 0, 0, 0};
    augment_draw(&a, &off, 5, 3, 0);
    CHECK(!a.hflip && !a.use_brightness && !a.use_contrast && !a.use_affine,
          "all-zero options still augment");

    /* CenterCrop: int(round((size - crop) / 2.0)), half to even */
    CHECK(transform_crop_offset(225, 224) == 0, "offset(225, 224) = %d",
          transform_crop_offset(225, 224));
    CHECK(transform_crop_offset(227, 224) == 2, "offset(227, 224) = %d",
          transform_crop_offset(227, 224));
    CHECK(transform_crop_offset(229, 224) == 2, "offset(229, 224) = %d",
          transform_crop_offset(229, 224));
    CHECK(transform_crop_offset(340, 224) == 58, "offset(340, 224) = %d",
          transform_crop_offset(340, 224));
    /* Resize(256): the long side is int(256 * long / short) */
    int w, h;
    resize_output_size(500, 667, 256, &w, &h);
    CHECK(w == 256 && h == 341, "500x667 -> %dx%d", w, h);
    resize_output_size(753, 500, 256, &w, &h);
    CHECK(w == 385 && h == 256, "753x500 -> %dx%d", w, h);
}

/* ---------------------------------------------------------------------------------------- */

static uint64_t hash_floats(const float *x, size_t n, uint64_t h) {
    const unsigned char *b = (const unsigned char *)x;
    for (size_t i = 0; i < n * sizeof(float); i++)
        h = (h ^ b[i]) * 0x100000001b3ull;
    return h;
}

/* Hashes every batch of epochs 0..EPOCHS-1; also checks each epoch is a permutation. The
 * images come from the mapped cache file in CACHE_DIR, or private memory (NULL). */
static int epoch_hashes_from(const dataset_split *split, const char *cache_dir, int threads,
                             int prefetch, uint64_t seed, uint64_t *hashes, int epochs,
                             int *last_count) {
    loader_options o = {.batch_size = 4,
                        .resize = RESIZE,
                        .crop = CROP,
                        .augment = 1,
                        .augment_opts = {0.5, 0.3, 0.3, 30, 20},
                        .shuffle = 1,
                        .seed = seed,
                        .threads = threads,
                        .prefetch = prefetch,
                        .cache_dir = cache_dir};
    loader *l;
    char err[1024];
    if (loader_create(&l, split, 0, &o, err, sizeof err) != 0) {
        tl_fail(__FILE__, __LINE__, "loader_create: %s", err);
        return -1;
    }
    for (int e = 0; e < epochs; e++) {
        loader_start_epoch(l, e);
        loader_batch b;
        uint64_t h = 0xcbf29ce484222325ull;
        int seen = 0, batches = 0, label_sum = 0;
        while (loader_next(l, &b) == 1) {
            CHECK(b.index == batches, "batch index %d, expected %d", b.index, batches);
            h = hash_floats(b.images, (size_t)b.count * CROP * CROP * 3, h);
            for (int i = 0; i < b.count; i++) {
                h = (h ^ (uint64_t)b.labels[i]) * 0x100000001b3ull;
                label_sum += b.labels[i];
            }
            seen += b.count;
            batches++;
            *last_count = b.count;
        }
        int expect_sum = 0;
        for (int i = 0; i < split->count; i++)
            expect_sum += split->labels[i];
        CHECK(seen == split->count, "epoch %d: %d images, expected %d", e, seen, split->count);
        CHECK(batches == loader_num_batches(l), "epoch %d: %d batches", e, batches);
        CHECK(label_sum == expect_sum, "epoch %d: labels are not a permutation of the split", e);
        hashes[e] = h;
    }
    loader_destroy(l);
    return 0;
}

static int epoch_hashes(const dataset_split *split, int threads, int prefetch, uint64_t seed,
                        uint64_t *hashes, int epochs, int *last_count) {
    return epoch_hashes_from(split, NULL, threads, prefetch, seed, hashes, epochs, last_count);
}

static void test_loader_deterministic(void) {
    dataset ds;
    char err[1024];
    if (dataset_open(&ds, flowers, train_splits, 1, val_splits, 2, 0, err, sizeof err) != 0) {
        tl_fail(__FILE__, __LINE__, "dataset_open: %s", err);
        return;
    }
    uint64_t one[2], three[2], other_seed[2];
    int last1 = 0, last3 = 0, last_other = 0;
    if (epoch_hashes(&ds.train, 1, 1, 42, one, 2, &last1) == 0 &&
        epoch_hashes(&ds.train, 3, 4, 42, three, 2, &last3) == 0 &&
        epoch_hashes(&ds.train, 2, 2, 43, other_seed, 2, &last_other) == 0) {
        CHECK(one[0] == three[0] && one[1] == three[1],
              "1 thread and 3 threads give different batches");
        CHECK(one[0] != one[1], "epochs 0 and 1 give the same batches");
        CHECK(one[0] != other_seed[0], "seeds 42 and 43 give the same batches");
        /* 30 images in batches of 4: the last batch keeps the 2 left over */
        CHECK(last1 == 2 && last3 == 2, "last batch has %d / %d images, expected 2", last1, last3);
    }
    /* val: no shuffle, eval transform: batches in split order, labels as the split */
    loader_options o = {.batch_size = 3,
                        .resize = RESIZE,
                        .crop = CROP,
                        .augment = 0,
                        .shuffle = 0,
                        .seed = 1,
                        .threads = 2,
                        .prefetch = 2};
    loader *l;
    if (loader_create(&l, &ds.val, 0, &o, err, sizeof err) != 0) {
        tl_fail(__FILE__, __LINE__, "loader_create: %s", err);
    } else {
        CHECK(loader_cache_bytes(l) == (size_t)ds.val.count * 76 * 64 * 3, "cache bytes %zu",
              loader_cache_bytes(l));
        loader_batch b;
        CHECK(loader_next(l, &b) == 0, "a batch before any epoch started");
        loader_start_epoch(l, 0);
        int pos = 0;
        image_u8 img;
        float *expect = malloc(sizeof(float) * CROP * CROP * 3);
        while (expect && loader_next(l, &b) == 1) {
            for (int i = 0; i < b.count; i++, pos++) {
                CHECK(b.labels[i] == ds.val.labels[pos], "val label %d at %d", b.labels[i], pos);
                if (image_load_resized(ds.val.paths[pos], RESIZE, &img, err, sizeof err) != 0)
                    continue;
                transform_image(expect, &img, NULL, CROP);
                CHECK(memcmp(expect, b.images + (size_t)i * CROP * CROP * 3,
                             sizeof(float) * CROP * CROP * 3) == 0,
                      "val image %d differs from its eval transform", pos);
                free(img.pixels);
            }
        }
        free(expect);
        CHECK(pos == ds.val.count, "val epoch gave %d images", pos);
        /* abandoning an epoch half way and starting the next must work */
        loader_start_epoch(l, 1);
        CHECK(loader_next(l, &b) == 1, "no batch after restart");
        loader_start_epoch(l, 2);
        loader_destroy(l);
    }
    dataset_free(&ds);
}

static uint64_t batch_hash(const loader_batch *b) {
    uint64_t h = hash_floats(b->images, (size_t)b->count * CROP * CROP * 3, 0xcbf29ce484222325ull);
    for (int i = 0; i < b->count; i++)
        h = (h ^ (uint64_t)b->labels[i]) * 0x100000001b3ull;
    return h;
}

/* A trial resumed inside an epoch starts it at batch k: the loader must hand out exactly the
 * batches an uninterrupted epoch gives from there on (same images, draws and indices). */
static void test_loader_starts_mid_epoch(void) {
    dataset ds;
    char err[1024];
    if (dataset_open(&ds, flowers, train_splits, 1, val_splits, 2, 0, err, sizeof err) != 0) {
        tl_fail(__FILE__, __LINE__, "dataset_open: %s", err);
        return;
    }
    loader_options o = {.batch_size = 4,
                        .resize = RESIZE,
                        .crop = CROP,
                        .augment = 1,
                        .augment_opts = {0.5, 0.3, 0.3, 30, 20},
                        .shuffle = 1,
                        .seed = 42,
                        .threads = 2,
                        .prefetch = 2};
    loader *l;
    if (loader_create(&l, &ds.train, 0, &o, err, sizeof err) != 0) {
        tl_fail(__FILE__, __LINE__, "loader_create: %s", err);
        dataset_free(&ds);
        return;
    }
    enum { MAX_BATCHES = 16 };
    uint64_t whole[MAX_BATCHES];
    int n = loader_num_batches(l);
    CHECK(n >= 4 && n <= MAX_BATCHES, "%d batches", n);
    loader_batch b;
    loader_start_epoch(l, 3);
    for (int k = 0; k < n && loader_next(l, &b) == 1; k++)
        whole[k] = batch_hash(&b);
    /* from the middle and from the last batch, after another epoch was left half way */
    const int firsts[] = {n / 2, n - 1, 1};
    for (int f = 0; f < 3; f++) {
        loader_start_epoch(l, 4);
        CHECK(loader_next(l, &b) == 1, "no batch in epoch 4");
        loader_start_epoch_at(l, 3, firsts[f]);
        int k = firsts[f];
        while (loader_next(l, &b) == 1 && k < n) {
            CHECK(b.index == k && batch_hash(&b) == whole[k],
                  "from batch %d: batch %d (index %d) differs", firsts[f], k, b.index);
            k++;
        }
        CHECK(k == n, "from batch %d: the epoch ended at batch %d of %d", firsts[f], k, n);
    }
    loader_start_epoch_at(l, 3, n);
    CHECK(loader_next(l, &b) == 0, "a batch after starting at the end of the epoch");
    loader_destroy(l);
    dataset_free(&ds);
}

/* A data-parallel trial's ranks each take a shard of every batch: for 1 to 5 shards, the
 * shards of a batch are contiguous, in order, cover it exactly (sizes differ by at most one,
 * shard 0 never empty), and hold the whole batch's images, labels and draws, bit for bit. */
static void test_loader_shards(void) {
    dataset ds;
    char err[1024];
    if (dataset_open(&ds, flowers, train_splits, 1, val_splits, 2, 0, err, sizeof err) != 0) {
        tl_fail(__FILE__, __LINE__, "dataset_open: %s", err);
        return;
    }
    enum { MAX_SHARDS = 5 };
    /* a short last batch (of fewer than MAX_SHARDS images): some shards of it are empty */
    int batch = 3;
    while (ds.train.count % batch == 0 || ds.train.count % batch >= MAX_SHARDS)
        batch++;
    loader_options o = {.batch_size = batch,
                        .resize = RESIZE,
                        .crop = CROP,
                        .augment = 1,
                        .augment_opts = {0.5, 0.3, 0.3, 30, 20},
                        .shuffle = 1,
                        .seed = 7,
                        .threads = 2,
                        .prefetch = 2};
    loader *whole = NULL, *shard[MAX_SHARDS] = {0};
    int ok = loader_create(&whole, &ds.train, 0, &o, err, sizeof err) == 0;
    CHECK(ok, "loader_create: %s", err);
    const size_t per_image = (size_t)CROP * CROP * 3;
    for (int shards = 1; ok && shards <= MAX_SHARDS; shards++) {
        for (int r = 0; r < shards && ok; r++) {
            o.shard = r;
            o.shards = shards;
            ok = loader_create(&shard[r], &ds.train, 0, &o, err, sizeof err) == 0;
            CHECK(ok, "loader_create shard %d of %d: %s", r, shards, err);
            if (ok) loader_start_epoch(shard[r], 2);
        }
        loader_start_epoch(whole, 2);
        loader_batch w, b;
        while (ok && loader_next(whole, &w) == 1) {
            int at = 0;
            for (int r = 0; r < shards; r++) {
                CHECK(loader_next(shard[r], &b) == 1, "%d shards: shard %d ended early", shards, r);
                CHECK(b.index == w.index && b.total == w.count && b.offset == at,
                      "%d shards: batch %d shard %d at %d of %d (want %d of %d)", shards, w.index,
                      r, b.offset, b.total, at, w.count);
                CHECK(b.count >= w.count / shards && b.count <= w.count / shards + 1 &&
                          (r > 0 || b.count > 0),
                      "%d shards: shard %d of a batch of %d has %d", shards, r, w.count, b.count);
                CHECK(at + b.count <= w.count &&
                          !memcmp(b.images, w.images + (size_t)at * per_image,
                                  (size_t)b.count * per_image * sizeof(float)) &&
                          !memcmp(b.labels, w.labels + at, (size_t)b.count * sizeof(int32_t)),
                      "%d shards: batch %d shard %d differs from the whole batch", shards, w.index,
                      r);
                at += b.count;
            }
            CHECK(at == w.count, "%d shards: batch %d covered %d of %d", shards, w.index, at,
                  w.count);
        }
        for (int r = 0; r < shards; r++) {
            if (shard[r]) loader_destroy(shard[r]);
            shard[r] = NULL;
        }
    }
    if (whole) loader_destroy(whole);
    dataset_free(&ds);
}

/* The loader's store in a CPU context, image by image at the offsets the loader gives (as the
 * trainer fills it); NULL after a reported failure. */
static uint8_t *store_on(kn_ctx *ctx, const loader *l) {
    uint8_t *store = kn_malloc(ctx, loader_store_bytes(l));
    CHECK(store, "kn_malloc of the store: %s", kn_error(ctx));
    size_t end = 0;
    for (int i = 0; store && i < loader_num_images(l); i++) {
        const uint8_t *pixels;
        size_t bytes;
        uint64_t offset;
        loader_store_image(l, i, &pixels, &bytes, &offset);
        CHECK(offset % 64 == 0 && offset >= end, "image %d at %llu, after %zu", i,
              (unsigned long long)offset, end);
        end = (size_t)offset + bytes;
        if (kn_copy_to_device(ctx, store + offset, pixels, bytes)) {
            tl_fail(__FILE__, __LINE__, "kn_copy_to_device: %s", kn_error(ctx));
            kn_free(ctx, store);
            return NULL;
        }
    }
    CHECK(end <= loader_store_bytes(l), "the images end at %zu of a %zu-byte store", end,
          loader_store_bytes(l));
    return store;
}

/* The device data path: a jobs-mode loader's batches of SPLIT, transformed by
 * kn_images_to_batch from the store on a CPU context, equal the loader's own float batches
 * byte for byte over two epochs of O (every image augmented when O augments: with a
 * fixed-point affine). */
static void check_jobs_match(const dataset_split *split, int skip_corrupt, loader_options o) {
    char err[1024];
    const kn_ctx_options copt = {.backend = KN_BACKEND_CPU, .threads = 2};
    const size_t per_image = (size_t)CROP * CROP * 3;
    loader *floats = NULL, *jobs = NULL;
    kn_ctx *ctx = NULL;
    uint8_t *store = NULL;
    float *out = NULL, *host = malloc((size_t)o.batch_size * per_image * sizeof *host);
    int ok = loader_create(&floats, split, skip_corrupt, &o, err, sizeof err) == 0;
    CHECK(ok, "loader_create: %s", err);
    o.jobs = 1;
    ok = ok && loader_create(&jobs, split, skip_corrupt, &o, err, sizeof err) == 0;
    CHECK(!floats || jobs, "loader_create (jobs): %s", err);
    ok = ok && (ctx = kn_ctx_create(&copt, err, sizeof err)) != NULL;
    CHECK(!jobs || ctx, "kn_ctx_create: %s", err);
    ok = ok && host && (store = store_on(ctx, jobs)) &&
         (out = kn_malloc(ctx, (size_t)o.batch_size * per_image * sizeof *out));
    int compared = 0, affine = 0;
    for (int epoch = 1; ok && epoch <= 2; epoch++) {
        loader_batch f, j;
        loader_start_epoch(floats, epoch);
        loader_start_epoch(jobs, epoch);
        while (ok && loader_next(floats, &f) == 1) {
            ok = loader_next(jobs, &j) == 1;
            CHECK(ok, "epoch %d: the jobs loader ended before batch %d", epoch, f.index);
            if (!ok) break;
            CHECK(!j.images && j.jobs && j.count == f.count && j.offset == f.offset &&
                      !memcmp(j.labels, f.labels, (size_t)f.count * sizeof *f.labels),
                  "epoch %d batch %d: jobs batch of %d at %d, floats %d at %d", epoch, f.index,
                  j.count, j.offset, f.count, f.offset);
            if (f.count == 0) continue;
            ok = !kn_images_to_batch(ctx, out, store, j.jobs, j.count, CROP) &&
                 !kn_copy_to_host(ctx, host, out, (size_t)j.count * per_image * sizeof *host);
            CHECK(ok, "kn_images_to_batch: %s", kn_error(ctx));
            for (int i = 0; ok && i < f.count; i++, compared++) {
                affine += j.jobs[i].use_affine && j.jobs[i].affine_fixed;
                CHECK(!memcmp(host + i * per_image, f.images + i * per_image,
                              per_image * sizeof *host),
                      "epoch %d batch %d image %d: the device path differs", epoch, f.index, i);
            }
        }
        CHECK(!ok || loader_next(jobs, &f) == 0, "epoch %d: the jobs loader has more batches",
              epoch);
    }
    /* this shard of every batch, in both epochs */
    int expected = 0, images = floats ? loader_num_images(floats) : 0;
    for (int first = 0; first < images; first += o.batch_size) {
        int offset, count, rest = images - first, shards = o.shards > 0 ? o.shards : 1;
        shard_of(rest < o.batch_size ? rest : o.batch_size, o.shard, shards, &offset, &count);
        expected += 2 * count;
    }
    CHECK(compared == expected && compared > 0, "compared %d images, expected %d", compared,
          expected);
    CHECK(affine == (o.augment ? compared : 0), "%d of %d images with a fixed-point affine", affine,
          compared);
    free(host);
    if (ctx) {
        kn_free(ctx, out);
        kn_free(ctx, store);
        kn_ctx_destroy(ctx);
    }
    if (jobs) loader_destroy(jobs);
    if (floats) loader_destroy(floats);
}

/* The device data path on shard 1 of 2 of augmented, shuffled training batches and on the
 * validation split's plain ones (the skipped images' case is in corrupt_jpegs). */
static void test_loader_jobs(void) {
    dataset ds;
    char err[1024];
    if (dataset_open(&ds, flowers, train_splits, 1, val_splits, 2, 0, err, sizeof err) != 0) {
        tl_fail(__FILE__, __LINE__, "dataset_open: %s", err);
        return;
    }
    loader_options o = {.batch_size = 5,
                        .resize = RESIZE,
                        .crop = CROP,
                        .augment = 1,
                        .augment_opts = {0.5, 0.3, 0.3, 30, 20},
                        .shuffle = 1,
                        .seed = 11,
                        .threads = 2,
                        .prefetch = 2,
                        .shard = 1,
                        .shards = 2};
    check_jobs_match(&ds.train, 0, o);
    loader_options val = {
        .batch_size = 4, .resize = RESIZE, .crop = CROP, .seed = 11, .threads = 2, .prefetch = 2};
    check_jobs_match(&ds.val, 0, val);
    dataset_free(&ds);
}

/* ---------------------------------------------------------------------------------------- */

static int expect_open_error(const char *root, const char *fragment) {
    dataset ds;
    char err[1024] = "";
    int rc = dataset_open(&ds, root, train_splits, 1, val_splits, 2, 0, err, sizeof err);
    CHECK(rc == -1, "dataset_open of %s succeeded", root);
    CHECK(strstr(err, fragment) != NULL, "message '%s' lacks '%s'", err, fragment);
    if (rc == 0) dataset_free(&ds);
    return rc;
}

static int write_mat_matrix(const char *path, const char *name, size_t rows, size_t cols,
                            double *values) {
    mat_t *mat = Mat_CreateVer(path, NULL, MAT_FT_MAT5);
    if (!mat) return -1;
    size_t dims[2] = {rows, cols};
    matvar_t *v =
        Mat_VarCreate(name, MAT_C_DOUBLE, MAT_T_DOUBLE, 2, dims, values, MAT_F_DONT_COPY_DATA);
    int rc = v && Mat_VarWrite(mat, v, MAT_COMPRESSION_NONE) == 0 ? 0 : -1;
    if (v) Mat_VarFree(v);
    if (Mat_Close(mat) != 0) rc = -1;
    return rc;
}

static void test_bad_dataset_files(void) {
    char dir[1200], path[1400];
    /* missing setid.mat */
    if (make_dataset(dir, sizeof dir, "no_setid", 2, 3) == 0) {
        snprintf(path, sizeof path, "%s/setid.mat", dir);
        CHECK(remove(path) == 0, "cannot remove %s", path);
        expect_open_error(dir, "setid.mat: missing or unreadable");
    }
    /* labels of the wrong shape: a 2x3 matrix */
    if (make_dataset(dir, sizeof dir, "bad_labels", 2, 3) == 0) {
        double values[6] = {1, 2, 1, 2, 1, 2};
        snprintf(path, sizeof path, "%s/imagelabels.mat", dir);
        CHECK(write_mat_matrix(path, "labels", 2, 3, values) == 0, "cannot write %s", path);
        expect_open_error(dir, "imagelabels.mat: 'labels' has shape 2x3");
        /* a label that is not a positive integer */
        double fractional[6] = {1, 2, 1.5, 2, 1, 2};
        CHECK(write_mat_matrix(path, "labels", 1, 6, fractional) == 0, "cannot write %s", path);
        expect_open_error(dir, "'labels'[2] = 1.5 is not a positive integer");
    }
    /* an id out of range and an unknown split name */
    if (make_dataset(dir, sizeof dir, "bad_ids", 2, 3) == 0) {
        snprintf(path, sizeof path, "%s/setid.mat", dir);
        double ids[2] = {1, 7};
        CHECK(write_mat_matrix(path, "tstid", 1, 2, ids) == 0, "cannot write %s", path);
        expect_open_error(dir, "setid.mat: 'tstid'[1] = image id 7 is out of range");
        double ok[2] = {1, 2};
        CHECK(write_mat_matrix(path, "tstid", 1, 2, ok) == 0, "cannot write %s", path);
        expect_open_error(dir, "setid.mat: no variable 'trnid'");
        /* a split longer than the label vector (6 images), as a hostile file's millions */
        double many[7] = {1, 2, 3, 4, 5, 6, 1};
        CHECK(write_mat_matrix(path, "tstid", 1, 7, many) == 0, "cannot write %s", path);
        expect_open_error(dir, "'tstid' has 7 image ids, more than the 6 images");
    }
    /* a listed JPEG that is missing */
    if (make_dataset(dir, sizeof dir, "missing_jpg", 2, 3) == 0) {
        snprintf(path, sizeof path, "%s/jpg/image_00004.jpg", dir);
        CHECK(remove(path) == 0, "cannot remove %s", path);
        expect_open_error(dir, "image_00004.jpg: missing or unreadable");
        dataset ds;
        char err[1024];
        CHECK(dataset_open(&ds, dir, train_splits, 1, val_splits, 2, 1, err, sizeof err) == 0,
              "skip_corrupt open failed: %s", err);
        CHECK(ds.missing == 1, "missing %d", ds.missing);
        CHECK(ds.train.count + ds.val.count == 5, "%d images left", ds.train.count + ds.val.count);
        dataset_free(&ds);
    }
}

/* ---- the mapped cache file (worker/data/cache_file.h) ------------------------------------- */

/* A fresh, empty folder WORK/NAME. */
static void fresh_dir(char *dir, size_t len, const char *name) {
    snprintf(dir, len, "%s/%s", work, name);
    char cmd[1400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s' && mkdir -p '%s'", dir, dir);
    CHECK(system(cmd) == 0, "cannot prepare %s", dir);
}

/* Counts DIR's cache files and the temporaries and locks a build leaves while it runs. */
static void count_cache_files(const char *dir, int *caches, int *leftovers) {
    *caches = *leftovers = 0;
    DIR *d = opendir(dir);
    struct dirent *e;
    while (d && (e = readdir(d))) {
        const char *s = strstr(e->d_name, IMAGE_CACHE_SUFFIX);
        if (s && !s[strlen(IMAGE_CACHE_SUFFIX)]) ++*caches;
        if (s && s[strlen(IMAGE_CACHE_SUFFIX)]) ++*leftovers;
    }
    if (d) closedir(d);
}

static void split_cache_path(char *out, size_t len, const char *dir, const dataset_split *split) {
    char key[IMAGE_CACHE_KEY_CHARS + 1], err[1024];
    CHECK(image_cache_key(key, split->paths, split->count, RESIZE, err, sizeof err) == 0, "%s",
          err);
    image_cache_path(out, len, dir, key, RESIZE, split->count);
}

static ino_t inode_of(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 ? st.st_ino : 0;
}

/* A trial that maps the cache sees the batches one that decodes into memory sees, whether it
 * built the file or found it; the second one maps the first one's file. */
static void test_cache_matches_memory(void) {
    dataset ds;
    char err[1024], dir[1200], path[1600];
    if (dataset_open(&ds, flowers, train_splits, 1, val_splits, 2, 0, err, sizeof err) != 0) {
        tl_fail(__FILE__, __LINE__, "dataset_open: %s", err);
        return;
    }
    fresh_dir(dir, sizeof dir, "cache-same");
    split_cache_path(path, sizeof path, dir, &ds.train);
    uint64_t memory[2], built[2], mapped[2];
    int last = 0, caches, leftovers;
    if (epoch_hashes(&ds.train, 2, 2, 42, memory, 2, &last) == 0 &&
        epoch_hashes_from(&ds.train, dir, 3, 2, 42, built, 2, &last) == 0) {
        ino_t first = inode_of(path);
        CHECK(first != 0, "no cache file %s", path);
        CHECK(epoch_hashes_from(&ds.train, dir, 1, 1, 42, mapped, 2, &last) == 0, "mapping");
        CHECK(inode_of(path) == first, "the second loader rebuilt the cache");
        for (int e = 0; e < 2; e++)
            CHECK(memory[e] == built[e] && memory[e] == mapped[e],
                  "epoch %d: memory %016llx, built %016llx, mapped %016llx", e,
                  (unsigned long long)memory[e], (unsigned long long)built[e],
                  (unsigned long long)mapped[e]);
        count_cache_files(dir, &caches, &leftovers);
        CHECK(caches == 1 && leftovers == 0, "%d caches, %d leftovers", caches, leftovers);
        image_cache_file_info info;
        CHECK(image_cache_check(path, 2, &info, err, sizeof err) == 0, "check: %s", err);
        CHECK(info.count == ds.train.count && info.resize == RESIZE && info.failed == 0 &&
                  info.pixel_bytes == (uint64_t)ds.train.count * 76 * 64 * 3 &&
                  strstr(path, info.key),
              "info: %d images, resize %d, %d failed, %llu bytes, key %s", info.count, info.resize,
              info.failed, (unsigned long long)info.pixel_bytes, info.key);
    }
    dataset_free(&ds);
}

/* Changes the cache file at PATH: flips the byte at OFFSET (from the end when negative), or
 * cuts the file there (CUT), or replaces it by 8 KiB of text (OFFSET 0, CUT). */
static void damage(const char *path, long offset, int cut) {
    struct stat st;
    CHECK(stat(path, &st) == 0, "no %s", path);
    long at = offset < 0 ? (long)st.st_size + offset : offset;
    if (cut) {
        if (at == 0) {
            FILE *f = fopen(path, "w");
            for (int i = 0; f && i < 8192 / 16; i++)
                fputs("not a cache ...\n", f);
            CHECK(f && fclose(f) == 0, "cannot write %s", path);
        } else {
            CHECK(truncate(path, at) == 0, "cannot truncate %s", path);
        }
        return;
    }
    int fd = open(path, O_RDWR);
    unsigned char b = 0;
    CHECK(fd >= 0 && pread(fd, &b, 1, at) == 1, "cannot read %s at %ld", path, at);
    b ^= 0x10;
    CHECK(pwrite(fd, &b, 1, at) == 1, "cannot write %s at %ld", path, at);
    if (fd >= 0) close(fd);
}

/* A truncated, corrupt or foreign cache file is refused by the check and rebuilt by the next
 * loader, which then hands out the batches decoding gives. */
static void test_cache_rebuilds_bad_files(void) {
    dataset ds;
    char err[1024], dir[1200], path[1600];
    if (dataset_open(&ds, flowers, train_splits, 1, val_splits, 2, 0, err, sizeof err) != 0) {
        tl_fail(__FILE__, __LINE__, "dataset_open: %s", err);
        return;
    }
    fresh_dir(dir, sizeof dir, "cache-bad");
    split_cache_path(path, sizeof path, dir, &ds.train);
    static const struct {
        long offset;
        int truncate;
        const char *why;
    } cases[] = {
        {-1, 0, "pixel checksum mismatch"}, /* the last pixel byte */
        {16, 0, "checksum mismatch"},       /* the image count in the header */
        {4096 + 8, 0, "checksum mismatch"}, /* the first image's width in the table */
        {-4096, 1, "truncated"},            /* a builder's half file */
        {0, 1, "not an image cache"},       /* something else under its name */
    };
    uint64_t memory[1], mapped[1];
    int last = 0;
    if (epoch_hashes(&ds.train, 2, 2, 42, memory, 1, &last) == 0 &&
        epoch_hashes_from(&ds.train, dir, 2, 2, 42, mapped, 1, &last) == 0)
        for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
            damage(path, cases[c].offset, cases[c].truncate);
            image_cache_file_info info;
            CHECK(image_cache_check(path, 2, &info, err, sizeof err) == -1, "case %zu: accepted",
                  c);
            CHECK(strstr(err, cases[c].why), "case %zu: '%s' lacks '%s'", c, err, cases[c].why);
            mapped[0] = 0;
            CHECK(epoch_hashes_from(&ds.train, dir, 2, 2, 42, mapped, 1, &last) == 0 &&
                      mapped[0] == memory[0],
                  "case %zu: after the rebuild the batches differ", c);
            CHECK(image_cache_check(path, 2, &info, err, sizeof err) == 0, "case %zu: %s", c, err);
        }
    dataset_free(&ds);
}

/* The key follows the files and the resize, not the path the dataset is reached by. */
static void test_cache_key(void) {
    dataset ds, same;
    char err[1024], root[1300], a[IMAGE_CACHE_KEY_CHARS + 1], b[IMAGE_CACHE_KEY_CHARS + 1];
    snprintf(root, sizeof root, "%s/.", flowers);
    if (dataset_open(&ds, flowers, train_splits, 1, val_splits, 2, 0, err, sizeof err) != 0) {
        tl_fail(__FILE__, __LINE__, "dataset_open: %s", err);
        return;
    }
    if (dataset_open(&same, root, train_splits, 1, val_splits, 2, 0, err, sizeof err) != 0) {
        tl_fail(__FILE__, __LINE__, "dataset_open: %s", err);
        dataset_free(&ds);
        return;
    }
    image_cache_key(a, ds.train.paths, ds.train.count, RESIZE, err, sizeof err);
    image_cache_key(b, same.train.paths, same.train.count, RESIZE, err, sizeof err);
    CHECK(!strcmp(a, b), "another spelling of the root: key %s, then %s", a, b);
    image_cache_key(b, ds.train.paths, ds.train.count, RESIZE + 1, err, sizeof err);
    CHECK(strcmp(a, b), "resize %d and %d: the same key", RESIZE, RESIZE + 1);
    image_cache_key(b, ds.val.paths, ds.val.count, RESIZE, err, sizeof err);
    CHECK(strcmp(a, b), "train and val: the same key");
    /* a rewritten image (another modification time) */
    struct stat st;
    CHECK(stat(ds.train.paths[3], &st) == 0, "stat %s", ds.train.paths[3]);
    struct timespec times[2] = {st.st_atim, st.st_mtim};
    times[1].tv_sec += 1;
    CHECK(utimensat(AT_FDCWD, ds.train.paths[3], times, 0) == 0, "utimensat");
    image_cache_key(b, ds.train.paths, ds.train.count, RESIZE, err, sizeof err);
    CHECK(strcmp(a, b), "a touched image: the same key");
    times[1].tv_sec -= 1;
    utimensat(AT_FDCWD, ds.train.paths[3], times, 0);
    image_cache_key(b, ds.train.paths, ds.train.count, RESIZE, err, sizeof err);
    CHECK(!strcmp(a, b), "the image's old time back: key %s, expected %s", b, a);
    snprintf(same.train.paths[0] + strlen(same.train.paths[0]) - 4, 5, ".png");
    CHECK(image_cache_key(b, same.train.paths, same.train.count, RESIZE, err, sizeof err) == -1 &&
              strstr(err, ".png"),
          "a missing file: %s", err);
    dataset_free(&same);
    dataset_free(&ds);
}

static double now_seconds(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

/* One builder at a time: a process that finds the lock held waits for it; a lock nobody holds
 * (its builder died) and the half file it left are taken over; processes that start together
 * all end up mapping one file. */
static void test_cache_lock(void) {
    dataset ds;
    char err[1024], dir[1200], path[1600], lock[1700], tmp[1700], holder[256];
    if (dataset_open(&ds, flowers, train_splits, 1, val_splits, 2, 0, err, sizeof err) != 0) {
        tl_fail(__FILE__, __LINE__, "dataset_open: %s", err);
        return;
    }
    fresh_dir(dir, sizeof dir, "cache-lock");
    split_cache_path(path, sizeof path, dir, &ds.val);
    snprintf(lock, sizeof lock, "%s.lock", path);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    image_cache c;
    int caches, leftovers;

    /* what a killed builder leaves: its lock file (no longer locked) and a half file */
    FILE *f = fopen(lock, "w");
    CHECK(f && fputs("pid 999999 on gone\n", f) >= 0 && fclose(f) == 0, "write %s", lock);
    f = fopen(tmp, "w");
    CHECK(f && fputs("half", f) >= 0 && fclose(f) == 0, "write %s", tmp);
    CHECK(image_cache_builder(path, holder, sizeof holder) == 0, "a dead builder holds the lock");
    CHECK(image_cache_open(&c, dir, ds.val.paths, ds.val.count, RESIZE, 2, err, sizeof err) == 0,
          "after a killed builder: %s", err);
    image_cache_free(&c);
    count_cache_files(dir, &caches, &leftovers);
    CHECK(caches == 1 && leftovers == 0, "%d caches, %d leftovers", caches, leftovers);

    /* a live builder: the open waits until its lock is released */
    CHECK(unlink(path) == 0, "unlink %s", path);
    int ready[2];
    CHECK(pipe(ready) == 0, "pipe");
    pid_t child = fork();
    if (child == 0) {
        int fd = open(lock, O_RDWR | O_CREAT, 0644);
        char text[64];
        int n = snprintf(text, sizeof text, "pid %ld on testhost\n", (long)getpid());
        int ok = fd >= 0 && flock(fd, LOCK_EX) == 0 && write(fd, text, (size_t)n) == n;
        if (write(ready[1], "x", 1) != 1 || !ok) _exit(1);
        usleep(800 * 1000);
        _exit(0); /* the kernel releases the lock */
    }
    char x;
    CHECK(child > 0 && read(ready[0], &x, 1) == 1, "the lock holder did not start");
    close(ready[0]);
    close(ready[1]);
    CHECK(image_cache_builder(path, holder, sizeof holder) == 1 && strstr(holder, "on testhost"),
          "builder: '%s'", holder);
    CHECK(image_cache_remove(path, holder, sizeof holder, err, sizeof err) == 1,
          "clear removed a cache being built");
    double t0 = now_seconds();
    CHECK(image_cache_open(&c, dir, ds.val.paths, ds.val.count, RESIZE, 2, err, sizeof err) == 0,
          "after a live builder: %s", err);
    double waited = now_seconds() - t0;
    CHECK(waited > 0.5, "did not wait for the lock holder (%.2f s)", waited);
    image_cache_free(&c);
    int status = 0;
    CHECK(child > 0 && waitpid(child, &status, 0) == child && WIFEXITED(status) &&
              WEXITSTATUS(status) == 0,
          "lock holder failed");

    /* four processes at once on an empty folder: one file, which all of them map */
    CHECK(image_cache_remove(path, holder, sizeof holder, err, sizeof err) == 0, "clear: %s", err);
    count_cache_files(dir, &caches, &leftovers);
    CHECK(caches == 0 && leftovers == 0, "after clear: %d caches, %d leftovers", caches, leftovers);
    enum { PROCS = 4 };
    int inodes[2];
    CHECK(pipe(inodes) == 0, "pipe");
    for (int p = 0; p < PROCS; p++)
        if (fork() == 0) {
            image_cache mine;
            char why[1024];
            unsigned long long ino = 0;
            if (image_cache_open(&mine, dir, ds.val.paths, ds.val.count, RESIZE, 1, why,
                                 sizeof why) == 0) {
                ino = (unsigned long long)inode_of(path);
                image_cache_free(&mine);
            }
            _exit(write(inodes[1], &ino, sizeof ino) == sizeof ino ? 0 : 1);
        }
    close(inodes[1]);
    unsigned long long ino[PROCS] = {0};
    for (int p = 0; p < PROCS; p++)
        CHECK(read(inodes[0], &ino[p], sizeof ino[p]) == sizeof ino[p], "process %d", p);
    close(inodes[0]);
    while (wait(NULL) > 0) {
    }
    for (int p = 0; p < PROCS; p++)
        CHECK(ino[p] != 0 && ino[p] == ino[0], "process %d mapped inode %llu, process 0 %llu", p,
              ino[p], ino[0]);
    count_cache_files(dir, &caches, &leftovers);
    CHECK(caches == 1 && leftovers == 0, "%d caches, %d leftovers", caches, leftovers);
    dataset_free(&ds);
}

/* Where the cache goes, and the loader's fallback to private memory when it cannot go there. */
static void test_cache_dir(void) {
    char out[1400], expect[1400], blocker[1200], dir[1300];
    image_cache_dir("", flowers, out, sizeof out);
    snprintf(expect, sizeof expect, "%s/tlsweep-cache", flowers);
    CHECK(!strcmp(out, expect), "default: %s", out);
    image_cache_dir("none", flowers, out, sizeof out);
    CHECK(out[0] == 0, "none: '%s'", out);
    image_cache_dir("/scratch/c", flowers, out, sizeof out);
    CHECK(!strcmp(out, "/scratch/c"), "configured: %s", out);
    char *xdg = getenv("XDG_CACHE_HOME") ? strdup(getenv("XDG_CACHE_HOME")) : NULL;
    setenv("XDG_CACHE_HOME", "/xdg", 1);
    image_cache_dir(NULL, "/no/such/root", out, sizeof out);
    CHECK(!strcmp(out, "/xdg/tlsweep"), "unwritable root, XDG set: %s", out);
    unsetenv("XDG_CACHE_HOME");
    image_cache_dir(NULL, "/no/such/root", out, sizeof out);
    snprintf(expect, sizeof expect, "%s/.cache/tlsweep", getenv("HOME") ? getenv("HOME") : "");
    CHECK(!strcmp(out, expect), "unwritable root, no XDG: %s", out);
    if (xdg) setenv("XDG_CACHE_HOME", xdg, 1);
    free(xdg);

    /* a cache folder that cannot be made: the loader decodes into memory, same batches */
    dataset ds;
    char err[1024];
    if (dataset_open(&ds, flowers, train_splits, 1, val_splits, 2, 0, err, sizeof err) != 0) {
        tl_fail(__FILE__, __LINE__, "dataset_open: %s", err);
        return;
    }
    snprintf(blocker, sizeof blocker, "%s/a-file", work);
    FILE *f = fopen(blocker, "w");
    CHECK(f && fclose(f) == 0, "cannot write %s", blocker);
    snprintf(dir, sizeof dir, "%s/sub", blocker);
    uint64_t memory[1], fallback[1];
    int last = 0;
    if (epoch_hashes(&ds.train, 2, 2, 42, memory, 1, &last) == 0)
        CHECK(epoch_hashes_from(&ds.train, dir, 2, 2, 42, fallback, 1, &last) == 0 &&
                  fallback[0] == memory[0],
              "the fallback to memory gives other batches");
    dataset_free(&ds);
}

static void test_corrupt_jpegs(void) {
    char dir[1200], path[1400], err[1024];
    if (make_dataset(dir, sizeof dir, "corrupt", 2, 6) != 0) return;
    dataset ds;
    if (dataset_open(&ds, dir, train_splits, 1, val_splits, 2, 1, err, sizeof err) != 0) {
        tl_fail(__FILE__, __LINE__, "dataset_open: %s", err);
        return;
    }
    /* truncate the first train image to half its size; make the second a text file */
    char truncated[1400], text[1400];
    snprintf(truncated, sizeof truncated, "%s", ds.train.paths[0]);
    snprintf(text, sizeof text, "%s", ds.train.paths[1]);
    FILE *f = fopen(truncated, "rb");
    unsigned char buf[1 << 16];
    size_t n = f ? fread(buf, 1, sizeof buf, f) : 0;
    if (f) fclose(f);
    CHECK(n > 100, "cannot read %s", truncated);
    f = fopen(truncated, "wb");
    CHECK(f && fwrite(buf, 1, n / 2, f) == n / 2, "cannot truncate %s", truncated);
    if (f) fclose(f);
    f = fopen(text, "w");
    CHECK(f && fputs("this is not a JPEG\n", f) >= 0, "cannot write %s", text);
    if (f) fclose(f);

    image_u8 img;
    CHECK(jpeg_decode_file(truncated, 0, &img, err, sizeof err) == -1, "truncated decoded");
    CHECK(strstr(err, truncated) && strstr(err, "truncated or corrupt JPEG"), "message: %s", err);
    CHECK(jpeg_decode_file(text, 0, &img, err, sizeof err) == -1, "text decoded");
    CHECK(strstr(err, text) && strstr(err, "not a JPEG file"), "message: %s", err);
    snprintf(path, sizeof path, "%s/jpg/nothing_here.jpg", dir);
    CHECK(jpeg_decode_file(path, 0, &img, err, sizeof err) == -1, "missing decoded");
    CHECK(strstr(err, "nothing_here.jpg: cannot open"), "message: %s", err);

    loader_options o = {.batch_size = 4,
                        .resize = RESIZE,
                        .crop = CROP,
                        .augment = 0,
                        .shuffle = 1,
                        .seed = 1,
                        .threads = 2,
                        .prefetch = 2};
    loader *l = NULL;
    CHECK(loader_create(&l, &ds.train, 0, &o, err, sizeof err) == -1, "corrupt split loaded");
    CHECK(strstr(err, truncated) && strstr(err, "truncated or corrupt JPEG"), "loader message: %s",
          err);
    if (l) loader_destroy(l);
    l = NULL;
    CHECK(loader_create(&l, &ds.train, 1, &o, err, sizeof err) == 0, "skip_corrupt: %s", err);
    if (l) {
        CHECK(loader_num_skipped(l) == 2, "skipped %d, expected 2", loader_num_skipped(l));
        CHECK(loader_num_images(l) == ds.train.count - 2, "%d images", loader_num_images(l));
        loader_destroy(l);
    }
    /* the device data path leaves the same images out */
    loader_options augmented = o;
    augmented.augment = 1;
    augmented.augment_opts = (augment_options){0.5, 0.3, 0.3, 30, 20};
    check_jobs_match(&ds.train, 1, augmented);
    /* the cache file keeps the failures: the same refusal and skips when built and mapped */
    char cache_dir[1300];
    fresh_dir(cache_dir, sizeof cache_dir, "cache-corrupt");
    o.cache_dir = cache_dir;
    for (int pass = 0; pass < 2; pass++) {
        l = NULL;
        CHECK(loader_create(&l, &ds.train, 0, &o, err, sizeof err) == -1,
              "pass %d: corrupt split loaded", pass);
        CHECK(strstr(err, truncated) && strstr(err, "truncated or corrupt JPEG"),
              "pass %d: loader message: %s", pass, err);
        if (l) loader_destroy(l);
        l = NULL;
        CHECK(loader_create(&l, &ds.train, 1, &o, err, sizeof err) == 0, "skip_corrupt: %s", err);
        if (l) {
            CHECK(loader_num_skipped(l) == 2 && loader_num_images(l) == ds.train.count - 2,
                  "pass %d: skipped %d, %d images", pass, loader_num_skipped(l),
                  loader_num_images(l));
            loader_destroy(l);
        }
    }
    int caches, leftovers;
    count_cache_files(cache_dir, &caches, &leftovers);
    CHECK(caches == 1 && leftovers == 0, "%d caches, %d leftovers", caches, leftovers);
    dataset_free(&ds);
}

/* The fuzzers' findings (tests/fuzz/regressions/) are refused, each with its own message: the
 * .mat files (the fuzz input's first byte says which file the rest replaces: odd setid.mat) and
 * a JPEG whose header claims more pixels than the decoder may allocate. */
static void test_fuzz_findings_refused(void) {
    static const struct {
        const char *input, *message;
    } mats[] = {
        {"oom-array-flags-size", "corrupt .mat file: a matrix's array flags are not 8 bytes of "
                                 "uint32"},
        {"oom-name-length", "corrupt .mat file: an element larger than what holds it"},
        {"alloc-empty-matrix", "corrupt .mat file: a matrix too short for its flags, "
                               "dimensions and name"},
    };
    char dir[1200], path[1400], expect[1600];
    for (size_t i = 0; i < sizeof mats / sizeof mats[0]; i++) {
        snprintf(path, sizeof path, "tests/fuzz/regressions/fuzz_mat/%s", mats[i].input);
        FILE *f = fopen(path, "rb");
        unsigned char buf[4096];
        size_t n = f ? fread(buf, 1, sizeof buf, f) : 0;
        if (f) fclose(f);
        if (n < 2 || make_dataset(dir, sizeof dir, mats[i].input, 2, 3) != 0) {
            tl_fail(__FILE__, __LINE__, "cannot read %s (run from the repository root)", path);
            continue;
        }
        const char *file = buf[0] & 1 ? "setid.mat" : "imagelabels.mat";
        snprintf(path, sizeof path, "%s/%s", dir, file);
        f = fopen(path, "wb");
        CHECK(f && fwrite(buf + 1, 1, n - 1, f) == n - 1, "cannot write %s", path);
        if (f) fclose(f);
        snprintf(expect, sizeof expect, "%s: %s", file, mats[i].message);
        expect_open_error(dir, expect);
    }

    /* a real JPEG whose frame header (SOF0: FF C0, length, precision, height, width) is
     * patched to 60000 x 50000: 3 Gpixel, over JPEG_MAX_PIXELS, refused before any allocation */
    image_u8 img;
    char err[1024];
    snprintf(path, sizeof path, "%s/jpg/image_00001.jpg", flowers);
    FILE *f = fopen(path, "rb");
    static unsigned char jpg[1 << 20];
    size_t n = f ? fread(jpg, 1, sizeof jpg, f) : 0;
    if (f) fclose(f);
    size_t sof = 0;
    while (sof + 9 < n && !(jpg[sof] == 0xff && jpg[sof + 1] == 0xc0))
        sof++;
    if (sof + 9 >= n) {
        tl_fail(__FILE__, __LINE__, "%s: no baseline frame header", path);
        return;
    }
    jpg[sof + 5] = 50000 >> 8, jpg[sof + 6] = 50000 & 0xff; /* height */
    jpg[sof + 7] = 60000 >> 8, jpg[sof + 8] = 60000 & 0xff; /* width */
    snprintf(path, sizeof path, "%s/huge.jpg", work);
    f = fopen(path, "wb");
    CHECK(f && fwrite(jpg, 1, n, f) == n, "cannot write %s", path);
    if (f) fclose(f);
    CHECK(jpeg_decode_file(path, 0, &img, err, sizeof err) == -1, "a 60000x50000 JPEG decoded");
    snprintf(expect, sizeof expect,
             "%s: a 60000x50000 JPEG decodes to 60000x50000, more than the %zu-pixel limit", path,
             JPEG_MAX_PIXELS);
    CHECK(strstr(err, expect) != NULL, "message '%s', want '%s'", err, expect);
    /* the fuzzer's own finding: refused, naming the file */
    snprintf(path, sizeof path, "tests/fuzz/regressions/fuzz_jpeg/oom-huge-dimensions.jpg");
    CHECK(jpeg_decode_file(path, 36, &img, err, sizeof err) == -1 && strstr(err, path),
          "%s: rc 0 or message '%s'", path, err);
}

int main(void) {
    setup();
    compute_references();
    static const char *const names[] = {"open_splits",
                                        "eval_matches_torchvision",
                                        "augment_matches_torchvision",
                                        "seed_size_matches_torchvision",
                                        "gray_and_cmyk",
                                        "draws_and_sizes",
                                        "loader_deterministic",
                                        "loader_starts_mid_epoch",
                                        "loader_shards",
                                        "loader_jobs",
                                        "bad_dataset_files",
                                        "corrupt_jpegs",
                                        "cache_matches_memory",
                                        "cache_rebuilds_bad_files",
                                        "cache_key",
                                        "cache_lock",
                                        "cache_dir",
                                        "fuzz_findings_refused"};
    static const tl_case_fn cases[] = {test_open_splits,
                                       test_eval_matches_torchvision,
                                       test_augment_matches_torchvision,
                                       test_seed_size_matches_torchvision,
                                       test_gray_and_cmyk,
                                       test_draws_and_sizes,
                                       test_loader_deterministic,
                                       test_loader_starts_mid_epoch,
                                       test_loader_shards,
                                       test_loader_jobs,
                                       test_bad_dataset_files,
                                       test_corrupt_jpegs,
                                       test_cache_matches_memory,
                                       test_cache_rebuilds_bad_files,
                                       test_cache_key,
                                       test_cache_lock,
                                       test_cache_dir,
                                       test_fuzz_findings_refused};
    return TL_RUN("data", names, cases);
}
