/* Synchronized batch norm (kernels.h): per-shard statistics and backward sums, and the forward
 * and backward passes that take the whole batch's statistics, in plain C.
 *
 * Reductions are deterministic and independent of the thread count: the shard's N*H*W rows are
 * cut into blocks by the shape alone, each block sums its rows in order into its own fp64
 * partials, and the partials are added in block order. */
#include "kernels/bn_stats.h"
#include "kernels/cpu/cpu_internal.h"

#include <math.h>
#include <stdlib.h>

/* A block holds at least this many values (enough rows to vectorize and to be worth a
 * thread), and a shard has at most KN_BN_MAX_BLOCKS blocks, which bounds the partials at
 * KN_BN_MAX_BLOCKS * 2 * C doubles (2 MiB for C = 2048) while still feeding 16+ threads. */
#define KN_BN_BLOCK_VALUES 16384
#define KN_BN_MAX_BLOCKS 64

typedef struct {
    size_t rows, rows_per_block;
    int blocks;
} row_blocks;

static row_blocks blocks_of(const kn_bn_shape *s) {
    row_blocks b;
    b.rows = (size_t)s->n * s->h * s->w;
    const size_t by_size = (KN_BN_BLOCK_VALUES + (size_t)s->c - 1) / (size_t)s->c;
    const size_t by_count = (b.rows + KN_BN_MAX_BLOCKS - 1) / KN_BN_MAX_BLOCKS;
    b.rows_per_block = by_size > by_count ? by_size : by_count;
    b.blocks = (int)((b.rows + b.rows_per_block - 1) / b.rows_per_block);
    return b;
}

/* The plan's scratch for synchronized calls, allocated on the first one: -1 without memory. */
static int sync_scratch(kn_cpu_bn *p, const row_blocks *b) {
    if (!p->partials) p->partials = calloc((size_t)b->blocks * 2 * p->s.c, sizeof(double));
    if (!p->coefs) p->coefs = calloc((size_t)3 * p->s.c, sizeof(float));
    if (!p->partials || !p->coefs)
        return kn_fail(p->ctx, p->what, "out of memory for synchronized batch norm scratch");
    return 0;
}

/* sums[ch] = partials[b][ch] added over the blocks in block order; partials points at one
 * half of the (blocks, 2, C) scratch. */
static void add_blocks(double *sums, const double *partials, int blocks, int c) {
    for (int ch = 0; ch < c; ch++) {
        double total = 0.0;
        for (int b = 0; b < blocks; b++)
            total += partials[(size_t)b * 2 * c + ch];
        sums[ch] = total;
    }
}

int kn_cpu_bn_shard_stats(kn_cpu_bn *p,
                          double *mean,       // (C) host
                          double *m2,         // (C) host
                          const float *inp) { // (N, H, W, C)
    if (!mean || !m2 || !inp) return kn_fail(p->ctx, p->what, "NULL tensor argument");
    const row_blocks rb = blocks_of(&p->s);
    if (sync_scratch(p, &rb)) return -1;
    double *part = p->partials;
    const int c = p->s.c;
    /* Two passes (the mean, then squared deviations from it) rather than sums of squares,
     * which cancel catastrophically when the mean is large against the spread. */
#pragma omp parallel for num_threads(p->ctx->threads) schedule(static)
    for (int b = 0; b < rb.blocks; b++) {
        double *acc = part + (size_t)b * 2 * c;
        const size_t r1 = (size_t)(b + 1) * rb.rows_per_block;
        for (int ch = 0; ch < c; ch++)
            acc[ch] = 0.0;
        for (size_t r = (size_t)b * rb.rows_per_block; r < r1 && r < rb.rows; r++) {
            const float *x = inp + r * c;
#pragma omp simd
            for (int ch = 0; ch < c; ch++)
                acc[ch] += (double)x[ch];
        }
    }
    add_blocks(mean, part, rb.blocks, c);
    for (int ch = 0; ch < c; ch++)
        mean[ch] /= (double)rb.rows;
#pragma omp parallel for num_threads(p->ctx->threads) schedule(static)
    for (int b = 0; b < rb.blocks; b++) {
        double *acc = part + (size_t)b * 2 * c;
        const size_t r1 = (size_t)(b + 1) * rb.rows_per_block;
        for (int ch = 0; ch < c; ch++)
            acc[ch] = 0.0;
        for (size_t r = (size_t)b * rb.rows_per_block; r < r1 && r < rb.rows; r++) {
            const float *x = inp + r * c;
#pragma omp simd
            for (int ch = 0; ch < c; ch++) {
                const double d = (double)x[ch] - mean[ch];
                acc[ch] += d * d;
            }
        }
    }
    add_blocks(m2, part, rb.blocks, c);
    return 0;
}

