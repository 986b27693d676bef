/* Adam's per-step constants, computed once on the host the same way for both backends, so
 * that they round identically and match torch.optim.Adam. */
#ifndef TLSWEEP_KERNELS_ADAM_RULE_H
#define TLSWEEP_KERNELS_ADAM_RULE_H

#include <stddef.h>

#include "kernels/kernels.h"

typedef struct {
    float b1, b2, one_minus_b1, one_minus_b2, eps, weight_decay;
    double bias_correction1; /* 1 - beta1^t: a tensor's step size is lr / this */
    float bias_correction2_sqrt;
} kn_adam_consts;

/* Checks the hyperparameters and fills k; -1 with the reason in msg when they are invalid. */
int kn_adam_prepare(const kn_adam_hparams *hp, kn_adam_consts *k, char *msg, size_t len);

#endif
