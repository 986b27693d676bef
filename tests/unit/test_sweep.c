/* Sweep files: the seed and smoke sweeps expand as docs/experiment.md says, grid axes and
 * exclusions and per-backbone overrides land in the right trial_spec fields, and a catalogue of
 * broken files each gives its exact message (file, line, key). */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "orchestrator/grid.h"
#include "orchestrator/sweep.h"
#include "tests/testlib.h"

static const sweep_options no_paths = {.check_paths = 0};

static int parse(const char *name, const char *text, sweep *s, sweep_errors *errs) {
    memset(errs, 0, sizeof *errs);
    return sweep_parse(name, text, strlen(text), &no_paths, s, errs);
}

static void test_seed_sweep(void) {
    sweep s;
    sweep_errors errs = {0};
    int rc = sweep_load("sweeps/flowers102-seed.yaml", &no_paths, &s, &errs);
    CHECK(rc == 0, "seed sweep rejected: %s", errs.count ? errs.messages[0] : "?");
    if (rc) {
        sweep_errors_free(&errs);
        return;
    }
    trial_list trials;
    char err[256];
    CHECK(grid_expand(&s, &trials, err, sizeof err) == 0, "%s", err);
    CHECK(trials.count == 6, "seed sweep has %d trials, want 6", trials.count);
    static const char *const names[] = {"vgg16_bn__linear-decay",  "vgg16_bn__exp-decay-3",
                                        "resnet50__linear-decay",  "resnet50__exp-decay-3",
                                        "resnet152__linear-decay", "resnet152__exp-decay-3"};
    for (int i = 0; i < 6 && i < trials.count; i++)
        CHECK(!strcmp(trials.items[i].name, names[i]), "trial %d is %s, want %s", i,
              trials.items[i].name, names[i]);
    for (int i = 0; i < trials.count; i++) {
        trial_spec spec;
        grid_trial_spec(&s, &trials.items[i], &spec);
        const feature_extraction_phase *fe = &spec.feature_extraction;
        const fine_tuning_phase *ft = &spec.fine_tuning;
        CHECK(fe->epochs == 16 && fe->lr == 1e-3 && fe->step_every == 6 && fe->gamma == 0.3 &&
                  fe->bn_train == 1 && fe->trainable[0] == 0,
              "%s: phase 1 is not the seed's", spec.name);
        CHECK(ft->epochs == 8 && ft->lr == 1e-4 && ft->step_every == 2 && ft->gamma == 0.7 &&
                  ft->default_lr == 1e-8,
              "%s: phase 2 is not the seed's", spec.name);
        int linear = strstr(spec.name, "linear-decay") != NULL;
        CHECK(linear ? ft->decay == LAYER_DECAY_LINEAR && ft->lowest_lr == 1e-7
                     : ft->decay == LAYER_DECAY_EXPONENTIAL && ft->factor == 3,
              "%s: wrong layer decay", spec.name);
        CHECK(spec.batch_size == 16 && spec.resize == 256 && spec.crop == 224 &&
                  spec.hflip == 0.5 && spec.brightness == 0.3 && spec.contrast == 0.3 &&
                  spec.rotate_deg == 30 && spec.shear_deg == 20 && spec.seed == 0 &&
                  !strcmp(spec.precision, "fp32") && spec.width == 1,
              "%s: data/augment/train settings are not the seed's", spec.name);
        CHECK(spec.n_train_splits == 1 && !strcmp(spec.train_splits[0], "tstid") &&
                  spec.n_val_splits == 2 && !strcmp(spec.val_splits[0], "trnid") &&
                  !strcmp(spec.val_splits[1], "valid"),
              "%s: the split is not the seed's (train tstid, validate trnid+valid)", spec.name);
        CHECK(!strcmp(spec.weights, "torchvision") && !strcmp(spec.data_root, "data/flowers-102"),
              "%s: weights '%s', data '%s'", spec.name, spec.weights, spec.data_root);
    }
    CHECK(!strcmp(s.output, "runs/flowers102-seed.h5") && s.retries == 2, "output %s retries %d",
          s.output, s.retries);
    CHECK(strstr(s.text, "name: flowers102-seed") != NULL, "the sweep text is kept");
    grid_trials_free(&trials);
    sweep_free(&s);
}

