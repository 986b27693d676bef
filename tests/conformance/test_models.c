/* Whole-model conformance with PyTorch: torchvision weights written by export_models.py are
 * loaded through our .pth reader, one training step runs (forward, cross-entropy, backward,
 * Adam), and every tensor is compared: logits, loss, every parameter gradient, every parameter
 * and BN running statistic after the step, and every parameter's update (after - before)
 * against a float64 PyTorch run. Tolerance per tensor:
 * max|ours - torch| / max(max|torch|, floor) <= 1e-4, the floor being 0.01 for parameters
 * (a bias that starts at 0 has no scale of its own) and tiny elsewhere. A gradient that is zero
 * in exact arithmetic (a conv bias followed by batch norm) is checked to be zero up to fp32
 * rounding: max|ours| <= 1e-5 * the largest gradient of the model.
 *
 * The CASE_bf16 cases run the same step in bf16 (model_set_precision) next to PyTorch's
 * torch.autocast("cpu", bfloat16) run of it. bf16 keeps 8 significant bits, and these small
 * random-weight steps amplify rounding (fp32 agrees with fp64 to ~5e-6 where 2^-24 is 6e-8),
 * so PyTorch's own bf16 gradients are 20-90% (max element) from the fp64 ones: comparing two
 * bf16 runs element by element would hold them to noise. Instead every tensor's error against
 * the fp64 reference, ||x - fp64|| / ||fp64|| (L2), must be at most BF16_RATIO times
 * PyTorch's bf16 error plus BF16_FLOOR: ours is as accurate as PyTorch's mixed precision
 * (measured: up to 1.4x on gradients, often below 1; parameters after the step included). A
 * wrong layer, a stale weight copy or an fp32-only path off by order 1 fails it. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/kernels.h"
#include "tests/model_load.h"
#include "tests/testlib.h"
#include "worker/models/model.h"
#include "worker/weights/weights.h"

#define TOL 1e-4
#define BASE_LR 1e-2f /* export_models.py: group g trains at BASE_LR / (g + 1) */
#define ADAM_EPS 1e-3f
/* Not 1e-4: the largest elements of a tensor step by lr whatever their gradient, while one with
 * |g| < eps steps by about lr * g / eps, so a gradient error of 1e-4 of the largest gradient
 * becomes up to (largest |g| / eps) * 1e-4 of the step: 1.45e-3 in resnet50's conv1. A group
 * rate 1% off fails. */
#define UPDATE_TOL 5e-3
#define BF16_RATIO 1.5
#define BF16_FLOOR 2e-3 /* a few bf16 roundings (2^-9 each) on tensors PyTorch gets exactly */

typedef enum { MODE_TRAIN, MODE_EVAL, MODE_FROZEN } step_mode;

typedef struct {
    const char *name, *backbone;
    int width, image_size, classes, batch;
    step_mode mode;
    kn_dtype precision; /* KN_BF16: references in NAME_bf16 (autocast) and NAME (fp64) */
} conformance_case;

static kn_ctx *cpu_context(void) {
    char err[256];
    kn_ctx_options opt = {.backend = KN_BACKEND_CPU, .threads = 2};
    kn_ctx *ctx = kn_ctx_create(&opt, err, sizeof err);
    if (!ctx) tl_fail(__FILE__, __LINE__, "kn_ctx_create: %s", err);
    return ctx;
}

#define PARAM_FLOOR 0.01
#define EXACT_ZERO 1e-6 /* of the largest gradient: below this a reference gradient is 0 */

static float max_abs(const float *x, size_t count) {
    float m = 0;
    for (size_t i = 0; i < count; i++)
        m = fabsf(x[i]) > m ? fabsf(x[i]) : m;
    return m;
}

/* Compares got with the reference tensor ref_name; zero_scale > 0 marks a gradient, which
 * counts as exactly zero when the reference is below EXACT_ZERO * zero_scale. */
