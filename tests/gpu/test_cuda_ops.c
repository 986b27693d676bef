/* The CUDA backend's ops against PyTorch, forward and backward: references from
 * tests/gpu/export_cuda_ref.py (float64 on the CPU, stored float32) in
 * $TLSWEEP_TESTDATA/cuda, case lists in its *.txt files. Uses only kernels.h (and the
 * loader's transform, the image batch's reference), so it also builds without the CPU
 * backend (make gpu-standalone).
 *
 * Without a CUDA device the same cases run with host buffers in place of device ones and no
 * kernel call: every manifest must yield cases and every reference a case names must load
 * with the element count of the tensor it is compared with, so a misnamed reference fails in
 * CI; then each case is skipped. Only "no device" skips (no driver installed, or
 * cudaErrorNoDevice); any other CUDA error fails, and REQUIRE_GPU=1 makes a skip a failure.
 *
 * Tolerances are relative to the largest reference magnitude (tl_compare): 1e-4 for cuDNN
 * convolutions, batchnorm and cuBLAS (fp32 FMA math, other summation orders), 1e-6 for the
 * own kernels whose sums are short, exact for data movement (layout, ReLU, dropout) and the
 * bf16 casts. bf16 plans (Ampere and newer; refused with the reason before) are compared with
 * exact products of the bf16-rounded operands at 1e-2, as the CPU backend's bf16 tests are:
 * bf16 keeps 8 significant bits, so each rounded output is within 2^-9 of itself (cuDNN's
 * bf16 weight gradient too), fp32 sums add little, and an error of order 1 (a wrong layout,
 * a stale bf16 weight copy) still fails. */
#include "kernels/kernels.h"
#include "tests/image_batch_check.h"
#include "tests/testlib.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cuda_runtime_api.h>

#define MAX_LIVE 64

static kn_ctx *ctx;      /* NULL: no device, references are checked on the host only */
static char no_gpu[512]; /* why there is no context */
static int gpu_required; /* REQUIRE_GPU=1, or a device that failed: no context is a failure */
static const char *dir;
static struct {
    void *ptr; /* device buffer, or its host stand-in without a device */
    size_t bytes;
} live[MAX_LIVE]; /* the buffers of the current case */
static int n_live;
static int refs_checked; /* references of the current case compared or sized */

static void *dev_alloc(size_t bytes) {
    void *p = ctx ? kn_malloc(ctx, bytes) : calloc(1, bytes ? bytes : 1);
    CHECK(p, "allocate %zu bytes: %s", bytes, ctx ? kn_error(ctx) : "out of host memory");
    CHECK(n_live < MAX_LIVE, "more than %d buffers in one case", MAX_LIVE);
    if (p && n_live < MAX_LIVE) live[n_live].ptr = p, live[n_live++].bytes = bytes;
    return p;
}

static void release_all(void) {
    for (int i = 0; i < n_live; i++)
        ctx ? kn_free(ctx, live[i].ptr) : free(live[i].ptr);
    n_live = 0;
}

/* Size of a buffer from dev_alloc; 0 for anything else. */
static size_t live_bytes(const void *p) {
    for (int i = 0; i < n_live; i++)
        if (live[i].ptr == p) return live[i].bytes;
    return 0;
}

/* A reference tensor in a buffer of its own (on the device when there is one); NULL (and a
 * failure) when it cannot be. */
static float *dev_ref(const char *name, size_t *count) {
    size_t n = 0;
    float *host = tl_load_f32(dir, name, &n);
    if (!host) return NULL;
    refs_checked++;
    float *d = dev_alloc(n * sizeof *d);
    if (d && ctx && kn_copy_to_device(ctx, d, host, n * sizeof *d))
        tl_fail(__FILE__, __LINE__, "copy %s: %s", name, kn_error(ctx)), d = NULL;
    else if (d && !ctx)
        memcpy(d, host, n * sizeof *d);
    free(host);
    if (count) *count = n;
    return d;
}

static float *dev_zeros(size_t count) {
    float *d = dev_alloc(count * sizeof *d);
    if (d && ctx && kn_zero(ctx, d, count))
        tl_fail(__FILE__, __LINE__, "kn_zero: %s", kn_error(ctx));
    return d;
}

/* Compares buffer `dev` (from dev_alloc) with reference `ref` times `scale` (a power of two:
 * exact), which must hold as many values; without a device only the reference and its size
 * are checked. */
static void check_dev_scaled(const char *label, const float *dev, const char *ref, float scale,
                             double tol) {
    size_t n = 0;
    float *want = tl_load_f32(dir, ref, &n);
    const size_t bytes = live_bytes(dev);
    if (want) refs_checked++;
    for (size_t i = 0; want && i < n; i++)
        want[i] *= scale;
    CHECK(!want || !dev || bytes == n * sizeof(float),
          "%s: reference %s has %zu values, the tensor %zu", label, ref, n, bytes / sizeof(float));
    float *got = malloc(n * sizeof *got + 1);
    if (ctx && want && got && dev && bytes == n * sizeof(float)) {
        if (kn_copy_to_host(ctx, got, dev, n * sizeof *got))
            tl_fail(__FILE__, __LINE__, "%s: copy back: %s", label, kn_error(ctx));
        else
            tl_compare(__FILE__, __LINE__, label, got, want, n, tol, 1e-12);
    }
    free(want);
    free(got);
}

static void check_dev(const char *label, const float *dev, const char *ref, double tol) {
    check_dev_scaled(label, dev, ref, 1.0f, tol);
}

/* Case lines of manifest NAME.txt; NULL (and a failure) when missing. */
static FILE *open_manifest(const char *name) {
    char path[1024];
    snprintf(path, sizeof path, "%s/%s.txt", dir, name);
    FILE *f = fopen(path, "r");
    if (!f) tl_fail(__FILE__, __LINE__, "cannot open %s (run tests/gpu/export_cuda_ref.py)", path);
    refs_checked = 0;
    return f;
}

/* After a manifest's loop: it was read to the end and yielded cases; without a device the
 * case is then a skip (its references checked). */
static void close_manifest(FILE *f, const char *name, int cases) {
    if (!f) return;
    int ch;
    while ((ch = fgetc(f)) != EOF && isspace(ch))
        ;
    CHECK(ch == EOF, "%s.txt: an unreadable line after %d cases", name, cases);
    CHECK(cases > 0, "%s.txt yielded no cases", name);
    fclose(f);
    if (!ctx)
        tl_skip_no_gpu("no CUDA device: %d cases, %d references checked", cases, refs_checked);
}

