#include "worker/checkpoint.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "worker/weights/weights.h"

/* 2: the trial's settings as "setting.KEY" entries; 1 (without them) is refused */
#define RESUME_FORMAT "tlsweep-resume-2"
#define SETTING_PREFIX "setting."

/* The tensors of one checkpoint, staged in host memory. */
typedef struct {
    weights_out_tensor *tensors;
    char (*names)[PARAM_NAME_MAX + 8];
    float *values, *m, *v;
    int count;
} staged;

static void staged_free(staged *s) {
    free(s->tensors);
    free(s->names);
    free(s->values);
    free(s->m);
    free(s->v);
}

static int stage(staged *s, model *m, kn_ctx *ctx, int with_adam, char *err, size_t errlen) {
    const param_table *t = &m->params;
    int max = t->count * (with_adam ? 3 : 1);
    memset(s, 0, sizeof *s);
    s->tensors = calloc((size_t)max, sizeof *s->tensors);
    s->names = calloc((size_t)max, sizeof *s->names);
    s->values = malloc(t->total_count * sizeof(float));
    if (with_adam) {
        s->m = malloc((t->param_count ? t->param_count : 1) * sizeof(float));
        s->v = malloc((t->param_count ? t->param_count : 1) * sizeof(float));
    }
    if (!s->tensors || !s->names || !s->values || (with_adam && (!s->m || !s->v))) {
        snprintf(err, errlen, "out of memory staging a checkpoint");
        return -1;
    }
    if (kn_copy_to_host(ctx, s->values, model_values(m), t->total_count * sizeof(float)) ||
        (with_adam &&
         (kn_copy_to_host(ctx, s->m, model_adam_m(m), t->param_count * sizeof(float)) ||
          kn_copy_to_host(ctx, s->v, model_adam_v(m), t->param_count * sizeof(float))))) {
        snprintf(err, errlen, "checkpoint: %s", kn_error(ctx));
        return -1;
    }
    for (int i = 0; i < t->count; i++) {
        const param_tensor *p = &t->tensors[i];
        s->tensors[s->count++] =
            (weights_out_tensor){p->name, p->ndim, p->shape, s->values + p->offset};
        if (!with_adam || p->is_buffer || !p->trainable) continue;
        snprintf(s->names[s->count], sizeof s->names[0], "adam.m.%s", p->name);
        s->tensors[s->count] =
            (weights_out_tensor){s->names[s->count], p->ndim, p->shape, s->m + p->offset};
        s->count++;
        snprintf(s->names[s->count], sizeof s->names[0], "adam.v.%s", p->name);
        s->tensors[s->count] =
            (weights_out_tensor){s->names[s->count], p->ndim, p->shape, s->v + p->offset};
        s->count++;
    }
    return 0;
}

int checkpoint_write_best(model *m, kn_ctx *ctx, const char *dir, const char *trial_name,
                          const trial_progress *p, char *err, size_t errlen) {
    char path[1024], epoch[32], acc[32];
    staged s;
    int rc = stage(&s, m, ctx, 0, err, errlen);
    snprintf(path, sizeof path, "%s/best.safetensors", dir);
    snprintf(epoch, sizeof epoch, "%d", p->best_epoch);
    snprintf(acc, sizeof acc, "%.17g", p->best_val_acc);
    const char *meta[] = {"trial", trial_name, "backbone", m->backbone,
                          "epoch", epoch,      "val_acc",  acc};
    if (!rc) rc = weights_write_safetensors(path, s.tensors, s.count, meta, 4, err, errlen);
    staged_free(&s);
    return rc;
}