int kn_cpu_bn_forward_stats(kn_cpu_bn *p,
                            float *out,          // (N, H, W, C)
                            float *save_mean,    // (C)
                            float *save_var,     // (C)
                            float *running_mean, // (C), updated in place
                            float *running_var,  // (C), updated in place
                            const double *mean,  // (C) host, whole batch
                            const double *var,   // (C) host, whole batch, biased
                            double count,        // values per channel in the whole batch
                            const float *inp,    // (N, H, W, C)
                            const float *gamma,  // (C)
                            const float *beta) { // (C)
    const row_blocks rb = blocks_of(&p->s);
    char msg[KN_WHAT_LEN];
    if (kn_bn_count_check(count, rb.rows, 1, msg, sizeof msg))
        return kn_fail(p->ctx, p->what, "%s", msg);
    if (!running_mean || !running_var) return kn_fail(p->ctx, p->what, "NULL running statistics");
    if (!out || !save_mean || !save_var || !mean || !var || !inp || !gamma || !beta)
        return kn_fail(p->ctx, p->what, "NULL tensor argument");
    const int c = p->s.c;
    /* out = (x - mean) * scale + beta with scale = gamma / sqrt(var + eps), made in double
     * once per channel; the per-value work is fp32 like kn_bn_forward_train's. */
    if (sync_scratch(p, &rb)) return -1;
    float *scale = p->coefs;
    for (int ch = 0; ch < c; ch++) {
        if (!(var[ch] >= 0))
            return kn_fail(p->ctx, p->what, "channel %d: variance %g is not >= 0", ch, var[ch]);
        scale[ch] = (float)((double)gamma[ch] / sqrt(var[ch] + (double)p->s.eps));
        save_mean[ch] = (float)mean[ch];
        save_var[ch] = (float)var[ch];
    }
#pragma omp parallel for num_threads(p->ctx->threads) schedule(static)
    for (size_t r = 0; r < rb.rows; r++) {
        const float *x = inp + r * c;
        float *y = out + r * c;
#pragma omp simd
        for (int ch = 0; ch < c; ch++)
            y[ch] = (x[ch] - save_mean[ch]) * scale[ch] + beta[ch];
    }
    for (int ch = 0; ch < c; ch++)
        kn_cpu_bn_running_update(&running_mean[ch], &running_var[ch], mean[ch], var[ch], count,
                                 p->s.momentum);
    return 0;
}

int kn_cpu_bn_update_running(kn_cpu_ctx *ctx,
                             float *running_mean, // (C), updated in place
                             float *running_var,  // (C), updated in place
                             const double *mean,  // (C) host, whole batch
                             const double *var,   // (C) host, whole batch, biased
                             double count,        // values per channel in the whole batch
                             int c, float momentum) {
    const char *what = "batchnorm running statistics";
    char msg[KN_WHAT_LEN];
    if (kn_bn_count_check(count, 0, 1, msg, sizeof msg)) return kn_fail(ctx, what, "%s", msg);
    if (c <= 0) return kn_fail(ctx, what, "C %d must be positive", c);
    if (!running_mean || !running_var || !mean || !var)
        return kn_fail(ctx, what, "NULL tensor argument");
    for (int ch = 0; ch < c; ch++)
        kn_cpu_bn_running_update(&running_mean[ch], &running_var[ch], mean[ch], var[ch], count,
                                 momentum);
    return 0;
}

