/* CPU kernels against PyTorch: tests/unit/export_kernels.py writes inputs, parameters,
 * outputs and gradients (computed in float64, stored float32); each case runs our kernel and
 * compares with CHECK_CLOSE.
 *
 * Tolerance: relative 1e-4 of the reference's largest magnitude (max|a-b| / max|ref|) for
 * every tensor. Our kernels compute in float32, so the expected error is ~1e-6 (summation
 * order); 1e-4 leaves room for oneDNN's blocked accumulation orders while still catching any
 * wrong index, padding, layout or formula (Winograd convolutions measure ~1e-6 too).
 * bf16 plans are compared with torch.autocast("cpu", dtype=torch.bfloat16) at relative 1e-2:
 * bf16 keeps 8 significant bits, so one rounding of an output is up to 2^-9 of it, and two
 * implementations summing in different orders may land on neighbouring bf16 values (2^-8);
 * PyTorch's weight gradients are bf16-rounded where ours stay fp32, and its CPU bf16 matmul
 * alone is ~4e-3 from the exact product. 1e-2 allows that (we measure up to ~6e-3) and still
 * catches a wrong index, layout, formula or stale bf16 weight copy (errors of order 1).
 * Dropout and the layout round trip are checked exactly or statistically in C (no PyTorch
 * reference: our RNG is our own). Convolutions run twice: with Winograd allowed (3x3 stride-1
 * cases take it) and on a context with it off (direct NHWC kernels for every case).
 * Synchronized batch norm (the batch computed shard by shard, as data-parallel ranks would)
 * is compared with PyTorch's whole-batch BatchNorm2d at 1e-5 for the forward pass (fp64
 * statistics) and 1e-4 for gradients, and must give the same bits on 1 and 3 threads.
 * TLSWEEP_VERBOSE=1 prints each comparison's error. */
#include "kernels/graph_seq.h"
#include "kernels/kernels.h"
#include "tests/testlib.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TOL 1e-4
#define TOL_BF16 1e-2

static kn_ctx *ctx; /* one context for every case, like a worker's */

/* TLSWEEP_VERBOSE=1 prints every comparison's relative error. */
static void note(const char *name, double rel) {
    const char *v = getenv("TLSWEEP_VERBOSE");
    if (v && *v && *v != '0') printf("      %-40s rel err %.3g\n", name, rel);
}

#define COMPARE(name, got, ref, count) note(name, CHECK_CLOSE(name, got, ref, count, TOL))

/* Loads NAME and checks it has `expect` elements (a mismatch means the tables of the two
 * files disagree). Returns NULL (and a failure) otherwise. */
static float *load(const char *name, size_t expect) {
    size_t count = 0;
    float *x = tl_load_f32(tl_data_dir("kernels"), name, &count);
    if (x && count != expect) {
        tl_fail(__FILE__, __LINE__, "%s: %zu elements, expected %zu", name, count, expect);
        free(x);
        return NULL;
    }
    return x;
}

static float *zeros(size_t count) {
    return calloc(count ? count : 1, sizeof(float));
}

static char *cat(char *buf, const char *a, const char *b) {
    snprintf(buf, 128, "%s_%s", a, b);
    return buf;
}

