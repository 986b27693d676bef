/* The fused per-image pipeline. Colour ops are per-value maps, so flip + ColorJitter become a
 * 256-entry table and the affine a source-pixel lookup; only the crop window is computed. The
 * image is described as a kn_image_job and run by kernels/image_ops.h, the code the CPU
 * backend's kn_images_to_batch runs too. */
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
    kn_image_job job;
    transform_job(&job, 0, in->width, in->height, aug, crop);
    kn_img_table table;
    kn_img_job_table(&table, in->pixels, &job);
    for (int y = 0; y < crop; y++)
        kn_img_job_row(out + (size_t)y * crop * 3, in->pixels, &job, &table, y, crop);
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
