/* Synthetic flowers: a polar petal profile over a cluttered, noisy background. */
#include "worker/data/synth.h"

#include <errno.h>
#include <math.h>
#include <matio.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <turbojpeg.h>
#include <unistd.h>

#include "worker/data/dataset.h"
#include "worker/rng.h"

enum { SYNTH_CLASS_STREAM = 11, SYNTH_IMAGE_STREAM = 12, SYNTH_ORDER_STREAM = 13 };

void synth_default_options(synth_options *o) {
    *o = (synth_options){.classes = 102,
                         .per_class = 80,
                         .width = 500,
                         .height = 600,
                         .quality = 90,
                         .trnid_per_class = 10,
                         .valid_per_class = 10,
                         .seed = 0};
}

static void hsv_to_rgb(double h, double s, double v, double rgb[3]) {
    h = fmod(h, 1.0) * 6.0;
    int i = (int)h;
    double f = h - i, p = v * (1 - s), q = v * (1 - s * f), t = v * (1 - s * (1 - f));
    double table[6][3] = {{v, t, p}, {q, v, p}, {p, v, t}, {p, q, v}, {t, p, v}, {v, p, q}};
    memcpy(rgb, table[i % 6], sizeof table[0]);
}

typedef struct {
    int petals;
    double petal_rgb[3], centre_rgb[3];
    double radius;      /* fraction of the shorter side */
    double centre_frac; /* centre disc radius / flower radius */
    double depth;       /* how deep the notches between petals go */
    double sharpness;   /* petal profile exponent: < 1 round, > 1 pointed */
} flower_class;

static flower_class class_params(const synth_options *o, int label) {
    rng_stream r = rng_stream_for(o->seed, 0, (uint64_t)label, SYNTH_CLASS_STREAM);
    flower_class c;
    c.petals = 3 + (int)rng_below(&r, 10);
    hsv_to_rgb(rng_uniform(&r, 0, 1), rng_uniform(&r, 0.5, 1.0), rng_uniform(&r, 0.6, 1.0),
               c.petal_rgb);
    hsv_to_rgb(rng_uniform(&r, 0, 1), rng_uniform(&r, 0.4, 1.0), rng_uniform(&r, 0.3, 0.9),
               c.centre_rgb);
    c.radius = rng_uniform(&r, 0.18, 0.36);
    c.centre_frac = rng_uniform(&r, 0.12, 0.4);
    c.depth = rng_uniform(&r, 0.25, 0.8);
    c.sharpness = exp(rng_uniform(&r, log(0.3), log(3.0)));
    return c;
}

static uint8_t to_u8(double v) {
    return (uint8_t)(v <= 0 ? 0 : v >= 255 ? 255 : lrint(v));
}

