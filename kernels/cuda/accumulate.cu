// Running loss/accuracy totals on the device: one batch's cross-entropy rows (from ops.cu's
// cross_entropy kernel) are added without a round trip to the host.
#include "kernels/cuda/accumulate.h"

namespace {

// One thread walks the batch in sample order (a batch is tens to hundreds of rows): the sum
// is kn_cuda_cross_entropy's, in double, and the mean is rounded to float before it is scaled
// back, as the trainer summed (double)mean * n when it read every batch's loss.
__global__ void totals_add(kn_totals *totals, const kn_cu_ce_row *rows, int n, int64_t step,
                           const int64_t *step_from) {
    if (step_from) step = *step_from; // a graph step's: it changes every replay
    double sum = 0.0;
    long long hits = 0, bad = 0;
    for (int i = 0; i < n; i++) {
        sum += rows[i].loss;
        hits += rows[i].hit;
        bad += rows[i].bad_label;
    }
    const float mean = (float)(sum / n);
    totals->loss_sum += (double)mean * n;
    totals->correct += hits;
    totals->bad_labels += bad;
    if (!isfinite(mean) && totals->diverged_at == 0) {
        totals->diverged_at = step;
        totals->diverged_loss = mean;
    }
}

} // namespace

extern "C" cudaError_t kn_cu_totals_add(cudaStream_t stream, kn_totals *totals,
                                        const kn_cu_ce_row *rows, int n, int64_t step,
                                        const int64_t *step_from) {
    totals_add<<<1, 1, 0, stream>>>(totals, rows, n, step, step_from);
    return cudaGetLastError();
}