static void test_smoke_sweep(void) {
    sweep s;
    sweep_errors errs = {0};
    int rc = sweep_load("sweeps/smoke.yaml", &no_paths, &s, &errs);
    CHECK(rc == 0, "smoke sweep rejected: %s", errs.count ? errs.messages[0] : "?");
    if (rc) return;
    trial_list trials;
    char err[256];
    CHECK(grid_expand(&s, &trials, err, sizeof err) == 0, "%s", err);
    CHECK(trials.count == 4, "smoke sweep has %d trials, want 4", trials.count);
    for (int i = 0; i < trials.count; i++) {
        trial_spec spec;
        grid_trial_spec(&s, &trials.items[i], &spec);
        CHECK(spec.width == 8 && spec.crop == 32 && !strcmp(spec.weights, "none") &&
                  spec.feature_extraction.epochs == 2 && spec.fine_tuning.epochs == 1,
              "%s: not the tiny CPU settings", spec.name);
    }
    grid_trials_free(&trials);
    sweep_free(&s);
}

static const char *const axes_sweep =
    "name: axes\n"
    "data: {root: data/x, crop: 200}\n"
    "train: {batch_size: 32}\n"
    "grid:\n"
    "  schedule: [a, b]\n"
    "  backbone: [resnet50, vgg16_bn]\n"
    "  train.seed: [0, 1]\n"
    "  data.crop: [224, 112]\n"
    "exclude:\n"
    "  - {backbone: vgg16_bn, schedule: b}\n"
    "  - {train.seed: 1, data.crop: 112}\n"
    "backbones:\n"
    "  vgg16_bn: {batch_size: 8, weights: w/vgg.safetensors, crop: 64}\n"
    "schedules:\n"
    "  a: {fine_tuning: {layer_decay: linear, lowest_lr: 1.0e-6}}\n"
    "  b: {feature_extraction: {epochs: 0}}\n";

static void test_axes_exclude_overrides(void) {
    sweep s;
    sweep_errors errs;
    int rc = parse("axes.yaml", axes_sweep, &s, &errs);
    CHECK(rc == 0, "rejected: %s", errs.count ? errs.messages[0] : "?");
    if (rc) return;
    trial_list trials;
    char err[256];
    CHECK(grid_expand(&s, &trials, err, sizeof err) == 0, "%s", err);
    /* 2 x 2 x 2 x 2 = 16, minus vgg16_bn/b (4), minus seed=1/crop=112 (3 left of 4 after the
     * first exclusion overlaps one): 16 - 4 - 3 = 9 */
    CHECK(trials.count == 9, "%d trials, want 9", trials.count);
    CHECK(trials.count > 1 && !strcmp(trials.items[1].name, "resnet50__a__seed=0__crop=112"),
          "second trial is %s", trials.count > 1 ? trials.items[1].name : "-");
    int found = 0;
    for (int i = 0; i < trials.count; i++) {
        trial_spec spec;
        grid_trial_spec(&s, &trials.items[i], &spec);
        CHECK(strcmp(spec.name, "vgg16_bn__b__seed=0__crop=224"), "excluded trial present");
        if (!strcmp(spec.name, "vgg16_bn__a__seed=1__crop=224")) {
            found = 1;
            /* the override beats the section, the grid value beats the override */
            CHECK(spec.batch_size == 8 && spec.crop == 224 && spec.seed == 1 &&
                      !strcmp(spec.weights, "w/vgg.safetensors"),
                  "override/grid order wrong: batch %d crop %d seed %llu weights %s",
                  spec.batch_size, spec.crop, (unsigned long long)spec.seed, spec.weights);
            CHECK(spec.fine_tuning.decay == LAYER_DECAY_LINEAR &&
                      spec.fine_tuning.lowest_lr == 1e-6 && spec.feature_extraction.epochs == 16,
                  "schedule a not applied over the defaults");
        }
        if (!strcmp(spec.name, "resnet50__b__seed=0__crop=112"))
            CHECK(spec.batch_size == 32 && spec.feature_extraction.epochs == 0,
                  "section value or schedule b lost");
    }
    CHECK(found, "vgg16_bn__a__seed=1__crop=224 missing");
    char values[256];
    grid_values_text(&s, &trials.items[0], values, sizeof values);
    CHECK(!strcmp(values, "train.seed=0;data.crop=224"), "grid values text '%s'", values);
    grid_trials_free(&trials);
    sweep_free(&s);
}

