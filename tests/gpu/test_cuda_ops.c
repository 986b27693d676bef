/* The CUDA backend's ops against PyTorch, forward and backward: references from
 * tests/gpu/export_cuda_ref.py (float64 on the CPU, stored float32) in
 * $TLSWEEP_TESTDATA/cuda, case lists in its *.txt files. Without a CUDA device every case is
 * skipped, and the binary says why. Uses only kernels.h, so it also builds without the CPU
 * backend (make gpu-standalone).
 *
 * Tolerances are relative to the largest reference magnitude (tl_compare): 1e-4 for cuDNN
 * convolutions, batchnorm and cuBLAS (fp32 FMA math, other summation orders), 1e-6 for the
 * own kernels whose sums are short, exact for data movement (layout, ReLU, dropout). */
#include "kernels/kernels.h"
#include "tests/testlib.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cuda_runtime_api.h>

#define MAX_LIVE 64

static kn_ctx *ctx;
static const char *dir;
static void *live[MAX_LIVE]; /* device buffers of the current case */
static int n_live;

static void *dev_alloc(size_t bytes) {
    void *p = kn_malloc(ctx, bytes);
    CHECK(p, "kn_malloc(%zu): %s", bytes, kn_error(ctx));
    if (p && n_live < MAX_LIVE) live[n_live++] = p;
    return p;
}

static void release_all(void) {
    for (int i = 0; i < n_live; i++)
        kn_free(ctx, live[i]);
    n_live = 0;
}

/* A reference tensor copied to the device; NULL (and a failure) when it cannot be. */
static float *dev_ref(const char *name, size_t *count) {
    size_t n = 0;
    float *host = tl_load_f32(dir, name, &n);
    if (!host) return NULL;
    float *d = dev_alloc(n * sizeof *d);
    if (d && kn_copy_to_device(ctx, d, host, n * sizeof *d))
        tl_fail(__FILE__, __LINE__, "copy %s: %s", name, kn_error(ctx)), d = NULL;
    free(host);
    if (count) *count = n;
    return d;
}

static float *dev_zeros(size_t count) {
    float *d = dev_alloc(count * sizeof *d);
    if (d && kn_zero(ctx, d, count)) tl_fail(__FILE__, __LINE__, "kn_zero: %s", kn_error(ctx));
    return d;
}

/* Compares a device tensor with reference `ref` (same element count). */
static void check_dev(const char *label, const float *dev, const char *ref, double tol) {
    size_t n = 0;
    float *want = tl_load_f32(dir, ref, &n);
    float *got = malloc(n * sizeof *got + 1);
    if (want && got && dev) {
        if (kn_copy_to_host(ctx, got, dev, n * sizeof *got))
            tl_fail(__FILE__, __LINE__, "%s: copy back: %s", label, kn_error(ctx));
        else
            tl_compare(__FILE__, __LINE__, label, got, want, n, tol, 1e-12);
    }
    free(want);
    free(got);
}

/* Case lines of manifest NAME.txt; NULL (and a failure) when missing. */
static FILE *open_manifest(const char *name) {
    char path[1024];
    snprintf(path, sizeof path, "%s/%s.txt", dir, name);
    FILE *f = fopen(path, "r");
    if (!f) tl_fail(__FILE__, __LINE__, "cannot open %s (run tests/gpu/export_cuda_ref.py)", path);
    return f;
}

#define REF(buf, fmt, ...) (snprintf(buf, sizeof buf, fmt, __VA_ARGS__), buf)
#define OK(call) CHECK((call) == 0, "%s: %s", #call, kn_error(ctx))
#define NEED_GPU()                                                                                 \
    do {                                                                                           \
        if (!ctx) {                                                                                \
            tl_skip("no CUDA context");                                                            \
            return;                                                                                \
        }                                                                                          \
    } while (0)

