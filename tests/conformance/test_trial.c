/* The trial runner against tests/reference/seed.py (export_trial.py ran it): the same initial
 * weights, augmentation off, the split's order, 2 + 1 epochs. Every epoch's train and
 * validation loss agree to 1e-3 relative, accuracies to one image, and the best checkpoint's
 * tensors to 1e-3 relative RMS error; every layer group's learning rate of every epoch equals
 * StepLR's get_last_lr() (vgg11_bn_steps steps after every epoch in both phases). With augmentation
 * and shuffling on (different random draws), the final accuracy agrees statistically
 * (export_trial_stats.py). Plus: resume after a stop is bit-exact (at an epoch end and between two
 * batches inside an epoch), divergence and a bad weights file become failure reasons. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tests/testlib.h"
#include "worker/lr_schedule.h"
#include "worker/models/model.h"
#include "worker/trial.h"
#include "worker/weights/weights.h"

#define EPOCHS 3
#define LOSS_TOL 1e-3
#define WEIGHT_TOL 1e-3

#define MAX_RECORDS 8

#define MAX_GROUPS 64

typedef struct {
    epoch_record records[MAX_RECORDS];
    /* the records' group names and rates point into the ended trial: copies */
    char group_names[MAX_GROUPS][32];
    double group_lr[MAX_RECORDS][MAX_GROUPS];
    int count;
    int stop_after; /* ask the trial to stop after this epoch (0: never) */
} recorder;

static int record_epoch(const epoch_record *r, void *user) {
    recorder *rec = user;
    if (rec->count < MAX_RECORDS && r->n_groups <= MAX_GROUPS) {
        for (int g = 0; g < r->n_groups; g++) {
            snprintf(rec->group_names[g], sizeof rec->group_names[g], "%s", r->group_names[g]);
            rec->group_lr[rec->count][g] = r->group_lr[g];
        }
        rec->records[rec->count++] = *r;
    }
    return rec->stop_after && r->epoch >= rec->stop_after;
}

/* The spec export_trial.py trained the reference `name` with. */
static void reference_spec(trial_spec *s, const char *name, const char *backbone, int width,
                           const char *schedule, const char *out_sub) {
    char dir[300];
    trial_spec_defaults(s);
    snprintf(dir, sizeof dir, "%s", tl_data_dir("trial"));
    snprintf(s->name, sizeof s->name, "%s", name);
    snprintf(s->backbone, sizeof s->backbone, "%s", backbone);
    s->width = width;
    snprintf(s->weights, sizeof s->weights, "%s/%s/init.pth", dir, name);
    snprintf(s->data_root, sizeof s->data_root, "%s/data", dir);
    snprintf(s->out_dir, sizeof s->out_dir, "%s/%s/%s", dir, name, out_sub);
    lr_schedule_preset(schedule, &s->feature_extraction, &s->fine_tuning);
    s->feature_extraction.epochs = 2;
    s->fine_tuning.epochs = 1;
    s->resize = 64;
    s->crop = 56;
    s->batch_size = 16;
    s->shuffle = 0;
    s->hflip = s->brightness = s->contrast = s->rotate_deg = s->shear_deg = 0;
    s->dropout = 0;
    s->threads = 2;
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", s->out_dir);
    if (system(cmd)) tl_fail(__FILE__, __LINE__, "cannot clear %s", s->out_dir);
}

static int run(const trial_spec *s, recorder *rec, trial_summary *sum) {
    char err[2048];
    const trial_hooks hooks = {.on_epoch = record_epoch, .user = rec};
    int rc = trial_run(s, &hooks, sum, err, sizeof err);
    if (rc == TRIAL_FAILED) tl_fail(__FILE__, __LINE__, "trial_run: %s", err);
    return rc;
}

/* A run the case means to finish: a stop (or failure) would leave nothing to compare, so
 * anything but TRIAL_DONE fails the case. */