/* label and reference name each need a buffer of their own: both are arguments of one call */
#define REF(buf, fmt, ...) (snprintf(buf, sizeof buf, fmt, __VA_ARGS__), buf)
/* CALL on a device (context c), skipped without one */
#define OK_IN(c, call)                                                                             \
    do {                                                                                           \
        if (ctx) CHECK((call) == 0, "%s: %s", #call, kn_error(c));                                 \
    } while (0)
#define OK(call) OK_IN(ctx, call)

/* An input activation of dtype dt from a reference in a buffer (from dev_ref): that buffer
 * for fp32, else a bf16 copy (the references of bf16 cases are bf16 values: cast exactly). */
static void *dev_act(kn_dtype dt, float *ref, size_t count) {
    if (dt == KN_F32 || !ref) return ref;
    kn_bf16 *a = dev_alloc(count * sizeof *a);
    if (a) OK_IN(ctx, kn_f32_to_bf16(ctx, a, ref, count));
    return a;
}

/* An output activation of dtype dt: zeroed fp32, or bf16. */
static void *dev_act_out(kn_dtype dt, size_t count) {
    return dt == KN_F32 ? (void *)dev_zeros(count) : dev_alloc(count * sizeof(kn_bf16));
}

/* check_dev_scaled for an activation of dtype dt: bf16 is widened to fp32 first (exact). */
static void check_act(const char *label, kn_dtype dt, const void *act, size_t count,
                      const char *ref, float scale, double tol) {
    if (dt == KN_F32) {
        check_dev_scaled(label, act, ref, scale, tol);
        return;
    }
    float *wide = dev_zeros(count);
    if (wide && act) OK_IN(ctx, kn_bf16_to_f32(ctx, wide, act, count));
    check_dev_scaled(label, wide, ref, scale, tol);
}

/* For a case that needs the device itself: 1 with one; else it fails (REQUIRE_GPU=1, or a
 * device that failed) or is skipped, and 0. */
static int device_case(void) {
    if (ctx) return 1;
    if (gpu_required)
        tl_fail(__FILE__, __LINE__, "%s", no_gpu);
    else
        tl_skip_no_gpu("%s", no_gpu);
    return 0;
}

static void test_context(void) {
    if (!device_case()) return;
    const char *d = kn_describe(ctx);
    CHECK(strstr(d, "cuda: ") == d, "describe: '%s'", d);
    printf("    %s\n", d);
    float host[1000], back[1000];
    tl_fill_uniform(host, 1000, -1, 1, 7);
    float *a = dev_alloc(sizeof host);
    CHECK(a && (uintptr_t)a % 256 == 0, "kn_malloc is not 256-byte aligned");
    OK(kn_copy_to_device(ctx, a, host, sizeof host));
    OK(kn_copy_to_host(ctx, back, a, sizeof back));
    CHECK(memcmp(host, back, sizeof host) == 0, "copy round trip changed the data");
    OK(kn_zero(ctx, a + 10, 990));
    OK(kn_sync(ctx));
    OK(kn_copy_to_host(ctx, back, a, sizeof back));
    CHECK(back[9] == host[9] && back[10] == 0.0f && back[999] == 0.0f, "kn_zero range");
    /* errors carry the failing call and its place */
    CHECK(kn_copy_to_host(ctx, back, NULL, 4) == -1 && strstr(kn_error(ctx), "NULL"),
          "NULL copy: '%s'", kn_error(ctx));
    release_all();
}

/* The device data path: batches made on the GPU from cached uint8 images are the loader's
 * transform_image bit for bit (the CPU backend runs the same check in test_image_batch). */
static void test_images_to_batch(void) {
    if (!device_case()) return;
    image_batch_check(ctx);
    image_batch_check_full_size(ctx, (uint64_t)5 << 30);
}

/* kn_memory_peak follows kn_malloc and kn_free exactly, in a context of its own (the shared
 * one's plans and workspace of earlier cases would hide the figures): a high point stays
 * after its buffer goes, and a later one above it moves it. */
static void test_memory_peak(void) {
    if (!device_case()) return;
    kn_ctx_options opt = {.backend = KN_BACKEND_CUDA, .device = 0};
    char err[512] = "";
    kn_ctx *own = kn_ctx_create(&opt, err, sizeof err);
    CHECK(own != NULL, "second context: %s", err);
    if (!own) return;
    const size_t mib = (size_t)1 << 20;
    CHECK(kn_memory_peak(own) == 0, "a new context's peak is %zu bytes", kn_memory_peak(own));
    void *a = kn_malloc(own, 8 * mib);
    CHECK(kn_memory_peak(own) == 8 * mib, "after 8 MiB: %zu", kn_memory_peak(own));
    kn_free(own, a);
    void *b = kn_malloc(own, 4 * mib);
    CHECK(kn_memory_peak(own) == 8 * mib, "after a free and 4 MiB: %zu", kn_memory_peak(own));
    void *c = kn_malloc(own, 6 * mib);
    CHECK(kn_memory_peak(own) == 10 * mib, "with 4 + 6 MiB held: %zu", kn_memory_peak(own));
    kn_free(own, c);
    kn_free(own, b);
    CHECK(kn_memory_peak(own) == 10 * mib, "after freeing all: %zu", kn_memory_peak(own));
    kn_ctx_destroy(own);
}

/* A data-parallel group's NCCL communicator with a group of one (the lent machines have one
 * GPU, and NCCL puts no two ranks on one device): an id, the communicator, a sum and a
 * broadcast queued on the context's stream behind a copy and ahead of the read, which must
 * leave the data as it was (the sum of one rank is itself). The build must have NCCL. */
static void test_comm_group_of_one(void) {
    char why[256];
    CHECK(kn_comm_supported(why, sizeof why), "this build: %s", why);
    if (!device_case()) return;
    unsigned char id[KN_COMM_ID_BYTES];
    OK(kn_comm_id(ctx, id));
    kn_comm *comm = kn_comm_create(ctx, id, 1, 0);
    CHECK(comm != NULL, "kn_comm_create: %s", kn_error(ctx));
    enum { COUNT = 1 << 20 };
    float *host = malloc(COUNT * sizeof *host), *back = malloc(COUNT * sizeof *back);
    float *a = dev_alloc(COUNT * sizeof *a);
    if (comm && host && back && a) {
        tl_fill_uniform(host, COUNT, -1, 1, 11);
        OK(kn_copy_to_device(ctx, a, host, COUNT * sizeof *host));
        CHECK(kn_comm_sum(comm, a, COUNT) == 0, "kn_comm_sum: %s", kn_error(ctx));
        CHECK(kn_comm_broadcast(comm, a, COUNT * sizeof *a) == 0, "kn_comm_broadcast: %s",
              kn_error(ctx));
        OK(kn_copy_to_host(ctx, back, a, COUNT * sizeof *back));
        CHECK(memcmp(host, back, COUNT * sizeof *host) == 0,
              "a group of one's sum and broadcast changed the data");
    }
    kn_comm_destroy(comm);
    free(host);
    free(back);
    release_all();
}

/* Whether two device buffers hold the same bits. */
static int same_bits(const float *a, const float *b, size_t count) {
    float *ha = malloc(count * sizeof *ha + 1), *hb = malloc(count * sizeof *hb + 1);
    int same = ha && hb && kn_copy_to_host(ctx, ha, a, count * sizeof *ha) == 0 &&
               kn_copy_to_host(ctx, hb, b, count * sizeof *hb) == 0 &&
               memcmp(ha, hb, count * sizeof *ha) == 0;
    free(ha), free(hb);
    return same;
}

/* The cases of conv manifest `manifest` (dtype dt) with plans of context pc (ctx, or one with
 * other options on the same device; the buffers are ctx's): every result against PyTorch at
 * tol and, when `repeat`, both backward calls a second time bit for bit. bf16 plans then get
 * new weights (2w, exact in bf16) by kn_copy_to_device between forward and backward-data,
 * which must not use the stale bf16 copy of the forward call. */
static void conv_cases(kn_ctx *pc, const char *manifest, kn_dtype dt, const char *mode, double tol,
                       int repeat) {
    FILE *f = open_manifest(manifest);
    char name[128], r[192], l[192];
    kn_conv_shape s;
    int cases = 0;
    while (f && fscanf(f, "%127s %d %d %d %d %d %d %d %d %d %d %d", name, &s.n, &s.c_in, &s.h_in,
                       &s.w_in, &s.c_out, &s.kh, &s.stride_h, &s.pad_h, &s.dilation_h, &s.groups,
                       &s.has_bias) == 12) {
        cases++;
        s.kw = s.kh, s.stride_w = s.stride_h, s.pad_w = s.pad_h, s.dilation_w = s.dilation_h;
        s.dtype = dt;
        kn_conv *plan = pc ? kn_conv_create(pc, &s) : NULL;
        CHECK(plan || !pc, "%s (%s): %s", name, mode, kn_error(pc));
        if (pc && !plan) continue;
        if (plan) printf("    %s (%s): %s\n", name, mode, kn_conv_impl(plan));
        CHECK(!plan || !repeat || strstr(kn_conv_impl(plan), "deterministic"),
              "%s: the plan does not say deterministic: %s", name, kn_conv_impl(plan));
        CHECK(!plan || dt != KN_BF16 || strstr(kn_conv_impl(plan), "bf16"),
              "%s: the plan does not say bf16: %s", name, kn_conv_impl(plan));
        size_t nx, ny, nw;
        float *x32 = dev_ref(REF(r, "%s_x", name), &nx), *w = dev_ref(REF(r, "%s_w", name), &nw);
        float *dy32 = dev_ref(REF(r, "%s_dy", name), &ny);
        float *b = s.has_bias ? dev_ref(REF(r, "%s_b", name), NULL) : NULL;
        void *x = dev_act(dt, x32, nx), *dy = dev_act(dt, dy32, ny);
        void *y = dev_act_out(dt, ny), *dx = dev_act_out(dt, nx);
        float *dw = dev_zeros(nw), *db = s.has_bias ? dev_zeros((size_t)s.c_out) : NULL;
        if (x && w && dy && y && dx && dw) {
            /* (a sync of pc's stream before each check: ctx's copies do not wait for it; and
             * of ctx's before pc reads ctx's casts) */
            OK(kn_sync(ctx));
            OK_IN(pc, kn_conv_forward(plan, y, x, w, b));
            OK_IN(pc, kn_sync(pc));
            check_act(REF(l, "%s y (%s)", name, mode), dt, y, ny, REF(r, "%s_y", name), 1, tol);
            OK_IN(pc, kn_conv_backward_data(plan, dx, dy, w));
            OK_IN(pc, kn_sync(pc));
            check_act(REF(l, "%s dx (%s)", name, mode), dt, dx, nx, REF(r, "%s_dx", name), 1, tol);
            OK_IN(pc, kn_conv_backward_weights(plan, dw, db, dy, x));
            OK_IN(pc, kn_sync(pc));
            check_dev(REF(l, "%s dw (%s)", name, mode), dw, REF(r, "%s_dw", name), tol);
            if (db) check_dev(REF(l, "%s db (%s)", name, mode), db, REF(r, "%s_db", name), tol);
            float *dx2 = repeat ? dev_zeros(nx) : NULL, *dw2 = repeat ? dev_zeros(nw) : NULL;
            if (pc && dx2 && dw2) {
                OK_IN(pc, kn_conv_backward_data(plan, dx2, dy, w));
                OK_IN(pc, kn_conv_backward_weights(plan, dw2, db, dy, x));
                OK_IN(pc, kn_sync(pc));
                CHECK(same_bits(dx, dx2, nx) && same_bits(dw, dw2, nw),
                      "%s (%s): a second backward pass gave other bits", name, mode);
            }
            float *w2 = dt == KN_BF16 && pc ? malloc(nw * sizeof *w2) : NULL;
            if (w2 && kn_copy_to_host(ctx, w2, w, nw * sizeof *w2) == 0) {
                for (size_t i = 0; i < nw; i++)
                    w2[i] *= 2.0f;
                OK_IN(pc, kn_conv_forward(plan, y, x, w, b));
                OK(kn_copy_to_device(ctx, w, w2, nw * sizeof *w2));
                OK_IN(pc, kn_conv_backward_data(plan, dx, dy, w));
                OK_IN(pc, kn_sync(pc));
                check_act(REF(l, "%s dx after new weights (%s)", name, mode), dt, dx, nx,
                          REF(r, "%s_dx", name), 2, tol);
            }
            free(w2);
        }
        kn_conv_destroy(plan);
        release_all();
    }
    close_manifest(f, manifest, cases);
}

static void test_conv(void) {
    conv_cases(ctx, "conv", KN_F32, "fp32", 1e-4, 0);
}

/* A second context on the device with other options; NULL without a device. */
static kn_ctx *other_context(const kn_ctx_options *opt) {
    if (!ctx) return NULL;
    char err[512] = "";
    kn_ctx *c = kn_ctx_create(opt, err, sizeof err);
    CHECK(c, "a CUDA context with tf32 %d, deterministic %d: %s", opt->tf32, opt->deterministic,
          err);
    return c;
}

/* Deterministic algorithms within a 1 MiB workspace cap: PyTorch's results, a second backward
 * pass bit for bit, and the context's workspace within the cap. */
static void test_conv_deterministic(void) {
    const size_t cap = (size_t)1 << 20;
    kn_ctx_options opt = {.backend = KN_BACKEND_CUDA, .deterministic = 1, .workspace_limit = cap};
    kn_ctx *pc = other_context(&opt);
    if (ctx && !pc) return;
    conv_cases(pc, "conv", KN_F32, "deterministic, 1 MiB workspace cap", 1e-4, 1);
    CHECK(!pc || kn_workspace_bytes(pc) <= cap, "workspace %zu bytes, over the %zu cap",
          kn_workspace_bytes(pc), cap);
    kn_ctx_destroy(pc);
}

/* TF32 tensor cores: inputs rounded to 10 mantissa bits, so 1e-2 of the largest value. */
static void test_conv_tf32(void) {
    kn_ctx_options opt = {.backend = KN_BACKEND_CUDA, .tf32 = 1};
    kn_ctx *pc = other_context(&opt);
    if (ctx && !pc) return;
    conv_cases(pc, "conv", KN_F32, "tf32", 1e-2, 0);
    kn_ctx_destroy(pc);
}

static void test_batchnorm(void) {
    FILE *f = open_manifest("bn");
    char name[128], r[192], l[192];
    kn_bn_shape s;
    int cases = 0;
    while (f && fscanf(f, "%127s %d %d %d %d %f", name, &s.n, &s.c, &s.h, &s.w, &s.momentum) == 6) {
        cases++;
        s.eps = 1e-5f;
        kn_bn *plan = ctx ? kn_bn_create(ctx, &s) : NULL;
        CHECK(plan || !ctx, "%s: %s", name, kn_error(ctx));
        if (ctx && !plan) continue;
        size_t nx;
        float *x = dev_ref(REF(r, "%s_x", name), &nx), *dy = dev_ref(REF(r, "%s_dy", name), NULL);
        float *gamma = dev_ref(REF(r, "%s_gamma", name), NULL);
        float *beta = dev_ref(REF(r, "%s_beta", name), NULL);
        float *rmean = dev_ref(REF(r, "%s_rmean0", name), NULL);
        float *rvar = dev_ref(REF(r, "%s_rvar0", name), NULL);
        float *y = dev_zeros(nx), *dx = dev_zeros(nx), *mean = dev_zeros((size_t)s.c);
        float *var = dev_zeros((size_t)s.c), *dgamma = dev_zeros((size_t)s.c);
        float *dbeta = dev_zeros((size_t)s.c);
        if (x && dy && gamma && beta && rmean && rvar && y && dx) {
            OK(kn_bn_forward_train(plan, y, mean, var, rmean, rvar, x, gamma, beta));
            check_dev(REF(l, "%s y (train)", name), y, REF(r, "%s_y", name), 1e-4);
            check_dev(REF(l, "%s save_mean", name), mean, REF(r, "%s_save_mean", name), 1e-5);
            check_dev(REF(l, "%s save_var", name), var, REF(r, "%s_save_var", name), 1e-5);
            check_dev(REF(l, "%s running_mean", name), rmean, REF(r, "%s_rmean1", name), 1e-5);
            check_dev(REF(l, "%s running_var (unbiased)", name), rvar, REF(r, "%s_rvar1", name),
                      1e-5);
            OK(kn_bn_backward(plan, dx, dgamma, dbeta, dy, x, mean, var, gamma));
            check_dev(REF(l, "%s dx", name), dx, REF(r, "%s_dx", name), 1e-4);
            check_dev(REF(l, "%s dgamma", name), dgamma, REF(r, "%s_dgamma", name), 1e-4);
            check_dev(REF(l, "%s dbeta", name), dbeta, REF(r, "%s_dbeta", name), 1e-4);
            OK(kn_zero(ctx, dx, nx)); /* frozen parameters: dinp only */
            OK(kn_bn_backward(plan, dx, NULL, NULL, dy, x, mean, var, gamma));
            check_dev(REF(l, "%s dx (frozen)", name), dx, REF(r, "%s_dx", name), 1e-4);
            OK(kn_bn_forward_infer(plan, y, x, gamma, beta, rmean, rvar));
            check_dev(REF(l, "%s y (infer)", name), y, REF(r, "%s_y_infer", name), 1e-4);
        }
        kn_bn_destroy(plan);
        release_all();
    }
    close_manifest(f, "bn", cases);
}

/* Synchronized batch norm over shards of one batch, as data-parallel ranks run it (kernels.h),
 * against PyTorch's BatchNorm2d over the whole batch. Each shard has its own plan, saved
 * statistics and running statistics (every rank updates its own); one more pair takes
 * kn_bn_update_running alone, as a rank with an empty shard does. */
#define SYNC_BN_MAX_SHARDS 4

static void test_sync_batchnorm(void) {
    FILE *f = open_manifest("sync_bn");
    char name[128], r[192], l[192];
    int c, h, w, parts, cases = 0;
    float momentum;
    while (f && fscanf(f, "%127s %d %d %d %f %d", name, &c, &h, &w, &momentum, &parts) == 6) {
        cases++;
        int shard_n[SYNC_BN_MAX_SHARDS], n = 0, ok = parts > 0 && parts <= SYNC_BN_MAX_SHARDS;
        CHECK(ok, "%s: %d shards (1 to %d)", name, parts, SYNC_BN_MAX_SHARDS);
        for (int k = 0; ok && k < parts; k++) {
            ok = fscanf(f, "%d", &shard_n[k]) == 1 && shard_n[k] > 0;
            n += ok ? shard_n[k] : 0;
        }
        CHECK(ok, "%s: unreadable shard sizes", name);
        if (!ok) break;
        const size_t rows_per_image = (size_t)h * w, cc = (size_t)c, vec = cc * sizeof(double);
        const double total = (double)n * h * w;
        size_t nx;
        float *x = dev_ref(REF(r, "%s_x", name), &nx), *dy = dev_ref(REF(r, "%s_dy", name), NULL);
        float *gamma = dev_ref(REF(r, "%s_gamma", name), NULL);
        float *beta = dev_ref(REF(r, "%s_beta", name), NULL);
        CHECK(!x || nx == (size_t)n * rows_per_image * cc,
              "%s: x has %zu values, the shards %d x %d x %d x %d", name, nx, n, h, w, c);
        float *y = dev_zeros(nx), *dx = dev_zeros(nx), *dgamma = dev_zeros(cc);
        float *dbeta = dev_zeros(cc), *shard_dgamma = dev_zeros(cc), *shard_dbeta = dev_zeros(cc);
        float *rmean_alone = dev_ref(REF(r, "%s_rmean0", name), NULL);
        float *rvar_alone = dev_ref(REF(r, "%s_rvar0", name), NULL);
        kn_bn *plan[SYNC_BN_MAX_SHARDS] = {NULL};
        float *save_mean[SYNC_BN_MAX_SHARDS], *save_var[SYNC_BN_MAX_SHARDS];
        float *rmean[SYNC_BN_MAX_SHARDS], *rvar[SYNC_BN_MAX_SHARDS];
        int have = x && dy && gamma && beta && y && dx && dgamma && dbeta && shard_dgamma &&
                   shard_dbeta && rmean_alone && rvar_alone &&
                   nx == (size_t)n * rows_per_image * cc;
        for (int k = 0; k < parts; k++) {
            kn_bn_shape s = {
                .n = shard_n[k], .c = c, .h = h, .w = w, .eps = 1e-5f, .momentum = momentum};
            plan[k] = ctx ? kn_bn_create(ctx, &s) : NULL;
            CHECK(plan[k] || !ctx, "%s shard %d: %s", name, k, kn_error(ctx));
            save_mean[k] = dev_zeros(cc), save_var[k] = dev_zeros(cc);
            rmean[k] = dev_ref(REF(r, "%s_rmean0", name), NULL);
            rvar[k] = dev_ref(REF(r, "%s_rvar0", name), NULL);
            have = have && (plan[k] || !ctx) && save_mean[k] && save_var[k] && rmean[k] && rvar[k];
        }
        double *host = calloc((2 * SYNC_BN_MAX_SHARDS + 8) * cc, sizeof *host);
        if (ctx && have && host) {
            double counts[SYNC_BN_MAX_SHARDS], *means = host, *m2s = means + parts * cc;
            double *mean = m2s + parts * cc, *var = mean + cc, *sum_dy = var + cc;
            double *sum_dyx = sum_dy + cc, *part_dy = sum_dyx + cc, *part_dyx = part_dy + cc;
            double *again = part_dyx + cc, *again2 = again + cc;
            size_t off[SYNC_BN_MAX_SHARDS];
            for (int k = 0, rows = 0; k < parts; rows += shard_n[k], k++) {
                off[k] = (size_t)rows * rows_per_image * cc;
                counts[k] = (double)shard_n[k] * h * w;
                OK(kn_bn_shard_stats(plan[k], means + k * cc, m2s + k * cc, x + off[k]));
            }
            /* a rerun gives the same bits (fixed-order fp64 reductions) */
            OK(kn_bn_shard_stats(plan[0], again, again2, x));
            CHECK(!memcmp(again, means, vec) && !memcmp(again2, m2s, vec),
                  "%s: a second kn_bn_shard_stats gave other bits", name);
            kn_bn_combine_stats(mean, var, counts, means, m2s, parts, c);
            for (int k = 0; k < parts; k++)
                OK(kn_bn_forward_stats(plan[k], y + off[k], save_mean[k], save_var[k], rmean[k],
                                       rvar[k], mean, var, total, x + off[k], gamma, beta));
            OK(kn_bn_update_running(ctx, rmean_alone, rvar_alone, mean, var, total, c, momentum));
            check_dev(REF(l, "%s y", name), y, REF(r, "%s_y", name), 1e-4);
            for (int k = 0; k < parts; k++) {
                check_dev(REF(l, "%s save_mean %d", name, k), save_mean[k],
                          REF(r, "%s_save_mean", name), 1e-5);
                check_dev(REF(l, "%s save_var %d", name, k), save_var[k],
                          REF(r, "%s_save_var", name), 1e-5);
                check_dev(REF(l, "%s running_mean %d", name, k), rmean[k],
                          REF(r, "%s_rmean1", name), 1e-5);
                check_dev(REF(l, "%s running_var %d", name, k), rvar[k], REF(r, "%s_rvar1", name),
                          1e-5);
            }
            check_dev(REF(l, "%s running_mean (update alone)", name), rmean_alone,
                      REF(r, "%s_rmean1", name), 1e-5);
            check_dev(REF(l, "%s running_var (update alone)", name), rvar_alone,
                      REF(r, "%s_rvar1", name), 1e-5);
            /* backward: the shards' sums added on the host in shard order, as ranks do */
            for (int k = 0; k < parts; k++) {
                OK(kn_bn_shard_backward_sums(plan[k], part_dy, part_dyx, shard_dgamma, shard_dbeta,
                                             dy + off[k], x + off[k], save_mean[k], save_var[k]));
                OK(kn_accumulate(ctx, dgamma, shard_dgamma, cc));
                OK(kn_accumulate(ctx, dbeta, shard_dbeta, cc));
                for (size_t ch = 0; ch < cc; ch++) {
                    sum_dy[ch] = (k ? sum_dy[ch] : 0.0) + part_dy[ch];
                    sum_dyx[ch] = (k ? sum_dyx[ch] : 0.0) + part_dyx[ch];
                }
            }
            /* frozen parameters (NULL dgamma/dbeta), and the same bits again */
            const int last = parts - 1;
            OK(kn_bn_shard_backward_sums(plan[last], again, again2, NULL, NULL, dy + off[last],
                                         x + off[last], save_mean[last], save_var[last]));
            CHECK(!memcmp(again, part_dy, vec) && !memcmp(again2, part_dyx, vec),
                  "%s: a second kn_bn_shard_backward_sums gave other bits", name);
            for (int k = 0; k < parts; k++)
                OK(kn_bn_backward_stats(plan[k], dx + off[k], dy + off[k], x + off[k], save_mean[k],
                                        save_var[k], gamma, sum_dy, sum_dyx, total));
            check_dev(REF(l, "%s dx", name), dx, REF(r, "%s_dx", name), 1e-4);
            check_dev(REF(l, "%s dgamma", name), dgamma, REF(r, "%s_dgamma", name), 1e-4);
            check_dev(REF(l, "%s dbeta", name), dbeta, REF(r, "%s_dbeta", name), 1e-4);
            /* refused: one value per channel, and a count below the shard's own */
            CHECK(kn_bn_forward_stats(plan[0], y, save_mean[0], save_var[0], rmean[0], rvar[0],
                                      mean, var, 1.0, x, gamma, beta) == -1 &&
                      strstr(kn_error(ctx), "count 1"),
                  "%s: count 1 was not refused ('%s')", name, kn_error(ctx));
            CHECK(kn_bn_backward_stats(plan[0], dx, dy, x, save_mean[0], save_var[0], gamma, sum_dy,
                                       sum_dyx, counts[0] - 1) == -1 &&
                      strstr(kn_error(ctx), "less than this shard's"),
                  "%s: a count below the shard's was not refused ('%s')", name, kn_error(ctx));
        } else if (!ctx) { /* sizes of the references the device run compares */
            check_dev(REF(l, "%s y", name), y, REF(r, "%s_y", name), 0);
            check_dev(REF(l, "%s dx", name), dx, REF(r, "%s_dx", name), 0);
            check_dev(REF(l, "%s save_mean", name), dgamma, REF(r, "%s_save_mean", name), 0);
            check_dev(REF(l, "%s save_var", name), dgamma, REF(r, "%s_save_var", name), 0);
            check_dev(REF(l, "%s running_mean", name), dgamma, REF(r, "%s_rmean1", name), 0);
            check_dev(REF(l, "%s running_var", name), dgamma, REF(r, "%s_rvar1", name), 0);
            check_dev(REF(l, "%s dgamma", name), dgamma, REF(r, "%s_dgamma", name), 0);
            check_dev(REF(l, "%s dbeta", name), dbeta, REF(r, "%s_dbeta", name), 0);
        }
        CHECK(host, "out of host memory");
        free(host);
        for (int k = 0; k < parts; k++)
            kn_bn_destroy(plan[k]);
        release_all();
    }
    close_manifest(f, "sync_bn", cases);
}

static void test_pool(void) {
    FILE *f = open_manifest("pool");
    char name[128], r[192], l[192];
    kn_pool_shape s;
    int is_max, cases = 0;
    while (f && fscanf(f, "%127s %d %d %d %d %d %d %d %d %d %d", name, &is_max, &s.n, &s.c, &s.h_in,
                       &s.w_in, &s.kh, &s.stride_h, &s.pad_h, &s.ceil_mode,
                       &s.count_include_pad) == 11) {
        cases++;
        s.kind = is_max ? KN_POOL_MAX : KN_POOL_AVG;
        s.kw = s.kh, s.stride_w = s.stride_h, s.pad_w = s.pad_h;
        kn_pool *plan = ctx ? kn_pool_create(ctx, &s) : NULL;
        CHECK(plan || !ctx, "%s: %s", name, kn_error(ctx));
        if (ctx && !plan) continue;
        size_t nx, ny;
        float *x = dev_ref(REF(r, "%s_x", name), &nx), *dy = dev_ref(REF(r, "%s_dy", name), &ny);
        float *y = dev_zeros(ny), *dx = dev_zeros(nx);
        if (x && dy && y && dx) {
            OK(kn_pool_forward(plan, y, x));
            check_dev(REF(l, "%s y", name), y, REF(r, "%s_y", name), 1e-6);
            OK(kn_pool_backward(plan, dx, dy));
            check_dev(REF(l, "%s dx", name), dx, REF(r, "%s_dx", name), 1e-6);
        }
        kn_pool_destroy(plan);
        release_all();
    }
    close_manifest(f, "pool", cases);
}

static void test_adaptive(void) {
    FILE *f = open_manifest("adaptive");
    char name[128], r[192], l[192];
    int n, c, h, w, ho, wo, cases = 0;
    while (f && fscanf(f, "%127s %d %d %d %d %d %d", name, &n, &c, &h, &w, &ho, &wo) == 7) {
        cases++;
        size_t nx, ny;
        float *x = dev_ref(REF(r, "%s_x", name), &nx), *dy = dev_ref(REF(r, "%s_dy", name), &ny);
        float *y = dev_zeros(ny), *dx = dev_zeros(nx);
        if (x && dy && y && dx) {
            OK(kn_adaptive_avgpool_forward(ctx, y, x, n, c, h, w, ho, wo));
            check_dev(REF(l, "%s y", name), y, REF(r, "%s_y", name), 1e-6);
            OK(kn_adaptive_avgpool_backward(ctx, dx, dy, n, c, h, w, ho, wo));
            check_dev(REF(l, "%s dx", name), dx, REF(r, "%s_dx", name), 1e-6);
        }
        release_all();
    }
    close_manifest(f, "adaptive", cases);
}

/* The cases of linear manifest `manifest` (dtype dt) against PyTorch at tol; bf16 plans then
 * get new weights between forward and backward-data, as in conv_cases. */
static void linear_cases(const char *manifest, kn_dtype dt, double tol) {
    FILE *f = open_manifest(manifest);
    char name[128], r[192], l[192];
    kn_linear_shape s;
    int cases = 0;
    while (f && fscanf(f, "%127s %d %d %d %d", name, &s.n, &s.in_features, &s.out_features,
                       &s.has_bias) == 5) {
        cases++;
        s.dtype = dt;
        kn_linear *plan = ctx ? kn_linear_create(ctx, &s) : NULL;
        CHECK(plan || !ctx, "%s: %s", name, kn_error(ctx));
        if (ctx && !plan) continue;
        size_t nx, ny, nw;
        float *x32 = dev_ref(REF(r, "%s_x", name), &nx), *w = dev_ref(REF(r, "%s_w", name), &nw);
        float *dy32 = dev_ref(REF(r, "%s_dy", name), &ny);
        float *b = s.has_bias ? dev_ref(REF(r, "%s_b", name), NULL) : NULL;
        void *x = dev_act(dt, x32, nx), *dy = dev_act(dt, dy32, ny);
        void *y = dev_act_out(dt, ny), *dx = dev_act_out(dt, nx);
        float *dw = dev_zeros(nw), *db = s.has_bias ? dev_zeros((size_t)s.out_features) : NULL;
        if (x && w && dy && y && dx && dw) {
            OK(kn_linear_forward(plan, y, x, w, b));
            check_act(REF(l, "%s y", name), dt, y, ny, REF(r, "%s_y", name), 1, tol);
            OK(kn_linear_backward_data(plan, dx, dy, w));
            check_act(REF(l, "%s dx", name), dt, dx, nx, REF(r, "%s_dx", name), 1, tol);
            OK(kn_linear_backward_weights(plan, dw, db, dy, x));
            check_dev(REF(l, "%s dw", name), dw, REF(r, "%s_dw", name), tol);
            if (db) check_dev(REF(l, "%s db", name), db, REF(r, "%s_db", name), tol);
            float *w2 = dt == KN_BF16 && ctx ? malloc(nw * sizeof *w2) : NULL;
            if (w2 && kn_copy_to_host(ctx, w2, w, nw * sizeof *w2) == 0) {
                for (size_t i = 0; i < nw; i++)
                    w2[i] *= 2.0f;
                OK(kn_linear_forward(plan, y, x, w, b));
                OK(kn_copy_to_device(ctx, w, w2, nw * sizeof *w2));
                OK(kn_linear_backward_data(plan, dx, dy, w));
                check_act(REF(l, "%s dx after new weights", name), dt, dx, nx,
                          REF(r, "%s_dx", name), 2, tol);
            }
            free(w2);
        }
        kn_linear_destroy(plan);
        release_all();
    }
    close_manifest(f, manifest, cases);
}

static void test_linear(void) {
    linear_cases("linear", KN_F32, 1e-5);
}

/* 1 when bf16 plans can run here (or there is no device: the references are then checked);
 * else a bf16 plan must be refused with the reason, and the case is skipped. */
static int bf16_or_refused(void) {
    char why[256];
    if (!ctx || kn_bf16_supported(ctx, why, sizeof why)) return 1;
    kn_linear_shape s = {.n = 1, .in_features = 4, .out_features = 2, .dtype = KN_BF16};
    CHECK(kn_linear_create(ctx, &s) == NULL && strstr(kn_error(ctx), "compute capability"),
          "a bf16 plan on a GPU without bf16 support: '%s'", kn_error(ctx));
    tl_skip("%s", why);
    return 0;
}

static void test_conv_bf16(void) {
    if (bf16_or_refused()) conv_cases(ctx, "conv_bf16", KN_BF16, "bf16", 1e-2, 0);
}

static void test_linear_bf16(void) {
    if (bf16_or_refused()) linear_cases("linear_bf16", KN_BF16, 1e-2);
}

/* The casts round exactly as PyTorch's .to(torch.bfloat16): ties to even, overflow, signs,
 * subnormals; the way back is exact. */
static void test_bf16_cast(void) {
    refs_checked = 0;
    size_t n = 0;
    float *x = dev_ref("bf16_cast_x", &n);
    kn_bf16 *h = dev_alloc((n ? n : 1) * sizeof *h);
    float *back = dev_zeros(n);
    size_t nref = 0;
    float *want = tl_load_f32(dir, "bf16_cast_y", &nref), *got = malloc(n * sizeof *got + 1);
    refs_checked += want != NULL;
    CHECK(!x || !want || n == nref, "bf16_cast_x has %zu values, bf16_cast_y %zu", n, nref);
    if (ctx && x && h && back && want && got && n == nref) {
        OK(kn_f32_to_bf16(ctx, h, x, n));
        OK(kn_bf16_to_f32(ctx, back, h, n));
        OK(kn_copy_to_host(ctx, got, back, n * sizeof *got));
        size_t bad = 0; /* bits, not values: infinities and signed zeros count */
        for (size_t i = 0; i < n; i++)
            if (memcmp(&got[i], &want[i], sizeof *got) != 0 && bad++ == 0)
                tl_fail(__FILE__, __LINE__, "element %zu: %.9g, PyTorch %.9g", i, (double)got[i],
                        (double)want[i]);
        CHECK(bad == 0, "%zu of %zu casts differ from PyTorch", bad, n);
    }
    free(want), free(got);
    release_all();
    if (!ctx) tl_skip_no_gpu("no CUDA device: %d references checked", refs_checked);
}

static void test_elementwise(void) {
    refs_checked = 0;
    size_t n = 0;
    float *x = dev_ref("relu_x", &n), *dy = dev_ref("relu_dy", NULL);
    float *y = dev_zeros(n), *dx = dev_zeros(n);
    if (x && dy && y && dx) {
        OK(kn_relu_forward(ctx, y, x, n));
        check_dev("relu y", y, "relu_y", 0.0);
        OK(kn_relu_backward(ctx, dx, dy, y, n));
        check_dev("relu dx", dx, "relu_dx", 0.0);
    }
    /* add and accumulate against the same sums on the host (one rounding each: exact) */
    float *ha = malloc(n * sizeof *ha), *hb = malloc(n * sizeof *hb), *want = malloc(n * 4);
    float *got = malloc(n * sizeof *got);
    if (ctx && x && dy && y && ha && hb && want && got) {
        OK(kn_add(ctx, y, x, dy, n));
        OK(kn_accumulate(ctx, y, x, n));
        if (kn_copy_to_host(ctx, ha, x, n * 4) == 0 && kn_copy_to_host(ctx, hb, dy, n * 4) == 0 &&
            kn_copy_to_host(ctx, got, y, n * 4) == 0) {
            for (size_t i = 0; i < n; i++)
                want[i] = (ha[i] + hb[i]) + ha[i];
            tl_compare(__FILE__, __LINE__, "add + accumulate", got, want, n, 0.0, 1e-12);
        }
    }
    free(ha), free(hb), free(want), free(got);
    release_all();
    if (!ctx) tl_skip_no_gpu("no CUDA device: %d references checked", refs_checked);
}

static void test_cross_entropy(void) {
    FILE *f = open_manifest("ce");
    char name[128], r[192], l[192];
    int n, c, cases = 0;
    while (f && fscanf(f, "%127s %d %d", name, &n, &c) == 3) {
        cases++;
        size_t count, nl, nc, nloss;
        float *logits = dev_ref(REF(r, "%s_logits", name), &count);
        int32_t *hl = tl_load_i32(dir, REF(r, "%s_labels", name), &nl);
        int32_t *hc = tl_load_i32(dir, REF(r, "%s_correct", name), &nc);
        float *want_loss = tl_load_f32(dir, REF(r, "%s_loss", name), &nloss);
        int32_t *labels = dev_alloc((size_t)n * sizeof *labels);
        float *dlogits = dev_zeros(count);
        refs_checked += (hl != NULL) + (hc != NULL) + (want_loss != NULL);
        CHECK(!hl || !hc || !want_loss ||
                  (nl == (size_t)n && nc == 1 && nloss == 1 && count == (size_t)n * c),
              "%s: reference sizes %zu labels, %zu correct, %zu loss, %zu logits for %d x %d", name,
              nl, nc, nloss, count, n, c);
        if (!ctx && dlogits)
            check_dev(REF(l, "%s dlogits", name), dlogits, REF(r, "%s_dlogits", name), 1e-6);
        if (ctx && logits && hl && hc && want_loss && labels && dlogits && nl == (size_t)n &&
            kn_copy_to_device(ctx, labels, hl, (size_t)n * sizeof *labels) == 0) {
            float loss = -1;
            int correct = -1;
            OK(kn_cross_entropy(ctx, dlogits, &loss, &correct, logits, labels, n, c));
            tl_compare(__FILE__, __LINE__, REF(l, "%s loss", name), &loss, want_loss, 1, 1e-6,
                       1e-12);
            CHECK(correct == hc[0], "%s: correct %d, PyTorch %d (first maximum wins)", name,
                  correct, hc[0]);
            check_dev(REF(l, "%s dlogits", name), dlogits, REF(r, "%s_dlogits", name), 1e-6);
            OK(kn_cross_entropy(ctx, NULL, &loss, &correct, logits, labels, n, c));
            hl[n - 1] = c; /* out of range: refused */
            OK(kn_copy_to_device(ctx, labels, hl, (size_t)n * sizeof *labels));
            CHECK(kn_cross_entropy(ctx, dlogits, &loss, &correct, logits, labels, n, c) == -1 &&
                      strstr(kn_error(ctx), "label"),
                  "%s: a bad label was not refused ('%s')", name, kn_error(ctx));
        }
        free(hl), free(hc), free(want_loss);
        release_all();
    }
    close_manifest(f, "ce", cases);
}

static void test_adam(void) {
    FILE *f = open_manifest("adam");
    kn_adam_tensor tensors[16];
    int nt = 0;
    size_t offset = 0, count;
    while (f && nt < 16 && fscanf(f, "%zu %f", &count, &tensors[nt].lr) == 2) {
        tensors[nt].offset = offset, tensors[nt].count = count;
        offset += count, nt++;
    }
    size_t total = 0;
    float *p = dev_ref("adam_p0", &total);
    float *m = dev_zeros(total), *v = dev_zeros(total);
    CHECK(total == offset, "adam: %zu parameters, tensors cover %zu", total, offset);
    char r[64], l[64];
    for (int step = 1; p && m && v && step <= 3; step++) {
        float *g = dev_ref(REF(r, "adam_g%d", step), NULL);
        kn_adam_hparams hp = {0.9f, 0.999f, 1e-8f, 1e-4f, step};
        if (g) OK(kn_adam_step(ctx, p, g, m, v, tensors, nt, &hp));
        check_dev(REF(l, "adam params step %d", step), p, REF(r, "adam_p%d", step), 1e-6);
    }
    check_dev("adam m", m, "adam_m3", 1e-6);
    check_dev("adam v", v, "adam_v3", 1e-6);
    release_all();
    close_manifest(f, "adam", nt);
}

static void test_dropout(void) {
    FILE *f = open_manifest("dropout");
    size_t count = 0;
    float p = 0;
    unsigned long long seed = 0, offset = 0;
    int ok = f && fscanf(f, "%zu %f %llu %llu", &count, &p, &seed, &offset) == 4;
    CHECK(ok, "dropout.txt unreadable");
    size_t n = 0, nmask = 0;
    float *x = dev_ref("dropout_x", &n);
    int32_t *want = tl_load_i32(dir, "dropout_mask", &nmask);
    refs_checked += want != NULL;
    CHECK(!x || !want || (n == count && nmask == count),
          "dropout: %zu inputs and %zu mask values for %zu elements", n, nmask, count);
    float *y = dev_zeros(count), *dx = dev_zeros(count);
    uint8_t *mask = dev_alloc(count);
    uint8_t *got = malloc(count);
    if (ok && x && want && y && dx && mask && got && n == count && nmask == count) {
        OK(kn_dropout_forward(ctx, y, mask, x, count, p, seed, offset));
        if (ctx && kn_copy_to_host(ctx, got, mask, count) == 0) {
            size_t differ = 0, first = 0;
            for (size_t i = count; i-- > 0;)
                if (got[i] != (uint8_t)want[i]) differ++, first = i;
            CHECK(differ == 0,
                  "dropout mask: %zu of %zu differ from the reference rule (first %zu)", differ,
                  count, first);
        }
        check_dev("dropout y", y, "dropout_y", 1e-7);
        /* backward of the forward's own output gradient: dinp = mask * dout / (1 - p) */
        OK(kn_dropout_backward(ctx, dx, x, mask, count, p));
        check_dev("dropout dx", dx, "dropout_y", 1e-7);
    }
    free(want), free(got);
    release_all();
    close_manifest(f, "dropout", ok);
}

/* A small training step for the CUDA graph cases: dropout, a linear layer, cross-entropy into
 * device totals, the backward pass and Adam, with every per-step value changing each step
 * (dropout's seed and offset, the loss's step, Adam's step and learning rates). */
enum { GRAPH_N = 8, GRAPH_IN = 32, GRAPH_C = 10, GRAPH_PARAMS = GRAPH_C * GRAPH_IN + GRAPH_C };
typedef struct {
    kn_linear *fc;
    float *x, *h, *logits, *dlogits, *dh, *dx, *params, *grads, *m, *v;
    uint8_t *mask;
    int32_t *labels;
    kn_totals *totals;
} graph_chain;

static int chain_step(const graph_chain *g, int step) {
    const float lr = 1e-2f / (float)step;
    const kn_adam_tensor t[2] = {{0, GRAPH_C * GRAPH_IN, lr},
                                 {GRAPH_C * GRAPH_IN, GRAPH_C, 2 * lr}};
    const kn_adam_hparams hp = {0.9f, 0.999f, 1e-8f, 1e-4f, step};
    const float *w = g->params, *b = g->params + GRAPH_C * GRAPH_IN;
    const size_t count = GRAPH_N * GRAPH_IN;
    return kn_dropout_forward(ctx, g->h, g->mask, g->x, count, 0.25f, 1000u + (unsigned)step,
                              7u * (unsigned)step) ||
                   kn_linear_forward(g->fc, g->logits, g->h, w, b) ||
                   kn_cross_entropy_accumulate(ctx, g->dlogits, g->totals, g->logits, g->labels,
                                               GRAPH_N, GRAPH_C, step) ||
                   kn_linear_backward_weights(g->fc, g->grads, g->grads + GRAPH_C * GRAPH_IN,
                                              g->dlogits, g->h) ||
                   kn_linear_backward_data(g->fc, g->dh, g->dlogits, w) ||
                   kn_dropout_backward(ctx, g->dx, g->dh, g->mask, count, 0.25f) ||
                   kn_adam_step(ctx, g->params, g->grads, g->m, g->v, t, 2, &hp)
               ? -1
               : 0;
}

/* What a run of chain steps leaves: parameters, Adam's moments, the totals, the last mask. */
typedef struct {
    float params[GRAPH_PARAMS], m[GRAPH_PARAMS], v[GRAPH_PARAMS];
    kn_totals totals;
    uint8_t mask[GRAPH_N * GRAPH_IN];
} chain_state;

static int chain_read(const graph_chain *g, chain_state *st) {
    return kn_copy_to_host(ctx, st->params, g->params, sizeof st->params) ||
                   kn_copy_to_host(ctx, st->m, g->m, sizeof st->m) ||
                   kn_copy_to_host(ctx, st->v, g->v, sizeof st->v) ||
                   kn_copy_to_host(ctx, &st->totals, g->totals, sizeof st->totals) ||
                   kn_copy_to_host(ctx, st->mask, g->mask, sizeof st->mask)
               ? -1
               : 0;
}

/* The start of a run: the same parameters and inputs, zero moments and totals. */
static int chain_reset(const graph_chain *g, const float *params, const float *x) {
    const kn_totals zero = {0};
    return kn_copy_to_device(ctx, g->params, params, GRAPH_PARAMS * sizeof *params) ||
                   kn_copy_to_device(ctx, g->x, x, GRAPH_N * GRAPH_IN * sizeof *x) ||
                   kn_zero(ctx, g->m, GRAPH_PARAMS) || kn_zero(ctx, g->v, GRAPH_PARAMS) ||
                   kn_copy_to_device(ctx, g->totals, &zero, sizeof zero)
               ? -1
               : 0;
}

/* Five steps eagerly, then the same five as a trainer runs them with two batch slots: step 1
 * eager (warm-up), steps 2 and 3 captured into graphs A and B, 4 and 5 replayed, the last with
 * a NaN input so that the totals record the replayed step's number. Both runs must leave the
 * same bits. Then the refusals: a replay with another buffer, a sync inside a replay or a
 * capture, a launch without a replay (nothing of them may run), an eager step after a capture
 * that CUDA invalidated, and a stale graph. */
static void test_graph_step(void) {
    if (!device_case()) return;
    const kn_linear_shape ls = {GRAPH_N, GRAPH_IN, GRAPH_C, 1, KN_F32};
    graph_chain g = {.fc = kn_linear_create(ctx, &ls)};
    CHECK(g.fc, "linear plan: %s", kn_error(ctx));
    float *bufs[10];
    const size_t act = GRAPH_N * GRAPH_IN, out = GRAPH_N * GRAPH_C;
    const size_t counts[10] = {act, act,          out,          out,          act,
                               act, GRAPH_PARAMS, GRAPH_PARAMS, GRAPH_PARAMS, GRAPH_PARAMS};
    for (int i = 0; i < 10; i++)
        bufs[i] = dev_alloc(counts[i] * sizeof(float));
    g.x = bufs[0], g.h = bufs[1], g.logits = bufs[2], g.dlogits = bufs[3], g.dh = bufs[4];
    g.dx = bufs[5], g.params = bufs[6], g.grads = bufs[7], g.m = bufs[8], g.v = bufs[9];
    g.mask = dev_alloc(act);
    g.labels = dev_alloc(GRAPH_N * sizeof *g.labels);
    g.totals = dev_alloc(sizeof *g.totals);
    float *other = dev_alloc(act * sizeof(float)); /* a buffer the capture never saw */
    static float params0[GRAPH_PARAMS], x0[GRAPH_N * GRAPH_IN], x_nan[GRAPH_N * GRAPH_IN];
    static chain_state eager, graphed, before, after;
    int32_t labels[GRAPH_N];
    tl_fill_uniform(params0, GRAPH_PARAMS, -0.3f, 0.3f, 21);
    tl_fill_uniform(x0, GRAPH_N * GRAPH_IN, -1, 1, 22);
    for (size_t i = 0; i < GRAPH_N * GRAPH_IN; i++) /* whatever dropout keeps is NaN */
        x_nan[i] = NAN;
    for (int i = 0; i < GRAPH_N; i++)
        labels[i] = (i * 3) % GRAPH_C;
    if (!g.fc || !g.mask || !g.labels || !g.totals || !other || !bufs[9] ||
        kn_copy_to_device(ctx, g.labels, labels, sizeof labels)) {
        CHECK(0, "graph step buffers: %s", kn_error(ctx));
        kn_linear_destroy(g.fc);
        release_all();
        return;
    }

    OK(chain_reset(&g, params0, x0));
    for (int step = 1; step <= 5; step++) {
        if (step == 5) OK(kn_copy_to_device(ctx, g.x, x_nan, sizeof x_nan));
        OK(chain_step(&g, step));
    }
    OK(chain_read(&g, &eager));

    kn_graph *a = NULL, *b = NULL;
    OK(chain_reset(&g, params0, x0));
    OK(chain_step(&g, 1));
    for (int step = 2; step <= 3; step++) {
        OK(kn_graph_capture_begin(ctx));
        OK(chain_step(&g, step));
        kn_graph *made = kn_graph_capture_end(ctx);
        CHECK(made, "capture of step %d: %s", step, kn_error(ctx));
        if (made) OK(kn_graph_launch(ctx, made));
        *(step == 2 ? &a : &b) = made;
    }
    for (int step = 4; a && b && step <= 5; step++) {
        kn_graph *replayed = step == 4 ? a : b;
        if (step == 5) OK(kn_copy_to_device(ctx, g.x, x_nan, sizeof x_nan));
        CHECK(kn_graph_replay_begin(ctx, replayed) == 0, "replay of step %d: %s", step,
              kn_error(ctx));
        OK(chain_step(&g, step));
        OK(kn_graph_launch(ctx, replayed));
    }
    OK(chain_read(&g, &graphed));
    CHECK(eager.totals.diverged_at == 5, "eager steps: diverged at %lld, not 5",
          (long long)eager.totals.diverged_at);
    CHECK(memcmp(&eager, &graphed, sizeof eager) == 0,
          "graph steps differ from eager ones: params %d, m %d, v %d, totals %d (diverged at "
          "%lld), mask %d",
          memcmp(eager.params, graphed.params, sizeof eager.params) != 0,
          memcmp(eager.m, graphed.m, sizeof eager.m) != 0,
          memcmp(eager.v, graphed.v, sizeof eager.v) != 0,
          memcmp(&eager.totals, &graphed.totals, sizeof eager.totals) != 0,
          (long long)graphed.totals.diverged_at,
          memcmp(eager.mask, graphed.mask, sizeof eager.mask) != 0);

    if (a) {
        OK(chain_read(&g, &before));
        graph_chain moved = g;
        moved.dx = other;
        CHECK(kn_graph_replay_begin(ctx, a) == 0, "replay: %s", kn_error(ctx));
        OK(chain_step(&moved, 6));
        CHECK(kn_graph_launch(ctx, a) == -1 && strstr(kn_error(ctx), "not the same step"),
              "a replay with another buffer was launched ('%s')", kn_error(ctx));
        CHECK(kn_graph_replay_begin(ctx, a) == 0, "replay: %s", kn_error(ctx));
        CHECK(kn_sync(ctx) == -1, "kn_sync ran inside a replay");
        CHECK(kn_graph_launch(ctx, a) == -1 && strstr(kn_error(ctx), "kn_sync"),
              "a replay that called kn_sync was launched ('%s')", kn_error(ctx));
        CHECK(kn_graph_launch(ctx, a) == -1 && strstr(kn_error(ctx), "just captured or replayed"),
              "a launch without a replay ran ('%s')", kn_error(ctx));
        CHECK(kn_graph_replay_begin(ctx, a) == 0, "replay: %s", kn_error(ctx));
        CHECK(kn_host_alloc(ctx, 64) == NULL, "kn_host_alloc ran inside a replay");
        CHECK(kn_graph_launch(ctx, a) == -1 && strstr(kn_error(ctx), "kn_host_alloc"),
              "a replay that called kn_host_alloc was launched ('%s')", kn_error(ctx));
        OK(kn_graph_capture_begin(ctx));
        CHECK(kn_sync(ctx) == -1, "kn_sync ran inside a capture");
        CHECK(kn_graph_capture_end(ctx) == NULL && strstr(kn_error(ctx), "kn_sync"),
              "a capture that called kn_sync made a graph ('%s')", kn_error(ctx));
        OK(kn_graph_capture_begin(ctx));
        CHECK(kn_dropout_forward(ctx, g.h, g.mask, g.x, act, 2.0f, 1, 0) == -1,
              "dropout with p = 2 was captured");
        CHECK(kn_graph_capture_end(ctx) == NULL && strstr(kn_error(ctx), "p = 2"),
              "a capture whose call failed made a graph ('%s')", kn_error(ctx));
        OK(kn_sync(ctx));
        OK(chain_read(&g, &after));
        CHECK(memcmp(&before, &after, sizeof before) == 0, "a refused step changed the state");
        /* the trainer's fallback: a capture that CUDA invalidated (a cudaMalloc, which a
         * capture forbids) is abandoned, and the eager step made next must run */
        OK(kn_graph_capture_begin(ctx));
        void *inside = NULL;
        const cudaError_t st = cudaMalloc(&inside, 256);
        const int failed = chain_step(&g, 6) != 0;
        kn_graph_abandon(ctx);
        if (st == cudaSuccess) {
            printf("note: cudaMalloc inside a capture did not invalidate it (step %s)\n",
                   failed ? "failed" : "captured");
            cudaFree(inside);
        }
        CHECK(chain_step(&g, 6) == 0 && kn_sync(ctx) == 0,
              "the eager step after an invalidated capture failed: %s", kn_error(ctx));
        kn_free(ctx, kn_malloc(ctx, 256));
        CHECK(kn_graph_replay_begin(ctx, a) == 1, "a graph is not stale after a free");
    }
    kn_graph_destroy(ctx, a);
    kn_graph_destroy(ctx, b);
    kn_linear_destroy(g.fc);
    release_all();
}

static void test_layout(void) {
    FILE *f = open_manifest("layout");
    char name[128], r[192], l[192];
    int n, c, h, w, cases = 0;
    while (f && fscanf(f, "%127s %d %d %d %d", name, &n, &c, &h, &w) == 5) {
        cases++;
        size_t count;
        float *nchw = dev_ref(REF(r, "%s_nchw", name), &count);
        float *nhwc = dev_ref(REF(r, "%s_nhwc", name), NULL);
        float *out = dev_zeros(count);
        if (nchw && nhwc && out) {
            OK(kn_nhwc_to_nchw(ctx, out, nhwc, n, c, h, w));
            check_dev(REF(l, "%s to NCHW", name), out, REF(r, "%s_nchw", name), 0.0);
            OK(kn_nchw_to_nhwc(ctx, out, nchw, n, c, h, w));
            check_dev(REF(l, "%s to NHWC", name), out, REF(r, "%s_nhwc", name), 0.0);
        }
        release_all();
    }
    close_manifest(f, "layout", cases);
}

/* A context on device 0, or the reason there is none in no_gpu. Only a machine without a
 * device may go on without one: no driver installed (cudart then reports an insufficient
 * driver, and the driver version is 0) or cudaErrorNoDevice. Anything else, such as a driver
 * older than the runtime, is the GPU machine's failure, as is any skip under REQUIRE_GPU=1. */
static void open_device(void) {
    const char *require = getenv("REQUIRE_GPU");
    gpu_required = require && strcmp(require, "1") == 0;
    int devices = 0, driver = 0;
    cudaError_t st = cudaGetDeviceCount(&devices);
    if (cudaDriverGetVersion(&driver) != cudaSuccess) driver = 0;
    if (st == cudaSuccess && devices > 0) {
        kn_ctx_options opt = {.backend = KN_BACKEND_CUDA, .device = 0};
        char err[512] = "";
        if (!(ctx = kn_ctx_create(&opt, err, sizeof err))) {
            snprintf(no_gpu, sizeof no_gpu, "%d CUDA device(s), yet no context: %s", devices, err);
            gpu_required = 1;
        }
        return;
    }
    const int no_device = st == cudaErrorNoDevice || st == cudaSuccess ||
                          (st == cudaErrorInsufficientDriver && driver == 0);
    snprintf(no_gpu, sizeof no_gpu, "%s: cudaGetDeviceCount: %s (%s), driver version %d",
             no_device ? "no CUDA device" : "CUDA error", cudaGetErrorName(st),
             st == cudaSuccess ? "0 devices" : cudaGetErrorString(st), driver);
    if (!no_device) gpu_required = 1;
    if (gpu_required && no_device) {
        size_t len = strlen(no_gpu);
        snprintf(no_gpu + len, sizeof no_gpu - len, ", and REQUIRE_GPU=1");
    }
}

int main(void) {
    static const char *const names[] = {
        "context",        "conv",      "conv_deterministic", "conv_tf32",       "batchnorm",
        "sync_batchnorm", "pool",      "adaptive_avgpool",   "linear",          "conv_bf16",
        "linear_bf16",    "bf16_cast", "elementwise",        "cross_entropy",   "adam",
        "dropout",        "layout",    "comm_group_of_one",  "images_to_batch", "memory_peak",
        "graph_step"};
    static const tl_case_fn cases[] = {test_context,
                                       test_conv,
                                       test_conv_deterministic,
                                       test_conv_tf32,
                                       test_batchnorm,
                                       test_sync_batchnorm,
                                       test_pool,
                                       test_adaptive,
                                       test_linear,
                                       test_conv_bf16,
                                       test_linear_bf16,
                                       test_bf16_cast,
                                       test_elementwise,
                                       test_cross_entropy,
                                       test_adam,
                                       test_dropout,
                                       test_layout,
                                       test_comm_group_of_one,
                                       test_images_to_batch,
                                       test_memory_peak,
                                       test_graph_step};
    open_device();
    if (!ctx && !gpu_required)
        printf("skipped: %s; checking the references only\n", no_gpu);
    else if (!ctx)
        printf("FAIL: %s\n", no_gpu);
    dir = tl_data_dir("cuda");
    int rc = TL_RUN("cuda_ops", names, cases);
    kn_ctx_destroy(ctx);
    return rc;
}
