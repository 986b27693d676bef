/* Launcher of kernels/cuda/accumulate.cu, callable from C: a batch's cross-entropy rows
 * added to running totals on the device, so the trainer reads them once per epoch. */
#ifndef TLSWEEP_KERNELS_CUDA_ACCUMULATE_H
#define TLSWEEP_KERNELS_CUDA_ACCUMULATE_H

#include <stdint.h>

#include <cuda_runtime_api.h>

#include "kernels/cuda/ops.h"
#include "kernels/kernels.h"

#ifdef __cplusplus
extern "C" {
#endif

/* totals += the n rows (kernels.h's kn_cross_entropy_accumulate), on stream. step_from: NULL,
 * or device memory holding the step (a graph step's), read in place of step. */
cudaError_t kn_cu_totals_add(cudaStream_t stream, kn_totals *totals, const kn_cu_ce_row *rows,
                             int n, int64_t step, const int64_t *step_from);

#ifdef __cplusplus
}
#endif

#endif