static int finished(int rc, const char *what) {
    CHECK(rc == TRIAL_DONE, "%s: trial_run returned %d, want TRIAL_DONE (%d)", what, rc,
          TRIAL_DONE);
    return rc == TRIAL_DONE;
}

static double rel(double got, double ref) {
    return fabs(got - ref) / fmax(fabs(ref), 1e-12);
}

/* The exporter's FILE for case NAME (its path in path), or NULL after recording a failure. */
static FILE *open_reference(const char *name, const char *file, char *path, size_t len) {
    snprintf(path, len, "%s/%s/%s", tl_data_dir("trial"), name, file);
    FILE *f = fopen(path, "r");
    if (!f) tl_fail(__FILE__, __LINE__, "cannot open %s", path);
    return f;
}

/* lr.txt: "epoch group lr" for every group of PyTorch's optimizer. Each of those groups has
 * our rate to 1e-12 relative (both are base * gamma^k, multiplied in the same order); a group
 * PyTorch does not train in feature extraction has rate 0 here; fine-tuning's groups without
 * parameters (VGG's ReLU and pooling) are in no optimizer and not compared. */
static void compare_lr(const char *name, const recorder *rec) {
    char path[1024];
    FILE *f = open_reference(name, "lr.txt", path, sizeof path);
    if (!f) return;
    int epoch, compared[MAX_RECORDS] = {0}, trained[MAX_RECORDS][MAX_GROUPS] = {{0}};
    char group[64];
    double lr;
    while (fscanf(f, "%d %63s %lf", &epoch, group, &lr) == 3) {
        int e = epoch - 1, g = 0;
        if (e < 0 || e >= rec->count) {
            tl_fail(__FILE__, __LINE__, "%s: epoch %d, %d recorded", path, epoch, rec->count);
            break;
        }
        const epoch_record *r = &rec->records[e];
        while (g < r->n_groups && strcmp(rec->group_names[g], group))
            g++;
        if (g == r->n_groups) {
            tl_fail(__FILE__, __LINE__, "%s epoch %d: PyTorch's group %s is not ours", name, epoch,
                    group);
            continue;
        }
        CHECK(rel(rec->group_lr[e][g], lr) <= 1e-12, "%s epoch %d group %s: lr %.17g, StepLR %.17g",
              name, epoch, group, rec->group_lr[e][g], lr);
        trained[e][g] = 1;
        compared[e]++;
    }
    fclose(f);
    for (int e = 0; e < rec->count; e++) {
        const epoch_record *r = &rec->records[e];
        CHECK(compared[e] > 0, "%s epoch %d: no learning rate in %s", name, e + 1, path);
        for (int g = 0; r->phase == 1 && g < r->n_groups; g++)
            CHECK(trained[e][g] || rec->group_lr[e][g] == 0,
                  "%s epoch %d: frozen group %s has lr %g", name, e + 1, rec->group_names[g],
                  rec->group_lr[e][g]);
    }
}

static void compare_records(const char *name, const recorder *rec, int epochs) {
    char path[1024];
    FILE *f = open_reference(name, "records.txt", path, sizeof path);
    if (!f) return;
    CHECK(rec->count == epochs, "%s: %d epochs recorded, want %d", name, rec->count, epochs);
    for (int e = 0; e < rec->count; e++) {
        int epoch, phase;
        double tl, ta, vl, va, seconds;
        if (fscanf(f, "%d %d %lf %lf %lf %lf %lf", &epoch, &phase, &tl, &ta, &vl, &va, &seconds) !=
            7) {
            tl_fail(__FILE__, __LINE__, "%s: short reference", path);
            break;
        }
        const epoch_record *r = &rec->records[e];
        CHECK(r->epoch == epoch && r->phase == phase, "%s epoch %d: phase %d, reference %d", name,
              r->epoch, r->phase, phase);
        CHECK(rel(r->train_loss, tl) <= LOSS_TOL, "%s epoch %d: train loss %.6f, reference %.6f",
              name, epoch, r->train_loss, tl);
        CHECK(rel(r->val_loss, vl) <= LOSS_TOL, "%s epoch %d: val loss %.6f, reference %.6f", name,
              epoch, r->val_loss, vl);
        /* accuracies may differ by an image whose two top logits are within rounding */
        CHECK(fabs(r->train_acc - ta) <= 1.0 / 90 + 1e-9 &&
                  fabs(r->val_acc - va) <= 1.0 / 30 + 1e-9,
              "%s epoch %d: acc %.4f/%.4f, reference %.4f/%.4f", name, epoch, r->train_acc,
              r->val_acc, ta, va);
    }
    fclose(f);
}