static void test_context(void) {
    NEED_GPU();
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

static void test_conv(void) {
    NEED_GPU();
    FILE *f = open_manifest("conv");
    char name[128], r[192];
    kn_conv_shape s;
    while (f && fscanf(f, "%127s %d %d %d %d %d %d %d %d %d %d %d", name, &s.n, &s.c_in, &s.h_in,
                       &s.w_in, &s.c_out, &s.kh, &s.stride_h, &s.pad_h, &s.dilation_h, &s.groups,
                       &s.has_bias) == 12) {
        s.kw = s.kh, s.stride_w = s.stride_h, s.pad_w = s.pad_h, s.dilation_w = s.dilation_h;
        kn_conv *plan = kn_conv_create(ctx, &s);
        CHECK(plan, "%s: %s", name, kn_error(ctx));
        if (!plan) continue;
        printf("    %s: %s\n", name, kn_conv_impl(plan));
        size_t nx, ny, nw;
        float *x = dev_ref(REF(r, "%s_x", name), &nx), *w = dev_ref(REF(r, "%s_w", name), &nw);
        float *dy = dev_ref(REF(r, "%s_dy", name), &ny);
        float *b = s.has_bias ? dev_ref(REF(r, "%s_b", name), NULL) : NULL;
        float *y = dev_zeros(ny), *dx = dev_zeros(nx), *dw = dev_zeros(nw);
        float *db = s.has_bias ? dev_zeros((size_t)s.c_out) : NULL;
        if (x && w && dy && y && dx && dw) {
            OK(kn_conv_forward(plan, y, x, w, b));
            check_dev(REF(r, "%s y", name), y, REF(r, "%s_y", name), 1e-4);
            OK(kn_conv_backward_data(plan, dx, dy, w));
            check_dev(REF(r, "%s dx", name), dx, REF(r, "%s_dx", name), 1e-4);
            OK(kn_conv_backward_weights(plan, dw, db, dy, x));
            check_dev(REF(r, "%s dw", name), dw, REF(r, "%s_dw", name), 1e-4);
            if (db) check_dev(REF(r, "%s db", name), db, REF(r, "%s_db", name), 1e-4);
        }
        kn_conv_destroy(plan);
        release_all();
    }
    if (f) fclose(f);
}

static void test_batchnorm(void) {
    NEED_GPU();
    FILE *f = open_manifest("bn");
    char name[128], r[192];
    kn_bn_shape s;
    while (f && fscanf(f, "%127s %d %d %d %d %f", name, &s.n, &s.c, &s.h, &s.w, &s.momentum) == 6) {
        s.eps = 1e-5f;
        kn_bn *plan = kn_bn_create(ctx, &s);
        CHECK(plan, "%s: %s", name, kn_error(ctx));
        if (!plan) continue;
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
            check_dev(REF(r, "%s y (train)", name), y, REF(r, "%s_y", name), 1e-4);
            check_dev(REF(r, "%s save_mean", name), mean, REF(r, "%s_save_mean", name), 1e-5);
            check_dev(REF(r, "%s save_var", name), var, REF(r, "%s_save_var", name), 1e-5);
            check_dev(REF(r, "%s running_mean", name), rmean, REF(r, "%s_rmean1", name), 1e-5);
            check_dev(REF(r, "%s running_var (unbiased)", name), rvar, REF(r, "%s_rvar1", name),
                      1e-5);
            OK(kn_bn_backward(plan, dx, dgamma, dbeta, dy, x, mean, var, gamma));
            check_dev(REF(r, "%s dx", name), dx, REF(r, "%s_dx", name), 1e-4);
            check_dev(REF(r, "%s dgamma", name), dgamma, REF(r, "%s_dgamma", name), 1e-4);
            check_dev(REF(r, "%s dbeta", name), dbeta, REF(r, "%s_dbeta", name), 1e-4);
            OK(kn_zero(ctx, dx, nx)); /* frozen parameters: dinp only */
            OK(kn_bn_backward(plan, dx, NULL, NULL, dy, x, mean, var, gamma));
            check_dev(REF(r, "%s dx (frozen)", name), dx, REF(r, "%s_dx", name), 1e-4);
            OK(kn_bn_forward_infer(plan, y, x, gamma, beta, rmean, rvar));
            check_dev(REF(r, "%s y (infer)", name), y, REF(r, "%s_y_infer", name), 1e-4);
        }
        kn_bn_destroy(plan);
        release_all();
    }
    if (f) fclose(f);
}

