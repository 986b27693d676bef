/* Augmentation parameters and the op-by-op reference, following torchvision 0.14's PIL path
 * (functional_pil.py) and Pillow's ImageEnhance / Image.transform semantics. */
#include "worker/data/augment.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/image_ops.h"
#include "worker/rng.h"

void augment_draw(augment_params *p, const augment_options *o, uint64_t seed, uint64_t epoch,
                  uint64_t position) {
    rng_stream r = rng_stream_for(seed, epoch, position, RNG_AUGMENT);
    memset(p, 0, sizeof *p);
    /* Every draw is taken whether used or not, so each parameter's stream position is fixed. */
    p->hflip = rng_uniform(&r, 0, 1) < o->hflip_p;
    p->contrast_first = rng_uniform(&r, 0, 1) < 0.5;
    double b = rng_uniform(&r, fmax(0.0, 1.0 - o->brightness), 1.0 + o->brightness);
    double c = rng_uniform(&r, fmax(0.0, 1.0 - o->contrast), 1.0 + o->contrast);
    double angle = rng_uniform(&r, -o->rotate_deg, o->rotate_deg);
    double shear = rng_uniform(&r, -o->shear_deg, o->shear_deg);
    p->use_brightness = o->brightness > 0;
    p->use_contrast = o->contrast > 0;
    p->brightness_factor = (float)b;
    p->contrast_factor = (float)c;
    p->use_affine = o->rotate_deg > 0 || o->shear_deg > 0;
    p->angle_deg = o->rotate_deg > 0 ? angle : 0.0;
    p->shear_deg = o->shear_deg > 0 ? shear : 0.0;
}

void augment_affine_matrix(double m[6], double angle_deg, double shear_deg, int width, int height) {
    /* torchvision's _get_inverse_affine_matrix with shear y = 0, translate 0 and scale 1, in
     * its order of operations (so the doubles Pillow gets are the same bits); the dropped
     * terms (/ scale, - tx, sy) are exact no-ops. */
    double rot = angle_deg * (M_PI / 180.0), sx = shear_deg * (M_PI / 180.0);
    double cx = width * 0.5, cy = height * 0.5;
    double a = cos(rot) / cos(0.0);
    double b = -cos(rot) * tan(sx) / cos(0.0) - sin(rot);
    double c = sin(rot) / cos(0.0);
    double d = -sin(rot) * tan(sx) / cos(0.0) + cos(rot);
    m[0] = d;
    m[1] = -b;
    m[3] = -c;
    m[4] = a;
    m[2] = 0.0 + (m[0] * -cx + m[1] * -cy) + cx;
    m[5] = 0.0 + (m[3] * -cx + m[4] * -cy) + cy;
}

void augment_affine_row(int *src_x, int *src_y, const double m[6], int width, int height, int y,
                        int x_begin, int count) {
    int64_t a[6];
    if (kn_img_affine_fixed_coeffs(a, m, width, height)) {
        for (int i = 0; i < count; i++)
            kn_img_affine_fixed_source(&src_x[i], &src_y[i], a, x_begin + i, y);
        return;
    }
    /* the float loop (huge images only): one row's running sums, stepped along it */
    double xx, yy;
    kn_img_affine_float_row(&xx, &yy, m, y);
    for (int x = 0; x < x_begin + count; x++, kn_img_affine_float_step(&xx, &yy, m)) {
        if (x < x_begin) continue;
        src_x[x - x_begin] = kn_img_affine_float_index(xx);
        src_y[x - x_begin] = kn_img_affine_float_index(yy);
    }
}

/* ImageEnhance.Contrast's grey level, computed on the image as MAP leaves it. */
static int contrast_mean(const image_u8 *in, const uint8_t map[256]) {
    uint64_t sum = 0;
    size_t n = (size_t)in->width * in->height;
    for (size_t i = 0; i < n; i++) {
        const uint8_t *s = in->pixels + 3 * i;
        sum += (uint64_t)kn_img_luma(map[s[0]], map[s[1]], map[s[2]]);
    }
    return kn_img_contrast_mean(sum, n);
}

static void apply_lut(image_u8 *img, const uint8_t lut[256]) {
    size_t n = (size_t)img->width * img->height * 3;
    for (size_t i = 0; i < n; i++)
        img->pixels[i] = lut[img->pixels[i]];
}

int augment_reference(image_u8 *out, const image_u8 *in, const augment_params *p) {
    int w = in->width, h = in->height;
    size_t n = (size_t)w * h * 3;
    /* 1. flip, into OUT */
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            memcpy(out->pixels + ((size_t)y * w + x) * 3,
                   in->pixels + ((size_t)y * w + (p->hflip ? w - 1 - x : x)) * 3, 3);
    /* 2. colour: each op on the whole image, the mean recomputed on what the op sees */
    uint8_t identity[256], lut[256];
    for (int v = 0; v < 256; v++)
        identity[v] = (uint8_t)v;
    for (int step = 0; step < 2; step++) {
        int contrast_step = p->contrast_first ? step == 0 : step == 1;
        if (contrast_step && p->use_contrast) {
            int mean = contrast_mean(out, identity);
            for (int v = 0; v < 256; v++)
                lut[v] = kn_img_blend(mean, v, p->contrast_factor);
            apply_lut(out, lut);
        } else if (!contrast_step && p->use_brightness) {
            for (int v = 0; v < 256; v++)
                lut[v] = kn_img_blend(0, v, p->brightness_factor);
            apply_lut(out, lut);
        }
    }
    if (!p->use_affine) return 0;
    /* 3. affine, reading the pre-affine image, so that is saved first; fill 0 */
    uint8_t *saved = malloc(n);
    int *sx = malloc((size_t)w * sizeof *sx), *sy = malloc((size_t)w * sizeof *sy);
    if (!saved || !sx || !sy) {
        free(saved);
        free(sx);
        free(sy);
        return -1;
    }
    memcpy(saved, out->pixels, n);
    double m[6];
    augment_affine_matrix(m, p->angle_deg, p->shear_deg, w, h);
    for (int y = 0; y < h; y++) {
        augment_affine_row(sx, sy, m, w, h, y, 0, w);
        for (int x = 0; x < w; x++) {
            uint8_t *o = out->pixels + ((size_t)y * w + x) * 3;
            if (sx[x] >= 0 && sx[x] < w && sy[x] >= 0 && sy[x] < h)
                memcpy(o, saved + ((size_t)sy[x] * w + sx[x]) * 3, 3);
            else
                memset(o, 0, 3);
        }
    }
    free(sx);
    free(sy);
    free(saved);
    return 0;
}
