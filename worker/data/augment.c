/* Augmentation parameters and the op-by-op reference, following torchvision 0.14's PIL path
 * (functional_pil.py) and Pillow's ImageEnhance / Image.transform semantics. */
#include "worker/data/augment.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

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

/* Pillow's check_fixed: whether a corner maps into the 16.16 fixed-point range. */
static int fits_fixed(const double m[6], int x, int y) {
    return fabs(x * m[0] + y * m[1] + m[2]) < 32768.0 && fabs(x * m[3] + y * m[4] + m[5]) < 32768.0;
}

/* Pillow's FIX: 16.16 fixed point, rounded (its FLOOR of v * 65536 + 0.5). */
static int64_t fix16(double v) {
    return (int64_t)floor(v * 65536.0 + 0.5);
}

void augment_affine_row(int *src_x, int *src_y, const double m[6], int width, int height, int y,
                        int x_begin, int count) {
    if (fits_fixed(m, 0, 0) && fits_fixed(m, width, height) && fits_fixed(m, 0, height) &&
        fits_fixed(m, width, 0)) {
        /* Pillow's affine_fixed: integer running sums, so closed forms are exact */
        int64_t a0 = fix16(m[0]), a1 = fix16(m[1]), a3 = fix16(m[3]), a4 = fix16(m[4]);
        int64_t a2 = fix16(m[2] + m[0] * 0.5 + m[1] * 0.5);
        int64_t a5 = fix16(m[5] + m[3] * 0.5 + m[4] * 0.5);
        for (int i = 0; i < count; i++) {
            int64_t x = x_begin + i;
            /* >> 16 of a negative value floors, as the arithmetic shift Pillow relies on */
            int64_t xx = a2 + a1 * y + a0 * x, yy = a5 + a4 * y + a3 * x;
            src_x[i] = (int)(xx >= 0 ? xx >> 16 : -((-xx + 65535) >> 16));
            src_y[i] = (int)(yy >= 0 ? yy >> 16 : -((-yy + 65535) >> 16));
        }
        return;
    }
    /* Pillow's floating-point loop (huge images only): double running sums from (0, 0) */
    double xo = m[2] + m[1] * 0.5 + m[0] * 0.5, yo = m[5] + m[4] * 0.5 + m[3] * 0.5;
    for (int r = 0; r < y; r++) {
        xo += m[1];
        yo += m[4];
    }
    double xx = xo, yy = yo;
    for (int x = 0; x < x_begin + count; x++, xx += m[0], yy += m[3]) {
        if (x < x_begin) continue;
        src_x[x - x_begin] = xx < 0.0 ? -1 : (int)xx;
        src_y[x - x_begin] = yy < 0.0 ? -1 : (int)yy;
    }
}

/* Pillow's Image.blend(degenerate, image, alpha) for one value: float math, clipped,
 * truncated. */
static uint8_t blend(int degenerate, int value, float alpha) {
    float t = (float)degenerate + alpha * (float)(value - degenerate);
    if (t <= 0.0f) return 0;
    if (t >= 255.0f) return 255;
    return (uint8_t)t;
}

/* PIL "L" conversion (ITU-R 601-2 luma in 16-bit fixed point, rounded). */
static int luma(const uint8_t *rgb) {
    return (rgb[0] * 19595 + rgb[1] * 38470 + rgb[2] * 7471 + 0x8000) >> 16;
}

/* ImageEnhance.Contrast's grey level: int(mean of the L image + 0.5), computed on the image
 * as MAP leaves it. */
static int contrast_mean(const image_u8 *in, const uint8_t map[256]) {
    uint64_t sum = 0;
    size_t n = (size_t)in->width * in->height;
    for (size_t i = 0; i < n; i++) {
        const uint8_t *s = in->pixels + 3 * i;
        uint8_t px[3] = {map[s[0]], map[s[1]], map[s[2]]};
        sum += (uint64_t)luma(px);
    }
    return (int)((double)sum / (double)n + 0.5);
}

void augment_color_lut(uint8_t lut[256], const augment_params *p, const image_u8 *in) {
    uint8_t bright[256];
    for (int v = 0; v < 256; v++) {
        bright[v] = p->use_brightness ? blend(0, v, p->brightness_factor) : (uint8_t)v;
        lut[v] = (uint8_t)v;
    }
    if (!p->use_contrast) {
        memcpy(lut, bright, 256);
        return;
    }
    /* The contrast mean is taken on the image the contrast op sees. */
    int mean = contrast_mean(in, p->contrast_first ? lut : bright);
    for (int v = 0; v < 256; v++) {
        if (p->contrast_first) {
            lut[v] = bright[blend(mean, v, p->contrast_factor)];
        } else {
            lut[v] = blend(mean, bright[v], p->contrast_factor);
        }
    }
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
                lut[v] = blend(mean, v, p->contrast_factor);
            apply_lut(out, lut);
        } else if (!contrast_step && p->use_brightness) {
            for (int v = 0; v < 256; v++)
                lut[v] = blend(0, v, p->brightness_factor);
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
