/* The fused per-image pipeline. Colour ops are per-value maps, so flip + ColorJitter become a
 * 256-entry table and the affine a source-pixel lookup; only the crop window is computed. */
#include "worker/data/transform.h"

#include <string.h>

#include "kernels/image_ops.h"

int transform_crop_offset(int size, int crop) {
    int diff = size - crop, half = diff / 2;
    /* diff odd: (diff / 2.0) ends in .5, and Python's round() goes to the even neighbour. */
    if (diff % 2 != 0 && half % 2 != 0) half += 1;
    return half;
}

void transform_image(float *out, const image_u8 *in, const augment_params *aug, int crop) {
    int w = in->width, h = in->height;
    int top = transform_crop_offset(h, crop), left = transform_crop_offset(w, crop);
    /* table[c][v]: the colour map, ToTensor and Normalize of value v in channel c */
    float table[3][256];
    uint8_t lut[256];
    for (int v = 0; v < 256; v++)
        lut[v] = (uint8_t)v;
    if (aug) augment_color_lut(lut, aug, in);
    for (int c = 0; c < 3; c++)
        for (int v = 0; v < 256; v++)
            table[c][v] = kn_img_normalize(lut[v], c);
    const float fill[3] = {kn_img_normalize(0, 0), kn_img_normalize(0, 1), kn_img_normalize(0, 2)};
    int flip = aug && aug->hflip;

    if (!aug || !aug->use_affine) {
        for (int y = 0; y < crop; y++) {
            const uint8_t *row = in->pixels + (size_t)(top + y) * w * 3;
            float *o = out + (size_t)y * crop * 3;
            for (int x = 0; x < crop; x++) {
                int sx = flip ? w - 1 - (left + x) : left + x;
                const uint8_t *s = row + (size_t)sx * 3;
                o[3 * x] = table[0][s[0]];
                o[3 * x + 1] = table[1][s[1]];
                o[3 * x + 2] = table[2][s[2]];
            }
        }
        return;
    }
    /* The affine samples the flipped, colour-mapped image; fill (0) comes after the colour
     * ops, so it is normalised black, not mapped. */
    enum { CHUNK = 256 };
    double m[6];
    int src_x[CHUNK], src_y[CHUNK];
    augment_affine_matrix(m, aug->angle_deg, aug->shear_deg, w, h);
    for (int y = 0; y < crop; y++)
        for (int x0 = 0; x0 < crop; x0 += CHUNK) {
            int count = crop - x0 < CHUNK ? crop - x0 : CHUNK;
            augment_affine_row(src_x, src_y, m, w, h, top + y, left + x0, count);
            float *o = out + ((size_t)y * crop + x0) * 3;
            for (int x = 0; x < count; x++) {
                int xin = src_x[x], yin = src_y[x];
                if (xin < 0 || xin >= w || yin < 0 || yin >= h) {
                    memcpy(o + 3 * x, fill, sizeof fill);
                    continue;
                }
                int sx = flip ? w - 1 - xin : xin;
                const uint8_t *s = in->pixels + ((size_t)yin * w + sx) * 3;
                o[3 * x] = table[0][s[0]];
                o[3 * x + 1] = table[1][s[1]];
                o[3 * x + 2] = table[2][s[2]];
            }
        }
}

void transform_job(kn_image_job *job, uint64_t offset, int width, int height,
                   const augment_params *aug, int crop) {
    memset(job, 0, sizeof *job);
    job->offset = offset;
    job->width = width;
    job->height = height;
    job->top = transform_crop_offset(height, crop);
    job->left = transform_crop_offset(width, crop);
    if (!aug) return;
    job->augment = 1;
    job->hflip = aug->hflip;
    job->use_brightness = aug->use_brightness;
    job->use_contrast = aug->use_contrast;
    job->contrast_first = aug->contrast_first;
    job->brightness_factor = aug->brightness_factor;
    job->contrast_factor = aug->contrast_factor;
    job->use_affine = aug->use_affine;
    if (!aug->use_affine) return;
    augment_affine_matrix(job->m, aug->angle_deg, aug->shear_deg, width, height);
    job->affine_fixed = kn_img_affine_fixed_coeffs(job->fixed, job->m, width, height);
}
