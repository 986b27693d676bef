/* Shape rules every backend shares: PyTorch's output sizes (in kernels.h) and the checks a
 * plan's shape must pass, so that both backends accept and refuse the same layers. */
#ifndef TLSWEEP_KERNELS_SHAPE_H
#define TLSWEEP_KERNELS_SHAPE_H

#include <stddef.h>

#include "kernels/kernels.h"

/* Return 0 for a valid shape, else -1 with the reason in msg. */
int kn_conv_shape_check(const kn_conv_shape *s, char *msg, size_t len);
int kn_pool_shape_check(const kn_pool_shape *s, char *msg, size_t len);

#endif
