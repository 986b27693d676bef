/* kernels.h's "devices, pinned staging and on-device totals" on the CPU backend: uploads are
 * done on return, events have always passed, and kn_cross_entropy_accumulate adds what the
 * trainer summed before ((double)mean * n, correct counts) and records the first non-finite
 * batch. The CUDA side has the same contract; it runs where a GPU is (tools/gpu-check.sh). */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "kernels/kernels.h"
#include "tests/testlib.h"

static kn_ctx *cpu(void) {
    char err[256];
    const kn_ctx_options opt = {.backend = KN_BACKEND_CPU, .threads = 1};
    kn_ctx *ctx = kn_ctx_create(&opt, err, sizeof err);
    CHECK(ctx, "cpu context: %s", err);
    return ctx;
}

static void test_upload_and_events(void) {
    kn_ctx *ctx = cpu();
    if (!ctx) return;
    float *pin = kn_host_alloc(ctx, 5 * sizeof(float)), *dev = kn_malloc(ctx, 5 * sizeof(float));
    kn_event *a = kn_event_create(ctx), *b = kn_event_create(ctx);
    CHECK(pin && dev && a && b, "allocation: %s", kn_error(ctx));
    if (pin && dev && a && b) {
        for (int i = 0; i < 5; i++)
            pin[i] = (float)i + 0.5f;
        CHECK(kn_upload_async(ctx, dev, pin, 5 * sizeof(float), a, b) == 0, "upload: %s",
              kn_error(ctx));
        CHECK(kn_event_wait_host(ctx, b) == 0 && kn_event_record(ctx, a) == 0, "events");
        pin[0] = -1; /* the copy is done: rewriting the source changes nothing */
        CHECK(dev[0] == 0.5f && dev[4] == 4.5f, "uploaded %g %g", (double)dev[0], (double)dev[4]);
    }
    kn_event_destroy(ctx, a);
    kn_event_destroy(ctx, b);
    kn_host_free(ctx, pin);
    kn_free(ctx, dev);
    kn_ctx_destroy(ctx);
}

static void test_totals(void) {
    kn_ctx *ctx = cpu();
    if (!ctx) return;
    enum { N = 3, C = 4 };
    /* rows 0 and 2 are right (argmax == label), row 1 is wrong */
    const float logits[N * C] = {3, 1, 0, 0, 0, 2, 1, 0, 0, 0, 0, 5};
    const int32_t labels[N] = {0, 2, 3};
    float dlogits[N * C], mean = 0;
    int correct = 0;
    kn_totals *t = kn_malloc(ctx, sizeof *t), host;
    CHECK(t != NULL, "%s", kn_error(ctx));
    if (!t) return;
    CHECK(kn_cross_entropy(ctx, NULL, &mean, &correct, logits, labels, N, C) == 0, "%s",
          kn_error(ctx));
    const kn_totals start = {.loss_sum = 1.25, .correct = 7};
    CHECK(kn_copy_to_device(ctx, t, &start, sizeof start) == 0, "start");
    for (int step = 1; step <= 2; step++)
        CHECK(kn_cross_entropy_accumulate(ctx, dlogits, t, logits, labels, N, C, step) == 0, "%s",
              kn_error(ctx));
    CHECK(kn_copy_to_host(ctx, &host, t, sizeof host) == 0, "read");
    /* exactly the trainer's old sum, from the resumed start */
    const double want = 1.25 + (double)mean * N + (double)mean * N;
    CHECK(host.loss_sum == want, "loss sum %.17g, want %.17g", host.loss_sum, want);
    CHECK(host.correct == 7 + 2 * 2 && correct == 2, "correct %lld (batch %d)",
          (long long)host.correct, correct);
    CHECK(host.diverged_at == 0 && host.bad_labels == 0, "diverged_at %lld",
          (long long)host.diverged_at);
    /* a non-finite batch is recorded once, with its step and loss */
    const float bad[N * C] = {INFINITY, 0, 0, 0, 0, -INFINITY, NAN, 0, 0, 0, 0, 1};
    CHECK(kn_cross_entropy_accumulate(ctx, NULL, t, bad, labels, N, C, 3) == 0, "%s",
          kn_error(ctx));
    CHECK(kn_cross_entropy_accumulate(ctx, NULL, t, bad, labels, N, C, 4) == 0, "%s",
          kn_error(ctx));
    CHECK(kn_copy_to_host(ctx, &host, t, sizeof host) == 0, "read");
    CHECK(host.diverged_at == 3 && !isfinite(host.diverged_loss) && !isfinite(host.loss_sum),
          "diverged_at %lld, loss %g", (long long)host.diverged_at, host.diverged_loss);
    kn_free(ctx, t);
    kn_ctx_destroy(ctx);
}

static void test_device_count(void) {
    char why[256] = "";
    int n = kn_cuda_device_count(why, sizeof why);
    CHECK(n >= 0, "count %d", n);
    if (n == 0) {
        CHECK(why[0], "no device and no reason");
        kn_device_info info;
        CHECK(kn_cuda_device_info(0, &info, why, sizeof why) == -1, "info of a missing device");
        return;
    }
    kn_device_info info;
    CHECK(kn_cuda_device_info(0, &info, why, sizeof why) == 0 && info.name[0] &&
              info.total_bytes > 0,
          "device 0: %s", why);
}

int main(void) {
    static const char *const names[] = {"upload and events (CPU)", "totals (CPU)",
                                        "device count and info"};
    static const tl_case_fn cases[] = {test_upload_and_events, test_totals, test_device_count};
    return TL_RUN("staging", names, cases);
}
