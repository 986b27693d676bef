/* The per-value arithmetic of the loader's image transform (worker/data/transform.c and
 * augment.c), defined once for the loader, the CPU backend and the CUDA kernels of
 * kn_images_to_batch, so that every backend gives transform_image's bits. Header-only on
 * purpose, like kernels/dropout_mask.h: the kernels must inline it.
 *
 * The float results hold only if no multiply and add are fused into an FMA: device code
 * rounds each operation itself (__fmul_rn, ...); C is compiled with -ffp-contract=off (the
 * Makefile), since gcc in a GNU mode and clang in any mode contract where the target has FMA. */
#ifndef TLSWEEP_KERNELS_IMAGE_OPS_H
#define TLSWEEP_KERNELS_IMAGE_OPS_H

#include <math.h>
#include <stdint.h>

#include "kernels/host_device.h"
#include "kernels/kernels.h"

/* ---- float operations rounded one by one ---------------------------------------------- */
static inline KN_HOST_DEVICE float kn_img_fmul(float a, float b) {
#ifdef __CUDA_ARCH__
    return __fmul_rn(a, b);
#else
    return a * b;
#endif
}
static inline KN_HOST_DEVICE float kn_img_fadd(float a, float b) {
#ifdef __CUDA_ARCH__
    return __fadd_rn(a, b);
#else
    return a + b;
#endif
}
static inline KN_HOST_DEVICE float kn_img_fsub(float a, float b) {
#ifdef __CUDA_ARCH__
    return __fsub_rn(a, b);
#else
    return a - b;
#endif
}
static inline KN_HOST_DEVICE float kn_img_fdiv(float a, float b) {
#ifdef __CUDA_ARCH__
    return __fdiv_rn(a, b); /* IEEE even under -prec-div=false or fast math */
#else
    return a / b;
#endif
}

/* ---- colour: PIL's ImageEnhance on uint8 values ---------------------------------------- */
/* Image.blend(degenerate, image, alpha) for one value: float math, clipped, truncated. */
static inline KN_HOST_DEVICE uint8_t kn_img_blend(int degenerate, int value, float alpha) {
    const float t = kn_img_fadd((float)degenerate, kn_img_fmul(alpha, (float)(value - degenerate)));
    if (t <= 0.0f) return 0;
    if (t >= 255.0f) return 255;
    return (uint8_t)t;
}

/* PIL's "L" conversion: ITU-R 601-2 luma in 16-bit fixed point, rounded. */
static inline KN_HOST_DEVICE int kn_img_luma(int r, int g, int b) {
    return (r * 19595 + g * 38470 + b * 7471 + 0x8000) >> 16;
}

/* ImageEnhance.Brightness: a blend with black. */
static inline KN_HOST_DEVICE uint8_t kn_img_brightness(int v, int use_brightness, float factor) {
    return use_brightness ? kn_img_blend(0, v, factor) : (uint8_t)v;
}

/* What the contrast op sees of value v: v itself when contrast comes first, else v after
 * brightness. Its mean is taken over the luma of this map of the whole image. */
static inline KN_HOST_DEVICE uint8_t kn_img_contrast_input(int v, int use_brightness,
                                                           float brightness, int contrast_first) {
    return contrast_first ? (uint8_t)v : kn_img_brightness(v, use_brightness, brightness);
}

/* ImageEnhance.Contrast's grey level: int(mean + 0.5) of the L image, from the exact sum. */
static inline KN_HOST_DEVICE int kn_img_contrast_mean(uint64_t luma_sum, uint64_t pixels) {
#ifdef __CUDA_ARCH__
    return (int)__dadd_rn(__ddiv_rn((double)luma_sum, (double)pixels), 0.5);
#else
    return (int)((double)luma_sum / (double)pixels + 0.5);
#endif
}

/* ColorJitter's brightness and contrast, in their drawn order, of one channel value; mean is
 * kn_img_contrast_mean over kn_img_contrast_input (unused without contrast). */
static inline KN_HOST_DEVICE uint8_t kn_img_color(int v, int use_brightness, float brightness,
                                                  int use_contrast, float contrast,
                                                  int contrast_first, int mean) {
    if (!use_contrast) return kn_img_brightness(v, use_brightness, brightness);
    if (contrast_first)
        return kn_img_brightness(kn_img_blend(mean, v, contrast), use_brightness, brightness);
    return kn_img_blend(mean, kn_img_brightness(v, use_brightness, brightness), contrast);
}