static void test_pool(void) {
    NEED_GPU();
    FILE *f = open_manifest("pool");
    char name[128], r[192];
    kn_pool_shape s;
    int is_max;
    while (f && fscanf(f, "%127s %d %d %d %d %d %d %d %d %d %d", name, &is_max, &s.n, &s.c, &s.h_in,
                       &s.w_in, &s.kh, &s.stride_h, &s.pad_h, &s.ceil_mode,
                       &s.count_include_pad) == 11) {
        s.kind = is_max ? KN_POOL_MAX : KN_POOL_AVG;
        s.kw = s.kh, s.stride_w = s.stride_h, s.pad_w = s.pad_h;
        kn_pool *plan = kn_pool_create(ctx, &s);
        CHECK(plan, "%s: %s", name, kn_error(ctx));
        if (!plan) continue;
        size_t nx, ny;
        float *x = dev_ref(REF(r, "%s_x", name), &nx), *dy = dev_ref(REF(r, "%s_dy", name), &ny);
        float *y = dev_zeros(ny), *dx = dev_zeros(nx);
        if (x && dy && y && dx) {
            OK(kn_pool_forward(plan, y, x));
            check_dev(REF(r, "%s y", name), y, REF(r, "%s_y", name), 1e-6);
            OK(kn_pool_backward(plan, dx, dy));
            check_dev(REF(r, "%s dx", name), dx, REF(r, "%s_dx", name), 1e-6);
        }
        kn_pool_destroy(plan);
        release_all();
    }
    if (f) fclose(f);
}

static void test_adaptive(void) {
    NEED_GPU();
    FILE *f = open_manifest("adaptive");
    char name[128], r[192];
    int n, c, h, w, ho, wo;
    while (f && fscanf(f, "%127s %d %d %d %d %d %d", name, &n, &c, &h, &w, &ho, &wo) == 7) {
        size_t nx, ny;
        float *x = dev_ref(REF(r, "%s_x", name), &nx), *dy = dev_ref(REF(r, "%s_dy", name), &ny);
        float *y = dev_zeros(ny), *dx = dev_zeros(nx);
        if (x && dy && y && dx) {
            OK(kn_adaptive_avgpool_forward(ctx, y, x, n, c, h, w, ho, wo));
            check_dev(REF(r, "%s y", name), y, REF(r, "%s_y", name), 1e-6);
            OK(kn_adaptive_avgpool_backward(ctx, dx, dy, n, c, h, w, ho, wo));
            check_dev(REF(r, "%s dx", name), dx, REF(r, "%s_dx", name), 1e-6);
        }
        release_all();
    }
    if (f) fclose(f);
}

static void test_linear(void) {
    NEED_GPU();
    FILE *f = open_manifest("linear");
    char name[128], r[192];
    kn_linear_shape s;
    while (f && fscanf(f, "%127s %d %d %d %d", name, &s.n, &s.in_features, &s.out_features,
                       &s.has_bias) == 5) {
        kn_linear *plan = kn_linear_create(ctx, &s);
        CHECK(plan, "%s: %s", name, kn_error(ctx));
        if (!plan) continue;
        size_t nx, ny, nw;
        float *x = dev_ref(REF(r, "%s_x", name), &nx), *w = dev_ref(REF(r, "%s_w", name), &nw);
        float *dy = dev_ref(REF(r, "%s_dy", name), &ny);
        float *b = s.has_bias ? dev_ref(REF(r, "%s_b", name), NULL) : NULL;
        float *y = dev_zeros(ny), *dx = dev_zeros(nx), *dw = dev_zeros(nw);
        float *db = s.has_bias ? dev_zeros((size_t)s.out_features) : NULL;
        if (x && w && dy && y && dx && dw) {
            OK(kn_linear_forward(plan, y, x, w, b));
            check_dev(REF(r, "%s y", name), y, REF(r, "%s_y", name), 1e-5);
            OK(kn_linear_backward_data(plan, dx, dy, w));
            check_dev(REF(r, "%s dx", name), dx, REF(r, "%s_dx", name), 1e-5);
            OK(kn_linear_backward_weights(plan, dw, db, dy, x));
            check_dev(REF(r, "%s dw", name), dw, REF(r, "%s_dw", name), 1e-5);
            if (db) check_dev(REF(r, "%s db", name), db, REF(r, "%s_db", name), 1e-5);
        }
        kn_linear_destroy(plan);
        release_all();
    }
    if (f) fclose(f);
}