/* ---- the catalogue of broken sweep files -------------------------------------------------- */
#define GOOD_TAIL                                                                                  \
    "grid:\n"                                                                                      \
    "  backbone: [resnet18]\n"                                                                     \
    "  schedule: [s]\n"                                                                            \
    "schedules:\n"                                                                                 \
    "  s: {feature_extraction: {epochs: 1}}\n"

typedef struct {
    const char *what, *text, *message;
} bad_case;

static const bad_case catalogue[] = {
    {"YAML syntax", "name: x\ndata: {root: d\n" GOOD_TAIL,
     "bad.yaml:3: YAML syntax error: did not find expected ',' or '}' while parsing a flow "
     "mapping"},
    {"batch size not a number", "name: x\ndata: {root: d}\ntrain:\n  batch_size: x\n" GOOD_TAIL,
     "bad.yaml:4: train.batch_size: expected a positive integer, got 'x'"},
    {"batch size zero", "name: x\ndata: {root: d}\ntrain: {batch_size: 0}\n" GOOD_TAIL,
     "bad.yaml:3: train.batch_size: expected a positive integer, got '0'"},
    {"unknown top-level key", "name: x\ndata: {root: d}\nepochs: 3\n" GOOD_TAIL,
     "bad.yaml:3: epochs: unknown key (known: name, data, augment, train, model, grid, exclude, "
     "backbones, schedules, retries, gpus_per_trial, ranks_per_gpu, ranks_per_trial, share_phase1, "
     "output)"},
    {"unknown key in a section", "name: x\ndata: {root: d, rooot: e}\n" GOOD_TAIL,
     "bad.yaml:2: data.rooot: unknown key (known: format, root, train_splits, val_splits, "
     "resize, crop, skip_corrupt, cache_dir, device_images)"},
    {"unknown backbone in the grid",
     "name: x\ndata: {root: d}\ngrid:\n  backbone: [resnet18, resnet51]\n  schedule: [s]\n"
     "schedules:\n  s: {}\n",
     "bad.yaml:4: grid.backbone: unknown backbone 'resnet51' (known: resnet18, resnet34, "
     "resnet50, resnet101, resnet152, vgg11_bn, vgg13_bn, vgg16_bn, vgg19_bn)"},
    {"undefined schedule",
     "name: x\ndata: {root: d}\ngrid:\n  backbone: [resnet18]\n  schedule: [s, t]\n"
     "schedules:\n  s: {}\n",
     "bad.yaml:5: grid.schedule: schedule 't' is not defined under schedules"},
    {"probability above 1", "name: x\ndata: {root: d}\naugment: {hflip: 1.5}\n" GOOD_TAIL,
     "bad.yaml:3: augment.hflip: expected a number in [0, 1], got '1.5'"},
    {"wrong precision", "name: x\ndata: {root: d}\ntrain: {precision: fp64}\n" GOOD_TAIL,
     "bad.yaml:3: train.precision: expected one of fp32, tf32, bf16, got 'fp64'"},
    {"unknown split", "name: x\ndata: {root: d, train_splits: [tstid, test]}\n" GOOD_TAIL,
     "bad.yaml:2: data.train_splits: unknown split 'test' (known: tstid, trnid, valid)"},
    {"missing name", "data: {root: d}\n" GOOD_TAIL, "bad.yaml:1: name: missing (required)"},
    {"missing data root", "name: x\ndata: {crop: 100}\n" GOOD_TAIL,
     "bad.yaml:1: data.root: missing (required)"},
    {"empty grid axis",
     "name: x\ndata: {root: d}\ngrid:\n  backbone: []\n  schedule: [s]\nschedules:\n  s: {}\n",
     "bad.yaml:4: grid.backbone: expected a non-empty list of values, got an empty list"},
    {"grid axis not a key",
     "name: x\ndata: {root: d}\ngrid:\n  backbone: [resnet18]\n  schedule: [s]\n"
     "  train.epochs: [1, 2]\nschedules:\n  s: {}\n",
     "bad.yaml:6: grid.train.epochs: not a key that can vary (use backbone, schedule or a dotted "
     "key such as train.seed)"},
    {"duplicate key", "name: x\ndata: {root: d}\ntrain: {seed: 1, seed: 2}\n" GOOD_TAIL,
     "bad.yaml:3: train: duplicate key 'seed' (first at line 3)"},
    {"gamma out of range",
     "name: x\ndata: {root: d}\ngrid:\n  backbone: [resnet18]\n  schedule: [s]\nschedules:\n"
     "  s:\n    fine_tuning: {gamma: 1.5}\n",
     "bad.yaml:8: schedules.s.fine_tuning.gamma: expected a number in (0, 1], got '1.5'"},
    {"unknown layer decay",
     "name: x\ndata: {root: d}\ngrid:\n  backbone: [resnet18]\n  schedule: [s]\nschedules:\n"
     "  s:\n    fine_tuning: {layer_decay: cosine}\n",
     "bad.yaml:8: schedules.s.fine_tuning.layer_decay: expected one of none, linear, exponential, "
     "got 'cosine'"},
    {"schedule with no epochs",
     "name: x\ndata: {root: d}\ngrid:\n  backbone: [resnet18]\n  schedule: [s]\nschedules:\n"
     "  s:\n    feature_extraction: {epochs: 0}\n    fine_tuning: {epochs: 0}\n",
     "bad.yaml:7: schedules.s: both phases have 0 epochs: nothing to train"},
    {"exclude value not on the axis",
     "name: x\ndata: {root: d}\nexclude:\n  - {backbone: vgg16_bn}\n" GOOD_TAIL,
     "bad.yaml:4: exclude[0].backbone: 'vgg16_bn' is not a value of grid.backbone"},
    {"everything excluded",
     "name: x\ndata: {root: d}\nexclude:\n  - {backbone: resnet18}\n" GOOD_TAIL,
     "bad.yaml:1: exclude: every grid point is excluded"},
    {"override of an unknown backbone",
     "name: x\ndata: {root: d}\nbackbones:\n  alexnet: {width: 2}\n" GOOD_TAIL,
     "bad.yaml:4: backbones.alexnet: unknown backbone 'alexnet' (known: resnet18, resnet34, "
     "resnet50, resnet101, resnet152, vgg11_bn, vgg13_bn, vgg16_bn, vgg19_bn)"},
    {"unknown override key",
     "name: x\ndata: {root: d}\nbackbones:\n  resnet18: {depth: 2}\n" GOOD_TAIL,
     "bad.yaml:4: backbones.resnet18.depth: unknown key (known: weights, width, dropout, "
     "batch_size, precision, resize, crop)"},
    {"crop larger than resize", "name: x\ndata: {root: d, resize: 64, crop: 100}\n" GOOD_TAIL,
     "bad.yaml:1: data.crop: crop 100 is larger than resize 64 (trial resnet18__s)"},
    {"GPUs and ranks per trial differ",
     "name: x\ndata: {root: d}\ngpus_per_trial: 2\nranks_per_trial: 3\n" GOOD_TAIL,
     "bad.yaml:3: gpus_per_trial: 2, but ranks_per_trial is 3: they name the same group size (a "
     "rank per GPU); give one"},
    {"unknown device", "name: x\ndata: {root: d}\ntrain:\n  device: gpu\n" GOOD_TAIL,
     "bad.yaml:4: train.device: expected one of auto, cpu, cuda, got 'gpu'"},
    {"device as a grid axis",
     "name: x\ndata: {root: d}\ngrid:\n  backbone: [resnet18]\n  schedule: [s]\n"
     "  train.device: [cpu, cuda]\nschedules:\n  s: {}\n",
     "bad.yaml:6: grid.train.device: not a key that can vary (use backbone, schedule or a dotted "
     "key such as train.seed)"},
    {"device_images not auto, true or false",
     "name: x\ndata:\n  root: d\n  device_images: on\n" GOOD_TAIL,
     "bad.yaml:4: data.device_images: expected one of auto, true, false, got 'on'"},
    {"deterministic not a boolean",
     "name: x\ndata: {root: d}\ntrain: {deterministic: maybe}\n" GOOD_TAIL,
     "bad.yaml:3: train.deterministic: expected true or false, got 'maybe'"},
    {"no ranks per GPU", "name: x\ndata: {root: d}\nranks_per_gpu: 0\n" GOOD_TAIL,
     "bad.yaml:3: ranks_per_gpu: expected a positive integer, got '0'"},
    {"too many ranks per GPU", "name: x\ndata: {root: d}\n\nranks_per_gpu: 65\n" GOOD_TAIL,
     "bad.yaml:4: ranks_per_gpu: expected at most 64, got 65"},
    {"no ranks per trial", "name: x\ndata: {root: d}\nranks_per_trial: 0\n" GOOD_TAIL,
     "bad.yaml:3: ranks_per_trial: expected a positive integer, got '0'"},
    {"too many ranks per trial", "name: x\ndata: {root: d}\n\nranks_per_trial: 65\n" GOOD_TAIL,
     "bad.yaml:4: ranks_per_trial: expected at most 64, got 65"},
    {"ranks per trial not a number", "name: x\ndata: {root: d}\nranks_per_trial: two\n" GOOD_TAIL,
     "bad.yaml:3: ranks_per_trial: expected a positive integer, got 'two'"},
    {"ranks per trial as a grid axis",
     "name: x\ndata: {root: d}\ngrid:\n  backbone: [resnet18]\n  schedule: [s]\n"
     "  ranks_per_trial: [1, 2]\nschedules:\n  s: {}\n",
     "bad.yaml:6: grid.ranks_per_trial: not a key that can vary (use backbone, schedule or a "
     "dotted key such as train.seed)"},
    {"sync_bn not a boolean", "name: x\ndata: {root: d}\ntrain: {sync_bn: sometimes}\n" GOOD_TAIL,
     "bad.yaml:3: train.sync_bn: expected true or false, got 'sometimes'"},
    {"output climbing out of the working directory",
     "name: x\ndata: {root: d}\noutput: runs/../../x.h5\n" GOOD_TAIL,
     "bad.yaml:3: output: 'runs/../../x.h5' leaves the working directory ('..'); give an "
     "absolute path to write elsewhere"},
    {"section is a list", "name: x\ndata: [root, d]\n" GOOD_TAIL,
     "bad.yaml:2: data: expected a mapping, got a list"},
    {"bad sweep name", "name: my sweep\ndata: {root: d}\n" GOOD_TAIL,
     "bad.yaml:1: name: expected letters, digits, '.', '_' or '-' (at most 63), got 'my sweep'"},
    {"empty file", "", "bad.yaml:1: (top level): the file is empty"},
    {"top level is a list", "- a\n- b\n",
     "bad.yaml:1: (top level): expected a mapping of sections, got a list"},
    {"linear decay floor above the head lr",
     "name: x\ndata: {root: d}\ngrid:\n  backbone: [resnet18]\n  schedule: [s]\nschedules:\n"
     "  s:\n    fine_tuning: {layer_decay: linear, lr: 1.0e-5, lowest_lr: 1.0e-3}\n",
     "bad.yaml:7: schedules.s: fine_tuning.lowest_lr 0.001 is above fine_tuning.lr 1e-05"},
};

