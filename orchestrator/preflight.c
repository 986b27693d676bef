#include "orchestrator/preflight.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "orchestrator/grid.h"
#include "worker/data/dataset.h"
#include "worker/data/jpeg.h"
#include "worker/models/model.h"
#include "worker/params.h"
#include "worker/pretrained.h"
#include "worker/weights/weights.h"

/* How many unreadable images one dataset reports by name before it only counts. */
#define PREFLIGHT_IMAGES_NAMED 3

static int same_model(const trial_spec *a, const trial_spec *b) {
    return !strcmp(a->backbone, b->backbone) && a->width == b->width && a->crop == b->crop &&
           !strcmp(a->weights, b->weights);
}

static int check_images(const dataset_split *split, const trial_spec *spec, int *bad,
                        sweep_errors *errs) {
    for (int i = 0; i < split->count; i++) {
        char err[1024];
        if (!jpeg_check_file(split->paths[i], spec->resize, err, sizeof err)) continue;
        if (++*bad <= PREFLIGHT_IMAGES_NAMED)
            sweep_errors_add(errs, "trial %s: %s", spec->name, err);
    }
    return *bad;
}

/* The dataset of spec; its class count in *classes. Returns the problems found. */
static int check_data(const trial_spec *spec, int *classes, sweep_errors *errs) {
    dataset ds;
    char err[1024];
    if (trial_open_dataset(spec, &ds, err, sizeof err)) {
        sweep_errors_add(errs, "trial %s: %s", spec->name, err);
        return 1;
    }
    *classes = ds.num_classes;
    int bad = 0;
    /* with skip_corrupt the loader leaves unreadable images out, as the trial will */
    if (!spec->skip_corrupt) {
        check_images(&ds.train, spec, &bad, errs);
        check_images(&ds.val, spec, &bad, errs);
        if (bad > PREFLIGHT_IMAGES_NAMED)
            sweep_errors_add(errs, "trial %s: %s: %d more unreadable images", spec->name,
                             spec->data_root, bad - PREFLIGHT_IMAGES_NAMED);
    }
    dataset_free(&ds);
    return bad;
}

/* MemAvailable of /proc/meminfo in bytes; 0 when it cannot be read (then nothing is refused). */
static double memory_available(void) {
    FILE *f = fopen("/proc/meminfo", "r");
    char line[256];
    double kib = 0;
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "MemAvailable: %lf kB", &kib) == 1) break;
    if (f) fclose(f);
    return kib * 1024;
}

/* The backbone builds for the dataset's classes, its batch fits this host's memory, and the
 * weights fit it by name and shape. */
static int check_model(const trial_spec *spec, int classes, sweep_errors *errs) {
    model m;
    char err[2048];
    const model_spec ms = {spec->backbone, classes, spec->width, spec->crop, (float)spec->dropout};
    if (model_build(&m, &ms, err, sizeof err)) {
        sweep_errors_add(errs, "trial %s: %s", spec->name, err);
        return 1;
    }
    /* one trial alone must fit; several ranks on a node share it, which this cannot see */
    double need = (double)model_bind_bytes(&m, spec->batch_size, 1), have = memory_available();
    if (have > 0 && need > have) {
        sweep_errors_add(errs,
                         "trial %s: %s at batch %d and %d px needs about %.1f GiB for its "
                         "weights, optimizer and activations, more than the %.1f GiB available "
                         "here; lower train.batch_size",
                         spec->name, spec->backbone, spec->batch_size, spec->crop, need / (1 << 30),
                         have / (1 << 30));
        model_free(&m);
        return 1;
    }
    int rc = 0;
    if (strcmp(spec->weights, "none")) {
        char path[TRIAL_PATH_MAX];
        weights_file w = {0};
        float *values = calloc(m.params.total_count ? m.params.total_count : 1, sizeof *values);
        rc = !values;
        if (!values) snprintf(err, sizeof err, "out of memory checking the weights");
        if (!rc)
            rc = pretrained_resolve(path, sizeof path, spec->weights, spec->backbone, err,
                                    sizeof err) ||
                 weights_read(path, &w, err, sizeof err) ||
                 params_load(&m.params, values, &w, path, err, sizeof err);
        if (rc) sweep_errors_add(errs, "trial %s: %s", spec->name, err);
        weights_free(&w);
        free(values);
    }
    model_free(&m);
    return rc;
}

/* bf16 runs only where it is fast: a CPU with AVX512-BF16 (the CUDA side is not built yet, and
 * a trial placed on a GPU is refused when it opens). */
static int check_precision(const trial_spec *specs, int count, sweep_errors *errs) {
    int i = 0;
    while (i < count && strcmp(specs[i].precision, "bf16"))
        i++;
    if (i == count) return 0;
    char why[512] = "";
    const kn_ctx_options opt = {.backend = KN_BACKEND_CPU, .threads = 1};
    kn_ctx *ctx = kn_ctx_create(&opt, why, sizeof why);
    int ok = ctx && kn_bf16_supported(ctx, why, sizeof why);
    kn_ctx_destroy(ctx);
    if (ok) return 0;
    sweep_errors_add(errs, "train.precision bf16 (trial %s): %s; use fp32", specs[i].name, why);
    return 1;
}

int preflight_trials(const trial_spec *specs, int count, sweep_errors *errs) {
    int problems = check_precision(specs, count, errs);
    int *classes = calloc((size_t)(count ? count : 1), sizeof *classes);
    if (!classes) {
        sweep_errors_add(errs, "out of memory checking the trials' inputs");
        return 1;
    }
    for (int i = 0; i < count; i++) {
        int seen = -1;
        for (int j = 0; j < i && seen < 0; j++)
            if (trial_same_data(&specs[i], &specs[j])) seen = j;
        if (seen >= 0)
            classes[i] = classes[seen];
        else
            problems += check_data(&specs[i], &classes[i], errs);
    }
    for (int i = 0; i < count; i++) {
        if (!classes[i]) continue; /* its dataset was refused */
        int seen = 0;
        for (int j = 0; j < i && !seen; j++)
            seen = classes[j] == classes[i] && same_model(&specs[i], &specs[j]);
        if (!seen) problems += check_model(&specs[i], classes[i], errs);
    }
    free(classes);
    return problems;
}

int preflight_sweep(const sweep *s, sweep_errors *errs) {
    trial_list trials;
    char err[512];
    if (grid_expand(s, &trials, err, sizeof err)) {
        sweep_errors_add(errs, "%s: %s", s->file, err);
        return 1;
    }
    trial_spec *specs = calloc((size_t)(trials.count ? trials.count : 1), sizeof *specs);
    int problems = 1;
    if (!specs)
        sweep_errors_add(errs, "out of memory checking the trials' inputs");
    else {
        for (int i = 0; i < trials.count; i++)
            grid_trial_spec(s, &trials.items[i], &specs[i]);
        problems = preflight_trials(specs, trials.count, errs);
    }
    free(specs);
    grid_trials_free(&trials);
    return problems;
}
