/* kn_images_to_batch on the CPU backend: the device data path's batches are the loader's
 * transform_image bit for bit (tests/image_batch_check.h), transform_image equals the op-by-op
 * reference, and jobs whose crop does not fit their image are refused. The CUDA backend runs the
 * same check in tests/gpu/test_cuda_ops.c. */
#include <string.h>

#include "kernels/kernels.h"
#include "tests/image_batch_check.h"
#include "tests/testlib.h"
#include "worker/data/transform.h"

static kn_ctx *cpu_context(int threads) {
    char err[256];
    kn_ctx_options o = {.backend = KN_BACKEND_CPU, .threads = threads};
    kn_ctx *ctx = kn_ctx_create(&o, err, sizeof err);
    CHECK(ctx, "cpu context: %s", err);
    return ctx;
}

static void test_matches_transform(void) {
    for (int threads = 1; threads <= 2; threads++) {
        kn_ctx *ctx = cpu_context(threads);
        if (!ctx) return;
        image_batch_check(ctx);
        if (threads == 2) image_batch_check_full_size(ctx, 0);
        kn_ctx_destroy(ctx);
    }
}

static void test_fused_matches_reference(void) {
    image_batch_check_reference();
}

static void test_bad_jobs_refused(void) {
    kn_ctx *ctx = cpu_context(1);
    if (!ctx) return;
    static uint8_t store[40 * 30 * 3];
    float out[24 * 24 * 3];
    kn_image_job job;
    transform_job(&job, 0, 40, 30, NULL, 24);
    CHECK(kn_images_to_batch(ctx, out, store, &job, 1, 24) == 0, "a fitting job: %s",
          kn_error(ctx));
    static const struct {
        int crop, top, left, width;
        const char *expect;
    } bad[] = {
        {32, 3, 8, 40, "job 0: a 32x32 crop at (8, 3) is not inside its 40x30 image"},
        {24, 7, 8, 40, "job 0: a 24x24 crop at (8, 7) is not inside its 40x30 image"},
        {24, 3, -1, 40, "job 0: a 24x24 crop at (-1, 3) is not inside its 40x30 image"},
        {24, 3, 8, 20, "job 0: a 24x24 crop at (8, 3) is not inside its 20x30 image"},
        {0, 3, 8, 40, "bad sizes (N 1, crop 0)"},
    };
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        kn_image_job j = job;
        j.top = bad[k].top, j.left = bad[k].left, j.width = bad[k].width;
        CHECK(kn_images_to_batch(ctx, out, store, &j, 1, bad[k].crop) == -1, "case %zu accepted",
              k);
        CHECK(strstr(kn_error(ctx), bad[k].expect), "case %zu: '%s', want '%s'", k, kn_error(ctx),
              bad[k].expect);
    }
    CHECK(kn_images_to_batch(ctx, out, NULL, &job, 1, 24) == -1, "NULL store accepted");
    CHECK(kn_images_to_batch(ctx, NULL, NULL, NULL, 0, 24) == 0, "an empty batch: %s",
          kn_error(ctx));
    kn_ctx_destroy(ctx);
}

int main(void) {
    static const char *const names[] = {"matches_transform", "fused_matches_reference",
                                        "bad_jobs_refused"};
    static const tl_case_fn cases[] = {test_matches_transform, test_fused_matches_reference,
                                       test_bad_jobs_refused};
    return TL_RUN("image_batch", names, cases);
}