int synth_render(image_u8 *out, const synth_options *o, int label, uint64_t index) {
    int w = o->width, h = o->height;
    out->pixels = malloc((size_t)w * h * 3);
    if (!out->pixels) return -1;
    out->width = w;
    out->height = h;
    flower_class c = class_params(o, label);
    rng_stream r = rng_stream_for(o->seed, (uint64_t)label, index, SYNTH_IMAGE_STREAM);

    /* background: a vertical gradient between two earthy/leafy colours, then leaf blobs */
    double top[3], bottom[3];
    hsv_to_rgb(rng_uniform(&r, 0.15, 0.45), rng_uniform(&r, 0.2, 0.8), rng_uniform(&r, 0.2, 0.7),
               top);
    hsv_to_rgb(rng_uniform(&r, 0.05, 0.4), rng_uniform(&r, 0.2, 0.8), rng_uniform(&r, 0.1, 0.5),
               bottom);
    for (int y = 0; y < h; y++) {
        double t = (double)y / (h - 1 > 0 ? h - 1 : 1);
        for (int x = 0; x < w; x++)
            for (int k = 0; k < 3; k++)
                out->pixels[((size_t)y * w + x) * 3 + k] =
                    to_u8(255 * (top[k] * (1 - t) + bottom[k] * t));
    }
    int blobs = 4 + (int)rng_below(&r, 12);
    for (int b = 0; b < blobs; b++) {
        double bx = rng_uniform(&r, 0, w), by = rng_uniform(&r, 0, h);
        double ra = rng_uniform(&r, 0.03, 0.15) * w, rb = ra * rng_uniform(&r, 0.2, 0.7);
        double phi = rng_uniform(&r, 0, M_PI), rgb[3];
        hsv_to_rgb(rng_uniform(&r, 0.1, 0.5), rng_uniform(&r, 0.3, 0.9), rng_uniform(&r, 0.2, 0.8),
                   rgb);
        double cos_phi = cos(phi), sin_phi = sin(phi);
        int x0 = (int)fmax(0, bx - ra), x1 = (int)fmin(w, bx + ra + 1);
        int y0 = (int)fmax(0, by - ra), y1 = (int)fmin(h, by + ra + 1);
        for (int y = y0; y < y1; y++)
            for (int x = x0; x < x1; x++) {
                double dx = x - bx, dy = y - by;
                double u = dx * cos_phi + dy * sin_phi, v = -dx * sin_phi + dy * cos_phi;
                if ((u * u) / (ra * ra) + (v * v) / (rb * rb) > 1) continue;
                for (int k = 0; k < 3; k++)
                    out->pixels[((size_t)y * w + x) * 3 + k] = to_u8(255 * rgb[k]);
            }
    }

    /* the flower */
    int shorter = w < h ? w : h;
    double scale = rng_uniform(&r, 0.75, 1.25);
    double radius = c.radius * shorter * scale;
    double cx = rng_uniform(&r, radius * 0.6, w - radius * 0.6);
    double cy = rng_uniform(&r, radius * 0.6, h - radius * 0.6);
    double turn = rng_uniform(&r, 0, 2 * M_PI);
    double tint = rng_uniform(&r, 0.85, 1.15);
    int x0 = (int)fmax(0, cx - radius - 1), x1 = (int)fmin(w, cx + radius + 2);
    int y0 = (int)fmax(0, cy - radius - 1), y1 = (int)fmin(h, cy + radius + 2);
    for (int y = y0; y < y1; y++)
        for (int x = x0; x < x1; x++) {
            double dx = x + 0.5 - cx, dy = y + 0.5 - cy, d = hypot(dx, dy);
            double theta = atan2(dy, dx) + turn;
            double profile = pow(fabs(cos(c.petals * theta / 2)), c.sharpness);
            double edge = radius * ((1 - c.depth) + c.depth * profile);
            uint8_t *p = out->pixels + ((size_t)y * w + x) * 3;
            if (d < radius * c.centre_frac) {
                double speckle = 0.8 + 0.2 * cos(d * 0.9 + theta * 7);
                for (int k = 0; k < 3; k++)
                    p[k] = to_u8(255 * c.centre_rgb[k] * speckle);
            } else if (d < edge) {
                double shade = 0.65 + 0.35 * d / edge; /* darker towards the petal base */
                for (int k = 0; k < 3; k++)
                    p[k] = to_u8(255 * c.petal_rgb[k] * shade * tint);
            }
        }

    /* sensor-like noise, so JPEG blocks and exact pixel values vary */
    double amplitude = rng_uniform(&r, 2, 10);
    rng_stream noise = rng_stream_for(o->seed, (uint64_t)label, index, SYNTH_IMAGE_STREAM + 100);
    size_t n = (size_t)w * h * 3;
    for (size_t i = 0; i < n; i += 8) {
        uint64_t bits = rng_next(&noise);
        for (size_t j = i; j < i + 8 && j < n; j++, bits >>= 8)
            out->pixels[j] =
                to_u8(out->pixels[j] + amplitude * (((int)(bits & 255) - 128) / 128.0));
    }
    return 0;
}

int synth_write_jpeg(const char *path, const image_u8 *img, int quality, char *err, size_t errlen) {
    tjhandle tj = tjInitCompress();
    if (!tj) {
        snprintf(err, errlen, "%s: cannot start the JPEG encoder: %s", path, tjGetErrorStr2(NULL));
        return -1;
    }
    unsigned char *jpeg = NULL;
    unsigned long size = 0;
    int rc = -1;
    if (tjCompress2(tj, img->pixels, img->width, 0, img->height, TJPF_RGB, &jpeg, &size, TJSAMP_420,
                    quality, 0) != 0) {
        snprintf(err, errlen, "%s: JPEG encoding failed: %s", path, tjGetErrorStr2(tj));
        goto done;
    }
    FILE *f = fopen(path, "wb");
    if (!f) {
        snprintf(err, errlen, "%s: cannot create: %s", path, strerror(errno));
        goto done;
    }
    size_t wrote = fwrite(jpeg, 1, size, f);
    if (fclose(f) != 0 || wrote != size) {
        snprintf(err, errlen, "%s: write error", path);
        goto done;
    }
    rc = 0;
done:
    tjFree(jpeg);
    tjDestroy(tj);
    return rc;
}