/* RMS error relative to max(RMS of the reference, 0.01). RMS rather than max: a few elements
 * whose gradient was within rounding of zero move by +-lr in either implementation (Adam
 * normalises them; PyTorch run with 1 and 2 threads differs the same way). The 0.01 floor: a
 * BN bias starts at 0 and holds nothing but its few updates, no scale of its own. */
static double rms_rel(const float *got, const float *ref, size_t n) {
    double d = 0, r = 0;
    for (size_t i = 0; i < n; i++) {
        d += ((double)got[i] - ref[i]) * ((double)got[i] - ref[i]);
        r += (double)ref[i] * ref[i];
    }
    return sqrt(d / (double)n) / fmax(sqrt(r / (double)n), 0.01);
}

static void compare_best(const char *name, const char *backbone, int width, const char *ours_dir) {
    char ours_path[1024], ref_path[1024], err[1024];
    snprintf(ours_path, sizeof ours_path, "%s/best.safetensors", ours_dir);
    snprintf(ref_path, sizeof ref_path, "%s/%s/best.pth", tl_data_dir("trial"), name);
    weights_file ours = {0}, ref = {0};
    model m;
    model_spec spec = {backbone, 5, width, 56, 0};
    if (weights_read(ours_path, &ours, err, sizeof err) ||
        weights_read(ref_path, &ref, err, sizeof err) || model_build(&m, &spec, err, sizeof err)) {
        tl_fail(__FILE__, __LINE__, "%s", err);
        weights_free(&ours);
        weights_free(&ref);
        return;
    }
    int compared = 0;
    char *noise = calloc((size_t)m.params.count, 1);
    /* A conv bias followed by batch norm has a zero gradient in exact arithmetic: Adam turns
     * its rounding noise into +-lr steps in both implementations, so its value is noise and is
     * left out (VGG's convolutions; the ResNets have no conv bias). */
    for (int l = 0; noise && l < m.n_layers; l++)
        if (m.layers[l].kind == LAYER_CONV && m.layers[l].cfg.conv.bias >= 0)
            noise[m.layers[l].cfg.conv.bias] = 1;
    for (int i = 0; noise && i < m.params.count; i++) {
        const param_tensor *p = &m.params.tensors[i];
        if (noise[i]) continue;
        const weights_tensor *a = weights_find(&ours, p->name), *b = weights_find(&ref, p->name);
        if (!a || !b || a->count != b->count) {
            tl_fail(__FILE__, __LINE__, "%s: %s missing or of another size", name, p->name);
            continue;
        }
        double e = rms_rel(a->data, b->data, a->count);
        CHECK(e <= WEIGHT_TOL, "%s best checkpoint %s: relative RMS error %.3g", name, p->name, e);
        compared++;
    }
    CHECK(compared > 0, "nothing compared");
    free(noise);
    model_free(&m);
    weights_free(&ours);
    weights_free(&ref);
}

/* Trains the reference `name` and compares every epoch, every learning rate and the best
 * checkpoint with PyTorch's. ft_epochs and the StepLR steps (0: the preset's) are
 * export_trial.py's for that case. */