#define KN_OK(call)                                                                                \
    do {                                                                                           \
        if ((call) != 0) tl_fail(__FILE__, __LINE__, "%s: %s", #call, kn_error(ctx));              \
    } while (0)

/* Activation buffers of a plan's dtype. Reference inputs of bf16 cases are bf16-exact, so
 * act_from's cast is exact; act_compare casts a bf16 result back to fp32 (exact too). */
static void *act_alloc(kn_dtype dt, size_t count) {
    return calloc(count ? count : 1, dt == KN_BF16 ? sizeof(kn_bf16) : sizeof(float));
}

static void *act_from(kn_dtype dt, const float *src, size_t count) {
    void *a = act_alloc(dt, count);
    if (!a || !src) return a;
    if (dt == KN_BF16)
        KN_OK(kn_f32_to_bf16(ctx, a, src, count));
    else
        memcpy(a, src, count * sizeof(float));
    return a;
}

#define COMPARE_AS(name, dt, got, ref, count)                                                      \
    note(name, CHECK_CLOSE(name, got, ref, count, (dt) == KN_BF16 ? TOL_BF16 : TOL))

static void act_compare(const char *name, kn_dtype dt, const void *got, const float *ref,
                        size_t count) {
    if (dt == KN_F32) {
        COMPARE_AS(name, dt, got, ref, count);
        return;
    }
    float *f = zeros(count);
    KN_OK(kn_bf16_to_f32(ctx, f, got, count));
    COMPARE_AS(name, dt, f, ref, count);
    free(f);
}

/* ---- convolution ----------------------------------------------------------------------- */

typedef struct {
    const char *name;
    int n, c_in, h, w, c_out, k, stride, pad, dilation, groups, bias;
} conv_case;

/* must match CONV_CASES in export_kernels.py */
static const conv_case conv_cases[] = {
    {"conv_3x3_s1_p1", 2, 8, 10, 10, 16, 3, 1, 1, 1, 1, 0},
    {"conv_7x7_s2_p3", 2, 3, 32, 32, 16, 7, 2, 3, 1, 1, 0},
    {"conv_1x1_s2", 2, 16, 14, 14, 32, 1, 2, 0, 1, 1, 0},
    {"conv_bias", 2, 8, 9, 9, 12, 3, 1, 1, 1, 1, 1},
    {"conv_groups2", 2, 8, 10, 10, 16, 3, 1, 1, 1, 2, 1},
    {"conv_odd_13x11", 3, 5, 13, 11, 7, 3, 2, 1, 1, 1, 1},
    {"conv_dilated", 2, 4, 12, 12, 8, 3, 1, 2, 2, 1, 0},
    {"conv_3x3_wino", 2, 16, 12, 12, 32, 3, 1, 1, 1, 1, 1},
};

static void run_conv_case_as(const conv_case *c, kn_dtype dt) {
    char nm[128], base[64];
    snprintf(base, sizeof base, "%s%s", c->name, dt == KN_BF16 ? "_bf16" : "");
    kn_conv_shape s = {c->n,        c->c_in,   c->h,      c->w,   c->c_out, c->k,
                       c->k,        c->stride, c->stride, c->pad, c->pad,   c->dilation,
                       c->dilation, c->groups, c->bias,   dt};
    int ho, wo;
    kn_conv_output_hw(&s, &ho, &wo);
    size_t nx = (size_t)c->n * c->h * c->w * c->c_in, ny = (size_t)c->n * ho * wo * c->c_out;
    size_t nw = (size_t)c->c_out * (c->c_in / c->groups) * c->k * c->k;
    float *x = load(cat(nm, base, "x"), nx), *w = load(cat(nm, base, "w"), nw);
    float *y = load(cat(nm, base, "y"), ny), *dy = load(cat(nm, base, "dy"), ny);
    float *dx = load(cat(nm, base, "dx"), nx), *dw = load(cat(nm, base, "dw"), nw);
    float *b = c->bias ? load(cat(nm, base, "b"), c->c_out) : NULL;
    float *db = c->bias ? load(cat(nm, base, "db"), c->c_out) : NULL;
    float *gw = zeros(nw), *gb = zeros(c->c_out);
    void *ax = act_from(dt, x, nx), *ady = act_from(dt, dy, ny);
    void *out = act_alloc(dt, ny), *gx = act_alloc(dt, nx);
    kn_conv *plan = kn_conv_create(ctx, &s);
    CHECK(plan, "%s: create: %s", base, kn_error(ctx));
    if (plan && dt == KN_BF16)
        CHECK(strstr(kn_conv_impl(plan), "bf16"), "%s runs %s, not a native bf16 kernel", base,
              kn_conv_impl(plan));
    if (plan && x && w && y && dy && dx && dw && (!c->bias || (b && db))) {
        KN_OK(kn_conv_forward(plan, out, ax, w, b));
        act_compare(cat(nm, base, "y"), dt, out, y, ny);
        KN_OK(kn_conv_backward_data(plan, gx, ady, w));
        act_compare(cat(nm, base, "dx"), dt, gx, dx, nx);
        /* fill with garbage first: backward must overwrite, not accumulate */
        for (size_t i = 0; i < nw; i++)
            gw[i] = 1e3f;
        KN_OK(kn_conv_backward_weights(plan, gw, c->bias ? gb : NULL, ady, ax));
        COMPARE_AS(cat(nm, base, "dw"), dt, gw, dw, nw);
        if (c->bias) COMPARE_AS(cat(nm, base, "db"), dt, gb, db, c->c_out);
        /* writes elsewhere (another tensor's Adam step, a zeroed buffer) keep the plan's
         * reordered weights valid: the same output again */
        KN_OK(kn_zero(ctx, gw, nw));
        KN_OK(kn_conv_forward(plan, out, ax, w, b));
        act_compare(cat(nm, base, "y after writes elsewhere"), dt, out, y, ny);
        /* a second step with changed weights must not reuse stale reordered weights (x2 is
         * exact in bf16 too): written by a kernel call, and then declared written */
        for (size_t i = 0; i < nw; i++)
            gw[i] = 2.0f * w[i];
        KN_OK(kn_copy_to_device(ctx, w, gw, nw * sizeof *w));
        KN_OK(kn_conv_forward(plan, out, ax, w, b));
        for (size_t i = 0; i < ny; i++)
            y[i] *= 2.0f;
        if (!c->bias) act_compare(cat(nm, base, "y after weight change"), dt, out, y, ny);
        for (size_t i = 0; i < nw; i++)
            w[i] *= 0.5f;
        kn_written(ctx, w, nw * sizeof *w);
        KN_OK(kn_conv_forward(plan, out, ax, w, b));
        for (size_t i = 0; i < ny; i++)
            y[i] *= 0.5f;
        act_compare(cat(nm, base, "y after a declared write"), dt, out, y, ny);
        for (size_t i = 0; i < nw; i++)
            w[i] *= 2.0f;
        kn_written(ctx, w, nw * sizeof *w);
        KN_OK(kn_conv_forward(plan, out, ax, w, b));
        KN_OK(kn_conv_backward_data(plan, gx, ady, w));
        for (size_t i = 0; i < nx; i++)
            dx[i] *= 2.0f;
        act_compare(cat(nm, base, "dx after weight change"), dt, gx, dx, nx);
    }
    kn_conv_destroy(plan);
    free(x), free(w), free(y), free(dy), free(dx), free(dw), free(b), free(db);
    free(ax), free(ady), free(out), free(gx), free(gw), free(gb);
}

static void run_conv_case(const conv_case *c) {
    run_conv_case_as(c, KN_F32);
}

#define CONV_TEST(fn, idx)                                                                         \
    static void fn(void) {                                                                         \
        run_conv_case(&conv_cases[idx]);                                                           \
    }
CONV_TEST(test_conv_3x3_s1_p1, 0)
CONV_TEST(test_conv_7x7_s2_p3, 1)
CONV_TEST(test_conv_1x1_s2, 2)
CONV_TEST(test_conv_bias, 3)
CONV_TEST(test_conv_groups2, 4)
CONV_TEST(test_conv_odd_13x11, 5)
CONV_TEST(test_conv_dilated, 6)

/* The Winograd path (blocked activations staged through the context) on the same checks,
 * unless TLSWEEP_CPU_WINOGRAD=0 turned it off. */
static void test_conv_3x3_wino(void) {
    const conv_case *c = &conv_cases[7];
    kn_conv_shape s = {c->n, c->c_in, c->h, c->w, c->c_out, c->k, c->k, 1,
                       1,    1,       1,    1,    1,        1,    1,    KN_F32};
    kn_conv *plan = kn_conv_create(ctx, &s);
    CHECK(plan, "create: %s", kn_error(ctx));
    const char *wino = getenv("TLSWEEP_CPU_WINOGRAD");
    if (plan && !(wino && strcmp(wino, "0") == 0))
        CHECK(strstr(kn_conv_impl(plan), "wino"), "3x3 s1 16->32 uses %s, not Winograd",
              kn_conv_impl(plan));
    kn_conv_destroy(plan);
    run_conv_case(c);
}

/* Every conv case again on a context with Winograd off, so the direct NHWC path of the 3x3
 * stride-1 shapes is checked too. */
static void test_conv_direct(void) {
    const char *old = getenv("TLSWEEP_CPU_WINOGRAD");
    char *saved_env = old ? strdup(old) : NULL;
    setenv("TLSWEEP_CPU_WINOGRAD", "0", 1);
    kn_ctx_options opt = {.backend = KN_BACKEND_CPU, .threads = 2};
    char err[256];
    kn_ctx *direct = kn_ctx_create(&opt, err, sizeof err);
    if (saved_env)
        setenv("TLSWEEP_CPU_WINOGRAD", saved_env, 1);
    else
        unsetenv("TLSWEEP_CPU_WINOGRAD");
    free(saved_env);
    CHECK(direct, "context: %s", err);
    if (!direct) return;
    kn_ctx *shared = ctx;
    ctx = direct;
    const conv_case *w = &conv_cases[7];
    kn_conv_shape s = {w->n, w->c_in, w->h, w->w, w->c_out, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, KN_F32};
    kn_conv *plan = kn_conv_create(ctx, &s);
    CHECK(plan && !strstr(kn_conv_impl(plan), "wino"), "Winograd off, yet %s",
          plan ? kn_conv_impl(plan) : kn_error(ctx));
    kn_conv_destroy(plan);
    for (size_t i = 0; i < sizeof conv_cases / sizeof conv_cases[0]; i++)
        run_conv_case(&conv_cases[i]);
    ctx = shared;
    kn_ctx_destroy(direct);
}

/* Errors come back as NULL/-1 with a message, never an abort. */
static void test_conv_impossible_shape(void) {
    kn_conv_shape s = {1, 3, 4, 4, 8, 7, 7, 1,
                       1, 1, 1, 1, 1, 1, 0, KN_F32}; /* 7x7 kernel on 6x6 padded */
    kn_conv *plan = kn_conv_create(ctx, &s);
    CHECK(plan == NULL, "a 7x7 kernel on a 4x4 input with padding 1 was accepted");
    CHECK(strstr(kn_error(ctx), "conv") && strstr(kn_error(ctx), "kernel larger"), "message: '%s'",
          kn_error(ctx));
    kn_conv_destroy(plan);
    kn_conv_shape g = {1, 6, 8, 8, 8, 3, 3, 1,
                       1, 1, 1, 1, 1, 4, 0, KN_F32}; /* groups 4 does not divide 6 */
    CHECK(kn_conv_create(ctx, &g) == NULL && strstr(kn_error(ctx), "groups"), "bad groups: '%s'",
          kn_error(ctx));
    kn_pool_shape ps = {KN_POOL_MAX, 1, 2, 2, 2, 3, 3, 1, 1, 0, 0, 0, 1};
    CHECK(kn_pool_create(ctx, &ps) == NULL && strstr(kn_error(ctx), "pool"), "pool: '%s'",
          kn_error(ctx));
    /* avg 2x2 s2 ceil on 5x5 with count_include_pad: the last window hangs past the input,
     * where oneDNN's divisor and PyTorch's differ; refused rather than silently wrong */
    kn_pool_shape ceil_incl = {KN_POOL_AVG, 1, 2, 5, 5, 2, 2, 2, 2, 0, 0, 1, 1};
    CHECK(kn_pool_create(ctx, &ceil_incl) == NULL && strstr(kn_error(ctx), "ceil_mode"),
          "ceil+include_pad: '%s'", kn_error(ctx));
    kn_conv_shape ok = {1, 2, 4, 4, 2, 3, 3, 1, 1, 1, 1, 1, 1, 1, 0, KN_F32};
    kn_conv *plan_ok = kn_conv_create(ctx, &ok);
    CHECK(plan_ok && kn_conv_forward(plan_ok, NULL, NULL, NULL, NULL) == -1 &&
              strstr(kn_error(ctx), "NULL"),
          "NULL tensors: '%s'", kn_error(ctx));
    kn_conv_destroy(plan_ok);
    int32_t bad_label = 7;
    float logit[3] = {0}, loss;
    int correct;
    CHECK(kn_cross_entropy(ctx, NULL, &loss, &correct, logit, &bad_label, 1, 3) == -1 &&
              strstr(kn_error(ctx), "label 7"),
          "bad label: '%s'", kn_error(ctx));
}

/* ---- batch norm ------------------------------------------------------------------------ */

/* C=6 runs oneDNN's generic NHWC kernel, C=32 the JIT one the resnets use; the tables must
 * match BN_CASES in export_kernels.py. */
static void run_bn_case(const char *name, int n, int c, int h, int w) {
    char nm[128];
    const size_t nx = (size_t)n * h * w * c;
    float *x = load(cat(nm, name, "x"), nx), *gamma = load(cat(nm, name, "gamma"), c),
          *beta = load(cat(nm, name, "beta"), c);
    float *rm = load(cat(nm, name, "rmean0"), c), *rv = load(cat(nm, name, "rvar0"), c),
          *y = load(cat(nm, name, "y"), nx);
    float *sm = load(cat(nm, name, "save_mean"), c), *sv = load(cat(nm, name, "save_var"), c),
          *rm1 = load(cat(nm, name, "rmean1"), c);
    float *rv1 = load(cat(nm, name, "rvar1"), c), *dy = load(cat(nm, name, "dy"), nx),
          *dx = load(cat(nm, name, "dx"), nx);
    float *dgamma = load(cat(nm, name, "dgamma"), c), *dbeta = load(cat(nm, name, "dbeta"), c),
          *yi = load(cat(nm, name, "y_infer"), nx);
    float *out = zeros(nx), *gsm = zeros(c), *gsv = zeros(c), *gx = zeros(nx), *gg = zeros(c),
          *gbeta = zeros(c);
    kn_bn_shape s = {n, c, h, w, 1e-5f, 0.1f};
    kn_bn *plan = kn_bn_create(ctx, &s);
    CHECK(plan, "create: %s", kn_error(ctx));
    if (plan && x && gamma && beta && rm && rv && y && sm && sv && rm1 && rv1 && dy && dx &&
        dgamma && dbeta && yi) {
        KN_OK(kn_bn_forward_train(plan, out, gsm, gsv, rm, rv, x, gamma, beta));
        COMPARE(cat(nm, name, "out"), out, y, nx);
        COMPARE(cat(nm, name, "save_mean"), gsm, sm, c);
        COMPARE(cat(nm, name, "save_var (biased)"), gsv, sv, c);
        COMPARE(cat(nm, name, "running_mean"), rm, rm1, c);
        COMPARE(cat(nm, name, "running_var (unbiased)"), rv, rv1, c);
        KN_OK(kn_bn_backward(plan, gx, gg, gbeta, dy, x, gsm, gsv, gamma));
        COMPARE(cat(nm, name, "dinp"), gx, dx, nx);
        COMPARE(cat(nm, name, "dgamma"), gg, dgamma, c);
        COMPARE(cat(nm, name, "dbeta"), gbeta, dbeta, c);
        memset(gx, 0, nx * sizeof *gx);
        KN_OK(kn_bn_backward(plan, gx, NULL, NULL, dy, x, gsm, gsv, gamma)); /* frozen gamma/beta */
        COMPARE(cat(nm, name, "dinp (frozen)"), gx, dx, nx);
        KN_OK(kn_bn_forward_infer(plan, out, x, gamma, beta, rm, rv));
        COMPARE(cat(nm, name, "infer out"), out, yi, nx);
    }
    kn_bn_destroy(plan);
    float *all[] = {x,  gamma,  beta,  rm, rv,  y,   sm,  sv, rm1, rv1,  dy,
                    dx, dgamma, dbeta, yi, out, gsm, gsv, gx, gg,  gbeta};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        free(all[i]);
}

static void test_batchnorm(void) {
    run_bn_case("bn", 4, 6, 5, 5);
    run_bn_case("bn_c32", 2, 32, 6, 6);
}

/* ---- synchronized batch norm ----------------------------------------------------------- */

/* The whole batch's PyTorch BatchNorm2d (export_kernels.py's BN_SYNC_CASE), computed as three
 * ranks would: N = 8 split into contiguous shards of 3, 2 and 3 images. Forward outputs and
 * statistics are compared at 1e-5 (fp64 statistics, one fp32 rounding per value), gradients at
 * 1e-4 as everywhere else. */
#define BN_SYNC_N 8
#define BN_SYNC_C 5
#define BN_SYNC_H 3
#define BN_SYNC_W 4
#define BN_SYNC_SHARDS 3
#define TOL_FWD 1e-5
static const int bn_sync_shard_n[BN_SYNC_SHARDS] = {3, 2, 3};

/* Compares fp64 results with an fp32 reference (CHECK_CLOSE's measure). */
static void compare_d(const char *name, const double *got, const float *ref, size_t count,
                      double tol) {
    float *f = zeros(count);
    for (size_t i = 0; i < count; i++)
        f[i] = (float)got[i];
    note(name, CHECK_CLOSE(name, f, ref, count, tol));
    free(f);
}

/* The references of one BN case (run_bn_case's files), NULL members on a failed load. */
typedef struct {
    float *x, *gamma, *beta, *rm0, *rv0, *y, *sm, *sv, *rm1, *rv1, *dy, *dx, *dgamma, *dbeta;
} bn_refs;

static int bn_refs_load(bn_refs *r, const char *name, size_t nx, size_t c) {
    char nm[128];
    r->x = load(cat(nm, name, "x"), nx), r->gamma = load(cat(nm, name, "gamma"), c);
    r->beta = load(cat(nm, name, "beta"), c), r->rm0 = load(cat(nm, name, "rmean0"), c);
    r->rv0 = load(cat(nm, name, "rvar0"), c), r->y = load(cat(nm, name, "y"), nx);
    r->sm = load(cat(nm, name, "save_mean"), c), r->sv = load(cat(nm, name, "save_var"), c);
    r->rm1 = load(cat(nm, name, "rmean1"), c), r->rv1 = load(cat(nm, name, "rvar1"), c);
    r->dy = load(cat(nm, name, "dy"), nx), r->dx = load(cat(nm, name, "dx"), nx);
    r->dgamma = load(cat(nm, name, "dgamma"), c), r->dbeta = load(cat(nm, name, "dbeta"), c);
    return r->x && r->gamma && r->beta && r->rm0 && r->rv0 && r->y && r->sm && r->sv && r->rm1 &&
           r->rv1 && r->dy && r->dx && r->dgamma && r->dbeta;
}

static void bn_refs_free(bn_refs *r) {
    float *all[] = {r->x,  r->gamma, r->beta, r->rm0, r->rv0, r->y,      r->sm,
                    r->sv, r->rm1,   r->rv1,  r->dy,  r->dx,  r->dgamma, r->dbeta};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        free(all[i]);
}

/* One synchronized BN step of a batch of `shards` contiguous shards (images per shard in
 * shard_n) on context kc, the exchanges between ranks done in shard order: outputs into y, dx
 * (whole batch), the batch statistics into mean/var, save_mean/save_var of the last shard, the
 * parameter gradients summed over shards. rm/rv are (shards, C): each shard's own copy of the
 * running statistics, as each rank holds the model. Returns 0, or -1 after a recorded failure. */
typedef struct {
    float *y, *dx, *rm, *rv, *dgamma, *dbeta, *save_mean, *save_var;
    double *mean, *var, *sum_dy, *sum_dy_xhat;
} bn_sync_out;

static int bn_sync_step(kn_ctx *kc, const int *shard_n, int shards, int c, int h, int w,
                        const float *x, const float *dy, const float *gamma, const float *beta,
                        bn_sync_out *o) {
    const size_t per_image = (size_t)h * w * c;
    double *counts = calloc(shards, sizeof(double)),
           *means = calloc((size_t)shards * c, sizeof(double)),
           *m2s = calloc((size_t)shards * c, sizeof(double)),
           *sdy = calloc((size_t)shards * 2 * c, sizeof(double));
    float *dg = zeros((size_t)shards * c), *db = zeros((size_t)shards * c);
    float *sm = zeros((size_t)shards * c), *sv = zeros((size_t)shards * c);
    kn_bn **plans = calloc(shards, sizeof *plans);
    int rc = -1;
    for (int s = 0; s < shards; s++) {
        kn_bn_shape sh = {shard_n[s], c, h, w, 1e-5f, 0.1f};
        plans[s] = kn_bn_create(kc, &sh);
        if (!plans[s]) {
            tl_fail(__FILE__, __LINE__, "shard %d plan: %s", s, kn_error(kc));
            goto done;
        }
    }
    /* forward: every shard's statistics, combined; each shard normalizes with them */
    size_t off = 0;
    double total = 0;
    for (int s = 0; s < shards; s++) {
        counts[s] = (double)shard_n[s] * h * w;
        total += counts[s];
        if (kn_bn_shard_stats(plans[s], means + (size_t)s * c, m2s + (size_t)s * c,
                              x + off * per_image)) {
            tl_fail(__FILE__, __LINE__, "shard_stats %d: %s", s, kn_error(kc));
            goto done;
        }
        off += shard_n[s];
    }
    kn_bn_combine_stats(o->mean, o->var, counts, means, m2s, shards, c);
    off = 0;
    for (int s = 0; s < shards; s++) {
        if (kn_bn_forward_stats(plans[s], o->y + off * per_image, sm + (size_t)s * c,
                                sv + (size_t)s * c, o->rm + (size_t)s * c, o->rv + (size_t)s * c,
                                o->mean, o->var, total, x + off * per_image, gamma, beta)) {
            tl_fail(__FILE__, __LINE__, "forward_stats %d: %s", s, kn_error(kc));
            goto done;
        }
        off += shard_n[s];
    }
    /* backward: every shard's sums, added in shard order; each shard's input gradient */
    off = 0;
    for (int s = 0; s < shards; s++) {
        double *mine = sdy + (size_t)s * 2 * c;
        if (kn_bn_shard_backward_sums(plans[s], mine, mine + c, dg + (size_t)s * c,
                                      db + (size_t)s * c, dy + off * per_image, x + off * per_image,
                                      sm + (size_t)s * c, sv + (size_t)s * c)) {
            tl_fail(__FILE__, __LINE__, "shard_backward_sums %d: %s", s, kn_error(kc));
            goto done;
        }
        off += shard_n[s];
    }
    for (int ch = 0; ch < c; ch++) {
        o->sum_dy[ch] = o->sum_dy_xhat[ch] = 0;
        o->dgamma[ch] = o->dbeta[ch] = 0;
        for (int s = 0; s < shards; s++) {
            o->sum_dy[ch] += sdy[(size_t)s * 2 * c + ch];
            o->sum_dy_xhat[ch] += sdy[(size_t)s * 2 * c + c + ch];
            o->dgamma[ch] += dg[(size_t)s * c + ch];
            o->dbeta[ch] += db[(size_t)s * c + ch];
        }
    }
    off = 0;
    for (int s = 0; s < shards; s++) {
        if (kn_bn_backward_stats(plans[s], o->dx + off * per_image, dy + off * per_image,
                                 x + off * per_image, sm + (size_t)s * c, sv + (size_t)s * c, gamma,
                                 o->sum_dy, o->sum_dy_xhat, total)) {
            tl_fail(__FILE__, __LINE__, "backward_stats %d: %s", s, kn_error(kc));
            goto done;
        }
        off += shard_n[s];
    }
    memcpy(o->save_mean, sm + (size_t)(shards - 1) * c, c * sizeof(float));
    memcpy(o->save_var, sv + (size_t)(shards - 1) * c, c * sizeof(float));
    /* every shard saved the same batch statistics */
    for (int s = 0; s < shards; s++)
        CHECK(!memcmp(sm + (size_t)s * c, o->save_mean, c * sizeof(float)) &&
                  !memcmp(sv + (size_t)s * c, o->save_var, c * sizeof(float)),
              "shard %d saved other batch statistics than the last shard", s);
    rc = 0;
done:
    for (int s = 0; s < shards; s++)
        kn_bn_destroy(plans[s]);
    free(plans), free(counts), free(means), free(m2s), free(sdy), free(dg), free(db), free(sm);
    free(sv);
    return rc;
}

static void bn_sync_out_alloc(bn_sync_out *o, size_t nx, int c, int shards) {
    o->y = zeros(nx), o->dx = zeros(nx), o->rm = zeros((size_t)shards * c);
    o->rv = zeros((size_t)shards * c), o->dgamma = zeros(c), o->dbeta = zeros(c);
    o->save_mean = zeros(c), o->save_var = zeros(c);
    o->mean = calloc(c, sizeof(double)), o->var = calloc(c, sizeof(double)),
    o->sum_dy = calloc(c, sizeof(double));
    o->sum_dy_xhat = calloc(c, sizeof(double));
}

static void bn_sync_out_free(bn_sync_out *o) {
    free(o->y), free(o->dx), free(o->rm), free(o->rv), free(o->dgamma), free(o->dbeta);
    free(o->save_mean), free(o->save_var), free(o->mean), free(o->var), free(o->sum_dy);
    free(o->sum_dy_xhat);
}

/* Each rank starts from the same running statistics. */
static void bn_sync_running_init(bn_sync_out *o, const float *rm0, const float *rv0, int c,
                                 int shards) {
    for (int s = 0; s < shards; s++) {
        memcpy(o->rm + (size_t)s * c, rm0, c * sizeof(float));
        memcpy(o->rv + (size_t)s * c, rv0, c * sizeof(float));
    }
}

static void test_batchnorm_sync(void) {
    const int c = BN_SYNC_C, shards = BN_SYNC_SHARDS;
    const size_t nx = (size_t)BN_SYNC_N * BN_SYNC_H * BN_SYNC_W * c;
    int sum = 0;
    for (int s = 0; s < shards; s++)
        sum += bn_sync_shard_n[s];
    CHECK(sum == BN_SYNC_N, "shards add up to %d images, not %d", sum, BN_SYNC_N);
    bn_refs r;
    bn_sync_out o;
    bn_sync_out_alloc(&o, nx, c, shards);
    if (bn_refs_load(&r, "bn_sync", nx, c)) {
        bn_sync_running_init(&o, r.rm0, r.rv0, c, shards);
        if (!bn_sync_step(ctx, bn_sync_shard_n, shards, c, BN_SYNC_H, BN_SYNC_W, r.x, r.dy, r.gamma,
                          r.beta, &o)) {
            compare_d("bn_sync combined mean", o.mean, r.sm, c, TOL_FWD);
            compare_d("bn_sync combined var (biased)", o.var, r.sv, c, TOL_FWD);
            note("bn_sync out", CHECK_CLOSE("bn_sync out", o.y, r.y, nx, TOL_FWD));
            note("bn_sync save_mean",
                 CHECK_CLOSE("bn_sync save_mean", o.save_mean, r.sm, c, TOL_FWD));
            note("bn_sync save_var", CHECK_CLOSE("bn_sync save_var", o.save_var, r.sv, c, TOL_FWD));
            for (int s = 0; s < shards; s++) {
                char nm[64];
                snprintf(nm, sizeof nm, "bn_sync running_mean (rank %d)", s);
                note(nm, CHECK_CLOSE(nm, o.rm + (size_t)s * c, r.rm1, c, TOL_FWD));
                snprintf(nm, sizeof nm, "bn_sync running_var (rank %d)", s);
                note(nm, CHECK_CLOSE(nm, o.rv + (size_t)s * c, r.rv1, c, TOL_FWD));
                CHECK(!memcmp(o.rm + (size_t)s * c, o.rm, c * sizeof(float)) &&
                          !memcmp(o.rv + (size_t)s * c, o.rv, c * sizeof(float)),
                      "rank %d's running statistics differ from rank 0's", s);
            }
            COMPARE("bn_sync dinp", o.dx, r.dx, nx);
            COMPARE("bn_sync dgamma (sum of shards)", o.dgamma, r.dgamma, c);
            COMPARE("bn_sync dbeta (sum of shards)", o.dbeta, r.dbeta, c);
            compare_d("bn_sync sum_dy_xhat", o.sum_dy_xhat, r.dgamma, c, TOL);
            compare_d("bn_sync sum_dy", o.sum_dy, r.dbeta, c, TOL);
        }
    }
    bn_refs_free(&r);
    bn_sync_out_free(&o);
}

/* "name: what" into buf (128 bytes). */
static char *label(char *buf, const char *name, const char *what) {
    snprintf(buf, 128, "%s: %s", name, what);
    return buf;
}

/* The whole batch as one shard against kn_bn_forward_train / kn_bn_backward (oneDNN) on the
 * same data: the same step by two implementations. */
static void bn_sync_vs_onednn(const char *name, int n, int c, int h, int w, const float *x,
                              const float *dy, const float *gamma, const float *beta,
                              const float *rm0, const float *rv0) {
    char nm[128];
    const size_t nx = (size_t)n * h * w * c;
    bn_sync_out o;
    bn_sync_out_alloc(&o, nx, c, 1);
    bn_sync_running_init(&o, rm0, rv0, c, 1);
    float *y = zeros(nx), *dx = zeros(nx), *sm = zeros(c), *sv = zeros(c), *dg = zeros(c),
          *db = zeros(c), *rm = zeros(c), *rv = zeros(c);
    memcpy(rm, rm0, c * sizeof *rm);
    memcpy(rv, rv0, c * sizeof *rv);
    kn_bn_shape s = {n, c, h, w, 1e-5f, 0.1f};
    kn_bn *plan = kn_bn_create(ctx, &s);
    CHECK(plan, "create: %s", kn_error(ctx));
    if (plan && !bn_sync_step(ctx, &n, 1, c, h, w, x, dy, gamma, beta, &o)) {
        KN_OK(kn_bn_forward_train(plan, y, sm, sv, rm, rv, x, gamma, beta));
        KN_OK(kn_bn_backward(plan, dx, dg, db, dy, x, sm, sv, gamma));
        note(label(nm, name, "out"), CHECK_CLOSE(nm, o.y, y, nx, TOL_FWD));
        note(label(nm, name, "save_mean"), CHECK_CLOSE(nm, o.save_mean, sm, c, TOL_FWD));
        note(label(nm, name, "save_var"), CHECK_CLOSE(nm, o.save_var, sv, c, TOL_FWD));
        note(label(nm, name, "running_mean"), CHECK_CLOSE(nm, o.rm, rm, c, TOL_FWD));
        note(label(nm, name, "running_var"), CHECK_CLOSE(nm, o.rv, rv, c, TOL_FWD));
        COMPARE(label(nm, name, "dinp"), o.dx, dx, nx);
        COMPARE(label(nm, name, "dgamma"), o.dgamma, dg, c);
        COMPARE(label(nm, name, "dbeta"), o.dbeta, db, c);
    }
    kn_bn_destroy(plan);
    bn_sync_out_free(&o);
    free(y), free(dx), free(sm), free(sv), free(dg), free(db), free(rm), free(rv);
}

/* Bitwise equal results of two runs, for the thread-count check. */
static void bn_sync_same_bits(const char *what, const bn_sync_out *a, const bn_sync_out *b,
                              size_t nx, int c, int shards) {
    const size_t cf = c * sizeof(float), cd = c * sizeof(double);
    CHECK(!memcmp(a->y, b->y, nx * sizeof(float)) && !memcmp(a->dx, b->dx, nx * sizeof(float)) &&
              !memcmp(a->rm, b->rm, shards * cf) && !memcmp(a->rv, b->rv, shards * cf) &&
              !memcmp(a->dgamma, b->dgamma, cf) && !memcmp(a->dbeta, b->dbeta, cf) &&
              !memcmp(a->mean, b->mean, cd) && !memcmp(a->var, b->var, cd) &&
              !memcmp(a->sum_dy, b->sum_dy, cd) && !memcmp(a->sum_dy_xhat, b->sum_dy_xhat, cd),
          "%s: results differ", what);
}

static void test_batchnorm_sync_one_shard(void) {
    /* PyTorch's data, whole batch as one shard (one row block) */
    const size_t nx = (size_t)BN_SYNC_N * BN_SYNC_H * BN_SYNC_W * BN_SYNC_C;
    bn_refs r;
    if (bn_refs_load(&r, "bn_sync", nx, BN_SYNC_C))
        bn_sync_vs_onednn("bn_sync 1 shard vs oneDNN", BN_SYNC_N, BN_SYNC_C, BN_SYNC_H, BN_SYNC_W,
                          r.x, r.dy, r.gamma, r.beta, r.rm0, r.rv0);
    bn_refs_free(&r);

    /* Larger and far from zero mean: 2304 rows in several row blocks (the last one short), and
     * C = 32, oneDNN's JIT kernel. Then the same step on 1 and 3 threads gives the same bits,
     * split into shards or not. */
    enum { n = 4, c = 32, h = 24, w = 24, shards = 3 };
    const int whole[1] = {n}, split[shards] = {1, 2, 1};
    const size_t count = (size_t)n * h * w * c;
    float *x = zeros(count), *dy = zeros(count), *gamma = zeros(c), *beta = zeros(c),
          *rm0 = zeros(c), *rv0 = zeros(c);
    tl_fill_uniform(x, count, 2.0f, 6.0f, 11);
    tl_fill_uniform(dy, count, -1, 1, 12);
    tl_fill_uniform(gamma, c, 0.5f, 1.5f, 13);
    tl_fill_uniform(beta, c, -1, 1, 14);
    tl_fill_uniform(rm0, c, -1, 1, 15);
    tl_fill_uniform(rv0, c, 0.5f, 2.0f, 16);
    bn_sync_vs_onednn("bn_sync 4x32x24x24 vs oneDNN", n, c, h, w, x, dy, gamma, beta, rm0, rv0);

    kn_ctx_options one = {.backend = KN_BACKEND_CPU, .threads = 1},
                   three = {.backend = KN_BACKEND_CPU, .threads = 3};
    char err[256];
    kn_ctx *ctx1 = kn_ctx_create(&one, err, sizeof err), *ctx3 = NULL;
    CHECK(ctx1, "1-thread context: %s", err);
    if (ctx1) ctx3 = kn_ctx_create(&three, err, sizeof err);
    CHECK(!ctx1 || ctx3, "3-thread context: %s", err);
    bn_sync_out a, b, parts;
    bn_sync_out_alloc(&a, count, c, shards);
    bn_sync_out_alloc(&b, count, c, shards);
    bn_sync_out_alloc(&parts, count, c, shards);
    for (int i = 0; ctx3 && i < 2; i++) {
        const int *shard_n = i ? split : whole, k = i ? shards : 1;
        bn_sync_running_init(&a, rm0, rv0, c, k);
        bn_sync_running_init(&b, rm0, rv0, c, k);
        if (bn_sync_step(ctx1, shard_n, k, c, h, w, x, dy, gamma, beta, &a) ||
            bn_sync_step(ctx3, shard_n, k, c, h, w, x, dy, gamma, beta, &b))
            break;
        bn_sync_same_bits(i ? "3 shards, 1 and 3 threads" : "1 shard, 1 and 3 threads", &a, &b,
                          count, c, k);
        if (i == 0) continue;
        /* the split step against the whole-batch one: equal up to summation order */
        bn_sync_running_init(&parts, rm0, rv0, c, 1);
        if (bn_sync_step(ctx, whole, 1, c, h, w, x, dy, gamma, beta, &parts)) break;
        COMPARE("bn_sync 3 shards vs 1: out", a.y, parts.y, count);
        COMPARE("bn_sync 3 shards vs 1: dinp", a.dx, parts.dx, count);
        COMPARE("bn_sync 3 shards vs 1: dgamma", a.dgamma, parts.dgamma, c);
    }
    bn_sync_out_free(&a);
    bn_sync_out_free(&b);
    bn_sync_out_free(&parts);
    kn_ctx_destroy(ctx1);
    kn_ctx_destroy(ctx3);
    free(x), free(dy), free(gamma), free(beta), free(rm0), free(rv0);
}

/* kn_bn_combine_stats on host data with a mean 1e9 times its spread, where sums of squares
 * lose every digit of the variance even in fp64 (1e18 * 2^-53 ~ 100 against a var of ~1/12),
 * against a two-pass fp64 reference; parts of uneven size and an empty one. */
static void test_bn_combine_stats(void) {
    enum { parts = 5, c = 3 };
    const int sizes[parts] = {7, 0, 1, 40, 12};
    double counts[parts], means[parts * c], m2s[parts * c], mean[c], var[c];
    double all[c][60];
    int total = 0;
    uint64_t state = 0x9e3779b97f4a7c15u;
    for (int p = 0; p < parts; p++) {
        counts[p] = sizes[p];
        for (int ch = 0; ch < c; ch++) {
            double sum = 0, m2 = 0, vals[40];
            for (int i = 0; i < sizes[p]; i++) {
                state = state * 6364136223846793005u + 1442695040888963407u;
                vals[i] = 1e9 * (ch + 1) + (double)(state >> 11) / 9007199254740992.0;
                all[ch][total + i] = vals[i];
                sum += vals[i];
            }
            const double mu = sizes[p] ? sum / sizes[p] : 0;
            for (int i = 0; i < sizes[p]; i++)
                m2 += (vals[i] - mu) * (vals[i] - mu);
            means[p * c + ch] = mu;
            m2s[p * c + ch] = m2;
        }
        total += sizes[p];
    }
    kn_bn_combine_stats(mean, var, counts, means, m2s, parts, c);
    for (int ch = 0; ch < c; ch++) {
        double sum = 0, m2 = 0;
        for (int i = 0; i < total; i++)
            sum += all[ch][i];
        const double mu = sum / total;
        for (int i = 0; i < total; i++)
            m2 += (all[ch][i] - mu) * (all[ch][i] - mu);
        CHECK(fabs(mean[ch] - mu) <= 1e-15 * fabs(mu), "channel %d: mean %.17g, want %.17g", ch,
              mean[ch], mu);
        CHECK(fabs(var[ch] - m2 / total) <= 1e-6 * (m2 / total),
              "channel %d: var %.17g, want %.17g", ch, var[ch], m2 / total);
    }
    /* one part is taken exactly; no values at all give a NaN var */
    kn_bn_combine_stats(mean, var, counts + 3, means + 3 * c, m2s + 3 * c, 1, c);
    for (int ch = 0; ch < c; ch++)
        CHECK(mean[ch] == means[3 * c + ch] && var[ch] == m2s[3 * c + ch] / counts[3],
              "one part: channel %d not taken exactly", ch);
    kn_bn_combine_stats(mean, var, counts + 1, means + c, m2s + c, 1, c);
    CHECK(isnan(var[0]), "no values: var %g, want NaN", var[0]);
}

/* Argument errors of the synchronized calls say what is wrong. */
static void test_batchnorm_sync_errors(void) {
    kn_bn_shape s = {2, 3, 2, 2, 1e-5f, 0.1f};
    kn_bn *plan = kn_bn_create(ctx, &s);
    CHECK(plan, "create: %s", kn_error(ctx));
    if (!plan) return;
    float x[24] = {0}, y[24], sm[3], sv[3], rm[3] = {0}, rv[3] = {1, 1, 1}, g[3] = {1, 1, 1},
          b[3] = {0};
    double mean[3] = {0}, var[3] = {1, 1, 1};
    CHECK(kn_bn_forward_stats(plan, y, sm, sv, rm, rv, mean, var, 4, x, g, b) == -1 &&
              strstr(kn_error(ctx), "less than this shard's 8"),
          "count below the shard's: '%s'", kn_error(ctx));
    CHECK(kn_bn_forward_stats(plan, y, sm, sv, rm, rv, mean, var, 1, x, g, b) == -1 &&
              strstr(kn_error(ctx), "more than 1 value"),
          "count 1: '%s'", kn_error(ctx));
    var[1] = NAN;
    CHECK(kn_bn_forward_stats(plan, y, sm, sv, rm, rv, mean, var, 8, x, g, b) == -1 &&
              strstr(kn_error(ctx), "channel 1"),
          "NaN variance: '%s'", kn_error(ctx));
    CHECK(kn_bn_update_running(ctx, rm, rv, mean, var, 1, 3, 0.1f) == -1, "update_running count 1");
    kn_bn_destroy(plan);
}

/* ---- pooling --------------------------------------------------------------------------- */

typedef struct {
    const char *name;
    kn_pool_kind kind;
    int n, c, h, w, k, stride, pad, ceil_mode, include_pad;
} pool_case;

/* must match POOL_CASES in export_kernels.py */
static const pool_case pool_cases[] = {
    {"maxpool_3x3_s2_p1", KN_POOL_MAX, 2, 8, 13, 13, 3, 2, 1, 0, 1},
    {"maxpool_2x2_s2", KN_POOL_MAX, 2, 4, 8, 8, 2, 2, 0, 0, 1},
    {"avgpool_3x3_s2_p1", KN_POOL_AVG, 2, 8, 13, 13, 3, 2, 1, 0, 1},
    {"avgpool_3x3_s2_p1_excl", KN_POOL_AVG, 2, 8, 13, 13, 3, 2, 1, 0, 0},
    {"avgpool_2x2_s2_ceil", KN_POOL_AVG, 2, 4, 7, 7, 2, 2, 0, 1, 0},
};

static void run_pool_case(const pool_case *c) {
    char nm[128];
    kn_pool_shape s = {c->kind,   c->n,      c->c,   c->h,   c->w,         c->k,          c->k,
                       c->stride, c->stride, c->pad, c->pad, c->ceil_mode, c->include_pad};
    int ho, wo;
    kn_pool_output_hw(&s, &ho, &wo);
    size_t nx = (size_t)c->n * c->h * c->w * c->c, ny = (size_t)c->n * ho * wo * c->c;
    float *x = load(cat(nm, c->name, "x"), nx), *y = load(cat(nm, c->name, "y"), ny);
    float *dy = load(cat(nm, c->name, "dy"), ny), *dx = load(cat(nm, c->name, "dx"), nx);
    float *out = zeros(ny), *gx = zeros(nx);
    kn_pool *plan = kn_pool_create(ctx, &s);
    CHECK(plan, "%s: create: %s", c->name, kn_error(ctx));
    if (plan && x && y && dy && dx) {
        KN_OK(kn_pool_forward(plan, out, x));
        COMPARE(cat(nm, c->name, "y"), out, y, ny);
        for (size_t i = 0; i < nx; i++)
            gx[i] = 1e3f; /* must be overwritten */
        KN_OK(kn_pool_backward(plan, gx, dy));
        COMPARE(cat(nm, c->name, "dx"), gx, dx, nx);
    }
    kn_pool_destroy(plan);
    free(x), free(y), free(dy), free(dx), free(out), free(gx);
}

static void test_pools(void) {
    for (size_t i = 0; i < sizeof pool_cases / sizeof pool_cases[0]; i++)
        run_pool_case(&pool_cases[i]);
}

static void test_adaptive_avgpool(void) {
    const int n = 2, c = 5, sizes[] = {1, 3, 14}, outs[] = {1, 7};
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 2; j++) {
            char base[64], nm[128];
            const int hw = sizes[i], o = outs[j];
            snprintf(base, sizeof base, "adaptive_%d_to_%d", hw, o);
            size_t nx = (size_t)n * hw * hw * c, ny = (size_t)n * o * o * c;
            float *x = load(cat(nm, base, "x"), nx), *y = load(cat(nm, base, "y"), ny);
            float *dy = load(cat(nm, base, "dy"), ny), *dx = load(cat(nm, base, "dx"), nx);
            float *out = zeros(ny), *gx = zeros(nx);
            if (x && y && dy && dx) {
                KN_OK(kn_adaptive_avgpool_forward(ctx, out, x, n, c, hw, hw, o, o));
                COMPARE(cat(nm, base, "y"), out, y, ny);
                for (size_t k = 0; k < nx; k++)
                    gx[k] = 1e3f;
                KN_OK(kn_adaptive_avgpool_backward(ctx, gx, dy, n, c, hw, hw, o, o));
                COMPARE(cat(nm, base, "dx"), gx, dx, nx);
            }
            free(x), free(y), free(dy), free(dx), free(out), free(gx);
        }
}

