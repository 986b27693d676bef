/* One ResNet basic block (conv3x3-BN-ReLU-conv3x3-BN + identity, ReLU), forward, backward
 * and Adam, on the CUDA backend: the GPU check's measure against PyTorch
 * (tests/gpu/bench_torch_step.py runs the same block). Prints images/s, eager and with the step
 * replayed as a CUDA graph (kernels.h), as the trainer runs it.
 *
 * Usage: bench_cuda_step [N [C [HW [ITERS [fp32|tf32]]]]]   (default 64 64 56 20 fp32) */
#include "kernels/kernels.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static kn_ctx *ctx;

#define TRY(call)                                                                                  \
    do {                                                                                           \
        if ((call) != 0) {                                                                         \
            fprintf(stderr, "bench_cuda_step: %s: %s\n", #call, kn_error(ctx));                    \
            return 1;                                                                              \
        }                                                                                          \
    } while (0)

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* The block's step: everything a step reads and writes, and its plans. */
typedef struct {
    kn_conv *conv;
    kn_bn *bn;
    size_t act;
    float *x, *a1, *b1, *r1, *a2, *b2, *y, *g, *params, *grads, *m, *v, *stats, *rstats;
    float *w1, *w2, *gam1, *bet1, *gam2, *bet2, *dw1, *dw2, *dgam1, *dbet1, *dgam2, *dbet2;
    kn_adam_tensor tensors[6];
} block;

static int block_step(const block *k, int64_t step) {
    const int c = (int)(k->tensors[2].count);
    const size_t act = k->act;
    float *stats = k->stats, *rstats = k->rstats;
    TRY(kn_conv_forward(k->conv, k->a1, k->x, k->w1, NULL));
    TRY(kn_bn_forward_train(k->bn, k->b1, stats, stats + c, rstats, rstats + c, k->a1, k->gam1,
                            k->bet1));
    TRY(kn_relu_forward(ctx, k->r1, k->b1, act));
    TRY(kn_conv_forward(k->conv, k->a2, k->r1, k->w2, NULL));
    TRY(kn_bn_forward_train(k->bn, k->b2, stats + 2 * c, stats + 3 * c, rstats + 2 * c,
                            rstats + 3 * c, k->a2, k->gam2, k->bet2));
    TRY(kn_add(ctx, k->y, k->b2, k->x, act));
    TRY(kn_relu_forward(ctx, k->y, k->y, act));
    /* backward from a zero loss gradient g: the work, not the values, is measured */
    TRY(kn_relu_backward(ctx, k->b1, k->g, k->y, act)); /* b1: d(b2) = d(x) through identity */
    TRY(kn_bn_backward(k->bn, k->a2, k->dgam2, k->dbet2, k->b1, k->a2, stats + 2 * c, stats + 3 * c,
                       k->gam2));
    TRY(kn_conv_backward_weights(k->conv, k->dw2, NULL, k->a2, k->r1));
    TRY(kn_conv_backward_data(k->conv, k->b2, k->a2, k->w2));
    TRY(kn_relu_backward(ctx, k->b2, k->b2, k->r1, act));
    TRY(kn_bn_backward(k->bn, k->a1, k->dgam1, k->dbet1, k->b2, k->a1, stats, stats + c, k->gam1));
    TRY(kn_conv_backward_weights(k->conv, k->dw1, NULL, k->a1, k->x));
    TRY(kn_conv_backward_data(k->conv, k->r1, k->a1, k->w1));
    TRY(kn_accumulate(ctx, k->r1, k->b1, act));
    kn_adam_hparams hp = {0.9f, 0.999f, 1e-8f, 0.0f, step};
    TRY(kn_adam_step(ctx, k->params, k->grads, k->m, k->v, k->tensors, 6, &hp));
    return 0;
}

/* Seconds for iters steps from step `first` on, eager or (graph) each one replayed. */
static int time_steps(const block *k, int graph_steps, int64_t first, int iters, double *secs) {
    kn_graph *graph = NULL;
    if (graph_steps) { /* captured once (and run: it is a step too), then replayed */
        TRY(kn_graph_capture_begin(ctx));
        TRY(block_step(k, first++));
        if (!(graph = kn_graph_capture_end(ctx))) {
            fprintf(stderr, "bench_cuda_step: kn_graph_capture_end: %s\n", kn_error(ctx));
            return 1;
        }
        TRY(kn_graph_launch(ctx, graph));
    }
    TRY(kn_sync(ctx));
    const double start = now();
    for (int it = 0; it < iters; it++) {
        if (graph) TRY(kn_graph_replay_begin(ctx, graph));
        TRY(block_step(k, first + it));
        if (graph) TRY(kn_graph_launch(ctx, graph));
    }
    TRY(kn_sync(ctx));
    *secs = now() - start;
    kn_graph_destroy(ctx, graph);
    return 0;
}

int main(int argc, char **argv) {
    const int n = argc > 1 ? atoi(argv[1]) : 64, c = argc > 2 ? atoi(argv[2]) : 64;
    const int hw = argc > 3 ? atoi(argv[3]) : 56, iters = argc > 4 ? atoi(argv[4]) : 20;
    const char *precision = argc > 5 ? argv[5] : "fp32";
    if (strcmp(precision, "fp32") && strcmp(precision, "tf32")) {
        fprintf(stderr, "bench_cuda_step: precision must be fp32 or tf32, got '%s'\n", precision);
        return 2;
    }
    kn_ctx_options opt = {.backend = KN_BACKEND_CUDA, .tf32 = !strcmp(precision, "tf32")};
    char err[512];
    ctx = kn_ctx_create(&opt, err, sizeof err);
    if (!ctx) {
        fprintf(stderr, "bench_cuda_step: %s\n", err);
        return 1;
    }
    const kn_conv_shape cs = {n, c, hw, hw, c, 3, 3, 1, 1, 1, 1, 1, 1, 1, 0, KN_F32};
    const kn_bn_shape bs = {n, c, hw, hw, 1e-5f, 0.1f};
    kn_conv *conv = kn_conv_create(ctx, &cs);
    kn_bn *bn = kn_bn_create(ctx, &bs);
    if (!conv || !bn) {
        fprintf(stderr, "bench_cuda_step: plans: %s\n", kn_error(ctx));
        return 1;
    }
    const size_t act = (size_t)n * hw * hw * c, wcount = (size_t)c * c * 9;
    /* parameters: w1, w2, gamma1, beta1, gamma2, beta2, one buffer as the worker keeps them */
    const size_t nparam = 2 * wcount + 4 * (size_t)c;
    float *buf[12];
    const size_t sizes[12] = {act, act, act,    act,    act,    act,
                              act, act, nparam, nparam, nparam, nparam};
    for (int i = 0; i < 12; i++)
        if (!(buf[i] = kn_malloc(ctx, sizes[i] * sizeof(float)))) {
            fprintf(stderr, "bench_cuda_step: %s\n", kn_error(ctx));
            return 1;
        }
    float *x = buf[0], *a1 = buf[1], *b1 = buf[2], *r1 = buf[3], *a2 = buf[4], *b2 = buf[5];
    float *y = buf[6], *g = buf[7], *params = buf[8], *grads = buf[9], *m = buf[10], *v = buf[11];
    float *stats = NULL, *rstats = NULL;
    if (!(stats = kn_malloc(ctx, 8 * (size_t)c * sizeof(float))) ||
        !(rstats = kn_malloc(ctx, 4 * (size_t)c * sizeof(float)))) {
        fprintf(stderr, "bench_cuda_step: %s\n", kn_error(ctx));
        return 1;
    }
    float *host = malloc(nparam * sizeof *host);
    if (!host) return 1;
    for (size_t i = 0; i < nparam; i++)
        host[i] = i < 2 * wcount ? 0.02f * (float)((int)(i % 17) - 8) / 8 : i % 2 ? 0.0f : 1.0f;
    TRY(kn_copy_to_device(ctx, params, host, nparam * sizeof *host));
    for (size_t i = 0; i < nparam; i++)
        host[i] = 0.5f;
    TRY(kn_copy_to_device(ctx, rstats, host, 4 * (size_t)c * sizeof *host));
    free(host);
    TRY(kn_zero(ctx, x, act));
    TRY(kn_zero(ctx, m, nparam));
    TRY(kn_zero(ctx, v, nparam));
    TRY(kn_zero(ctx, g, act));
    block k = {
        .conv = conv,
        .bn = bn,
        .act = act,
        .x = x,
        .a1 = a1,
        .b1 = b1,
        .r1 = r1,
        .a2 = a2,
        .b2 = b2,
        .y = y,
        .g = g,
        .params = params,
        .grads = grads,
        .m = m,
        .v = v,
        .stats = stats,
        .rstats = rstats,
        .w1 = params,
        .w2 = params + wcount,
        .gam1 = params + 2 * wcount,
        .dw1 = grads,
        .dw2 = grads + wcount,
        .dgam1 = grads + 2 * wcount,
        .tensors = {{0, wcount, 1e-3f},
                    {wcount, wcount, 1e-3f},
                    {2 * wcount, (size_t)c, 1e-3f},
                    {2 * wcount + c, (size_t)c, 1e-3f},
                    {2 * wcount + 2 * c, (size_t)c, 1e-3f},
                    {2 * wcount + 3 * c, (size_t)c, 1e-3f}},
    };
    k.bet1 = k.gam1 + c, k.gam2 = k.bet1 + c, k.bet2 = k.gam2 + c;
    k.dbet1 = k.dgam1 + c, k.dgam2 = k.dbet1 + c, k.dbet2 = k.dgam2 + c;
    double eager = 0, graph = 0;
    for (int64_t step = 1; step <= 5; step++) /* warm-up: plans' first calls, clocks */
        TRY(block_step(&k, step));
    TRY(time_steps(&k, 0, 6, iters, &eager));
    TRY(time_steps(&k, 1, 6 + iters, iters, &graph));
    printf("ours: resnet basic block C=%d %dx%d N=%d %s (%s): %.1f images/s (%.2f ms/step)\n", c,
           hw, hw, n, precision, kn_conv_impl(conv), iters * n / eager, 1e3 * eager / iters);
    printf("ours, the step as a CUDA graph: %.1f images/s (%.2f ms/step), %.3fx eager\n",
           iters * n / graph, 1e3 * graph / iters, eager / graph);
    printf("  %s\n", kn_describe(ctx));
    for (int i = 0; i < 12; i++)
        kn_free(ctx, buf[i]);
    kn_free(ctx, stats);
    kn_free(ctx, rstats);
    kn_conv_destroy(conv);
    kn_bn_destroy(bn);
    kn_ctx_destroy(ctx);
    return 0;
}