/* ToTensor's v / 255 then Normalize with ImageNet's mean and std, in float32 as torch. */
static inline KN_HOST_DEVICE float kn_img_normalize(int v, int c) {
    const float mean = c == 0 ? 0.485f : c == 1 ? 0.456f : 0.406f;
    const float std = c == 0 ? 0.229f : c == 1 ? 0.224f : 0.225f;
    return kn_img_fdiv(kn_img_fsub(kn_img_fdiv((float)v, 255.0f), mean), std);
}

/* ---- geometry: Pillow's nearest-neighbour affine (Image.transform, AFFINE) -------------- *
 * m is the inverse matrix (input = m * output pixel centre). Pillow samples in 16.16 fixed
 * point when the image's four corners map into its range, else with a float loop. */

/* Pillow's check_fixed: whether corner (x, y) maps into the 16.16 fixed-point range. Host. */
static inline int kn_img_affine_fits_fixed(const double m[6], int x, int y) {
    return fabs(x * m[0] + y * m[1] + m[2]) < 32768.0 && fabs(x * m[3] + y * m[4] + m[5]) < 32768.0;
}

/* Pillow's FIX: 16.16 fixed point, rounded (its FLOOR of v * 65536 + 0.5). Host. */
static inline int64_t kn_img_fix16(double v) {
    return (int64_t)floor(v * 65536.0 + 0.5);
}

/* Pillow's affine_fixed coefficients a0..a5 of m for a width x height image (the job's
 * fixed[]); returns 1 when Pillow samples this image in fixed point, 0 when it takes the float
 * loop (a[] is then still filled, and unused). Host. */
static inline int kn_img_affine_fixed_coeffs(int64_t a[6], const double m[6], int width,
                                             int height) {
    a[0] = kn_img_fix16(m[0]);
    a[1] = kn_img_fix16(m[1]);
    a[2] = kn_img_fix16(m[2] + m[0] * 0.5 + m[1] * 0.5);
    a[3] = kn_img_fix16(m[3]);
    a[4] = kn_img_fix16(m[4]);
    a[5] = kn_img_fix16(m[5] + m[3] * 0.5 + m[4] * 0.5);
    return kn_img_affine_fits_fixed(m, 0, 0) && kn_img_affine_fits_fixed(m, width, height) &&
           kn_img_affine_fits_fixed(m, 0, height) && kn_img_affine_fits_fixed(m, width, 0);
}

/* >> 16 of a 16.16 value, flooring a negative one as the arithmetic shift Pillow relies on */
static inline KN_HOST_DEVICE int kn_img_fixed_floor(int64_t v) {
    return (int)(v >= 0 ? v >> 16 : -((-v + 65535) >> 16));
}

/* The source pixel of output pixel (x, y) in fixed point: Pillow's running sums are integers,
 * so this closed form is exact. */
static inline KN_HOST_DEVICE void kn_img_affine_fixed_source(int *src_x, int *src_y,
                                                             const int64_t a[6], int x, int y) {
    *src_x = kn_img_fixed_floor(a[2] + a[1] * y + a[0] * x);
    *src_y = kn_img_fixed_floor(a[5] + a[4] * y + a[3] * x);
}

/* Pillow's float loop keeps double running sums from (0, 0), rounded at every step, so no
 * closed form gives its bits: the start of row y, then one step per pixel to the right. (The
 * products by 0.5 are exact, so an FMA there rounds the same.) */
static inline KN_HOST_DEVICE void kn_img_affine_float_row(double *xx, double *yy, const double m[6],
                                                          int y) {
    double xo = m[2] + m[1] * 0.5 + m[0] * 0.5, yo = m[5] + m[4] * 0.5 + m[3] * 0.5;
    for (int r = 0; r < y; r++) {
        xo += m[1];
        yo += m[4];
    }
    *xx = xo;
    *yy = yo;
}
static inline KN_HOST_DEVICE void kn_img_affine_float_step(double *xx, double *yy,
                                                           const double m[6]) {
    *xx += m[0];
    *yy += m[3];
}
/* Pillow's COORD: a negative coordinate is outside (-1), else truncated. */
static inline KN_HOST_DEVICE int kn_img_affine_float_index(double v) {
    return v < 0.0 ? -1 : (int)v;
}
/* The float loop's source pixel of output pixel (x, y) alone: O(x + y) steps, for the few
 * images too large for fixed point (a corner beyond 32768 pixels). */
static inline KN_HOST_DEVICE void kn_img_affine_float_source(int *src_x, int *src_y,
                                                             const double m[6], int x, int y) {
    double xx, yy;
    kn_img_affine_float_row(&xx, &yy, m, y);
    for (int i = 0; i < x; i++)
        kn_img_affine_float_step(&xx, &yy, m);
    *src_x = kn_img_affine_float_index(xx);
    *src_y = kn_img_affine_float_index(yy);
}

