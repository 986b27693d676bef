/* Softmax cross-entropy (mean over the batch) with accuracy, as PyTorch's CrossEntropyLoss. */
#include "kernels/cpu/cpu_internal.h"

#include <math.h>

int kn_cpu_cross_entropy(kn_cpu_ctx *ctx,
                         float *dlogits,        // (N, C) or NULL
                         float *loss,           // host scalar
                         int *correct,          // host scalar
                         const float *logits,   // (N, C)
                         const int32_t *labels, // (N), 0 <= label < C
                         int n, int c) {
    const char *what = "cross entropy";
    if (!loss || !correct || !logits || !labels) return kn_fail(ctx, what, "NULL argument");
    if (n <= 0 || c <= 0) return kn_fail(ctx, what, "sizes must be positive (N %d, C %d)", n, c);
    for (int i = 0; i < n; i++)
        if (labels[i] < 0 || labels[i] >= c)
            return kn_fail(ctx, what, "label %d of sample %d is outside [0, %d)", labels[i], i, c);
    double total = 0.0;
    int hits = 0;
    const float inv_n = 1.0f / (float)n;
#pragma omp parallel for num_threads(ctx->threads) reduction(+ : total, hits) schedule(static) if ((int64_t)n * c > 65536)
    for (int i = 0; i < n; i++) {
        const float *row = logits + (size_t)i * c;
        int best = 0; /* strict > keeps the first maximum, as torch.argmax */
        for (int j = 1; j < c; j++)
            if (row[j] > row[best]) best = j;
        const float mx = row[best];
        double sum = 0.0; /* shifted by the max so exp never overflows */
        for (int j = 0; j < c; j++)
            sum += exp((double)(row[j] - mx));
        const double log_sum = log(sum);
        total += log_sum - (double)(row[labels[i]] - mx);
        hits += best == labels[i];
        if (dlogits) {
            float *d = dlogits + (size_t)i * c;
            for (int j = 0; j < c; j++)
                d[j] = (float)exp((double)(row[j] - mx) - log_sum) * inv_n;
            d[labels[i]] -= inv_n;
        }
    }
    *loss = (float)(total / n);
    *correct = hits;
    return 0;
}