static void test_elementwise(void) {
    NEED_GPU();
    size_t n;
    float *x = dev_ref("relu_x", &n), *dy = dev_ref("relu_dy", NULL);
    float *y = dev_zeros(n), *dx = dev_zeros(n);
    if (!x || !dy || !y || !dx) {
        release_all();
        return;
    }
    OK(kn_relu_forward(ctx, y, x, n));
    check_dev("relu y", y, "relu_y", 0.0);
    OK(kn_relu_backward(ctx, dx, dy, y, n));
    check_dev("relu dx", dx, "relu_dx", 0.0);
    /* add and accumulate against the same sums on the host (one rounding each: exact) */
    float *ha = malloc(n * sizeof *ha), *hb = malloc(n * sizeof *hb), *want = malloc(n * 4);
    float *got = malloc(n * sizeof *got);
    OK(kn_add(ctx, y, x, dy, n));
    OK(kn_accumulate(ctx, y, x, n));
    if (ha && hb && want && got && kn_copy_to_host(ctx, ha, x, n * 4) == 0 &&
        kn_copy_to_host(ctx, hb, dy, n * 4) == 0 && kn_copy_to_host(ctx, got, y, n * 4) == 0) {
        for (size_t i = 0; i < n; i++)
            want[i] = (ha[i] + hb[i]) + ha[i];
        tl_compare(__FILE__, __LINE__, "add + accumulate", got, want, n, 0.0, 1e-12);
    }
    free(ha), free(hb), free(want), free(got);
    release_all();
}