static void compare_tensor(const char *dir, const char *ref_name, const float *got, size_t count,
                           double tol, double floor, double zero_scale) {
    size_t ref_count = 0;
    float *ref = tl_load_f32(dir, ref_name, &ref_count);
    if (!ref) return;
    if (ref_count != count)
        tl_fail(__FILE__, __LINE__, "%s: %zu elements, reference has %zu", ref_name, count,
                ref_count);
    else if (zero_scale > 0 && max_abs(ref, count) < EXACT_ZERO * zero_scale)
        CHECK(max_abs(got, count) <= 10 * EXACT_ZERO * zero_scale,
              "%s: zero in exact arithmetic, ours reaches %g (largest of the model %g)", ref_name,
              (double)max_abs(got, count), zero_scale);
    else
        tl_compare(__FILE__, __LINE__, ref_name, got, ref, count, tol, floor);
    free(ref);
}

/* ||a - b|| / ||b|| in double, 0 for b == 0 == a. */
static double rel_l2(const float *a, const float *b, size_t count) {
    double num = 0, den = 0;
    for (size_t i = 0; i < count; i++) {
        num += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
        den += (double)b[i] * b[i];
    }
    return den > 0 ? sqrt(num / den) : sqrt(num);
}

/* The bf16 rule: ours no further from fp64 than BF16_RATIO x PyTorch-bf16's distance (+ floor).
 * A tensor that is zero in fp64 (a conv bias before batch norm) has no scale: its norm is held to
 * BF16_RATIO x the norm of PyTorch's bf16 value instead. */
static void compare_bf16(const char *dir64, const char *dir_bf16, const char *ref_name,
                         const float *got, size_t count) {
    size_t n64 = 0, nbf = 0;
    float *ref = tl_load_f32(dir64, ref_name, &n64), *torch = tl_load_f32(dir_bf16, ref_name, &nbf);
    if (ref && torch && (n64 != count || nbf != count)) {
        tl_fail(__FILE__, __LINE__, "%s: %zu elements, references have %zu and %zu", ref_name,
                count, n64, nbf);
    } else if (ref && torch) {
        float *zero = calloc(count, sizeof *zero);
        int exact_zero = zero && max_abs(ref, count) == 0;
        double ours = exact_zero ? rel_l2(got, zero, count) : rel_l2(got, ref, count);
        double theirs = exact_zero ? rel_l2(torch, zero, count) : rel_l2(torch, ref, count);
        const char *v = getenv("TLSWEEP_VERBOSE");
        if (v && *v && *v != '0')
            printf("      %-40s L2 err ours %.3g, PyTorch bf16 %.3g\n", ref_name, ours, theirs);
        CHECK(ours <= BF16_RATIO * theirs + BF16_FLOOR,
              "%s: L2 error against fp64 %.3g, PyTorch's bf16 run %.3g (allowed %.1f x + %.0e)",
              ref_name, ours, theirs, BF16_RATIO, BF16_FLOOR);
        free(zero);
    }
    free(ref);
    free(torch);
}

/* The logits' L2 error against the fp64 reference. */
static double logits_bf16_error(const char *dir64, const float *logits, size_t count) {
    size_t n = 0;
    float *ref = tl_load_f32(dir64, "logits", &n);
    double e = ref && n == count ? rel_l2(logits, ref, count) : 0;
    free(ref);
    return e;
}