/* ---- elementwise, linear, loss --------------------------------------------------------- */

static void test_relu(void) {
    const size_t n = 1000;
    float *x = load("relu_x", n), *y = load("relu_y", n), *dy = load("relu_dy", n),
          *dx = load("relu_dx", n);
    float *out = zeros(n), *gx = zeros(n);
    if (x && y && dy && dx) {
        KN_OK(kn_relu_forward(ctx, out, x, n));
        COMPARE("relu y", out, y, n);
        KN_OK(kn_relu_backward(ctx, gx, dy, out, n));
        COMPARE("relu dx", gx, dx, n);
        KN_OK(kn_relu_forward(ctx, out, x, n / 2)); /* another size: another cached primitive */
        COMPARE("relu y (half)", out, y, n / 2);
        /* in place, as a worker runs it on a BN output and on the incoming gradient */
        memcpy(out, x, n * sizeof *out);
        KN_OK(kn_relu_forward(ctx, out, out, n));
        COMPARE("relu y (in place)", out, y, n);
        memcpy(gx, dy, n * sizeof *gx);
        KN_OK(kn_relu_backward(ctx, gx, gx, out, n));
        COMPARE("relu dx (in place)", gx, dx, n);
    }
    free(x), free(y), free(dy), free(dx), free(out), free(gx);
}

