/* The synchronized batch norm's host rules that every backend shares (kernels/bn_stats.c):
 * the checks of a whole batch's count against a shard, with one wording. */
#ifndef TLSWEEP_KERNELS_BN_STATS_H
#define TLSWEEP_KERNELS_BN_STATS_H

#include <stddef.h>

/* A call's `count` (values per channel in the whole batch) against this shard's `rows`
 * (n*h*w; 0 for kn_bn_update_running, which has none): it must cover the shard, and where
 * `training` (a forward or a running update, whose unbiased variance divides by count - 1) be
 * above 1. 0, or -1 with the reason in msg. */
int kn_bn_count_check(double count, size_t rows, int training, char *msg, size_t len);

#endif
