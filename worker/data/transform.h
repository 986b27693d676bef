/* From a cached (resized) uint8 image to one network input: optional augmentation, centre
 * crop (torchvision's offsets), scale to [0, 1] and ImageNet normalisation, fused into one
 * pass over the crop window. */
#ifndef TLSWEEP_TRANSFORM_H
#define TLSWEEP_TRANSFORM_H

#include <stdint.h>

#include "kernels/kernels.h"
#include "worker/data/augment.h"
#include "worker/data/image.h"

/* torchvision CenterCrop's offset: int(round((size - crop) / 2.0)), Python rounding (half to
 * even). */
int transform_crop_offset(int size, int crop);

/* OUT = normalize(center_crop(augment(IN))) as float32 (crop, crop, 3). AUG NULL: eval, no
 * augmentation. IN must be at least CROP on both sides. */
void transform_image(float *out, const image_u8 *in, const augment_params *aug, int crop);

/* The job that makes a backend's kn_images_to_batch compute transform_image(IN, AUG, CROP)
 * for an image of WIDTH x HEIGHT cached at byte OFFSET of the store: crop offsets, AUG's
 * parameters (NULL: eval) and Pillow's affine coefficients in the form it samples with. */
void transform_job(kn_image_job *job, uint64_t offset, int width, int height,
                   const augment_params *aug, int crop);

#endif