static void exact_case(const char *name, const char *backbone, int width, const char *schedule,
                       int ft_epochs, int fe_step, double fe_gamma, int ft_step, double ft_gamma) {
    trial_spec s;
    recorder rec = {0};
    trial_summary sum;
    reference_spec(&s, name, backbone, width, schedule, "ours");
    s.fine_tuning.epochs = ft_epochs;
    if (fe_step) {
        s.feature_extraction.step_every = fe_step;
        s.feature_extraction.gamma = fe_gamma;
        s.fine_tuning.step_every = ft_step;
        s.fine_tuning.gamma = ft_gamma;
    }
    if (!finished(run(&s, &rec, &sum), name)) return;
    int epochs = s.feature_extraction.epochs + s.fine_tuning.epochs;
    compare_records(name, &rec, epochs);
    compare_lr(name, &rec);
    compare_best(name, backbone, width, s.out_dir);
    CHECK(sum.epochs_done == epochs && sum.best_epoch >= 1, "summary: %d epochs, best epoch %d",
          sum.epochs_done, sum.best_epoch);
}

static void resnet18_matches_pytorch(void) {
    exact_case("resnet18", "resnet18", 1, "exp-decay-3", 1, 0, 0, 0, 0);
}
static void vgg11_bn_matches_pytorch(void) {
    exact_case("vgg11_bn", "vgg11_bn", 8, "linear-decay", 1, 0, 0, 0, 0);
}
/* StepLR steps after every epoch of both phases (the seed's 6 and 2 are never reached above) */
static void learning_rates_step_like_pytorch(void) {
    exact_case("vgg11_bn_steps", "vgg11_bn", 8, "linear-decay", 2, 1, 0.5, 1, 0.6);
}

static int same_file(const char *a, const char *b) {
    FILE *fa = fopen(a, "rb"), *fb = fopen(b, "rb");
    int same = fa && fb;
    while (same) {
        int ca = fgetc(fa), cb = fgetc(fb);
        if (ca != cb) same = 0;
        if (ca == EOF || cb == EOF) break;
    }
    if (fa) fclose(fa);
    if (fb) fclose(fb);
    return same;
}

/* Stop after epoch 1 (inside feature extraction), run again: the resumed trial continues its
 * phase with the saved Adam state, enters fine-tuning, and finishes with exactly the numbers and
 * weights of an uninterrupted one. */
static void resume_is_bit_exact(void) {
    trial_spec whole, parts;
    recorder a = {0}, b = {0}, c = {0};
    trial_summary sa, sb;
    reference_spec(&whole, "resnet18", "resnet18", 1, "exp-decay-3", "whole");
    reference_spec(&parts, "resnet18", "resnet18", 1, "exp-decay-3", "parts");
    if (!finished(run(&whole, &a, &sa), "uninterrupted")) return;
    b.stop_after = 1;
    CHECK(run(&parts, &b, &sb) == TRIAL_STOPPED, "the callback's stop is TRIAL_STOPPED");
    CHECK(b.count == 1, "stopped after %d epochs", b.count);
    if (!finished(run(&parts, &c, &sb), "resumed")) return;
    CHECK(c.count == 2 && c.records[0].epoch == 2, "resumed at epoch %d with %d epochs",
          c.count ? c.records[0].epoch : 0, c.count);
    for (int e = 0; e < c.count && e + 1 < a.count; e++)
        CHECK(c.records[e].train_loss == a.records[e + 1].train_loss &&
                  c.records[e].val_loss == a.records[e + 1].val_loss,
              "epoch %d: resumed loss %.9g/%.9g, uninterrupted %.9g/%.9g", c.records[e].epoch,
              c.records[e].train_loss, c.records[e].val_loss, a.records[e + 1].train_loss,
              a.records[e + 1].val_loss);
    char pa[1100], pb[1100];
    snprintf(pa, sizeof pa, "%s/best.safetensors", whole.out_dir);
    snprintf(pb, sizeof pb, "%s/best.safetensors", parts.out_dir);
    CHECK(same_file(pa, pb), "best.safetensors differs after a resume");
    snprintf(pa, sizeof pa, "%s/resume.safetensors", whole.out_dir);
    snprintf(pb, sizeof pb, "%s/resume.safetensors", parts.out_dir);
    CHECK(same_file(pa, pb), "resume.safetensors differs after a resume");
    CHECK(sa.best_val_acc == sb.best_val_acc && sa.best_epoch == sb.best_epoch,
          "best %.4f@%d vs %.4f@%d", sa.best_val_acc, sa.best_epoch, sb.best_val_acc,
          sb.best_epoch);
}

