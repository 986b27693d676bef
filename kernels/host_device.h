/* KN_HOST_DEVICE marks the small inline functions that the C code and the CUDA kernels share
 * (kernels/dropout_mask.h, kernels/image_ops.h): nvcc compiles them for both sides, gcc sees
 * plain C. */
#ifndef TLSWEEP_KERNELS_HOST_DEVICE_H
#define TLSWEEP_KERNELS_HOST_DEVICE_H

#ifdef __CUDACC__
#define KN_HOST_DEVICE __host__ __device__
#else
#define KN_HOST_DEVICE
#endif

#endif