int kn_cpu_bn_shard_backward_sums(kn_cpu_bn *p,
                                  double *sum_dy,          // (C) host
                                  double *sum_dy_xhat,     // (C) host
                                  float *dgamma,           // (C) or NULL
                                  float *dbeta,            // (C) or NULL
                                  const float *dout,       // (N, H, W, C)
                                  const float *inp,        // (N, H, W, C)
                                  const float *save_mean,  // (C)
                                  const float *save_var) { // (C)
    if (!sum_dy || !sum_dy_xhat || !dout || !inp || !save_mean || !save_var)
        return kn_fail(p->ctx, p->what, "NULL tensor argument");
    const row_blocks rb = blocks_of(&p->s);
    if (sync_scratch(p, &rb)) return -1;
    double *part = p->partials;
    const int c = p->s.c;
    /* One pass: each block sums dout and dout * (x - mean); the 1/sqrt(var + eps) of xhat is
     * applied once to the total. */
#pragma omp parallel for num_threads(p->ctx->threads) schedule(static)
    for (int b = 0; b < rb.blocks; b++) {
        double *acc_dy = part + (size_t)b * 2 * c, *acc_dyx = acc_dy + c;
        const size_t r1 = (size_t)(b + 1) * rb.rows_per_block;
        for (int ch = 0; ch < c; ch++)
            acc_dy[ch] = acc_dyx[ch] = 0.0;
        for (size_t r = (size_t)b * rb.rows_per_block; r < r1 && r < rb.rows; r++) {
            const float *x = inp + r * c, *dy = dout + r * c;
#pragma omp simd
            for (int ch = 0; ch < c; ch++) {
                acc_dy[ch] += (double)dy[ch];
                acc_dyx[ch] += (double)dy[ch] * ((double)x[ch] - (double)save_mean[ch]);
            }
        }
    }
    add_blocks(sum_dy, part, rb.blocks, c);
    add_blocks(sum_dy_xhat, part + c, rb.blocks, c); /* sum(dout * (x - mean)) so far */
    for (int ch = 0; ch < c; ch++) {
        sum_dy_xhat[ch] /= sqrt((double)save_var[ch] + (double)p->s.eps);
        if (dgamma) dgamma[ch] = (float)sum_dy_xhat[ch];
        if (dbeta) dbeta[ch] = (float)sum_dy[ch];
    }
    return 0;
}

int kn_cpu_bn_backward_stats(kn_cpu_bn *p,
                             float *dinp,               // (N, H, W, C)
                             const float *dout,         // (N, H, W, C)
                             const float *inp,          // (N, H, W, C)
                             const float *save_mean,    // (C)
                             const float *save_var,     // (C)
                             const float *gamma,        // (C)
                             const double *sum_dy,      // (C) host, whole batch
                             const double *sum_dy_xhat, // (C) host, whole batch
                             double count) {            // values per channel in the whole batch
    const row_blocks rb = blocks_of(&p->s);
    char msg[KN_WHAT_LEN];
    if (kn_bn_count_check(count, rb.rows, 0, msg, sizeof msg))
        return kn_fail(p->ctx, p->what, "%s", msg);
    if (!dinp || !dout || !inp || !save_mean || !save_var || !gamma || !sum_dy || !sum_dy_xhat)
        return kn_fail(p->ctx, p->what, "NULL tensor argument");
    if (sync_scratch(p, &rb)) return -1;
    const int c = p->s.c;
    /* dinp = scale * (dout - mean_dy - (x - mean) * slope) with, per channel and in double,
     * scale = gamma * invstd, mean_dy = sum_dy / count, slope = invstd * sum_dy_xhat / count. */
    float *scale = p->coefs, *mean_dy = scale + c, *slope = mean_dy + c;
    for (int ch = 0; ch < c; ch++) {
        const double invstd = 1.0 / sqrt((double)save_var[ch] + (double)p->s.eps);
        scale[ch] = (float)((double)gamma[ch] * invstd);
        mean_dy[ch] = (float)(sum_dy[ch] / count);
        slope[ch] = (float)(invstd * sum_dy_xhat[ch] / count);
    }
#pragma omp parallel for num_threads(p->ctx->threads) schedule(static)
    for (size_t r = 0; r < rb.rows; r++) {
        const float *x = inp + r * c, *dy = dout + r * c;
        float *dx = dinp + r * c;
#pragma omp simd
        for (int ch = 0; ch < c; ch++)
            dx[ch] = scale[ch] * (dy[ch] - mean_dy[ch] - (x[ch] - save_mean[ch]) * slope[ch]);
    }
    return 0;
}