static void run_case(const conformance_case *c) {
    char dir[1024], dir64[1024], err[1024], name[256];
    const int bf16 = c->precision == KN_BF16;
    snprintf(dir, sizeof dir, "%s/%s%s", tl_data_dir("models"), c->name, bf16 ? "_bf16" : "");
    snprintf(dir64, sizeof dir64, "%s/%s", tl_data_dir("models"), c->name);
    kn_ctx *ctx = cpu_context();
    if (!ctx) return;
    if (bf16 && !kn_bf16_supported(ctx, err, sizeof err)) {
        tl_skip("%s", err);
        kn_ctx_destroy(ctx);
        return;
    }
    model m;
    char path[1100];
    model_spec spec = {c->backbone, c->classes, c->width, c->image_size, 0.0f};
    snprintf(path, sizeof path, "%s/weights.pth", dir);
    if (TL_MODEL_LOAD(&m, ctx, &spec, c->batch, path, "export_models.py", NULL)) {
        kn_ctx_destroy(ctx);
        return;
    }
    if (model_set_precision(&m, c->precision, err, sizeof err)) {
        tl_fail(__FILE__, __LINE__, "precision: %s", err);
        model_free(&m);
        kn_ctx_destroy(ctx);
        return;
    }
/* fp32 cases hold each tensor to fp64 at tol; bf16 cases apply compare_bf16's rule */
#define COMPARE(ref_name, got, count, tol, floor, zero_scale)                                      \
    (bf16 ? compare_bf16(dir64, dir, ref_name, got, count)                                         \
          : compare_tensor(dir, ref_name, got, count, tol, floor, zero_scale))
    model_set_trainable(&m, c->mode == MODE_TRAIN    ? ""
                            : c->mode == MODE_FROZEN ? m.head_prefix
                                                     : NULL);
    if (c->mode == MODE_FROZEN)
        CHECK(model_first_trainable_layer(&m) == m.n_layers - 1,
              "frozen backbone: first trainable layer %d, expected the head (%d)",
              model_first_trainable_layer(&m), m.n_layers - 1);

    size_t n_images = 0, n_labels = 0;
    float *images = tl_load_f32(dir, "input", &n_images);
    int32_t *labels = tl_load_i32(dir, "labels", &n_labels);
    float *dlogits = kn_malloc(ctx, (size_t)c->batch * (size_t)c->classes * sizeof(float));
    float *host = calloc(m.params.total_count, sizeof *host);
    float *before = NULL, *update = NULL; /* parameters before the Adam step, and its change */
    if (!images || !labels || !dlogits || !host) goto done;
    CHECK(n_images == (size_t)c->batch * c->image_size * c->image_size * 3, "input size %zu",
          n_images);

    model_mode mode = {c->mode != MODE_EVAL, 0, 0};
    const float *logits = model_forward(&m, images, c->batch, mode, 0, err, sizeof err);
    if (!logits) {
        tl_fail(__FILE__, __LINE__, "forward: %s", err);
        goto done;
    }
    COMPARE("logits", logits, (size_t)c->batch * (size_t)c->classes, TOL, 1e-12, 0);
    if (bf16) /* and it did run in bf16: fp32 logits are ~1e-6 from fp64, bf16 ones ~1e-2 */
        CHECK(logits_bf16_error(dir64, logits, (size_t)c->batch * (size_t)c->classes) > 1e-3,
              "bf16 logits are as close to fp64 as fp32 ones: did bf16 run?");
    float loss = 0;
    int correct = 0;
    CHECK(!kn_cross_entropy(ctx, dlogits, &loss, &correct, logits, labels, c->batch, c->classes),
          "cross entropy: %s", kn_error(ctx));
    COMPARE("loss", &loss, 1, TOL, 1e-12, 0);
    if (c->mode == MODE_EVAL) goto done;

    before = malloc(m.params.param_count * sizeof *before);
    update = malloc(m.params.param_count * sizeof *update);
    if (!before || !update) goto done;
    kn_copy_to_host(ctx, before, model_values(&m), m.params.param_count * sizeof *before);
    if (model_backward(&m, dlogits, err, sizeof err)) {
        tl_fail(__FILE__, __LINE__, "backward: %s", err);
        goto done;
    }
    /* Backward reads parameters and writes only gradients. */
    kn_copy_to_host(ctx, host, model_values(&m), m.params.param_count * sizeof *host);
    for (int i = 0; i < m.params.count; i++) {
        const param_tensor *p = &m.params.tensors[i];
        if (!p->is_buffer && memcmp(before + p->offset, host + p->offset, p->count * sizeof *host))
            tl_fail(__FILE__, __LINE__, "backward changed parameter %s", p->name);
    }
    const float *grads = model_grads(&m);
    double largest = 0;
    for (int i = 0; i < m.params.count; i++)
        if (m.params.tensors[i].trainable)
            largest = fmax(largest,
                           max_abs(grads + m.params.tensors[i].offset, m.params.tensors[i].count));
    for (int i = 0; i < m.params.count; i++) {
        const param_tensor *p = &m.params.tensors[i];
        if (!p->trainable) continue;
        snprintf(name, sizeof name, "grad.%s", p->name);
        COMPARE(name, grads + p->offset, p->count, TOL, 1e-12, largest);
    }
    float *group_lr = malloc((size_t)m.n_groups * sizeof *group_lr);
    if (!group_lr) goto done;
    for (int g = 0; g < m.n_groups; g++)
        group_lr[g] = BASE_LR / (float)(g + 1);
    if (model_adam_step(&m, group_lr, 0.9f, 0.999f, ADAM_EPS, 0.0f, err, sizeof err))
        tl_fail(__FILE__, __LINE__, "adam: %s", err);
    free(group_lr);
    kn_copy_to_host(ctx, host, model_values(&m), m.params.total_count * sizeof *host);
    for (int i = 0; i < m.params.count; i++) {
        const param_tensor *p = &m.params.tensors[i];
        snprintf(name, sizeof name, "after.%s", p->name);
        COMPARE(name, host + p->offset, p->count, TOL, PARAM_FLOOR, 0);
    }
    /* The values above are held to 1e-4 of the parameter's size, which one Adam step of ~lr
     * barely moves: the step itself is held to UPDATE_TOL of its own size, so that a wrong
     * per-group rate shows. A frozen parameter must not move at all. */
    double largest_update = 0;
    for (int i = 0; i < m.params.count; i++) {
        const param_tensor *p = &m.params.tensors[i];
        if (p->is_buffer) continue;
        for (size_t k = 0; k < p->count; k++)
            update[p->offset + k] = host[p->offset + k] - before[p->offset + k];
        if (p->trainable)
            largest_update = fmax(largest_update, max_abs(update + p->offset, p->count));
        else
            CHECK(max_abs(update + p->offset, p->count) == 0, "frozen %s moved by up to %g",
                  p->name, (double)max_abs(update + p->offset, p->count));
    }
    for (int i = 0; i < m.params.count; i++) {
        const param_tensor *p = &m.params.tensors[i];
        /* bf16: Adam's normalised step turns gradient noise into sign flips of +-lr, so the
         * step of a small tensor (8 BN channels) is noise; after.* checks where it went */
        if (p->is_buffer || !p->trainable || bf16) continue;
        snprintf(name, sizeof name, "update.%s", p->name);
        COMPARE(name, update + p->offset, p->count, UPDATE_TOL, 1e-12, largest_update);
    }
#undef COMPARE
done:
    free(before);
    free(update);
    free(images);
    free(labels);
    free(host);
    kn_free(ctx, dlogits);
    model_free(&m);
    kn_ctx_destroy(ctx);
}

