// kn_images_to_batch on the GPU: the loader's transform (worker/data/transform.c) of cached
// uint8 images in device memory, with the loader's own per-value functions
// (kernels/image_ops.h), so a batch is transform_image's bit for bit. Two launches: each
// image's contrast sum (a reduction over the whole image, by several blocks), then the crop
// windows, each block holding its image's colour map and normalisation as one table in shared
// memory.
#include "kernels/cuda/images.h"

#include "kernels/image_ops.h"

namespace {

constexpr int kThreads = 256;          // one thread per value of the 256-entry tables
constexpr int kBlocksPerImage = 64;    // enough to fill the GPU at batch 16, few table builds
constexpr int kSumBlocksPerImage = 16; // a small batch's whole images are still read widely

// blockIdx.y is the image; its blocks stride over all its pixels, each adding the luma of what
// the contrast op sees to the image's sum (zeroed before): integers, exact in any order.
// Nothing where there is no contrast op.
__global__ void contrast_sums(unsigned long long *sums, const uint8_t *store,
                              const kn_image_job *jobs) {
    const kn_image_job j = jobs[blockIdx.y];
    if (!j.augment || !j.use_contrast) return; // the whole block: j is the block's
    __shared__ uint8_t seen[kThreads];
    __shared__ unsigned long long partial[kThreads];
    seen[threadIdx.x] =
        kn_img_contrast_input(threadIdx.x, j.use_brightness, j.brightness_factor, j.contrast_first);
    __syncthreads();
    const uint8_t *pixels = store + j.offset;
    const size_t count = (size_t)j.width * j.height;
    unsigned long long sum = 0;
    for (size_t i = (size_t)blockIdx.x * kThreads + threadIdx.x; i < count;
         i += (size_t)gridDim.x * kThreads) {
        const uint8_t *s = pixels + 3 * i;
        sum += kn_img_luma(seen[s[0]], seen[s[1]], seen[s[2]]);
    }
    partial[threadIdx.x] = sum;
    __syncthreads();
    for (int half = kThreads / 2; half > 0; half /= 2) {
        if (threadIdx.x < half) partial[threadIdx.x] += partial[threadIdx.x + half];
        __syncthreads();
    }
    if (threadIdx.x == 0 && partial[0]) atomicAdd(&sums[blockIdx.y], partial[0]);
}

// blockIdx.y is the image; its blocks stride over the crop window's values, one thread per
// output value so that the writes coalesce (the byte reads are gathers either way).
__global__ void images_to_batch(float *out, const uint8_t *store, const kn_image_job *jobs,
                                const unsigned long long *sums, int crop) {
    const kn_image_job j = jobs[blockIdx.y];
    __shared__ float table[3][kThreads];
    const int mean = j.augment && j.use_contrast
                         ? kn_img_contrast_mean(sums[blockIdx.y], (uint64_t)j.width * j.height)
                         : 0;
    const uint8_t mapped = kn_img_job_color(&j, threadIdx.x, mean);
    for (int c = 0; c < 3; c++)
        table[c][threadIdx.x] = kn_img_normalize(mapped, c);
    __syncthreads();
    const uint8_t *pixels = store + j.offset;
    const size_t count = (size_t)crop * crop * 3;
    float *o = out + blockIdx.y * count;
    for (size_t i = (size_t)blockIdx.x * kThreads + threadIdx.x; i < count;
         i += (size_t)gridDim.x * kThreads) {
        const int c = (int)(i % 3);
        const int x = (int)(i / 3 % crop), y = (int)(i / 3 / crop);
        int sx, sy;
        o[i] = kn_img_job_source(&sx, &sy, &j, x, y)
                   ? table[c][pixels[((size_t)sy * j.width + sx) * 3 + c]]
                   : kn_img_normalize(0, c);
    }
}

} // namespace

extern "C" cudaError_t kn_cu_images_to_batch(cudaStream_t stream, float *out, uint64_t *sums,
                                             const uint8_t *store, const kn_image_job *jobs, int n,
                                             int crop) {
    static_assert(sizeof(uint64_t) == sizeof(unsigned long long), "atomicAdd's sums");
    unsigned long long *const image_sums = reinterpret_cast<unsigned long long *>(sums);
    cudaError_t st = cudaMemsetAsync(image_sums, 0, (size_t)n * sizeof *image_sums, stream);
    if (st != cudaSuccess) return st;
    contrast_sums<<<dim3(kSumBlocksPerImage, (unsigned)n), kThreads, 0, stream>>>(image_sums, store,
                                                                                  jobs);
    st = cudaGetLastError();
    if (st != cudaSuccess) return st;
    const size_t count = (size_t)crop * crop * 3;
    size_t blocks = (count + kThreads - 1) / kThreads;
    if (blocks > kBlocksPerImage) blocks = kBlocksPerImage;
    images_to_batch<<<dim3((unsigned)blocks, (unsigned)n), kThreads, 0, stream>>>(out, store, jobs,
                                                                                  image_sums, crop);
    return cudaGetLastError();
}