static void test_add_accumulate(void) {
    const size_t n = 100000; /* above the threshold where the loops go parallel */
    float *a = zeros(n), *b = zeros(n), *out = zeros(n), *ref = zeros(n);
    tl_fill_uniform(a, n, -1, 1, 1);
    tl_fill_uniform(b, n, -1, 1, 2);
    for (size_t i = 0; i < n; i++)
        ref[i] = a[i] + b[i];
    KN_OK(kn_add(ctx, out, a, b, n));
    CHECK(memcmp(out, ref, n * sizeof *out) == 0, "add is not exact");
    for (size_t i = 0; i < n; i++)
        ref[i] += b[i];
    KN_OK(kn_accumulate(ctx, out, b, n));
    CHECK(memcmp(out, ref, n * sizeof *out) == 0, "accumulate is not exact");
    free(a), free(b), free(out), free(ref);
}

static void test_scale(void) {
    const size_t n = 100000; /* above the threshold where the loop goes parallel */
    float *x = zeros(n), *ref = zeros(n);
    tl_fill_uniform(x, n, -10, 10, 3);
    for (size_t i = 0; i < n; i++)
        ref[i] = x[i] * 0.3f;
    KN_OK(kn_scale(ctx, x, 0.3f, n));
    CHECK(memcmp(x, ref, n * sizeof *x) == 0, "scale is not exact");
    KN_OK(kn_scale(ctx, x, 2.0f, 10)); /* only the first count */
    CHECK(x[9] == ref[9] * 2.0f && x[10] == ref[10], "scale touched the wrong elements");
    KN_OK(kn_scale(ctx, NULL, 2.0f, 0));
    CHECK(kn_scale(ctx, NULL, 2.0f, 1) == -1, "scale of NULL did not fail");
    free(x), free(ref);
}

