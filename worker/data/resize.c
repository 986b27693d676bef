/* PIL-exact antialiased bilinear resampling (Pillow's Resample.c algorithm, re-derived). */
#include "worker/data/resize.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PRECISION_BITS (32 - 8 - 2)

void resize_output_size(int width, int height, int short_side, int *out_width, int *out_height) {
    int shorter = width <= height ? width : height;
    int longer = width <= height ? height : width;
    /* Python's int(size * long / short): a double division, truncated. */
    int new_long = (int)((double)short_side * longer / shorter);
    if (width <= height) {
        *out_width = short_side;
        *out_height = new_long;
    } else {
        *out_width = new_long;
        *out_height = short_side;
    }
}

static double triangle(double x) {
    if (x < 0.0) x = -x;
    return x < 1.0 ? 1.0 - x : 0.0;
}

/* For each output index: the first input index, how many inputs, and ksize fixed-point
 * weights. Mirrors PIL's precompute_coeffs + normalize_coeffs_8bpc. */
typedef struct {
    int ksize;
    int *bounds;    /* (out_size, 2): first input, count */
    int32_t *coeff; /* (out_size, ksize) */
} filter_plan;

static int plan_make(filter_plan *p, int in_size, int out_size) {
    double scale = (double)in_size / out_size;
    double filterscale = scale < 1.0 ? 1.0 : scale;
    double support = 1.0 * filterscale;
    p->ksize = (int)ceil(support) * 2 + 1;
    p->bounds = malloc((size_t)out_size * 2 * sizeof *p->bounds);
    p->coeff = malloc((size_t)out_size * p->ksize * sizeof *p->coeff);
    double *k = malloc((size_t)p->ksize * sizeof *k);
    if (!p->bounds || !p->coeff || !k) {
        free(p->bounds);
        free(p->coeff);
        free(k);
        return -1;
    }
    for (int xx = 0; xx < out_size; xx++) {
        double center = (xx + 0.5) * scale;
        double ww = 0.0, ss = 1.0 / filterscale;
        int xmin = (int)(center - support + 0.5);
        if (xmin < 0) xmin = 0;
        int xmax = (int)(center + support + 0.5);
        if (xmax > in_size) xmax = in_size;
        xmax -= xmin;
        for (int x = 0; x < xmax; x++) {
            k[x] = triangle((x + xmin - center + 0.5) * ss);
            ww += k[x];
        }
        int32_t *c = p->coeff + (size_t)xx * p->ksize;
        for (int x = 0; x < p->ksize; x++) {
            double w = x < xmax ? (ww != 0.0 ? k[x] / ww : k[x]) : 0.0;
            c[x] = w < 0 ? (int32_t)(-0.5 + w * (1 << PRECISION_BITS))
                         : (int32_t)(0.5 + w * (1 << PRECISION_BITS));
        }
        p->bounds[2 * xx] = xmin;
        p->bounds[2 * xx + 1] = xmax;
    }
    free(k);
    return 0;
}

static void plan_free(filter_plan *p) {
    free(p->bounds);
    free(p->coeff);
}

static inline uint8_t clip8(int32_t v) {
    if (v >= (1 << PRECISION_BITS << 8)) return 255;
    if (v <= 0) return 0;
    return (uint8_t)(v >> PRECISION_BITS);
}

/* out (w, h, 3) = in (h, w, 3) with rows and columns swapped, in cache-sized tiles */
static void transpose_rgb(uint8_t *out, const uint8_t *in, int w, int h) {
    enum { TILE = 32 };
    for (int y0 = 0; y0 < h; y0 += TILE)
        for (int x0 = 0; x0 < w; x0 += TILE)
            for (int y = y0; y < y0 + TILE && y < h; y++)
                for (int x = x0; x < x0 + TILE && x < w; x++)
                    memcpy(out + ((size_t)x * h + y) * 3, in + ((size_t)y * w + x) * 3, 3);
}

/* out (out_h, w, 3) from in (in rows, w, 3); bounds relative to in's first row. Row-wise
 * multiply-adds into an int32 accumulator row, which the compiler vectorises; the sums are
 * the same as Pillow's per-pixel loop (integer addition is exact). */
/* The hot loop: the build's -O2 does not vectorise it, so it asks for vectorisation, and for
 * an AVX2 clone picked at load time where the CPU has it (8 lanes instead of SSE2's 4). */
