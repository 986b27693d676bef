/* One training step (forward, cross-entropy, backward, Adam) of a backbone on the CPU backend,
 * timed: `bench_train BACKBONE IMAGE_SIZE BATCH STEPS THREADS full|frozen [fp32|bf16]`. Prints
 * one line: "ours BACKBONE SIZE BATCH MODE images/s seconds/step". tests/bench/train.sh runs
 * PyTorch on the same shapes beside it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/kernels.h"
#include "worker/clock.h"
#include "worker/models/model.h"
#include "worker/rng.h"

static int step(model *m, kn_ctx *ctx, const float *images, const int32_t *labels, int batch,
                float *dlogits, const float *group_lr, char *err, size_t errlen) {
    model_mode mode = {1, 1, 0};
    const float *logits = model_forward(m, images, batch, mode, 1, err, errlen);
    float loss;
    int correct;
    if (!logits) return -1;
    if (kn_cross_entropy(ctx, dlogits, &loss, &correct, logits, labels, batch,
                         m->spec.num_classes)) {
        snprintf(err, errlen, "%s", kn_error(ctx));
        return -1;
    }
    if (model_backward(m, dlogits, err, errlen)) return -1;
    return model_adam_step(m, group_lr, 0.9f, 0.999f, 1e-8f, 0.0f, err, errlen);
}

int main(int argc, char **argv) {
    if (argc != 7 && argc != 8) {
        fprintf(stderr,
                "usage: %s BACKBONE IMAGE_SIZE BATCH STEPS THREADS full|frozen [fp32|bf16]\n",
                argv[0]);
        return 2;
    }
    const kn_dtype precision = argc == 8 && !strcmp(argv[7], "bf16") ? KN_BF16 : KN_F32;
    const char *backbone = argv[1], *mode = argv[6];
    int size = atoi(argv[2]), batch = atoi(argv[3]), steps = atoi(argv[4]);
    int threads = atoi(argv[5]);
    char err[1024];
    kn_ctx_options opt = {.backend = KN_BACKEND_CPU, .threads = threads};
    kn_ctx *ctx = kn_ctx_create(&opt, err, sizeof err);
    if (!ctx) {
        fprintf(stderr, "bench_train: %s\n", err);
        return 1;
    }
    model m;
    model_spec spec = {backbone, 102, 1, size, 0.5f};
    if (model_build(&m, &spec, err, sizeof err) || model_bind(&m, ctx, batch, 1, err, sizeof err) ||
        model_set_precision(&m, precision, err, sizeof err)) {
        fprintf(stderr, "bench_train: %s\n", err);
        return 1;
    }
    model_set_trainable(&m, strcmp(mode, "frozen") ? "" : m.head_prefix);
    float *host = calloc(m.params.total_count, sizeof *host);
    size_t n_in = (size_t)batch * (size_t)size * (size_t)size * 3;
    float *images = kn_malloc(ctx, n_in * sizeof(float));
    float *dlogits = kn_malloc(ctx, (size_t)batch * 102 * sizeof(float));
    int32_t *labels = malloc((size_t)batch * sizeof *labels);
    float *group_lr = malloc((size_t)m.n_groups * sizeof *group_lr);
    float *staging = malloc(n_in * sizeof *staging);
    if (!host || !images || !dlogits || !labels || !group_lr || !staging) {
        fprintf(stderr, "bench_train: out of memory\n");
        return 1;
    }
    model_init_backbone(&m, host, 0);
    rng_stream r = rng_stream_for(0, 0, 0, RNG_AUGMENT);
    for (size_t i = 0; i < n_in; i++)
        staging[i] = (float)rng_uniform(&r, -1, 1);
    for (int i = 0; i < batch; i++)
        labels[i] = (int32_t)rng_below(&r, 102);
    for (int g = 0; g < m.n_groups; g++)
        group_lr[g] = 1e-4f;
    if (kn_copy_to_device(ctx, model_values(&m), host, m.params.total_count * sizeof *host) ||
        kn_copy_to_device(ctx, images, staging, n_in * sizeof *staging)) {
        fprintf(stderr, "bench_train: %s\n", kn_error(ctx));
        return 1;
    }
    /* One warm-up step creates the plans and touches every buffer. */
    if (step(&m, ctx, images, labels, batch, dlogits, group_lr, err, sizeof err)) {
        fprintf(stderr, "bench_train: %s\n", err);
        return 1;
    }
    kn_sync(ctx);
    double start = monotonic_seconds();
    for (int s = 0; s < steps; s++)
        if (step(&m, ctx, images, labels, batch, dlogits, group_lr, err, sizeof err)) {
            fprintf(stderr, "bench_train: %s\n", err);
            return 1;
        }
    kn_sync(ctx);
    double per_step = (monotonic_seconds() - start) / steps;
    printf("ours %s %d %d %s %.2f %.4f\n", backbone, size, batch, mode, batch / per_step, per_step);
    free(host);
    free(labels);
    free(group_lr);
    free(staging);
    kn_free(ctx, images);
    kn_free(ctx, dlogits);
    model_free(&m);
    kn_ctx_destroy(ctx);
    return 0;
}