typedef struct {
    const char *name;
    int n, in, out, bias;
} linear_case;

static void run_linear_case(const linear_case *c, kn_dtype dt) {
    char nm[128], base[64];
    snprintf(base, sizeof base, "%s%s", c->name, dt == KN_BF16 ? "_bf16" : "");
    size_t nx = (size_t)c->n * c->in, ny = (size_t)c->n * c->out, nw = (size_t)c->out * c->in;
    float *x = load(cat(nm, base, "x"), nx), *w = load(cat(nm, base, "w"), nw);
    float *y = load(cat(nm, base, "y"), ny), *dy = load(cat(nm, base, "dy"), ny);
    float *dx = load(cat(nm, base, "dx"), nx), *dw = load(cat(nm, base, "dw"), nw);
    float *b = c->bias ? load(cat(nm, base, "b"), c->out) : NULL;
    float *db = c->bias ? load(cat(nm, base, "db"), c->out) : NULL;
    float *gw = zeros(nw), *gb = zeros(c->out);
    void *ax = act_from(dt, x, nx), *ady = act_from(dt, dy, ny);
    void *out = act_alloc(dt, ny), *gx = act_alloc(dt, nx);
    kn_linear_shape s = {c->n, c->in, c->out, c->bias, dt};
    kn_linear *plan = kn_linear_create(ctx, &s);
    CHECK(plan, "%s: create: %s", base, kn_error(ctx));
    if (plan && x && w && y && dy && dx && dw && (!c->bias || (b && db))) {
        KN_OK(kn_linear_forward(plan, out, ax, w, b));
        act_compare(cat(nm, base, "y"), dt, out, y, ny);
        KN_OK(kn_linear_backward_data(plan, gx, ady, w));
        act_compare(cat(nm, base, "dx"), dt, gx, dx, nx);
        for (size_t i = 0; i < nw; i++)
            gw[i] = 1e3f;
        KN_OK(kn_linear_backward_weights(plan, gw, c->bias ? gb : NULL, ady, ax));
        COMPARE_AS(cat(nm, base, "dw"), dt, gw, dw, nw);
        if (c->bias) COMPARE_AS(cat(nm, base, "db"), dt, gb, db, c->out);
        /* an Adam step that updates other tensors keeps the bf16 copy; weights then changed
         * (here declared written) must reach it */
        KN_OK(kn_adam_step(ctx, w, w, w, w, NULL, 0, &(kn_adam_hparams){.step = 1}));
        KN_OK(kn_linear_backward_data(plan, gx, ady, w));
        act_compare(cat(nm, base, "dx after an Adam step elsewhere"), dt, gx, dx, nx);
        for (size_t i = 0; i < nw; i++)
            w[i] *= 2.0f;
        kn_written(ctx, w, nw * sizeof *w);
        KN_OK(kn_linear_backward_data(plan, gx, ady, w));
        for (size_t i = 0; i < nx; i++)
            dx[i] *= 2.0f;
        act_compare(cat(nm, base, "dx after weight change"), dt, gx, dx, nx);
    }
    kn_linear_destroy(plan);
    free(x), free(w), free(y), free(dy), free(dx), free(dw), free(b), free(db);
    free(ax), free(ady), free(out), free(gx), free(gw), free(gb);
}