int checkpoint_write_resume(model *m, kn_ctx *ctx, const char *dir, const trial_progress *p,
                            const trial_settings *settings, char *err, size_t errlen) {
    char path[1024], done[32], best[32], best_epoch[32], end_fe[32], steps[32];
    char batches[32], loss_sum[32], correct[32], images[32], seconds[32], data_wait[32];
    char keys[TRIAL_SETTINGS_MAX][64];
    staged s;
    int rc = stage(&s, m, ctx, 1, err, errlen);
    snprintf(path, sizeof path, "%s/resume.safetensors", dir);
    snprintf(done, sizeof done, "%d", p->epochs_done);
    snprintf(best, sizeof best, "%.17g", p->best_val_acc);
    snprintf(best_epoch, sizeof best_epoch, "%d", p->best_epoch);
    snprintf(end_fe, sizeof end_fe, "%.17g", p->val_acc_end_of_feature_extraction);
    snprintf(steps, sizeof steps, "%lld", (long long)model_adam_steps(m));
    /* %.17g: the resumed epoch adds to exactly the sum it stopped with */
    snprintf(batches, sizeof batches, "%d", p->batches_done);
    snprintf(loss_sum, sizeof loss_sum, "%.17g", p->train_so_far.loss_sum);
    snprintf(correct, sizeof correct, "%ld", p->train_so_far.correct);
    snprintf(images, sizeof images, "%ld", p->train_so_far.images);
    snprintf(seconds, sizeof seconds, "%.17g", p->seconds_so_far);
    snprintf(data_wait, sizeof data_wait, "%.17g", p->train_so_far.data_wait_s);
    const char *meta[2 * (14 + TRIAL_SETTINGS_MAX)] = {"format",
                                                       RESUME_FORMAT,
                                                       "backbone",
                                                       m->backbone,
                                                       "epochs_done",
                                                       done,
                                                       "best_val_acc",
                                                       best,
                                                       "best_epoch",
                                                       best_epoch,
                                                       "val_acc_end_of_feature_extraction",
                                                       end_fe,
                                                       "adam_steps",
                                                       steps,
                                                       "epoch_batches_done",
                                                       batches,
                                                       "epoch_loss_sum",
                                                       loss_sum,
                                                       "epoch_correct",
                                                       correct,
                                                       "epoch_images",
                                                       images,
                                                       "epoch_seconds",
                                                       seconds,
                                                       "epoch_data_wait_s",
                                                       data_wait};
    int n_meta = 13;
    if (p->history) {
        meta[2 * n_meta] = "history";
        meta[2 * n_meta + 1] = p->history;
        n_meta++;
    }
    for (int i = 0; i < settings->count; i++) {
        snprintf(keys[i], sizeof keys[i], SETTING_PREFIX "%s", settings->items[i].key);
        meta[2 * n_meta] = keys[i];
        meta[2 * n_meta + 1] = settings->items[i].value;
        n_meta++;
    }
    if (!rc) rc = weights_write_safetensors(path, s.tensors, s.count, meta, n_meta, err, errlen);
    staged_free(&s);
    return rc;
}

/* The checkpoint's settings must be the trial's: anything else would continue another
 * experiment under this one's name. */
static int check_settings(const weights_file *w, const trial_settings *now, const char *path,
                          char *err, size_t errlen) {
    trial_settings stored = {.count = 0};
    for (int i = 0; i < now->count; i++) {
        char key[64];
        snprintf(key, sizeof key, SETTING_PREFIX "%s", now->items[i].key);
        const char *value = weights_metadata(w, key);
        if (!value) continue;
        trial_setting *item = &stored.items[stored.count++];
        item->key = now->items[i].key;
        snprintf(item->value, sizeof item->value, "%s", value);
    }
    char changes[3072] = "";
    int differ = trial_settings_diff(&stored, "checkpoint", now, "now", changes, sizeof changes);
    if (!differ) return 0;
    snprintf(err, errlen, "%s holds a trial with other settings (%d differ):%s", path, differ,
             changes);
    return -1;
}

static int meta_number(const weights_file *w, const char *key, double *out, const char *path,
                       char *err, size_t errlen) {
    const char *text = weights_metadata(w, key);
    char *end = NULL;
    if (text) *out = strtod(text, &end);
    if (!text || end == text || *end) {
        snprintf(err, errlen, "%s: resume checkpoint lacks a valid '%s'", path, key);
        return -1;
    }
    return 0;
}

/* The position inside an epoch; a checkpoint without it was written at an epoch end. */
static int read_epoch_position(const weights_file *w, trial_progress *p, const char *path,
                               char *err, size_t errlen) {
    memset(&p->train_so_far, 0, sizeof p->train_so_far);
    p->batches_done = 0;
    p->seconds_so_far = 0;
    if (!weights_metadata(w, "epoch_batches_done")) return 0;
    double batches = 0, correct = 0, images = 0;
    if (meta_number(w, "epoch_batches_done", &batches, path, err, errlen) ||
        meta_number(w, "epoch_loss_sum", &p->train_so_far.loss_sum, path, err, errlen) ||
        meta_number(w, "epoch_correct", &correct, path, err, errlen) ||
        meta_number(w, "epoch_images", &images, path, err, errlen) ||
        meta_number(w, "epoch_seconds", &p->seconds_so_far, path, err, errlen))
        return -1;
    /* absent in a checkpoint of an older tlsweep: the wait before the stop is then unknown */
    if (weights_metadata(w, "epoch_data_wait_s") &&
        meta_number(w, "epoch_data_wait_s", &p->train_so_far.data_wait_s, path, err, errlen))
        return -1;
    if (batches < 0 || correct < 0 || images < correct || (batches > 0) != (images > 0)) {
        snprintf(err, errlen,
                 "%s: inconsistent position inside the epoch (%g batches, %g of %g "
                 "images correct)",
                 path, batches, correct, images);
        return -1;
    }
    p->batches_done = (int)batches;
    p->train_so_far.correct = (long)correct;
    p->train_so_far.images = (long)images;
    return 0;
}

