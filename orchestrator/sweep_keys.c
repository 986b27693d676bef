/* The keys a sweep file may set in data/augment/train/model (and vary as grid axes): one
 * declarative table from which parsing, validation, grid axes and trial specs all follow. */
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "orchestrator/sweep.h"

static const char *const formats[] = {"flowers102", NULL};
static const char *const splits[] = {"tstid", "trnid", "valid", NULL};
static const char *const optimizers[] = {"adam", NULL};
static const char *const precisions[] = {"fp32", "tf32", "bf16", NULL};
static const char *const bn_modes[] = {"train", "eval", NULL};
/* data.device_images: the device data path, or the backend's choice */
static const char *const auto_bool[] = {"auto", "true", "false", NULL};
/* where each worker rank trains (placement.h); not a grid axis: a rank picks its device once */
static const char *const devices[] = {"auto", "cpu", "cuda", NULL};

#define AT(store, f) AT_MAX(store, f, 0)
#define AT_MAX(store, f, max) store, offsetof(trial_spec, f), sizeof(((trial_spec *)0)->f), 0, max
#define SPLITS(f, n)                                                                               \
    STORE_SPLITS, offsetof(trial_spec, f), sizeof(((trial_spec *)0)->f), offsetof(trial_spec, n), 0

const sweep_key sweep_keys[] = {
    {"data.format", KEY_CHOICE, formats, STORE_NONE, 0, 0, 0, 0},
    {"data.root", KEY_STRING, NULL, AT(STORE_STRING, data_root)},
    {"data.train_splits", KEY_SPLITS, splits, SPLITS(train_splits, n_train_splits)},
    {"data.val_splits", KEY_SPLITS, splits, SPLITS(val_splits, n_val_splits)},
    {"data.resize", KEY_INT_POSITIVE, NULL, AT_MAX(STORE_INT, resize, TRIAL_MAX_IMAGE)},
    {"data.crop", KEY_INT_POSITIVE, NULL, AT_MAX(STORE_INT, crop, TRIAL_MAX_IMAGE)},
    {"data.skip_corrupt", KEY_BOOL, NULL, AT(STORE_INT, skip_corrupt)},
    {"data.cache_dir", KEY_STRING, NULL, AT(STORE_STRING, cache_dir)},
    {"data.device_images", KEY_CHOICE, auto_bool, AT(STORE_AUTO_BOOL, device_images)},
    {"augment.hflip", KEY_PROBABILITY, NULL, AT(STORE_DOUBLE, hflip)},
    {"augment.brightness", KEY_DOUBLE_NONNEG, NULL, AT(STORE_DOUBLE, brightness)},
    {"augment.contrast", KEY_DOUBLE_NONNEG, NULL, AT(STORE_DOUBLE, contrast)},
    {"augment.rotate_deg", KEY_ANGLE, NULL, AT(STORE_DOUBLE, rotate_deg)},
    {"augment.shear_deg", KEY_ANGLE, NULL, AT(STORE_DOUBLE, shear_deg)},
    {"train.batch_size", KEY_INT_POSITIVE, NULL, AT_MAX(STORE_INT, batch_size, TRIAL_MAX_BATCH)},
    {"train.optimizer", KEY_CHOICE, optimizers, STORE_NONE, 0, 0, 0, 0},
    {"train.seed", KEY_INT_NONNEG, NULL, AT(STORE_U64, seed)},
    {"train.precision", KEY_CHOICE, precisions, AT(STORE_STRING, precision)},
    {"train.bn_in_frozen", KEY_CHOICE, bn_modes, AT(STORE_BN_TRAIN, feature_extraction.bn_train)},
    {"train.shuffle", KEY_BOOL, NULL, AT(STORE_INT, shuffle)},
    {"train.threads", KEY_INT_NONNEG, NULL, AT_MAX(STORE_INT, threads, TRIAL_MAX_THREADS)},
    {"train.device", KEY_CHOICE, devices, STORE_NONE, 0, 0, 0, 0},
    {"train.deterministic", KEY_BOOL, NULL, AT(STORE_INT, deterministic)},
    /* a group trial's BatchNorm statistics (ranks_per_trial > 1): the whole batch or each shard */
    {"train.sync_bn", KEY_BOOL, NULL, AT(STORE_INT, sync_bn)},
    {"model.weights", KEY_STRING, NULL, AT(STORE_STRING, weights)},
    {"model.width", KEY_INT_POSITIVE, NULL, AT_MAX(STORE_INT, width, TRIAL_MAX_WIDTH)},
    {"model.dropout", KEY_PROBABILITY, NULL, AT(STORE_DOUBLE, dropout)},
    {NULL, 0, NULL, STORE_NONE, 0, 0, 0, 0},
};

/* backbones.NAME takes these short names (the last part of the dotted key). */
static const char *const override_keys[] = {
    "model.weights",   "model.width", "model.dropout", "train.batch_size",
    "train.precision", "data.resize", "data.crop",     NULL};

int sweep_key_find(const char *dotted) {
    for (int i = 0; sweep_keys[i].key; i++)
        if (!strcmp(sweep_keys[i].key, dotted)) return i;
    return -1;
}

int sweep_override_find(const char *short_name) {
    for (int i = 0; override_keys[i]; i++) {
        const char *dot = strchr(override_keys[i], '.');
        if (!strcmp(dot + 1, short_name) || !strcmp(override_keys[i], short_name))
            return sweep_key_find(override_keys[i]);
    }
    return -1;
}

void sweep_key_apply(int key, const sweep_value *value, trial_spec *spec) {
    const sweep_key *k = &sweep_keys[key];
    char *field = (char *)spec + k->offset;
    switch (k->store) {
    case STORE_NONE:
        break;
    case STORE_INT:
        *(int *)field = (int)value->i;
        break;
    case STORE_U64:
        *(uint64_t *)field = (uint64_t)value->i;
        break;
    case STORE_DOUBLE:
        *(double *)field = value->d;
        break;
    case STORE_STRING:
        snprintf(field, k->size, "%s", value->s);
        break;
    case STORE_SPLITS: {
        char(*list)[16] = (char(*)[16])field;
        for (int i = 0; i < value->n_list; i++)
            snprintf(list[i], 16, "%s", value->list[i]);
        *(int *)((char *)spec + k->count_offset) = value->n_list;
        break;
    }
    case STORE_BN_TRAIN:
        *(int *)field = !strcmp(value->s, "train");
        break;
    case STORE_AUTO_BOOL:
        *(int *)field = !strcmp(value->s, "auto") ? -1 : !strcmp(value->s, "true");
        break;
    }
}

const char *sweep_device(const sweep *s) {
    const char *device = "auto";
    for (int i = 0; i < s->n_settings; i++)
        if (!strcmp(sweep_keys[s->settings[i].key].key, "train.device"))
            device = s->settings[i].value.s; /* the last one, as for every setting */
    return device;
}