static void test_linear(void) {
    /* must match LINEAR_CASES in export_kernels.py */
    const linear_case cases[] = {{"linear_bias", 4, 20, 7, 1}, {"linear_nobias", 3, 33, 5, 0}};
    for (int i = 0; i < 2; i++)
        run_linear_case(&cases[i], KN_F32);
}

/* bf16 plans against torch.autocast("cpu", dtype=torch.bfloat16) on the fp32 cases' shapes.
 * Without AVX512-BF16 they must be refused with the reason instead (never emulated). */
static int bf16_or_refused(void) {
    char why[256];
    if (kn_bf16_supported(ctx, why, sizeof why)) return 1;
    kn_conv_shape s = {1, 2, 4, 4, 2, 3, 3, 1, 1, 1, 1, 1, 1, 1, 0, KN_BF16};
    CHECK(kn_conv_create(ctx, &s) == NULL && strstr(kn_error(ctx), "AVX512-BF16"),
          "bf16 conv on a CPU without AVX512-BF16: '%s'", kn_error(ctx));
    tl_skip("%s", why);
    return 0;
}

static void test_conv_bf16(void) {
    if (!bf16_or_refused()) return;
    for (size_t i = 0; i < sizeof conv_cases / sizeof conv_cases[0]; i++)
        run_conv_case_as(&conv_cases[i], KN_BF16);
}

