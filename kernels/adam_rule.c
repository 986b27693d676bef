/* Adam's per-step constants (see adam_rule.h). */
#include "kernels/adam_rule.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

/* The decimal a float hyperparameter was written as (0.999f -> 0.999), i.e. the shortest
 * decimal that rounds to it: PyTorch computes 1 - beta from that double, and 1 - 0.999f in
 * float or double is 5e-5 or 1e-5 off relative. */
static double decimal_of(float x) {
    char buf[32];
    for (int digits = 1; digits <= 9; digits++) {
        snprintf(buf, sizeof buf, "%.*g", digits, (double)x);
        if (strtof(buf, NULL) == x) return strtod(buf, NULL);
    }
    return (double)x;
}

int kn_adam_prepare(const kn_adam_hparams *hp, kn_adam_consts *k, char *msg, size_t len) {
    if (hp->step < 1) {
        snprintf(msg, len, "step %lld must be >= 1", (long long)hp->step);
        return -1;
    }
    if (!(hp->beta1 >= 0 && hp->beta1 < 1 && hp->beta2 >= 0 && hp->beta2 < 1)) {
        snprintf(msg, len, "betas (%g, %g) must be in [0, 1)", (double)hp->beta1,
                 (double)hp->beta2);
        return -1;
    }
    const double beta1 = decimal_of(hp->beta1), beta2 = decimal_of(hp->beta2);
    k->b1 = hp->beta1;
    k->b2 = hp->beta2;
    k->one_minus_b1 = (float)(1.0 - beta1);
    k->one_minus_b2 = (float)(1.0 - beta2);
    k->eps = hp->eps;
    k->weight_decay = hp->weight_decay;
    k->bias_correction1 = 1.0 - pow(beta1, (double)hp->step);
    k->bias_correction2_sqrt = (float)sqrt(1.0 - pow(beta2, (double)hp->step));
    return 0;
}