static const conformance_case cases[] = {
    {"resnet18_train", "resnet18", 1, 48, 10, 3, MODE_TRAIN, KN_F32},
    {"resnet18_eval", "resnet18", 1, 48, 10, 3, MODE_EVAL, KN_F32},
    {"resnet18_frozen", "resnet18", 1, 48, 10, 3, MODE_FROZEN, KN_F32},
    {"resnet50_train", "resnet50", 1, 64, 7, 2, MODE_TRAIN, KN_F32},
    {"vgg11_bn_train", "vgg11_bn", 8, 32, 5, 3, MODE_TRAIN, KN_F32},
    {"vgg11_bn_frozen", "vgg11_bn", 8, 32, 5, 3, MODE_FROZEN, KN_F32},
    {"resnet18_train", "resnet18", 1, 48, 10, 3, MODE_TRAIN, KN_BF16},
    {"resnet50_train", "resnet50", 1, 64, 7, 2, MODE_TRAIN, KN_BF16},
    {"vgg11_bn_train", "vgg11_bn", 8, 32, 5, 3, MODE_TRAIN, KN_BF16},
};

static void resnet18_train(void) {
    run_case(&cases[0]);
}
static void resnet18_eval(void) {
    run_case(&cases[1]);
}
static void resnet18_frozen(void) {
    run_case(&cases[2]);
}
static void resnet50_train(void) {
    run_case(&cases[3]);
}
static void vgg11_bn_train(void) {
    run_case(&cases[4]);
}
static void vgg11_bn_frozen(void) {
    run_case(&cases[5]);
}
static void resnet18_train_bf16(void) {
    run_case(&cases[6]);
}
static void resnet50_train_bf16(void) {
    run_case(&cases[7]);
}
static void vgg11_bn_train_bf16(void) {
    run_case(&cases[8]);
}