static void test_linear_bf16(void) {
    if (!bf16_or_refused()) return;
    const linear_case cases[] = {{"linear_bias", 4, 20, 7, 1}, {"linear_nobias", 3, 33, 5, 0}};
    for (int i = 0; i < 2; i++)
        run_linear_case(&cases[i], KN_BF16);
}

/* The casts round exactly as PyTorch's .to(torch.bfloat16): ties to even, overflow, signs. */
static void test_bf16_cast(void) {
    size_t n = 0, nref = 0;
    float *x = tl_load_f32(tl_data_dir("kernels"), "bf16_cast_x", &n);
    float *ref = tl_load_f32(tl_data_dir("kernels"), "bf16_cast_y", &nref);
    kn_bf16 *h = calloc(n ? n : 1, sizeof *h);
    float *back = zeros(n);
    if (x && ref && n == nref && h && back) {
        KN_OK(kn_f32_to_bf16(ctx, h, x, n));
        KN_OK(kn_bf16_to_f32(ctx, back, h, n));
        size_t bad = 0;
        for (size_t i = 0; i < n; i++)
            if (memcmp(&back[i], &ref[i], sizeof *back) != 0 && bad++ == 0)
                tl_fail(__FILE__, __LINE__, "element %zu: %.9g -> %.9g, PyTorch %.9g", i, x[i],
                        back[i], ref[i]);
        CHECK(bad == 0, "%zu of %zu casts differ from PyTorch", bad, n);
    }
    free(x), free(ref), free(h), free(back);
}

static void test_cross_entropy(void) {
    const int n = 8, c = 10;
    size_t nl = 0, nc = 0;
    float *logits = load("ce_logits", (size_t)n * c), *loss_ref = load("ce_loss", 1);
    float *dl_ref = load("ce_dlogits", (size_t)n * c);
    int32_t *labels = tl_load_i32(tl_data_dir("kernels"), "ce_labels", &nl);
    int32_t *correct_ref = tl_load_i32(tl_data_dir("kernels"), "ce_correct", &nc);
    float *dl = zeros((size_t)n * c);
    if (logits && loss_ref && dl_ref && labels && correct_ref && nl == (size_t)n && nc == 1) {
        float loss = -1;
        int correct = -1;
        KN_OK(kn_cross_entropy(ctx, dl, &loss, &correct, logits, labels, n, c));
        COMPARE("ce loss", &loss, loss_ref, 1);
        COMPARE("ce dlogits", dl, dl_ref, (size_t)n * c);
        CHECK(correct == correct_ref[0], "correct %d, PyTorch %d", correct, correct_ref[0]);
        float loss2 = -1;
        KN_OK(kn_cross_entropy(ctx, NULL, &loss2, &correct, logits, labels, n,
                               c)); /* eval: no grad */
        CHECK(loss2 == loss, "loss without dlogits differs: %g vs %g", loss2, loss);
    } else {
        CHECK(0, "missing or wrong-size cross-entropy references");
    }
    free(logits), free(loss_ref), free(dl_ref), free(labels), free(correct_ref), free(dl);
}

/* ---- optimizer ------------------------------------------------------------------------- */

static void test_adam(void) {
    const size_t total = 80;
    float *p = load("adam_p0", total), *m = zeros(total), *v = zeros(total);
    kn_adam_tensor tensors[] = {{0, 50, 1e-3f}, {50, 30, 1e-2f}};
    for (int step = 1; step <= 3 && p; step++) {
        char name[32];
        snprintf(name, sizeof name, "adam_g%d", step);
        float *g = load(name, total);
        snprintf(name, sizeof name, "adam_p%d", step);
        float *ref = load(name, total);
        if (g && ref) {
            kn_adam_hparams hp = {0.9f, 0.999f, 1e-8f, 1e-4f, step};
            KN_OK(kn_adam_step(ctx, p, g, m, v, tensors, 2, &hp));
            /* the update is ~lr per step: compare the change as well as the value */
            COMPARE(name, p, ref, total);
        }
        free(g), free(ref);
    }
    float *m_ref = load("adam_m3", total), *v_ref = load("adam_v3", total);
    if (m_ref && v_ref) {
        COMPARE("adam exp_avg", m, m_ref, total);
        COMPARE("adam exp_avg_sq", v, v_ref, total);
    }
    /* the parameters moved by about 3 lr: their difference from PyTorch must be far smaller */
    float *p0 = load("adam_p0", total), *p3 = load("adam_p3", total);
    if (p && p0 && p3) {
        double max_move = 0, max_err = 0;
        for (size_t i = 0; i < total; i++) {
            max_move = fmax(max_move, fabs((double)p3[i] - p0[i]));
            max_err = fmax(max_err, fabs((double)p[i] - p3[i]));
        }
        CHECK(max_err <= 1e-4 * max_move + 1e-7, "adam update off by %g of a %g move", max_err,
              max_move);
    }
    free(p), free(m), free(v), free(m_ref), free(v_ref), free(p0), free(p3);
}

/* ---- dropout --------------------------------------------------------------------------- */

static void test_dropout(void) {
    const size_t n = 1000000;
    const float p = 0.5f;
    float *x = zeros(n), *out = zeros(n), *dx = zeros(n);
    uint8_t *mask = malloc(n), *mask2 = malloc(n);
    if (!x || !out || !dx || !mask || !mask2) {
        CHECK(0, "out of memory");
        goto done;
    }
    tl_fill_uniform(x, n, 0.5f, 1.5f, 3); /* nonzero so a dropped value is visible */
    KN_OK(kn_dropout_forward(ctx, out, mask, x, n, p, 42, 0));
    size_t kept = 0, bad_scale = 0, bad_mask = 0;
    for (size_t i = 0; i < n; i++) {
        kept += mask[i];
        if (mask[i] > 1) bad_mask++;
        if (out[i] != (mask[i] ? x[i] * 2.0f : 0.0f)) bad_scale++;
    }
    /* binomial(1e6, 0.5): sd 500, so 6 sd is 3000 */
    CHECK(fabs((double)kept - 0.5 * n) < 3000, "kept %zu of %zu at p=0.5", kept, n);
    CHECK(bad_mask == 0 && bad_scale == 0, "%zu mask values not 0/1, %zu outputs not x/(1-p) or 0",
          bad_mask, bad_scale);
    KN_OK(kn_dropout_backward(ctx, dx, x, mask, n, p)); /* dout = x */
    size_t bad_bwd = 0;
    for (size_t i = 0; i < n; i++)
        bad_bwd += dx[i] != out[i];
    CHECK(bad_bwd == 0, "backward differs from the forward's mask at %zu places", bad_bwd);

    /* thread count independence: a 1-thread context gives the same mask */
    kn_ctx_options one = {.backend = KN_BACKEND_CPU, .threads = 1};
    char err[256];
    kn_ctx *ctx1 = kn_ctx_create(&one, err, sizeof err);
    CHECK(ctx1, "1-thread context: %s", err);
    if (ctx1) {
        CHECK(kn_dropout_forward(ctx1, dx, mask2, x, n, p, 42, 0) == 0, "%s", kn_error(ctx1));
        CHECK(memcmp(mask, mask2, n) == 0, "mask differs between 1 and %s", kn_describe(ctx));
        kn_ctx_destroy(ctx1);
    }
    /* a range starting at an offset continues the same stream */
    KN_OK(kn_dropout_forward(ctx, dx, mask2, x + 1000, n - 1000, p, 42, 1000));
    CHECK(memcmp(mask + 1000, mask2, n - 1000) == 0,
          "offset 1000 is not the continuation of offset 0");
    /* a different offset (another step) or seed gives a different mask */
    KN_OK(kn_dropout_forward(ctx, dx, mask2, x, n, p, 42, n));
    size_t same = 0;
    for (size_t i = 0; i < n; i++)
        same += mask[i] == mask2[i];
    CHECK(fabs((double)same - 0.5 * n) < 3000, "offset n agrees with offset 0 at %zu of %zu", same,
          n);
    KN_OK(kn_dropout_forward(ctx, dx, mask2, x, n, p, 43, 0));
    same = 0;
    for (size_t i = 0; i < n; i++)
        same += mask[i] == mask2[i];
    CHECK(fabs((double)same - 0.5 * n) < 3000, "seed 43 agrees with seed 42 at %zu of %zu", same,
          n);
    /* p = 0.1: keep fraction 0.9 with sd 300 */
    KN_OK(kn_dropout_forward(ctx, out, mask, x, n, 0.1f, 7, 0));
    kept = 0;
    for (size_t i = 0; i < n; i++)
        kept += mask[i];
    CHECK(fabs((double)kept - 0.9 * n) < 1800, "kept %zu of %zu at p=0.1", kept, n);
    CHECK(kn_dropout_forward(ctx, out, mask, x, n, 1.5f, 7, 0) == -1, "p = 1.5 accepted");
done:
    free(x), free(out), free(dx), free(mask), free(mask2);
}

