/* Whole-model conformance with PyTorch: torchvision weights written by export_models.py are
 * loaded through our .pth reader, one training step runs (forward, cross-entropy, backward,
 * Adam), and every tensor is compared: logits, loss, every parameter gradient, every parameter
 * and BN running statistic after the step, against a float64 PyTorch run. Tolerance per tensor:
 * max|ours - torch| / max(max|torch|, floor) <= 1e-4, the floor being 0.01 for parameters
 * (a bias that starts at 0 has no scale of its own) and tiny elsewhere. A gradient that is zero
 * in exact arithmetic (a conv bias followed by batch norm) is checked to be zero up to fp32
 * rounding: max|ours| <= 1e-5 * the largest gradient of the model. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/kernels.h"
#include "tests/testlib.h"
#include "worker/models/model.h"
#include "worker/weights/weights.h"

#define TOL 1e-4
#define BASE_LR 1e-2f /* export_models.py: group g trains at BASE_LR / (g + 1) */
#define ADAM_EPS 1e-3f

typedef enum { MODE_TRAIN, MODE_EVAL, MODE_FROZEN } step_mode;

typedef struct {
    const char *name, *backbone;
    int width, image_size, classes, batch;
    step_mode mode;
} conformance_case;

static kn_ctx *cpu_context(void) {
    char err[256];
    kn_ctx_options opt = {.backend = KN_BACKEND_CPU, .threads = 2};
    kn_ctx *ctx = kn_ctx_create(&opt, err, sizeof err);
    if (!ctx) tl_fail(__FILE__, __LINE__, "kn_ctx_create: %s", err);
    return ctx;
}

/* Builds and binds the case's model and loads DIR/weights.pth into it. */
static int load_model(model *m, kn_ctx *ctx, const conformance_case *c, const char *dir) {
    char err[1024], path[1024];
    model_spec spec = {c->backbone, c->classes, c->width, c->image_size, 0.0f};
    if (model_build(m, &spec, err, sizeof err)) {
        tl_fail(__FILE__, __LINE__, "model_build: %s", err);
        return -1;
    }
    if (model_bind(m, ctx, c->batch, 1, err, sizeof err)) {
        tl_fail(__FILE__, __LINE__, "model_bind: %s", err);
        return -1;
    }
    snprintf(path, sizeof path, "%s/weights.pth", dir);
    weights_file w = {0};
    if (weights_read(path, &w, err, sizeof err)) {
        tl_fail(__FILE__, __LINE__, "weights_read: %s", err);
        return -1;
    }
    float *host = calloc(m->params.total_count, sizeof *host);
    int rc = host ? params_load(&m->params, host, &w, path, err, sizeof err) : -1;
    if (rc) tl_fail(__FILE__, __LINE__, "params_load: %s", host ? err : "out of memory");
    if (!rc && kn_copy_to_device(ctx, model_values(m), host, m->params.total_count * sizeof *host))
        rc = -1;
    free(host);
    weights_free(&w);
    return rc;
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
                           double floor, double zero_scale) {
    size_t ref_count = 0;
    float *ref = tl_load_f32(dir, ref_name, &ref_count);
    if (!ref) return;
    if (ref_count != count)
        tl_fail(__FILE__, __LINE__, "%s: %zu elements, reference has %zu", ref_name, count,
                ref_count);
    else if (zero_scale > 0 && max_abs(ref, count) < EXACT_ZERO * zero_scale)
        CHECK(max_abs(got, count) <= 10 * EXACT_ZERO * zero_scale,
              "%s: zero in exact arithmetic, ours reaches %g (largest gradient %g)", ref_name,
              (double)max_abs(got, count), zero_scale);
    else
        tl_compare(__FILE__, __LINE__, ref_name, got, ref, count, TOL, floor);
    free(ref);
}

static void run_case(const conformance_case *c) {
    char dir[1024], err[1024], name[256];
    snprintf(dir, sizeof dir, "%s", tl_data_dir("models"));
    snprintf(dir + strlen(dir), sizeof dir - strlen(dir), "/%s", c->name);
    kn_ctx *ctx = cpu_context();
    if (!ctx) return;
    model m;
    if (load_model(&m, ctx, c, dir)) {
        kn_ctx_destroy(ctx);
        return;
    }
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
    if (!images || !labels || !dlogits || !host) goto done;
    CHECK(n_images == (size_t)c->batch * c->image_size * c->image_size * 3, "input size %zu",
          n_images);

    model_mode mode = {c->mode != MODE_EVAL, 0};
    const float *logits = model_forward(&m, images, c->batch, mode, 0, err, sizeof err);
    if (!logits) {
        tl_fail(__FILE__, __LINE__, "forward: %s", err);
        goto done;
    }
    compare_tensor(dir, "logits", logits, (size_t)c->batch * (size_t)c->classes, 1e-12, 0);
    float loss = 0;
    int correct = 0;
    CHECK(!kn_cross_entropy(ctx, dlogits, &loss, &correct, logits, labels, c->batch, c->classes),
          "cross entropy: %s", kn_error(ctx));
    compare_tensor(dir, "loss", &loss, 1, 1e-12, 0);
    if (c->mode == MODE_EVAL) goto done;

    float *before = malloc(m.params.param_count * sizeof *before);
    if (!before) goto done;
    kn_copy_to_host(ctx, before, model_values(&m), m.params.param_count * sizeof *before);
    if (model_backward(&m, dlogits, err, sizeof err)) {
        tl_fail(__FILE__, __LINE__, "backward: %s", err);
        free(before);
        goto done;
    }
    /* Backward reads parameters and writes only gradients. */
    kn_copy_to_host(ctx, host, model_values(&m), m.params.param_count * sizeof *host);
    for (int i = 0; i < m.params.count; i++) {
        const param_tensor *p = &m.params.tensors[i];
        if (!p->is_buffer && memcmp(before + p->offset, host + p->offset, p->count * sizeof *host))
            tl_fail(__FILE__, __LINE__, "backward changed parameter %s", p->name);
    }
    free(before);
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
        compare_tensor(dir, name, grads + p->offset, p->count, 1e-12, largest);
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
        compare_tensor(dir, name, host + p->offset, p->count, PARAM_FLOOR, 0);
    }
done:
    free(images);
    free(labels);
    free(host);
    kn_free(ctx, dlogits);
    model_free(&m);
    kn_ctx_destroy(ctx);
}

static const conformance_case cases[] = {
    {"resnet18_train", "resnet18", 1, 48, 10, 3, MODE_TRAIN},
    {"resnet18_eval", "resnet18", 1, 48, 10, 3, MODE_EVAL},
    {"resnet18_frozen", "resnet18", 1, 48, 10, 3, MODE_FROZEN},
    {"resnet50_train", "resnet50", 1, 64, 7, 2, MODE_TRAIN},
    {"vgg11_bn_train", "vgg11_bn", 8, 32, 5, 3, MODE_TRAIN},
    {"vgg11_bn_frozen", "vgg11_bn", 8, 32, 5, 3, MODE_FROZEN},
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
    static const char *const names[] = {"resnet18_train",    "resnet18_eval",  "resnet18_frozen",
                                        "resnet50_train",    "vgg11_bn_train", "vgg11_bn_frozen",
                                        "load_with_new_head"};
    static const tl_case_fn fns[] = {resnet18_train,    resnet18_eval,  resnet18_frozen,
                                     resnet50_train,    vgg11_bn_train, vgg11_bn_frozen,
                                     load_with_new_head};
    return tl_run("models", names, fns, (int)(sizeof fns / sizeof fns[0]));
}