static void test_cross_entropy(void) {
    NEED_GPU();
    FILE *f = open_manifest("ce");
    char name[128], r[192];
    int n, c;
    while (f && fscanf(f, "%127s %d %d", name, &n, &c) == 3) {
        size_t count, nl;
        float *logits = dev_ref(REF(r, "%s_logits", name), &count);
        int32_t *hl = tl_load_i32(dir, REF(r, "%s_labels", name), &nl);
        int32_t *hc = tl_load_i32(dir, REF(r, "%s_correct", name), &nl);
        float *want_loss = tl_load_f32(dir, REF(r, "%s_loss", name), &nl);
        int32_t *labels = dev_alloc((size_t)n * sizeof *labels);
        float *dlogits = dev_zeros(count);
        if (logits && hl && hc && want_loss && labels && dlogits &&
            kn_copy_to_device(ctx, labels, hl, (size_t)n * sizeof *labels) == 0) {
            float loss = -1;
            int correct = -1;
            OK(kn_cross_entropy(ctx, dlogits, &loss, &correct, logits, labels, n, c));
            tl_compare(__FILE__, __LINE__, REF(r, "%s loss", name), &loss, want_loss, 1, 1e-6,
                       1e-12);
            CHECK(correct == hc[0], "%s: correct %d, PyTorch %d (first maximum wins)", name,
                  correct, hc[0]);
            check_dev(REF(r, "%s dlogits", name), dlogits, REF(r, "%s_dlogits", name), 1e-6);
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
    if (f) fclose(f);
}

static void test_adam(void) {
    NEED_GPU();
    FILE *f = open_manifest("adam");
    kn_adam_tensor tensors[16];
    int nt = 0;
    size_t offset = 0, count;
    while (f && nt < 16 && fscanf(f, "%zu %f", &count, &tensors[nt].lr) == 2) {
        tensors[nt].offset = offset, tensors[nt].count = count;
        offset += count, nt++;
    }
    if (f) fclose(f);
    size_t total;
    float *p = dev_ref("adam_p0", &total);
    float *m = dev_zeros(total), *v = dev_zeros(total);
    CHECK(total == offset, "adam: %zu parameters, tensors cover %zu", total, offset);
    char r[64];
    for (int step = 1; p && m && v && step <= 3; step++) {
        float *g = dev_ref(REF(r, "adam_g%d", step), NULL);
        kn_adam_hparams hp = {0.9f, 0.999f, 1e-8f, 1e-4f, step};
        if (g) OK(kn_adam_step(ctx, p, g, m, v, tensors, nt, &hp));
        check_dev(REF(r, "adam params step %d", step), p, REF(r, "adam_p%d", step), 1e-6);
    }
    check_dev("adam m", m, "adam_m3", 1e-6);
    check_dev("adam v", v, "adam_v3", 1e-6);
    release_all();
}

static void test_dropout(void) {
    NEED_GPU();
    FILE *f = open_manifest("dropout");
    size_t count = 0;
    float p = 0;
    unsigned long long seed = 0, offset = 0;
    int ok = f && fscanf(f, "%zu %f %llu %llu", &count, &p, &seed, &offset) == 4;
    if (f) fclose(f);
    CHECK(ok, "dropout.txt unreadable");
    size_t n;
    float *x = dev_ref("dropout_x", &n);
    int32_t *want = tl_load_i32(dir, "dropout_mask", &n);
    float *y = dev_zeros(count), *dx = dev_zeros(count);
    uint8_t *mask = dev_alloc(count);
    uint8_t *got = malloc(count);
    if (ok && x && want && y && dx && mask && got && n == count) {
        OK(kn_dropout_forward(ctx, y, mask, x, count, p, seed, offset));
        OK(kn_copy_to_host(ctx, got, mask, count));
        size_t differ = 0, first = 0;
        for (size_t i = count; i-- > 0;)
            if (got[i] != (uint8_t)want[i]) differ++, first = i;
        CHECK(differ == 0, "dropout mask: %zu of %zu differ from the reference rule (first %zu)",
              differ, count, first);
        check_dev("dropout y", y, "dropout_y", 1e-7);
        /* backward of the forward's own output gradient: dinp = mask * dout / (1 - p) */
        OK(kn_dropout_backward(ctx, dx, x, mask, count, p));
        check_dev("dropout dx", dx, "dropout_y", 1e-7);
    }
    free(want), free(got);
    release_all();
}

static void test_layout(void) {
    NEED_GPU();
    FILE *f = open_manifest("layout");
    char name[128], r[192];
    int n, c, h, w;
    while (f && fscanf(f, "%127s %d %d %d %d", name, &n, &c, &h, &w) == 5) {
        size_t count;
        float *nchw = dev_ref(REF(r, "%s_nchw", name), &count);
        float *nhwc = dev_ref(REF(r, "%s_nhwc", name), NULL);
        float *out = dev_zeros(count);
        if (nchw && nhwc && out) {
            OK(kn_nhwc_to_nchw(ctx, out, nhwc, n, c, h, w));
            check_dev(REF(r, "%s to NCHW", name), out, REF(r, "%s_nchw", name), 0.0);
            OK(kn_nchw_to_nhwc(ctx, out, nchw, n, c, h, w));
            check_dev(REF(r, "%s to NHWC", name), out, REF(r, "%s_nhwc", name), 0.0);
        }
        release_all();
    }
    if (f) fclose(f);
}

int main(void) {
    static const char *const names[] = {
        "context",       "conv", "batchnorm", "pool",  "adaptive_avgpool", "linear", "elementwise",
        "cross_entropy", "adam", "dropout",   "layout"};
    static const tl_case_fn cases[] = {test_context,     test_conv,          test_batchnorm,
                                       test_pool,        test_adaptive,      test_linear,
                                       test_elementwise, test_cross_entropy, test_adam,
                                       test_dropout,     test_layout};
    int devices = 0;
    cudaError_t st = cudaGetDeviceCount(&devices);
    if (st != cudaSuccess || devices == 0) {
        printf("skipped: no CUDA device (%s)\n",
               st != cudaSuccess ? cudaGetErrorString(st) : "cudaGetDeviceCount found 0");
    } else {
        kn_ctx_options opt = {.backend = KN_BACKEND_CUDA, .device = 0};
        char err[512] = "";
        ctx = kn_ctx_create(&opt, err, sizeof err);
        if (!ctx) {
            printf("FAIL: %d CUDA device(s), yet no context: %s\n", devices, err);
            return 1;
        }
    }
    dir = tl_data_dir("cuda");
    int rc = tl_run("cuda_ops", names, cases, (int)(sizeof cases / sizeof cases[0]));
    kn_ctx_destroy(ctx);
    return rc;
}