/* One row vector of doubles per variable, as MATLAB saves them (1xN). */
static int mat_write_vectors(const char *path, const char *const *names, double *const *values,
                             const size_t *counts, int nvars, char *err, size_t errlen) {
    mat_t *mat = Mat_CreateVer(path, NULL, MAT_FT_MAT5);
    if (!mat) {
        snprintf(err, errlen, "%s: cannot create the .mat file", path);
        return -1;
    }
    int rc = 0;
    for (int i = 0; i < nvars && rc == 0; i++) {
        size_t dims[2] = {1, counts[i]};
        matvar_t *v = Mat_VarCreate(names[i], MAT_C_DOUBLE, MAT_T_DOUBLE, 2, dims, values[i],
                                    MAT_F_DONT_COPY_DATA);
        if (!v || Mat_VarWrite(mat, v, MAT_COMPRESSION_NONE) != 0) {
            snprintf(err, errlen, "%s: cannot write variable '%s'", path, names[i]);
            rc = -1;
        }
        if (v) Mat_VarFree(v);
    }
    if (Mat_Close(mat) != 0 && rc == 0) {
        snprintf(err, errlen, "%s: cannot close the .mat file", path);
        rc = -1;
    }
    return rc;
}

static int compare_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* mkdir -p: the parents too, so `synth-flowers build/x/flowers` just works */
static int make_dir(const char *path, char *err, size_t errlen) {
    char partial[4096];
    size_t len = strlen(path);
    if (len >= sizeof partial) {
        snprintf(err, errlen, "%s: path too long", path);
        return -1;
    }
    for (size_t i = 1; i <= len; i++) {
        if (path[i] != '/' && path[i] != '\0') continue;
        memcpy(partial, path, i);
        partial[i] = '\0';
        if (mkdir(partial, 0777) != 0 && errno != EEXIST) {
            snprintf(err, errlen, "%s: cannot create directory: %s", partial, strerror(errno));
            return -1;
        }
    }
    return 0;
}

/* Image writing in parallel: each image depends only on its own seeded streams, so the files
 * are the same whatever the thread count. */
typedef struct {
    const char *dir;
    const synth_options *o;
    const size_t *order;
    size_t n;
    atomic_size_t next;
    pthread_mutex_t lock;
    size_t failed_at; /* the lowest failing slot, n if none: its message is reported */
    char err[1024];
} write_job;

static void *write_thread(void *arg) {
    write_job *job = arg;
    char err[1024], path[4096];
    for (;;) {
        size_t i = atomic_fetch_add(&job->next, 1);
        if (i >= job->n) return NULL;
        int label = (int)(i / job->o->per_class), number = (int)(i % job->o->per_class);
        size_t id = job->order[i] + 1;
        image_u8 img = {0};
        int rc = synth_render(&img, job->o, label, (uint64_t)number);
        if (rc != 0) snprintf(err, sizeof err, "%s: out of memory drawing image %zu", job->dir, id);
        dataset_image_path(path, sizeof path, job->dir, (int64_t)id);
        if (rc == 0) rc = synth_write_jpeg(path, &img, job->o->quality, err, sizeof err);
        free(img.pixels);
        if (rc != 0) {
            pthread_mutex_lock(&job->lock);
            if (i < job->failed_at) {
                job->failed_at = i;
                snprintf(job->err, sizeof job->err, "%s", err);
            }
            pthread_mutex_unlock(&job->lock);
        }
    }
}

