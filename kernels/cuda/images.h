/* Launcher of kernels/cuda/images.cu, callable from C: kernels.h's kn_images_to_batch once its
 * jobs are in device memory. */
#ifndef TLSWEEP_KERNELS_CUDA_IMAGES_H
#define TLSWEEP_KERNELS_CUDA_IMAGES_H

#include <stdint.h>

#include <cuda_runtime_api.h>

#include "kernels/kernels.h"

#ifdef __cplusplus
extern "C" {
#endif

/* out = the n jobs' images transformed, on stream: each image's contrast luma sum into sums
 * (n, device scratch, 8-byte aligned), then the batch. jobs are device memory; 1 <= n <= 65535
 * (the grid's y dimension). */
cudaError_t kn_cu_images_to_batch(cudaStream_t stream, float *out, uint64_t *sums,
                                  const uint8_t *store, const kn_image_job *jobs, int n, int crop);

#ifdef __cplusplus
}
#endif

#endif