static void test_catalogue(void) {
    int n = (int)(sizeof catalogue / sizeof catalogue[0]);
    CHECK(n >= 15, "the catalogue has %d broken files, want at least 15", n);
    for (int i = 0; i < n; i++) {
        sweep s;
        sweep_errors errs;
        int rc = parse("bad.yaml", catalogue[i].text, &s, &errs);
        CHECK(rc == -1, "%s: accepted", catalogue[i].what);
        CHECK(errs.count >= 1 && !strcmp(errs.messages[0], catalogue[i].message),
              "%s:\n    got  %s\n    want %s", catalogue[i].what,
              errs.count ? errs.messages[0] : "(no message)", catalogue[i].message);
        sweep_errors_free(&errs);
        sweep_free(&s);
    }
}

/* The device keys: defaults, and what a file sets reaches the sweep and each trial. */
static void test_device_keys(void) {
    sweep s;
    sweep_errors errs;
    const char *plain = "name: x\ndata: {root: d}\n" GOOD_TAIL;
    int rc = parse("plain.yaml", plain, &s, &errs);
    CHECK(rc == 0, "rejected: %s", errs.count ? errs.messages[0] : "?");
    trial_list trials;
    char err[256];
    if (!rc) {
        CHECK(!strcmp(sweep_device(&s), "auto") && s.ranks_per_gpu == 1,
              "defaults: device %s, ranks_per_gpu %d", sweep_device(&s), s.ranks_per_gpu);
        CHECK(grid_expand(&s, &trials, err, sizeof err) == 0, "%s", err);
        trial_spec spec;
        grid_trial_spec(&s, &trials.items[0], &spec);
        CHECK(!strcmp(spec.precision, "fp32") && spec.deterministic == 0 &&
                  spec.device_images == -1,
              "defaults: precision %s, deterministic %d, device_images %d", spec.precision,
              spec.deterministic, spec.device_images);
        grid_trials_free(&trials);
    }
    sweep_free(&s);
    const char *gpu = "name: x\ndata: {root: d, device_images: true}\nranks_per_gpu: 3\n"
                      "train: {device: cuda, precision: tf32, deterministic: true}\n" GOOD_TAIL;
    rc = parse("gpu.yaml", gpu, &s, &errs);
    CHECK(rc == 0, "rejected: %s", errs.count ? errs.messages[0] : "?");
    if (!rc) {
        CHECK(!strcmp(sweep_device(&s), "cuda") && s.ranks_per_gpu == 3,
              "device %s, ranks_per_gpu %d", sweep_device(&s), s.ranks_per_gpu);
        CHECK(grid_expand(&s, &trials, err, sizeof err) == 0, "%s", err);
        trial_spec spec;
        grid_trial_spec(&s, &trials.items[0], &spec);
        CHECK(!strcmp(spec.precision, "tf32") && spec.deterministic == 1 && spec.device_images == 1,
              "precision %s, deterministic %d, device_images %d", spec.precision,
              spec.deterministic, spec.device_images);
        grid_trials_free(&trials);
    }
    sweep_free(&s);
    /* bf16 parses anywhere; whether this machine can run it is preflight's question */
    const char *bf16 =
        "name: x\ndata: {root: d, device_images: false}\ntrain: {precision: bf16}\n" GOOD_TAIL;
    rc = parse("bf16.yaml", bf16, &s, &errs);
    CHECK(rc == 0, "bf16 rejected: %s", errs.count ? errs.messages[0] : "?");
    if (!rc) {
        CHECK(grid_expand(&s, &trials, err, sizeof err) == 0, "%s", err);
        trial_spec spec;
        grid_trial_spec(&s, &trials.items[0], &spec);
        CHECK(!strcmp(spec.precision, "bf16") && spec.device_images == 0,
              "precision %s, device_images %d", spec.precision, spec.device_images);
        grid_trials_free(&trials);
    }
    sweep_free(&s);
}