/* ---- one image job (kernels.h's kn_image_job) ------------------------------------------- */
/* The colour map of value v (identity without augmentation); mean as for kn_img_color. */
static inline KN_HOST_DEVICE uint8_t kn_img_job_color(const kn_image_job *j, int v, int mean) {
    if (!j->augment) return (uint8_t)v;
    return kn_img_color(v, j->use_brightness, j->brightness_factor, j->use_contrast,
                        j->contrast_factor, j->contrast_first, mean);
}

/* The pixel of the cached image that output pixel (x, y) of the crop window reads: the affine
 * samples the flipped image at the crop's image coordinates, and the flip mirrors that
 * sample's x. Returns 0 when it falls outside the image (the fill, black after the colour
 * ops: the normalised 0, not mapped). */
static inline KN_HOST_DEVICE int kn_img_job_source(int *src_x, int *src_y, const kn_image_job *j,
                                                   int x, int y) {
    int sx = j->left + x, sy = j->top + y;
    if (j->augment && j->use_affine) {
        const int ix = sx, iy = sy;
        if (j->affine_fixed)
            kn_img_affine_fixed_source(&sx, &sy, j->fixed, ix, iy);
        else
            kn_img_affine_float_source(&sx, &sy, j->m, ix, iy);
        if (sx < 0 || sx >= j->width || sy < 0 || sy >= j->height) return 0;
    }
    *src_x = j->augment && j->hflip ? j->width - 1 - sx : sx;
    *src_y = sy;
    return 1;
}

/* ---- one image's crop on the host (transform_image, the CPU backend) -------------------- */
/* value[c][v]: what cached value v of channel c becomes, the job's colour map then ToTensor and
 * Normalize. */
typedef struct {
    float value[3][256];
} kn_img_table;

/* The job's table. The contrast grey level is taken over every pixel of the image (not only
 * the crop), as PIL takes it; the integer sum is exact. Host. */
static inline void kn_img_job_table(kn_img_table *t, const uint8_t *pixels, const kn_image_job *j) {
    int mean = 0;
    if (j->augment && j->use_contrast) {
        uint8_t seen[256];
        for (int v = 0; v < 256; v++)
            seen[v] = kn_img_contrast_input(v, j->use_brightness, j->brightness_factor,
                                            j->contrast_first);
        const size_t count = (size_t)j->width * j->height;
        uint64_t sum = 0;
        for (size_t i = 0; i < count; i++) {
            const uint8_t *s = pixels + 3 * i;
            sum += (uint64_t)kn_img_luma(seen[s[0]], seen[s[1]], seen[s[2]]);
        }
        mean = kn_img_contrast_mean(sum, count);
    }
    for (int v = 0; v < 256; v++) {
        const uint8_t mapped = kn_img_job_color(j, v, mean);
        for (int c = 0; c < 3; c++)
            t->value[c][v] = kn_img_normalize(mapped, c);
    }
}

/* Row y of the job's crop, (crop, 3) values into out, from the job's table. Pillow's
 * float loop runs along the row here (one step a pixel) rather than from (0, 0) for each pixel
 * as kn_img_job_source must. Host. */
static inline void kn_img_job_row(float *out, const uint8_t *pixels, const kn_image_job *j,
                                  const kn_img_table *t, int y, int crop) {
    const float fill[3] = {kn_img_normalize(0, 0), kn_img_normalize(0, 1), kn_img_normalize(0, 2)};
    const int float_loop = j->augment && j->use_affine && !j->affine_fixed;
    double xx = 0.0, yy = 0.0;
    if (float_loop) {
        kn_img_affine_float_row(&xx, &yy, j->m, j->top + y);
        for (int i = 0; i < j->left; i++)
            kn_img_affine_float_step(&xx, &yy, j->m);
    }
    for (int x = 0; x < crop; x++, out += 3) {
        int sx, sy, inside;
        if (float_loop) {
            sx = kn_img_affine_float_index(xx);
            sy = kn_img_affine_float_index(yy);
            kn_img_affine_float_step(&xx, &yy, j->m);
            inside = sx >= 0 && sx < j->width && sy >= 0 && sy < j->height;
            if (inside && j->hflip) sx = j->width - 1 - sx;
        } else {
            inside = kn_img_job_source(&sx, &sy, j, x, y);
        }
        if (!inside) {
            out[0] = fill[0], out[1] = fill[1], out[2] = fill[2];
            continue;
        }
        const uint8_t *s = pixels + ((size_t)sy * j->width + sx) * 3;
        out[0] = t->value[0][s[0]];
        out[1] = t->value[1][s[1]];
        out[2] = t->value[2][s[2]];
    }
}

#endif