/* ---- layout ---------------------------------------------------------------------------- */

/* A step's call sequence (kernels/graph_seq.c), which a CUDA graph's replay must repeat: two
 * records of the same calls agree; another op, pointer, size, float bit, order or count does
 * not. */
static void seq_calls(kn_seq *s, const char *op2, uint64_t ptr, uint64_t count, float p, int swap,
                      int extra) {
    const uint64_t first[3] = {0x1000, ptr, count};
    const uint64_t second[2] = {0x2000, kn_seq_f32(p)};
    kn_seq_start(s);
    if (swap) kn_seq_add(s, op2, second, 2);
    kn_seq_add(s, "kn_relu_forward", first, 3);
    if (!swap) kn_seq_add(s, op2, second, 2);
    if (extra) kn_seq_add(s, "kn_zero", first, 2);
}

/* kernels.h's CUDA graphs on the CPU backend: none (a trainer then runs eagerly), every graph
 * call refused with the reason, and the ops as before; then the sequence check itself. */
static void test_graph_sequence(void) {
    char why[128] = "";
    CHECK(kn_graphs_supported(ctx, why, sizeof why) == 0 && strstr(why, "CPU"),
          "the CPU backend has graphs? ('%s')", why);
    CHECK(kn_graph_capture_begin(ctx) == -1 && strstr(kn_error(ctx), "no graphs"),
          "capture on the CPU: '%s'", kn_error(ctx));
    CHECK(kn_graph_capture_end(ctx) == NULL && strstr(kn_error(ctx), "no capture"),
          "capture end without a capture: '%s'", kn_error(ctx));
    kn_graph_abandon(ctx);
    const float x[4] = {1, -2, 3, -4};
    float y[4] = {0};
    CHECK(kn_relu_forward(ctx, y, x, 4) == 0 && y[0] == 1 && y[1] == 0 && y[2] == 3 && y[3] == 0,
          "relu after the refused graph calls: %g %g %g %g", y[0], y[1], y[2], y[3]);

    kn_seq a, b;
    seq_calls(&a, "kn_scale", 0x3000, 64, 0.5f, 0, 0);
    seq_calls(&b, "kn_scale", 0x3000, 64, 0.5f, 0, 0);
    CHECK(kn_seq_equal(&a, &b) && a.calls == 2, "the same calls disagree (%llu calls)",
          (unsigned long long)a.calls);
    const struct {
        const char *what, *op2;
        uint64_t ptr, count;
        float p;
        int swap, extra;
    } other[] = {
        {"another op", "kn_add", 0x3000, 64, 0.5f, 0, 0},
        {"another buffer", "kn_scale", 0x3040, 64, 0.5f, 0, 0},
        {"another size", "kn_scale", 0x3000, 65, 0.5f, 0, 0},
        {"another float (0.5 and 0.75 both truncate to 0)", "kn_scale", 0x3000, 64, 0.75f, 0, 0},
        {"another order", "kn_scale", 0x3000, 64, 0.5f, 1, 0},
        {"one call more", "kn_scale", 0x3000, 64, 0.5f, 0, 1},
    };
    for (size_t i = 0; i < sizeof other / sizeof other[0]; i++) {
        seq_calls(&b, other[i].op2, other[i].ptr, other[i].count, other[i].p, other[i].swap,
                  other[i].extra);
        CHECK(!kn_seq_equal(&a, &b), "%s: the sequences agree", other[i].what);
    }
    CHECK(kn_seq_f32(-0.0f) != kn_seq_f32(0.0f) && kn_seq_f32(1.0f) == 0x3f800000u,
          "float arguments are not hashed as their bits");
}

static void test_layout(void) {
    const int n = 2, c = 3, h = 4, w = 5;
    const size_t count = (size_t)n * c * h * w;
    float *nchw = load("layout_nchw", count), *nhwc = load("layout_nhwc", count);
    float *a = zeros(count), *b = zeros(count);
    if (nchw && nhwc) {
        KN_OK(kn_nhwc_to_nchw(ctx, a, nhwc, n, c, h, w));
        CHECK(memcmp(a, nchw, count * sizeof *a) == 0, "NHWC -> NCHW differs from torch.permute");
        KN_OK(kn_nchw_to_nhwc(ctx, b, a, n, c, h, w));
        CHECK(memcmp(b, nhwc, count * sizeof *b) == 0, "NCHW -> NHWC round trip differs");
    }
    /* a larger round trip with 512 channels (the resnet head's shape class) */
    const size_t big = (size_t)4 * 512 * 7 * 7;
    float *x = zeros(big), *t = zeros(big), *r = zeros(big);
    tl_fill_uniform(x, big, -1, 1, 9);
    KN_OK(kn_nhwc_to_nchw(ctx, t, x, 4, 512, 7, 7));
    KN_OK(kn_nchw_to_nhwc(ctx, r, t, 4, 512, 7, 7));
    CHECK(memcmp(x, r, big * sizeof *x) == 0, "512-channel round trip differs");
    CHECK(t[1 * 49 + 2 * 7 + 3] == x[(2 * 7 + 3) * 512 + 1], "NCHW element (0,1,2,3) misplaced");
    free(nchw), free(nhwc), free(a), free(b), free(x), free(t), free(r);
}

static void test_context(void) {
    const char *d = kn_describe(ctx);
    CHECK(strstr(d, "cpu: oneDNN ") == d && strstr(d, "threads"), "describe: '%s'", d);
    /* Without a GPU (or a CUDA build) a CUDA context is refused with a reason; with one it
     * describes the CUDA backend. */
    kn_ctx_options cuda = {.backend = KN_BACKEND_CUDA, .device = 0};
    char err[256] = "";
    kn_ctx *c2 = kn_ctx_create(&cuda, err, sizeof err);
    CHECK(c2 ? strstr(kn_describe(c2), "cuda: ") == kn_describe(c2) : strlen(err) > 0,
          "CUDA context: '%s'", c2 ? kn_describe(c2) : err);
    printf("    CUDA context: %s\n", c2 ? kn_describe(c2) : err);
    kn_ctx_destroy(c2);
    void *p = kn_malloc(ctx, 1000);
    CHECK(p && ((uintptr_t)p % 64) == 0, "kn_malloc is not 64-byte aligned");
    kn_free(ctx, p);
    printf("    %s\n", d);
}

int main(void) {
    kn_ctx_options opt = {.backend = KN_BACKEND_CPU, .threads = 2};
    char err[256];
    ctx = kn_ctx_create(&opt, err, sizeof err);
    if (!ctx) {
        printf("cannot create the CPU context: %s\n0 passed, 1 failed, 0 skipped\n", err);
        return 1;
    }
    const char *const names[] = {
        "context",
        "conv_3x3_s1_p1",
        "conv_7x7_s2_p3",
        "conv_1x1_s2",
        "conv_bias",
        "conv_groups2",
        "conv_odd_13x11",
        "conv_dilated",
        "conv_3x3_winograd",
        "conv_all_direct",
        "conv_impossible_shape_error",
        "batchnorm",
        "batchnorm_sync",
        "batchnorm_sync_one_shard",
        "bn_combine_stats",
        "batchnorm_sync_errors",
        "pools",
        "adaptive_avgpool",
        "relu",
        "add_accumulate",
        "scale",
        "linear",
        "conv_bf16",
        "linear_bf16",
        "bf16_cast",
        "cross_entropy",
        "adam",
        "dropout",
        "layout",
        "graph_sequence",
    };
    const tl_case_fn cases[] = {
        test_context,
        test_conv_3x3_s1_p1,
        test_conv_7x7_s2_p3,
        test_conv_1x1_s2,
        test_conv_bias,
        test_conv_groups2,
        test_conv_odd_13x11,
        test_conv_dilated,
        test_conv_3x3_wino,
        test_conv_direct,
        test_conv_impossible_shape,
        test_batchnorm,
        test_batchnorm_sync,
        test_batchnorm_sync_one_shard,
        test_bn_combine_stats,
        test_batchnorm_sync_errors,
        test_pools,
        test_adaptive_avgpool,
        test_relu,
        test_add_accumulate,
        test_scale,
        test_linear,
        test_conv_bf16,
        test_linear_bf16,
        test_bf16_cast,
        test_cross_entropy,
        test_adam,
        test_dropout,
        test_layout,
        test_graph_sequence,
    };
    printf("kernels: relative tolerance %.0e (TLSWEEP_VERBOSE=1 prints each error)\n", TOL);
    int rc = TL_RUN("kernels", names, cases);
    kn_ctx_destroy(ctx);
    return rc;
}