/* Data-parallel trials: ranks_per_trial (top level, default 1; gpus_per_trial its other name)
 * and train.sync_bn (default true, a grid axis like any train key). */
static void test_group_keys(void) {
    sweep s;
    sweep_errors errs;
    trial_list trials;
    char err[256];
    trial_spec spec;
    int rc = parse("plain.yaml", "name: x\ndata: {root: d}\n" GOOD_TAIL, &s, &errs);
    CHECK(rc == 0, "rejected: %s", errs.count ? errs.messages[0] : "?");
    if (!rc && grid_expand(&s, &trials, err, sizeof err) == 0) {
        grid_trial_spec(&s, &trials.items[0], &spec);
        CHECK(s.ranks_per_trial == 1 && spec.sync_bn == 1,
              "defaults: ranks_per_trial %d, sync_bn %d", s.ranks_per_trial, spec.sync_bn);
        grid_trials_free(&trials);
    }
    sweep_free(&s);
    rc = parse("pairs.yaml",
               "name: x\ndata: {root: d}\nranks_per_trial: 64\ntrain: {sync_bn: false}\n" GOOD_TAIL,
               &s, &errs);
    CHECK(rc == 0, "rejected: %s", errs.count ? errs.messages[0] : "?");
    if (!rc && grid_expand(&s, &trials, err, sizeof err) == 0) {
        grid_trial_spec(&s, &trials.items[0], &spec);
        CHECK(s.ranks_per_trial == 64 && spec.sync_bn == 0, "ranks_per_trial %d, sync_bn %d",
              s.ranks_per_trial, spec.sync_bn);
        grid_trials_free(&trials);
    }
    sweep_free(&s);
    rc = parse("axis.yaml",
               "name: x\ndata: {root: d}\nranks_per_trial: 2\ngrid:\n  backbone: [resnet18]\n"
               "  schedule: [s]\n  train.sync_bn: [true, false]\nschedules:\n  s: {}\n",
               &s, &errs);
    CHECK(rc == 0, "sync_bn axis rejected: %s", errs.count ? errs.messages[0] : "?");
    if (!rc && grid_expand(&s, &trials, err, sizeof err) == 0) {
        CHECK(trials.count == 2, "%d trials, want 2", trials.count);
        for (int i = 0; i < trials.count && i < 2; i++) {
            grid_trial_spec(&s, &trials.items[i], &spec);
            CHECK(spec.sync_bn == (i == 0), "trial %s: sync_bn %d", spec.name, spec.sync_bn);
            CHECK(strstr(spec.name, i == 0 ? "sync_bn=true" : "sync_bn=false") != NULL,
                  "trial name %s", spec.name);
        }
        grid_trials_free(&trials);
    }
    sweep_free(&s);
    /* gpus_per_trial names the same group size for GPU workers; both alike are fine */
    rc = parse("gpus.yaml",
               "name: x\ndata: {root: d}\ngpus_per_trial: 4\nranks_per_trial: 4\n" GOOD_TAIL, &s,
               &errs);
    CHECK(rc == 0 && s.ranks_per_trial == 4, "gpus_per_trial 4: rc %d, ranks_per_trial %d", rc,
          s.ranks_per_trial);
    sweep_free(&s);
    rc = parse("gpus.yaml", "name: x\ndata: {root: d}\ngpus_per_trial: 2\n" GOOD_TAIL, &s, &errs);
    CHECK(rc == 0 && s.ranks_per_trial == 2, "gpus_per_trial 2: rc %d, ranks_per_trial %d", rc,
          s.ranks_per_trial);
    sweep_free(&s);
}