static int write_images(const char *dir, const synth_options *o, const size_t *order, size_t n,
                        char *err, size_t errlen) {
    write_job job = {.dir = dir, .o = o, .order = order, .n = n, .failed_at = n};
    atomic_init(&job.next, 0);
    if (pthread_mutex_init(&job.lock, NULL) != 0) {
        snprintf(err, errlen, "%s: cannot create a mutex", dir);
        return -1;
    }
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    int threads = cores < 1 ? 1 : cores > 64 ? 64 : (int)cores;
    pthread_t ids[64];
    int started = 0;
    for (; started < threads; started++)
        if (pthread_create(&ids[started], NULL, write_thread, &job) != 0) break;
    if (started == 0) write_thread(&job); /* no thread could start: do it here */
    for (int t = 0; t < started; t++)
        pthread_join(ids[t], NULL);
    pthread_mutex_destroy(&job.lock);
    if (job.failed_at < n) {
        snprintf(err, errlen, "%s", job.err);
        return -1;
    }
    return 0;
}

int synth_flowers_write(const char *dir, const synth_options *o, char *err, size_t errlen) {
    if (o->classes < 1 || o->per_class < 1 || o->width < 8 || o->height < 8 || o->quality < 1 ||
        o->quality > 100 || o->trnid_per_class < 0 || o->valid_per_class < 0 ||
        o->trnid_per_class + o->valid_per_class > o->per_class) {
        snprintf(err, errlen,
                 "%s: bad options: %d classes x %d images of %dx%d, quality %d, split %d+%d", dir,
                 o->classes, o->per_class, o->width, o->height, o->quality, o->trnid_per_class,
                 o->valid_per_class);
        return -1;
    }
    char path[4096];
    snprintf(path, sizeof path, "%s/jpg", dir);
    if (make_dir(dir, err, errlen) != 0 || make_dir(path, err, errlen) != 0) return -1;

    size_t n = (size_t)o->classes * o->per_class;
    /* slot i of the class-major list (class i / per_class, number i % per_class) gets image
     * id order[i] + 1: a seeded shuffle, so ids do not give the class away */
    size_t *order = malloc(n * sizeof *order);
    double *labels = malloc(n * sizeof *labels);
    double *splits[3] = {malloc(n * sizeof(double)), malloc(n * sizeof(double)),
                         malloc(n * sizeof(double))};
    size_t counts[3] = {0, 0, 0};
    int rc = -1;
    if (!order || !labels || !splits[0] || !splits[1] || !splits[2]) {
        snprintf(err, errlen, "%s: out of memory", dir);
        goto done;
    }
    for (size_t i = 0; i < n; i++)
        order[i] = i;
    rng_stream r = rng_stream_for(o->seed, 0, 0, SYNTH_ORDER_STREAM);
    for (size_t i = n - 1; i > 0; i--) {
        size_t j = (size_t)rng_below(&r, i + 1), t = order[i];
        order[i] = order[j];
        order[j] = t;
    }
    for (size_t i = 0; i < n; i++) {
        int label = (int)(i / o->per_class), number = (int)(i % o->per_class);
        size_t id = order[i] + 1;
        labels[id - 1] = label + 1;
        int split = number < o->trnid_per_class                        ? 0
                    : number < o->trnid_per_class + o->valid_per_class ? 1
                                                                       : 2;
        splits[split][counts[split]++] = (double)id;
    }
    if (write_images(dir, o, order, n, err, errlen) != 0) goto done;
    /* ids ascending within each split, as in the published setid.mat */
    for (int s = 0; s < 3; s++)
        qsort(splits[s], counts[s], sizeof(double), compare_double);
    snprintf(path, sizeof path, "%s/imagelabels.mat", dir);
    const char *label_name[1] = {"labels"};
    if (mat_write_vectors(path, label_name, &labels, &n, 1, err, errlen) != 0) goto done;
    snprintf(path, sizeof path, "%s/setid.mat", dir);
    const char *split_names[3] = {"trnid", "valid", "tstid"};
    /* matio refuses empty variables' data pointers: write only non-empty splits */
    const char *names[3];
    double *vals[3];
    size_t cnts[3];
    int nvars = 0;
    for (int s = 0; s < 3; s++)
        if (counts[s] > 0) {
            names[nvars] = split_names[s];
            vals[nvars] = splits[s];
            cnts[nvars++] = counts[s];
        }
    if (mat_write_vectors(path, names, vals, cnts, nvars, err, errlen) != 0) goto done;
    rc = 0;
done:
    free(order);
    free(labels);
    for (int s = 0; s < 3; s++)
        free(splits[s]);
    return rc;
}
