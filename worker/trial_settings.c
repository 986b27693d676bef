#include "worker/trial_settings.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static void add(trial_settings *s, const char *key, const char *fmt, ...) {
    if (s->count == TRIAL_SETTINGS_MAX) return; /* sized for every field below */
    trial_setting *item = &s->items[s->count++];
    item->key = key;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(item->value, sizeof item->value, fmt, ap);
    va_end(ap);
}

static void add_splits(trial_settings *s, const char *key, const char (*splits)[16], int n) {
    char list[TRIAL_MAX_SPLITS * 17] = "";
    for (int i = 0; i < n; i++) {
        size_t used = strlen(list);
        snprintf(list + used, sizeof list - used, "%s%s", i ? "," : "", splits[i]);
    }
    add(s, key, "%s", list);
}

static const char *decay_name(layer_decay d) {
    return d == LAYER_DECAY_LINEAR        ? "linear"
           : d == LAYER_DECAY_EXPONENTIAL ? "exponential"
                                          : "none";
}

void trial_settings_of(const trial_spec *t, trial_settings *s) {
    const feature_extraction_phase *fe = &t->feature_extraction;
    const fine_tuning_phase *ft = &t->fine_tuning;
    s->count = 0;
    add(s, "backbone", "%s", t->backbone);
    add(s, "width", "%d", t->width);
    add(s, "weights", "%s", t->weights);
    add(s, "dropout", "%.17g", t->dropout);
    add(s, "data.root", "%s", t->data_root);
    add_splits(s, "data.train_splits", t->train_splits, t->n_train_splits);
    add_splits(s, "data.val_splits", t->val_splits, t->n_val_splits);
    add(s, "data.resize", "%d", t->resize);
    add(s, "data.crop", "%d", t->crop);
    add(s, "data.skip_corrupt", "%d", t->skip_corrupt);
    /* not data.cache_dir nor data.device_images: where the images are kept and transformed,
     * never what the batches hold, so a resume may change them */
    add(s, "augment.shuffle", "%d", t->shuffle);
    add(s, "augment.hflip", "%.17g", t->hflip);
    add(s, "augment.brightness", "%.17g", t->brightness);
    add(s, "augment.contrast", "%.17g", t->contrast);
    add(s, "augment.rotate_deg", "%.17g", t->rotate_deg);
    add(s, "augment.shear_deg", "%.17g", t->shear_deg);
    add(s, "train.batch_size", "%d", t->batch_size);
    add(s, "train.seed", "%llu", (unsigned long long)t->seed);
    add(s, "train.precision", "%s", t->precision);
    add(s, "feature_extraction.epochs", "%d", fe->epochs);
    add(s, "feature_extraction.lr", "%.17g", fe->lr);
    add(s, "feature_extraction.step_every", "%d", fe->step_every);
    add(s, "feature_extraction.gamma", "%.17g", fe->gamma);
    add(s, "feature_extraction.trainable", "%s", fe->trainable);
    add(s, "feature_extraction.bn_train", "%d", fe->bn_train);
    add(s, "fine_tuning.epochs", "%d", ft->epochs);
    add(s, "fine_tuning.lr", "%.17g", ft->lr);
    add(s, "fine_tuning.layer_decay", "%s", decay_name(ft->decay));
    add(s, "fine_tuning.factor", "%.17g", ft->factor);
    add(s, "fine_tuning.lowest_lr", "%.17g", ft->lowest_lr);
    add(s, "fine_tuning.step_every", "%d", ft->step_every);
    add(s, "fine_tuning.gamma", "%.17g", ft->gamma);
    add(s, "fine_tuning.default_lr", "%.17g", ft->default_lr);
}

void trial_settings_phase1(const trial_spec *t, trial_settings *s) {
    trial_settings all;
    trial_settings_of(t, &all);
    s->count = 0;
    for (int i = 0; i < all.count; i++)
        if (strncmp(all.items[i].key, "fine_tuning.", 12)) s->items[s->count++] = all.items[i];
}

int trial_settings_equal(const trial_settings *a, const trial_settings *b) {
    if (a->count != b->count) return 0;
    for (int i = 0; i < a->count; i++)
        if (strcmp(a->items[i].key, b->items[i].key) ||
            strcmp(a->items[i].value, b->items[i].value))
            return 0;
    return 1;
}

static const char *value_of(const trial_settings *s, const char *key) {
    for (int i = 0; i < s->count; i++)
        if (!strcmp(s->items[i].key, key)) return s->items[i].value;
    return NULL;
}

int trial_settings_diff(const trial_settings *a, const char *a_label, const trial_settings *b,
                        const char *b_label, char *out, size_t len) {
    int differ = 0;
    for (int i = 0; i < b->count; i++) {
        const char *key = b->items[i].key, *va = value_of(a, key), *vb = b->items[i].value;
        if (va && !strcmp(va, vb)) continue;
        differ++;
        size_t used = strlen(out);
        snprintf(out + used, len > used ? len - used : 0, "\n  %s: %s %s, %s %s", key, a_label,
                 va ? va : "(not recorded)", b_label, vb);
    }
    return differ;
}