/* Stops between two training batches: "at batch B of epoch E" is the poll after that batch. */
typedef struct {
    recorder records;
    double group_lr[MAX_RECORDS][64]; /* the records' group_lr point into the ended trial */
    int epoch;      /* the epoch running now (the run's first, then one more per record) */
    int batch_poll; /* polls after a training batch in this epoch */
    int at_end;     /* an epoch was just recorded: the next poll is its epoch-end one */
    int batch_polls_total;
    int stop_epoch, stop_batch; /* 0: never */
} stopper;

static int stopper_epoch(const epoch_record *r, void *user) {
    stopper *s = user;
    int n = s->records.count;
    record_epoch(r, &s->records);
    if (n < MAX_RECORDS && r->n_groups <= 64)
        memcpy(s->group_lr[n], r->group_lr, (size_t)r->n_groups * sizeof(double));
    s->epoch = r->epoch + 1;
    s->batch_poll = 0;
    s->at_end = 1;
    return 0;
}

static int stopper_poll(void *user) {
    stopper *s = user;
    if (s->at_end) {
        s->at_end = 0;
        return 0;
    }
    s->batch_poll++;
    s->batch_polls_total++;
    return s->epoch == s->stop_epoch && s->batch_poll == s->stop_batch;
}

static int run_stopper(const trial_spec *spec, stopper *s, trial_summary *sum) {
    char err[2048];
    const trial_hooks hooks = {.on_epoch = stopper_epoch, .should_stop = stopper_poll, .user = s};
    int rc = trial_run(spec, &hooks, sum, err, sizeof err);
    if (rc == TRIAL_FAILED) tl_fail(__FILE__, __LINE__, "trial_run: %s", err);
    return rc;
}

static int same_record(const stopper *a, const stopper *b, int e) {
    const epoch_record *x = &a->records.records[e], *y = &b->records.records[e];
    int same = x->epoch == y->epoch && x->phase == y->phase && x->train_loss == y->train_loss &&
               x->train_acc == y->train_acc && x->val_loss == y->val_loss &&
               x->val_acc == y->val_acc && x->head_lr == y->head_lr && x->n_groups == y->n_groups &&
               x->n_groups <= 64;
    for (int g = 0; same && g < x->n_groups; g++)
        same = a->group_lr[e][g] == b->group_lr[e][g];
    return same;
}

/* Shuffling, augmentation and dropout on, so the order, the draws and the dropout masks of the
 * resumed batches must all be the uninterrupted run's. Stopped at each (epoch, batch) of STOPS
 * in turn and run again each time, the trial must give the same epoch records, bit for bit, and
 * the same best and resume checkpoints, byte for byte; and train each batch once. */
