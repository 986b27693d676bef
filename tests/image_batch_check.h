/* The check of kn_images_to_batch that both backends' tests run (tests/unit/test_image_batch.c
 * on the CPU, tests/gpu/test_cuda_ops.c on CUDA): synthetic cached images of odd, exact-crop
 * and very wide sizes, many drawn augmentations (the seed's options, stronger ones and each op
 * off) and the eval transform, every output image compared byte for byte with
 * transform_image's. */
#ifndef TLSWEEP_TESTS_IMAGE_BATCH_CHECK_H
#define TLSWEEP_TESTS_IMAGE_BATCH_CHECK_H

#include <stdint.h>

#include "kernels/kernels.h"

/* Runs the check on CTX: every differing image, and every failed call, fails the current
 * case (with where and how it differs). Several batches are queued before any is read, so on
 * an asynchronous backend a later call must not disturb an earlier one's jobs. */
void image_batch_check(kn_ctx *ctx);

/* The same at a real run's sizes: a batch of 256 augmented images of the sizes Flowers102's
 * cache holds (shorter side 256, some much longer) cut to 224, so that every strided loop of a
 * backend runs many rounds, with the store placed `far` bytes into its buffer (beyond 4 GiB
 * on a GPU: a 32-bit offset or product would show). Prints the batch's time (of a second
 * call, after any first-use growth). */
void image_batch_check_full_size(kn_ctx *ctx, uint64_t far);

/* transform_image itself against the op-by-op reference (augment_reference: PIL's order, the
 * affine by augment_affine_row), cropped and normalised, byte for byte, on the check's images
 * and option sets: the one check of the fused path on Pillow's float loop (the very wide
 * image), which test_data's comparison with torchvision does not reach. Host only. */
void image_batch_check_reference(void);

#endif