__attribute__((target_clones("avx2", "default"), optimize("tree-vectorize"))) static void
pass_vertical(uint8_t *out, const uint8_t *in, int w, int out_h, const filter_plan *p,
              int row_offset, int32_t *acc /* (w * 3) */) {
    size_t stride = (size_t)w * 3;
    for (int yy = 0; yy < out_h; yy++) {
        int ymin = p->bounds[2 * yy] - row_offset, n = p->bounds[2 * yy + 1];
        const int32_t *k = p->coeff + (size_t)yy * p->ksize;
        for (size_t i = 0; i < stride; i++)
            acc[i] = 1 << (PRECISION_BITS - 1);
        for (int y = 0; y < n; y++) {
            const uint8_t *src = in + (size_t)(ymin + y) * stride;
            int32_t weight = k[y];
            for (size_t i = 0; i < stride; i++)
                acc[i] += src[i] * weight;
        }
        uint8_t *dst = out + (size_t)yy * stride;
        for (size_t i = 0; i < stride; i++)
            dst[i] = clip8(acc[i]);
    }
}

/* Pillow's horizontal pass as a vertical one on the transposed rows (the sums are the same
 * integers, so the result is too): out (rows, out_w, 3) from in (rows, in_w, 3). */
static int pass_horizontal(uint8_t *out, const uint8_t *in, int in_w, int rows, int out_w,
                           const filter_plan *p, int32_t *acc /* (rows * 3) */) {
    uint8_t *columns = malloc((size_t)in_w * rows * 3);
    uint8_t *resized = malloc((size_t)out_w * rows * 3);
    if (!columns || !resized) {
        free(columns);
        free(resized);
        return -1;
    }
    transpose_rgb(columns, in, in_w, rows);
    pass_vertical(resized, columns, rows, out_w, p, 0, acc);
    transpose_rgb(out, resized, rows, out_w);
    free(columns);
    free(resized);
    return 0;
}

int resize_bilinear(const image_u8 *in, int out_width, int out_height, image_u8 *out,
                    const char *what, char *err, size_t errlen) {
    memset(out, 0, sizeof *out);
    if (out_width <= 0 || out_height <= 0 || in->width <= 0 || in->height <= 0) {
        snprintf(err, errlen, "%s: cannot resize %dx%d to %dx%d", what, in->width, in->height,
                 out_width, out_height);
        return -1;
    }
    out->pixels = malloc((size_t)out_width * out_height * 3);
    if (!out->pixels) goto oom;
    out->width = out_width;
    out->height = out_height;
    int need_h = out_width != in->width, need_v = out_height != in->height;
    if (!need_h && !need_v) {
        memcpy(out->pixels, in->pixels, (size_t)out_width * out_height * 3);
        return 0;
    }
    filter_plan ph = {0}, pv = {0};
    uint8_t *tmp = NULL;
    int widest = in->width > in->height ? in->width : in->height;
    if (out_width > widest) widest = out_width;
    int32_t *acc = malloc((size_t)widest * 3 * sizeof *acc);
    int ok = acc && (!need_h || plan_make(&ph, in->width, out_width) == 0) &&
             (!need_v || plan_make(&pv, in->height, out_height) == 0);
    if (ok && !need_v) {
        ok = pass_horizontal(out->pixels, in->pixels, in->width, in->height, out_width, &ph, acc) ==
             0;
    } else if (ok && !need_h) {
        pass_vertical(out->pixels, in->pixels, in->width, out_height, &pv, 0, acc);
    } else if (ok) {
        /* Only the rows the vertical pass reads go through the horizontal one, as in Pillow */
        int first = pv.bounds[0];
        int last = pv.bounds[2 * out_height - 2] + pv.bounds[2 * out_height - 1];
        tmp = malloc((size_t)out_width * (last - first) * 3);
        ok = tmp && pass_horizontal(tmp, in->pixels + (size_t)first * in->width * 3, in->width,
                                    last - first, out_width, &ph, acc) == 0;
        if (ok) pass_vertical(out->pixels, tmp, out_width, out_height, &pv, first, acc);
    }
    free(tmp);
    free(acc);
    plan_free(&ph);
    plan_free(&pv);
    if (ok) return 0;
oom:
    free(out->pixels);
    memset(out, 0, sizeof *out);
    snprintf(err, errlen, "%s: out of memory resizing to %dx%d", what, out_width, out_height);
    return -1;
}

int resize_shorter_side(const image_u8 *in, int short_side, image_u8 *out, const char *what,
                        char *err, size_t errlen) {
    int w, h;
    resize_output_size(in->width, in->height, short_side, &w, &h);
    return resize_bilinear(in, w, h, out, what, err, errlen);
}