/* Loads a 1000-class checkpoint into a model whose head was replaced, then into models it
 * does not fit, checking that every mismatch is named. */
static void load_with_new_head(void) {
    char path[1024], err[4096];
    snprintf(path, sizeof path, "%s/resnet18_1000.pth", tl_data_dir("models"));
    weights_file w = {0};
    if (weights_read(path, &w, err, sizeof err)) {
        tl_fail(__FILE__, __LINE__, "%s", err);
        return;
    }
    struct {
        model_spec spec;
        const char *expect; /* NULL: loads */
    } tries[] = {
        {{"resnet18", 102, 1, 64, 0.5f}, NULL},
        {{"resnet34", 102, 1, 64, 0.5f}, "missing layer1.2.conv1.weight"},
        {{"resnet18", 102, 2, 64, 0.5f},
         "wrong shape conv1.weight: file has (64, 3, 7, 7), model needs (32, 3, 7, 7)"},
    };
    for (size_t t = 0; t < sizeof tries / sizeof tries[0]; t++) {
        model m;
        if (model_build(&m, &tries[t].spec, err, sizeof err)) {
            tl_fail(__FILE__, __LINE__, "model_build: %s", err);
            continue;
        }
        float *host = calloc(m.params.total_count, sizeof *host);
        err[0] = 0;
        int rc = host ? params_load(&m.params, host, &w, path, err, sizeof err) : -1;
        if (!tries[t].expect) {
            CHECK(rc == 0, "load into %s: %s", tries[t].spec.backbone, err);
            int i = params_find(&m.params, "layer4.1.bn2.running_var");
            const weights_tensor *src = weights_find(&w, "layer4.1.bn2.running_var");
            CHECK(i >= 0 && src && host &&
                      !memcmp(host + m.params.tensors[i].offset, src->data,
                              src->count * sizeof(float)),
                  "layer4.1.bn2.running_var not copied");
        } else {
            CHECK(rc == -1 && strstr(err, tries[t].expect) && strstr(err, path),
                  "expected an error naming the file and '%s', got rc %d: %s", tries[t].expect, rc,
                  err);
        }
        free(host);
        model_free(&m);
    }
    weights_free(&w);
}

int main(void) {
    static const char *const names[] = {
        "resnet18_train",      "resnet18_eval",     "resnet18_frozen",     "resnet50_train",
        "vgg11_bn_train",      "vgg11_bn_frozen",   "resnet18_train_bf16", "resnet50_train_bf16",
        "vgg11_bn_train_bf16", "load_with_new_head"};
    static const tl_case_fn fns[] = {resnet18_train,      resnet18_eval,       resnet18_frozen,
                                     resnet50_train,      vgg11_bn_train,      vgg11_bn_frozen,
                                     resnet18_train_bf16, resnet50_train_bf16, vgg11_bn_train_bf16,
                                     load_with_new_head};
    return TL_RUN("models", names, fns);
}