static void preempt_case(const char *name, int width, const char *schedule, double dropout,
                         const int stops[][2], int n_stops) {
    trial_spec whole, parts;
    reference_spec(&whole, name, name, width, schedule, "whole_shuffled");
    reference_spec(&parts, name, name, width, schedule, "preempted");
    for (trial_spec *s = &whole; s; s = s == &whole ? &parts : NULL) {
        s->shuffle = 1;
        s->hflip = 0.5;
        s->brightness = s->contrast = 0.3;
        s->rotate_deg = 30;
        s->shear_deg = 20;
        s->dropout = dropout;
        s->seed = 11;
    }
    static stopper a, b;
    memset(&a, 0, sizeof a);
    memset(&b, 0, sizeof b);
    trial_summary sa, sb;
    a.epoch = 1;
    if (!finished(run_stopper(&whole, &a, &sa), name)) return;
    CHECK(a.records.count == EPOCHS, "%s: %d epochs uninterrupted", name, a.records.count);
    b.epoch = 1;
    for (int i = 0; i < n_stops; i++) {
        b.stop_epoch = stops[i][0];
        b.stop_batch = stops[i][1];
        int rc = run_stopper(&parts, &b, &sb);
        CHECK(rc == TRIAL_STOPPED, "%s: the stop at epoch %d batch %d returned %d", name,
              stops[i][0], stops[i][1], rc);
        if (rc != TRIAL_STOPPED) return;
        CHECK(sb.epochs_done == stops[i][0] - 1 && sb.batches_done == stops[i][1] &&
                  sb.batches_per_epoch == a.batch_polls_total / EPOCHS + 1,
              "%s: stopped in epoch %d after batch %d of %d, asked epoch %d batch %d", name,
              sb.epochs_done + 1, sb.batches_done, sb.batches_per_epoch, stops[i][0], stops[i][1]);
        /* the resumed run starts inside the same epoch, at its next batch */
        b.epoch = stops[i][0];
        b.batch_poll = stops[i][1];
    }
    b.stop_epoch = 0;
    if (!finished(run_stopper(&parts, &b, &sb), name)) return;
    CHECK(b.batch_polls_total == a.batch_polls_total,
          "%s: %d batch boundaries over the stopped runs, %d uninterrupted (a batch trained twice "
          "or skipped)",
          name, b.batch_polls_total, a.batch_polls_total);
    CHECK(b.records.count == EPOCHS, "%s: %d epochs recorded over the stopped runs", name,
          b.records.count);
    for (int e = 0; e < b.records.count && e < a.records.count; e++) {
        const epoch_record *x = &a.records.records[e], *y = &b.records.records[e];
        CHECK(same_record(&a, &b, e),
              "%s epoch %d: train %.17g/%.17g val %.17g/%.17g after stops, uninterrupted %.17g/"
              "%.17g val %.17g/%.17g",
              name, y->epoch, y->train_loss, y->train_acc, y->val_loss, y->val_acc, x->train_loss,
              x->train_acc, x->val_loss, x->val_acc);
    }
    char pa[1100], pb[1100];
    snprintf(pa, sizeof pa, "%s/best.safetensors", whole.out_dir);
    snprintf(pb, sizeof pb, "%s/best.safetensors", parts.out_dir);
    CHECK(same_file(pa, pb), "%s: best.safetensors differs after stops inside epochs", name);
    snprintf(pa, sizeof pa, "%s/resume.safetensors", whole.out_dir);
    snprintf(pb, sizeof pb, "%s/resume.safetensors", parts.out_dir);
    CHECK(same_file(pa, pb), "%s: resume.safetensors differs after stops inside epochs", name);
    CHECK(sa.best_val_acc == sb.best_val_acc && sa.best_epoch == sb.best_epoch,
          "%s: best %.4f@%d vs %.4f@%d", name, sa.best_val_acc, sa.best_epoch, sb.best_val_acc,
          sb.best_epoch);
}

/* resnet18: BatchNorm of the frozen backbone in train mode; stopped inside feature extraction's
 * second epoch and inside fine-tuning's first. vgg11_bn: dropout; stopped inside the very first
 * epoch and before fine-tuning's last batch. */
static void preempt_inside_epoch_is_bit_exact(void) {
    static const int resnet_stops[][2] = {{2, 3}, {3, 2}};
    static const int vgg_stops[][2] = {{1, 4}, {3, 5}};
    preempt_case("resnet18", 1, "exp-decay-3", 0, resnet_stops, 2);
    preempt_case("vgg11_bn", 8, "linear-decay", 0.5, vgg_stops, 2);
}