/* Every problem is reported, not only the first. */
static void test_all_problems_reported(void) {
    sweep s;
    sweep_errors errs;
    const char *text = "name: x\ndata: {root: d, resize: -1}\ntrain: {batch_size: x, seed: y}\n"
                       "augment: {hflip: 2}\n" GOOD_TAIL;
    parse("many.yaml", text, &s, &errs);
    CHECK(errs.count == 4, "%d problems reported, want 4", errs.count);
    sweep_errors_free(&errs);
    sweep_free(&s);
}

/* With path checks on (not --simulate) a missing dataset is named. */
static void test_missing_dataset(void) {
    sweep s;
    sweep_errors errs = {0};
    const sweep_options paths = {.check_paths = 1};
    const char *text = "name: x\ndata: {root: /nonexistent/flowers}\n" GOOD_TAIL;
    sweep_parse("d.yaml", text, strlen(text), &paths, &s, &errs);
    CHECK(errs.count == 1 &&
              !strcmp(errs.messages[0], "d.yaml:2: data.root: dataset '/nonexistent/flowers' does "
                                        "not exist (make one with tlsweep synth-flowers)"),
          "got %s", errs.count ? errs.messages[0] : "(nothing)");
    sweep_errors_free(&errs);
    sweep_free(&s);
}

int main(void) {
    static const char *const names[] = {"seed sweep",
                                        "smoke sweep",
                                        "axes, exclude, overrides",
                                        "catalogue of broken files",
                                        "all problems reported",
                                        "missing dataset",
                                        "device, precision and ranks_per_gpu keys",
                                        "ranks_per_trial and sync_bn"};
    static const tl_case_fn cases[] = {test_seed_sweep,
                                       test_smoke_sweep,
                                       test_axes_exclude_overrides,
                                       test_catalogue,
                                       test_all_problems_reported,
                                       test_missing_dataset,
                                       test_device_keys,
                                       test_group_keys};
    return TL_RUN("sweep", names, cases);
}
