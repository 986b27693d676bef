/* kn_bn_combine_stats (kernels.h): the statistics of a batch from its shards', and the count
 * checks (bn_stats.h): host rules that every backend shares. */
#include "kernels/bn_stats.h"

#include <math.h>
#include <stdio.h>

#include "kernels/kernels.h"

int kn_bn_count_check(double count, size_t rows, int training, char *msg, size_t len) {
    if (training && !(count > 1)) {
        snprintf(msg, len, "training needs more than 1 value per channel (count %g)", count);
        return -1;
    }
    if (!(count >= (double)rows)) {
        snprintf(msg, len, "the batch's count %g is less than this shard's %zu", count, rows);
        return -1;
    }
    return 0;
}

void kn_bn_combine_stats(double *mean,         // (C) whole batch
                         double *var,          // (C) whole batch, biased
                         const double *counts, // (parts) values per channel of each shard
                         const double *means,  // (parts, C)
                         const double *m2s,    // (parts, C)
                         int parts, int c) {
    for (int ch = 0; ch < c; ch++) {
        /* Chan, Golub and LeVeque's update, one part at a time in part order: no sums of
         * squares, so a large mean against a small spread loses nothing; the first part is
         * taken exactly (delta * n_b / n = delta). */
        double n = 0.0, mu = 0.0, m2 = 0.0;
        for (int i = 0; i < parts; i++) {
            const double n_b = counts[i];
            if (!(n_b > 0)) continue;
            const double mu_b = means[(size_t)i * c + ch], m2_b = m2s[(size_t)i * c + ch];
            const double total = n + n_b, delta = mu_b - mu;
            mu += delta * (n_b / total);
            m2 += m2_b + delta * delta * (n * n_b / total);
            n = total;
        }
        mean[ch] = mu;
        var[ch] = n > 0 ? m2 / n : NAN;
    }
}