/* Transfer from a backbone pretrained on another synthetic set, augmentation and shuffling on:
 * 80 validation images give an accuracy a standard error of about 0.055, so two independent
 * runs differ by up to 0.15 (about two standard errors of the difference) by chance alone.
 * Both must learn well above chance (1/8), and fine-tuning must improve on feature extraction
 * in both: on 80 images an accuracy gain of a few points is within noise, so the validation
 * loss is what is compared (its best in fine-tuning below its value at the phase switch). The
 * bf16 case holds our bf16 trial to PyTorch's autocast run and to its fp32 run alike. */
/* PyTorch's records of the transfer (at sub/records.txt of the export): the validation loss at
 * the phase switch, its best in fine-tuning, the final accuracy; 0 when missing. */
static double read_records(const char *dir, const char *sub, double *end_fe, double *best_ft) {
    char path[700];
    snprintf(path, sizeof path, "%s/%s/records.txt", dir, sub);
    FILE *f = fopen(path, "r");
    double final = 0;
    int epoch, phase;
    double tl, ta, vl, va, seconds;
    *end_fe = 0, *best_ft = 1e30;
    while (f && fscanf(f, "%d %d %lf %lf %lf %lf %lf", &epoch, &phase, &tl, &ta, &vl, &va,
                       &seconds) == 7) {
        if (epoch == 4) *end_fe = vl;
        if (phase == 2 && vl < *best_ft) *best_ft = vl;
        final = va;
    }
    if (f) fclose(f);
    CHECK(final > 0, "no reference records in %s", path);
    return final;
}

/* precision "bf16" runs our bf16 trial against PyTorch's autocast run of the transfer, and
 * holds it to PyTorch's fp32 run too (mixed precision must not change what is learnt). */
static void statistics_case(const char *precision) {
    const int bf16 = !strcmp(precision, "bf16");
    char dir[300], path[700];
    snprintf(dir, sizeof dir, "%s", tl_data_dir("trial_stats"));
    trial_spec s;
    recorder rec = {0};
    trial_summary sum;
    trial_spec_defaults(&s);
    snprintf(s.name, sizeof s.name, "resnet18__stats");
    snprintf(s.precision, sizeof s.precision, "%s", precision);
    snprintf(s.backbone, sizeof s.backbone, "resnet18");
    snprintf(s.weights, sizeof s.weights, "%s/pretrained.pth", dir);
    snprintf(s.data_root, sizeof s.data_root, "%s/target", dir);
    snprintf(s.out_dir, sizeof s.out_dir, "%s/ours%s", dir, bf16 ? "_bf16" : "");
    s.feature_extraction.epochs = 4;
    s.fine_tuning.epochs = 3;
    s.resize = 48;
    s.crop = 40;
    s.seed = 2;
    s.threads = 2;
    snprintf(path, sizeof path, "rm -rf '%s'", s.out_dir);
    if (system(path)) {
        tl_fail(__FILE__, __LINE__, "cannot clear %s", s.out_dir);
        return;
    }
    if (!finished(run(&s, &rec, &sum), s.name)) return;
    double ref_end_fe, ref_best_ft, fp32_end_fe, fp32_best_ft;
    double ref_final = read_records(dir, bf16 ? "bf16" : ".", &ref_end_fe, &ref_best_ft);
    double fp32_final = read_records(dir, ".", &fp32_end_fe, &fp32_best_ft);
    if (rec.count != 7) {
        tl_fail(__FILE__, __LINE__, "%d epochs recorded", rec.count);
        return;
    }
    double ours_final = rec.records[6].val_acc, ours_end_fe = rec.records[3].val_loss;
    double ours_best_ft = 1e30;
    for (int e = 4; e < rec.count; e++)
        ours_best_ft = fmin(ours_best_ft, rec.records[e].val_loss);
    printf("    %s final val acc: ours %.3f, PyTorch %.3f; val loss at the switch -> best in "
           "fine-tuning: ours %.4f -> %.4f, PyTorch %.4f -> %.4f\n",
           precision, ours_final, ref_final, ours_end_fe, ours_best_ft, ref_end_fe, ref_best_ft);
    CHECK(fabs(ours_final - ref_final) <= 0.15, "final val acc %.3f, PyTorch %.3f", ours_final,
          ref_final);
    CHECK(fabs(ours_final - fp32_final) <= 0.15, "final val acc %.3f, PyTorch fp32 %.3f",
          ours_final, fp32_final);
    CHECK(ours_final > 0.3 && ref_final > 0.3, "learning: ours %.3f, PyTorch %.3f (chance 0.125)",
          ours_final, ref_final);
    CHECK(ours_best_ft < ours_end_fe && ref_best_ft < ref_end_fe,
          "fine-tuning did not improve the validation loss: ours %.4f -> %.4f, PyTorch %.4f -> "
          "%.4f",
          ours_end_fe, ours_best_ft, ref_end_fe, ref_best_ft);
}