int checkpoint_resume(model *m, kn_ctx *ctx, const char *dir, const trial_settings *settings,
                      trial_progress *p, char *err, size_t errlen) {
    char path[1024];
    snprintf(path, sizeof path, "%s/resume.safetensors", dir);
    if (access(path, F_OK)) return 0;
    const param_table *t = &m->params;
    weights_file w = {0};
    staged s = {0};
    double done = 0, best_epoch = 0, steps = 0;
    int rc = weights_read(path, &w, err, errlen);
    if (!rc) {
        const char *format = weights_metadata(&w, "format");
        if (!format || strncmp(format, "tlsweep-resume-", 15)) {
            snprintf(err, errlen, "%s: not a tlsweep resume checkpoint", path);
            rc = -1;
        } else if (strcmp(format, RESUME_FORMAT)) {
            snprintf(err, errlen,
                     "%s: a %s checkpoint, written by an older tlsweep that did not record the "
                     "trial's settings, so resuming it could mix two experiments",
                     path, format);
            rc = -1;
        }
    }
    if (!rc) rc = check_settings(&w, settings, path, err, errlen);
    if (!rc)
        rc = meta_number(&w, "epochs_done", &done, path, err, errlen) ||
             meta_number(&w, "best_val_acc", &p->best_val_acc, path, err, errlen) ||
             meta_number(&w, "best_epoch", &best_epoch, path, err, errlen) ||
             meta_number(&w, "val_acc_end_of_feature_extraction",
                         &p->val_acc_end_of_feature_extraction, path, err, errlen) ||
             meta_number(&w, "adam_steps", &steps, path, err, errlen) ||
             read_epoch_position(&w, p, path, err, errlen);
    /* Weights by name (strict), then whichever Adam moments were saved; the rest start at 0. */
    if (!rc) {
        s.values = calloc(t->total_count + 1, sizeof(float));
        s.m = calloc(t->param_count + 1, sizeof(float));
        s.v = calloc(t->param_count + 1, sizeof(float));
        if (!s.values || !s.m || !s.v) {
            snprintf(err, errlen, "%s: out of memory", path);
            rc = -1;
        }
    }
    if (!rc) {
        weights_file values = w;
        /* params_load reports names it does not know; the Adam entries are handled here. */
        int n_values = 0;
        weights_tensor *only = calloc((size_t)w.count + 1, sizeof *only);
        if (!only) {
            snprintf(err, errlen, "%s: out of memory", path);
            rc = -1;
        }
        for (int i = 0; !rc && i < w.count; i++) {
            const weights_tensor *src = &w.tensors[i];
            int is_m = !strncmp(src->name, "adam.m.", 7), is_v = !strncmp(src->name, "adam.v.", 7);
            if (!is_m && !is_v) {
                only[n_values++] = *src;
                continue;
            }
            int k = params_find(t, src->name + 7);
            if (k < 0 || t->tensors[k].count != src->count) {
                snprintf(err, errlen, "%s: %s does not match the model", path, src->name);
                rc = -1;
                break;
            }
            memcpy((is_m ? s.m : s.v) + t->tensors[k].offset, src->data,
                   src->count * sizeof(float));
        }
        values.tensors = only;
        values.count = n_values;
        if (!rc) rc = params_load(t, s.values, &values, path, err, errlen);
        free(only);
    }
    if (!rc && (kn_copy_to_device(ctx, model_values(m), s.values, t->total_count * sizeof(float)) ||
                kn_copy_to_device(ctx, model_adam_m(m), s.m, t->param_count * sizeof(float)) ||
                kn_copy_to_device(ctx, model_adam_v(m), s.v, t->param_count * sizeof(float)))) {
        snprintf(err, errlen, "%s: %s", path, kn_error(ctx));
        rc = -1;
    }
    if (!rc) {
        const char *history = weights_metadata(&w, "history");
        free(p->history);
        p->history = history ? strdup(history) : NULL;
        if (history && !p->history) {
            snprintf(err, errlen, "%s: out of memory", path);
            rc = -1;
        }
    }
    if (!rc) {
        p->epochs_done = (int)done;
        p->best_epoch = (int)best_epoch;
        model_set_adam_steps(m, (int64_t)steps);
    }
    staged_free(&s);
    weights_free(&w);
    return rc ? -1 : 1;
}