static void statistics_match_pytorch(void) {
    statistics_case("fp32");
}

static void bf16_statistics_match_pytorch(void) {
    char why[256];
    kn_ctx_options opt = {.backend = KN_BACKEND_CPU, .threads = 1};
    kn_ctx *ctx = kn_ctx_create(&opt, why, sizeof why);
    int ok = ctx && kn_bf16_supported(ctx, why, sizeof why);
    kn_ctx_destroy(ctx);
    if (!ok) {
        tl_skip("%s", why);
        return;
    }
    statistics_case("bf16");
}

static void divergence_is_a_failure(void) {
    trial_spec s;
    recorder rec = {0};
    trial_summary sum;
    char err[2048];
    reference_spec(&s, "resnet18", "resnet18", 1, "exp-decay-3", "diverge");
    s.feature_extraction.lr = 3e38; /* the head overflows to inf within a few steps */
    const trial_hooks hooks = {.on_epoch = record_epoch, .user = &rec};
    int rc = trial_run(&s, &hooks, &sum, err, sizeof err);
    CHECK(rc == TRIAL_FAILED && strstr(err, "trial resnet18: diverged at epoch"), "rc %d, err: %s",
          rc, err);
}

static void bad_weights_file_is_a_failure(void) {
    trial_spec s;
    trial_summary sum;
    char err[2048];
    reference_spec(&s, "resnet18", "resnet18", 1, "exp-decay-3", "badweights");
    snprintf(s.weights, sizeof s.weights, "%s/data/setid.mat", tl_data_dir("trial"));
    int rc = trial_run(&s, NULL, &sum, err, sizeof err);
    CHECK(rc == TRIAL_FAILED && strstr(err, "setid.mat") && strstr(err, "not a weights file"),
          "rc %d, err: %s", rc, err);
}

int main(void) {
    static const char *const names[] = {
        "resnet18_matches_pytorch",          "vgg11_bn_matches_pytorch",
        "learning_rates_step_like_pytorch",  "statistics_match_pytorch",
        "bf16_statistics_match_pytorch",     "resume_is_bit_exact",
        "preempt_inside_epoch_is_bit_exact", "divergence_is_a_failure",
        "bad_weights_file_is_a_failure"};
    static const tl_case_fn fns[] = {resnet18_matches_pytorch,          vgg11_bn_matches_pytorch,
                                     learning_rates_step_like_pytorch,  statistics_match_pytorch,
                                     bf16_statistics_match_pytorch,     resume_is_bit_exact,
                                     preempt_inside_epoch_is_bit_exact, divergence_is_a_failure,
                                     bad_weights_file_is_a_failure};
    return TL_RUN("trial", names, fns);
}
