/* The trial runner: the two phases of docs/experiment.md on one backbone, epoch by epoch, with a
 * best checkpoint, a resume checkpoint at every epoch end (and at a stop between two training
 * batches), and divergence as a failure reason. */
#include "worker/trial.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kernels/kernels.h"
#include "worker/checkpoint.h"
#include "worker/clock.h"
#include "worker/data/cache_file.h"
#include "worker/data/dataset.h"
#include "worker/data/loader.h"
#include "worker/lr_schedule.h"
#include "worker/models/model.h"
#include "worker/paths.h"
#include "worker/phase1.h"
#include "worker/pretrained.h"
#include "worker/step_graph.h"
#include "worker/trial_settings.h"

void trial_spec_defaults(trial_spec *s) {
    memset(s, 0, sizeof *s);
    s->width = 1;
    snprintf(s->weights, sizeof s->weights, "torchvision");
    s->dropout = 0.5;
    snprintf(s->train_splits[0], sizeof s->train_splits[0], "tstid");
    s->n_train_splits = 1;
    snprintf(s->val_splits[0], sizeof s->val_splits[0], "trnid");
    snprintf(s->val_splits[1], sizeof s->val_splits[1], "valid");
    s->n_val_splits = 2;
    s->resize = 256;
    s->crop = 224;
    s->shuffle = 1;
    s->hflip = 0.5;
    s->brightness = 0.3;
    s->contrast = 0.3;
    s->rotate_deg = 30;
    s->shear_deg = 20;
    s->batch_size = 16;
    snprintf(s->precision, sizeof s->precision, "fp32");
    lr_schedule_preset("exp-decay-3", &s->feature_extraction, &s->fine_tuning);
    s->threads = 0;
    s->device = -1;
    s->device_images = -1;
    s->sync_bn = 1;
}

/* One batch's place on the device and, on the GPU, its pinned staging buffer. Two of them on
 * the GPU: batch k+1 goes up on the copy stream while batch k computes. */
typedef struct {
    float *images;      /* device: (N, crop, crop, 3) */
    int32_t *labels;    /* device: (N) */
    unsigned char *pin; /* GPU: pinned host copy of labels then images (none on the device data
                           path); NULL on the CPU */
    kn_event *uploaded; /* the copy out of pin has run: pin may be rewritten */
    kn_event *consumed; /* the compute that read images and labels has run */
} batch_slot;

/* Everything a running trial holds; torn down by close_trial. */
typedef struct {
    const trial_spec *spec;
    kn_ctx *ctx;
    kn_comm *comm; /* a group trial on GPUs: its NCCL communicator */
    dataset data;
    loader *train, *val;
    int device_images;                /* the device data path (trial_spec.device_images) */
    uint8_t *train_store, *val_store; /* device: its loader's cached images (loader_store_*) */
    model net;
    batch_slot slots[STEP_GRAPH_SLOTS];
    int n_slots, next_slot;
    step_graphs graphs; /* the training step as CUDA graphs, one per slot */
    size_t image_bytes; /* of a full batch */
    kn_totals *totals;  /* device: loss and accuracy of the batches so far (train or val) */
    float *dlogits;     /* device: (N, classes) */
    double *group_lr;
    float *group_lr_f32;
    trial_progress progress; /* what the resume checkpoint keeps */
    trial_settings settings; /* what it must have been written with */
    /* A group trial's failure that every rank of the group has: one they agreed on (agree,
     * group_batch_end, the epoch's fingerprint). Any other failure of a group rank happened
     * between two collectives and ends the job (leave_group_failed). */
    int failed_together;
    /* where it is, for that message: the epoch, the training batch (1-based; 0 outside
     * training) and otherwise the part of the epoch */
    int epoch, batch;
    const char *stage;
    int test_fail_epoch, test_fail_batch; /* test hook TLSWEEP_TEST_FAIL_STEP (trial.h) */
    char *err;
    size_t errlen;
} trial;

static int fail(trial *t, const char *fmt, ...) {
    char detail[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(detail, sizeof detail, fmt, ap);
    va_end(ap);
    snprintf(t->err, t->errlen, "trial %s: %s", t->spec->name, detail);
    return TRIAL_FAILED;
}

/* loader_next, adding the time it blocked to the epoch's data wait. */
static int next_batch(loader *l, loader_batch *b, epoch_totals *tot) {
    double start = monotonic_seconds();
    int more = loader_next(l, b);
    tot->data_wait_s += monotonic_seconds() - start;
    return more;
}

int trial_open_dataset(const trial_spec *s, dataset *ds, char *err, size_t errlen) {
    const char *train[TRIAL_MAX_SPLITS], *val[TRIAL_MAX_SPLITS];
    for (int i = 0; i < s->n_train_splits; i++)
        train[i] = s->train_splits[i];
    for (int i = 0; i < s->n_val_splits; i++)
        val[i] = s->val_splits[i];
    return dataset_open(ds, s->data_root, train, s->n_train_splits, val, s->n_val_splits,
                        s->skip_corrupt, err, errlen);
}

int trial_same_data(const trial_spec *a, const trial_spec *b) {
    if (strcmp(a->data_root, b->data_root) || a->skip_corrupt != b->skip_corrupt ||
        a->resize != b->resize || a->n_train_splits != b->n_train_splits ||
        a->n_val_splits != b->n_val_splits)
        return 0;
    for (int i = 0; i < a->n_train_splits; i++)
        if (strcmp(a->train_splits[i], b->train_splits[i])) return 0;
    for (int i = 0; i < a->n_val_splits; i++)
        if (strcmp(a->val_splits[i], b->val_splits[i])) return 0;
    return 1;
}

static int open_data(trial *t) {
    const trial_spec *s = t->spec;
    if (trial_open_dataset(s, &t->data, t->err, t->errlen)) return -1;
    char cache_dir[TRIAL_PATH_MAX];
    image_cache_dir(s->cache_dir, s->data_root, cache_dir, sizeof cache_dir);
    loader_options o = {
        .batch_size = s->batch_size,
        .resize = s->resize,
        .crop = s->crop,
        .augment = 1,
        .augment_opts = {s->hflip, s->brightness, s->contrast, s->rotate_deg, s->shear_deg},
        .shuffle = s->shuffle,
        .seed = s->seed,
        /* the loader's threads mostly wait for the trainer, so they share its cores */
        .threads = s->threads > 0 ? s->threads : (int)sysconf(_SC_NPROCESSORS_ONLN),
        .prefetch = 4,
        .cache_dir = cache_dir,
        .shard = group_active(s->group) ? s->group->rank : 0,
        .shards = group_active(s->group) ? s->group->size : 0,
        .jobs = t->device_images,
    };
    if (loader_create(&t->train, &t->data.train, s->skip_corrupt, &o, t->err, t->errlen)) return -1;
    o.augment = 0;
    o.shuffle = 0;
    return loader_create(&t->val, &t->data.val, s->skip_corrupt, &o, t->err, t->errlen);
}

/* Initial weights: torchvision's initialisation, then the weights file over it (the new head
 * keeps its initialisation when the file's head has another shape). */
static int load_initial_weights(trial *t) {
    model *m = &t->net;
    float *host = calloc(m->params.total_count, sizeof *host);
    if (!host) return fail(t, "out of memory");
    model_init_backbone(m, host, t->spec->seed);
    int rc = 0;
    if (strcmp(t->spec->weights, "none")) {
        char path[TRIAL_PATH_MAX];
        rc =
            pretrained_resolve(path, sizeof path, t->spec->weights, m->backbone, t->err, t->errlen);
        weights_file w = {0};
        if (!rc) rc = weights_read(path, &w, t->err, t->errlen);
        if (!rc) rc = params_load(&m->params, host, &w, path, t->err, t->errlen);
        weights_free(&w);
    }
    if (!rc &&
        kn_copy_to_device(t->ctx, model_values(m), host, m->params.total_count * sizeof *host))
        rc = fail(t, "%s", kn_error(t->ctx));
    free(host);
    return rc;
}

/* The device data path's store of a split: its loader's cached images copied into the
 * context's memory one by one, so the host never holds a second copy of the whole cache. */
static int upload_store(trial *t, const loader *l, uint8_t **store) {
    size_t bytes = loader_store_bytes(l);
    if (!(*store = kn_malloc(t->ctx, bytes)))
        return fail(t,
                    "the cached images (%.1f MiB) do not fit on the device: %s; turn the "
                    "device data path off (data.device_images: false, --device-images off)",
                    (double)bytes / (1 << 20), kn_error(t->ctx));
    for (int i = 0; i < loader_num_images(l); i++) {
        const uint8_t *pixels;
        size_t image_bytes;
        uint64_t offset;
        loader_store_image(l, i, &pixels, &image_bytes, &offset);
        if (kn_copy_to_device(t->ctx, *store + offset, pixels, image_bytes))
            return fail(t, "%s", kn_error(t->ctx));
    }
    return 0;
}

static int open_trial(trial *t) {
    const trial_spec *s = t->spec;
    char err[1024];
    t->device_images = s->device_images < 0 ? s->device >= 0 : s->device_images;
    if (open_data(t)) return TRIAL_FAILED;
    const kn_ctx_options opt = {
        .backend = s->device >= 0 ? KN_BACKEND_CUDA : KN_BACKEND_CPU,
        .threads = s->threads,
        .device = s->device,
        .tf32 = !strcmp(s->precision, "tf32"),
        .deterministic = s->deterministic,
    };
    if (!(t->ctx = kn_ctx_create(&opt, err, sizeof err))) return fail(t, "%s", err);
    if (t->device_images &&
        (upload_store(t, t->train, &t->train_store) || upload_store(t, t->val, &t->val_store)))
        return TRIAL_FAILED;
    model_spec ms = {s->backbone, t->data.num_classes, s->width, s->crop, (float)s->dropout};
    if (model_build(&t->net, &ms, err, sizeof err) ||
        model_bind(&t->net, t->ctx, s->batch_size, 1, err, sizeof err) ||
        model_set_precision(&t->net, !strcmp(s->precision, "bf16") ? KN_BF16 : KN_F32, err,
                            sizeof err))
        return fail(t, "%s", err);
    size_t batch = (size_t)s->batch_size, classes = (size_t)t->data.num_classes;
    t->image_bytes = batch * (size_t)s->crop * (size_t)s->crop * 3 * sizeof(float);
    /* on the CPU an upload is a copy done on return: nothing to overlap, one slot */
    t->n_slots = s->device >= 0 ? 2 : 1;
    for (int i = 0; i < t->n_slots; i++) {
        batch_slot *b = &t->slots[i];
        b->images = kn_malloc(t->ctx, t->image_bytes);
        b->labels = kn_malloc(t->ctx, batch * sizeof(int32_t));
        b->uploaded = kn_event_create(t->ctx);
        b->consumed = kn_event_create(t->ctx);
        if (s->device >= 0)
            b->pin = kn_host_alloc(t->ctx, batch * sizeof(int32_t) +
                                               (t->device_images ? 0 : t->image_bytes));
        if (!b->images || !b->labels || !b->uploaded || !b->consumed || (s->device >= 0 && !b->pin))
            return fail(t, "%s", kn_error(t->ctx));
    }
    t->totals = kn_malloc(t->ctx, sizeof *t->totals);
    t->dlogits = kn_malloc(t->ctx, batch * classes * sizeof(float));
    if (!t->totals || !t->dlogits) return fail(t, "%s", kn_error(t->ctx));
    t->group_lr = calloc((size_t)t->net.n_groups, sizeof *t->group_lr);
    t->group_lr_f32 = calloc((size_t)t->net.n_groups, sizeof *t->group_lr_f32);
    if (!t->group_lr || !t->group_lr_f32) return fail(t, "out of memory");
    return 0;
}

static void close_trial(trial *t) {
    if (t->ctx) {
        for (int i = 0; i < t->n_slots; i++) {
            batch_slot *b = &t->slots[i];
            kn_free(t->ctx, b->images);
            kn_free(t->ctx, b->labels);
            kn_host_free(t->ctx, b->pin);
            kn_event_destroy(t->ctx, b->uploaded);
            kn_event_destroy(t->ctx, b->consumed);
        }
        kn_free(t->ctx, t->totals);
        kn_free(t->ctx, t->dlogits);
        step_graphs_free(&t->graphs);
        kn_free(t->ctx, t->train_store);
        kn_free(t->ctx, t->val_store);
    }
    model_free(&t->net);
    kn_comm_destroy(t->comm);
    if (t->ctx) kn_ctx_destroy(t->ctx);
    if (t->train) loader_destroy(t->train);
    if (t->val) loader_destroy(t->val);
    dataset_free(&t->data);
    free(t->group_lr);
    free(t->group_lr_f32);
}

/* Puts a batch on the device in the next slot. On the GPU it goes through the slot's pinned
 * buffer on the copy stream, after the compute that last read the slot (two batches ago), and
 * the compute queued next waits for it; on the CPU it is a copy. On the device data path only
 * the labels go up: kn_images_to_batch makes the images from STORE, queued on the compute
 * stream and so after the step that last read them. NULL on failure (reported). */
static batch_slot *upload_batch(trial *t, const loader_batch *b, const uint8_t *store) {
    batch_slot *s = &t->slots[t->next_slot];
    t->next_slot = (t->next_slot + 1) % t->n_slots;
    const int crop = t->spec->crop;
    size_t label_bytes = (size_t)b->count * sizeof(int32_t);
    size_t batch_labels = (size_t)t->spec->batch_size * sizeof(int32_t); /* images in pin after */
    size_t image_bytes = b->images ? (size_t)b->count * crop * crop * 3 * sizeof(float) : 0;
    const void *images = b->images, *labels = b->labels;
    if (s->pin) {
        /* the loader reuses its buffers, so the batch is copied into this slot's pinned memory
         * once the copy that last read it is done */
        if (kn_event_wait_host(t->ctx, s->uploaded)) {
            fail(t, "%s", kn_error(t->ctx));
            return NULL;
        }
        memcpy(s->pin, b->labels, label_bytes);
        labels = s->pin;
        if (image_bytes) {
            memcpy(s->pin + batch_labels, b->images, image_bytes);
            images = s->pin + batch_labels;
        }
    }
    /* before the uploads, so that it need not wait for them */
    if (b->jobs && kn_images_to_batch(t->ctx, s->images, store, b->jobs, b->count, crop)) {
        fail(t, "%s", kn_error(t->ctx));
        return NULL;
    }
    if ((image_bytes &&
         kn_upload_async(t->ctx, s->images, images, image_bytes, s->consumed, NULL)) ||
        kn_upload_async(t->ctx, s->labels, labels, label_bytes, s->consumed, s->uploaded)) {
        fail(t, "%s", kn_error(t->ctx));
        return NULL;
    }
    return s;
}

/* Starts the device totals from what the host has (a resumed epoch's batches so far), so the
 * sum runs in the same order as without the stop. */
static int start_totals(trial *t, const epoch_totals *tot) {
    const kn_totals from = {.loss_sum = tot->loss_sum, .correct = tot->correct};
    if (kn_copy_to_device(t->ctx, t->totals, &from, sizeof from))
        return fail(t, "%s", kn_error(t->ctx));
    return 0;
}

/* Reads the device totals into tot (waiting for the queued work). In training a non-finite
 * loss fails the trial with the batch it first appeared in: on the GPU, where the totals are
 * read at the epoch end and at a stop, that is when the divergence is seen (the batches after
 * it are wasted work, not wrong results); on the CPU they are read after every batch. */
static int read_totals(trial *t, int epoch, int training, epoch_totals *tot) {
    kn_totals got;
    if (kn_copy_to_host(t->ctx, &got, t->totals, sizeof got))
        return fail(t, "%s", kn_error(t->ctx));
    if (got.bad_labels)
        return fail(t, "epoch %d: %lld labels outside [0, %d)", epoch, (long long)got.bad_labels,
                    t->net.spec.num_classes);
    if (training && got.diverged_at)
        return fail(t, "diverged at epoch %d step %lld (loss %g)", epoch,
                    (long long)got.diverged_at, got.diverged_loss);
    tot->loss_sum = got.loss_sum;
    tot->correct = (long)got.correct;
    return 0;
}

/* A group trial's totals so far: every rank's (each counts only its shards; a resumed epoch's
 * earlier batches are the voice's), summed. The data wait stays this rank's. */
static int sum_totals(trial *t, epoch_totals *tot) {
    double sums[3] = {tot->loss_sum, (double)tot->correct, (double)tot->images};
    char why[512];
    if (group_sum_doubles(t->spec->group, sums, 3, why, sizeof why)) return fail(t, "%s", why);
    tot->loss_sum = sums[0];
    tot->correct = (long)sums[1];
    tot->images = (long)sums[2];
    return 0;
}

/* What the ranks of a group trial agree on after each batch's backward: the summed gradients,
 * and whether any rank's loss diverged or saw a bad label, or any was asked to stop (asked:
 * whether to poll; a stop is only taken between two batches). Every rank then fails, or stops,
 * at the same batch. */
static int group_batch_end(trial *t, int epoch, int ask, const trial_hooks *hooks, int *stop) {
    const trial_group *g = t->spec->group;
    kn_totals got;
    char why[512];
    if (kn_copy_to_host(t->ctx, &got, t->totals, sizeof got))
        return fail(t, "%s", kn_error(t->ctx));
    double flags[4] = {got.diverged_at != 0, got.diverged_at ? got.diverged_loss : 0,
                       (double)got.bad_labels,
                       ask && hooks->should_stop && hooks->should_stop(hooks->user)};
    if (model_sum_grads(&t->net, why, sizeof why) ||
        group_sum_doubles(g, flags, 4, why, sizeof why))
        return fail(t, "%s", why);
    t->failed_together = flags[2] > 0 || flags[0] > 0; /* every rank sees the same flags */
    if (flags[2] > 0)
        return fail(t, "epoch %d: %.0f labels outside [0, %d)", epoch, flags[2],
                    t->net.spec.num_classes);
    if (flags[0] > 0)
        return fail(t,
                    "diverged at epoch %d step %lld (a non-finite loss on %.0f of the group's %d "
                    "ranks)",
                    epoch, (long long)got.diverged_at, flags[0], g->size);
    *stop = flags[3] > 0;
    return 0;
}

/* "\r  epoch 3 [=========>          ] 112/385 batches" on stderr, for long epochs. */
static void show_progress(const trial *t, int epoch, const char *what, int done, int total) {
    if (!t->spec->show_progress || !group_is_voice(t->spec->group)) return;
    char bar[31];
    int filled = total ? (int)((long)done * 30 / total) : 30;
    for (int i = 0; i < 30; i++)
        bar[i] = i < filled ? '=' : i == filled ? '>' : ' ';
    bar[30] = 0;
    fprintf(stderr, "\r  epoch %d %s [%s] %d/%d batches%s", epoch, what, bar, done, total,
            done == total ? "\r\033[K" : "");
    fflush(stderr);
}

/* One training step on batch b in slot s: forward, loss, backward, (a group's agreement on the
 * gradients and on a stop, asked: whether to poll), Adam. */
static int train_step(trial *t, batch_slot *s, const loader_batch *b, int epoch, int bn_train,
                      int ask, const trial_hooks *hooks, int *group_stop) {
    model *m = &t->net;
    const trial_group *g = t->spec->group;
    const int on_host = t->n_slots == 1; /* the CPU: reading the totals costs nothing */
    model_mode mode = {bn_train, 1, b->offset};
    uint64_t step_seed = ((uint64_t)epoch << 32) | (uint64_t)b->index;
    if (epoch == t->test_fail_epoch && b->index + 1 == t->test_fail_batch)
        return fail(t, "the forward failed (test hook TLSWEEP_TEST_FAIL_STEP)");
    const float *logits =
        model_forward(m, s->images, b->count, mode, t->spec->seed ^ step_seed, t->err, t->errlen);
    if (!logits) return TRIAL_FAILED;
    /* a shard's loss is its part of the whole batch's mean: its mean scaled by count/total */
    size_t outputs = (size_t)b->count * (size_t)m->spec.num_classes;
    if (b->count > 0 &&
        (kn_cross_entropy_accumulate(t->ctx, t->dlogits, t->totals, logits, s->labels, b->count,
                                     m->spec.num_classes, b->index + 1) ||
         (b->count < b->total &&
          kn_scale(t->ctx, t->dlogits, (float)b->count / (float)b->total, outputs))))
        return fail(t, "%s", kn_error(t->ctx));
    if (!group_active(g) && on_host && read_totals(t, epoch, 1, &t->progress.train_so_far))
        return TRIAL_FAILED;
    if (model_backward(m, t->dlogits, t->err, t->errlen)) return TRIAL_FAILED;
    if (group_active(g) && group_batch_end(t, epoch, ask, hooks, group_stop)) return TRIAL_FAILED;
    if (model_adam_step(m, t->group_lr_f32, 0.9f, 0.999f, 1e-8f, 0.0f, t->err, t->errlen))
        return TRIAL_FAILED;
    return 0;
}

/* train_step, captured or replayed as a CUDA graph where step_graphs says so. A step whose
 * graph failed ran nothing, so it is made again eagerly from the same Adam step count. */
static int run_step(trial *t, batch_slot *s, const loader_batch *b, int epoch, int bn_train,
                    int ask, const trial_hooks *hooks, int *group_stop) {
    const int slot = (int)(s - t->slots);
    const step_how how = step_graphs_begin(&t->graphs, slot, b->count == t->spec->batch_size);
    const int64_t adam_steps = model_adam_steps(&t->net);
    const int rc = train_step(t, s, b, epoch, bn_train, ask, hooks, group_stop);
    if (!step_graphs_end(&t->graphs, slot, how, rc == 0, t->err)) return rc;
    model_set_adam_steps(&t->net, adam_steps);
    return train_step(t, s, b, epoch, bn_train, ask, hooks, group_stop);
}

/* One pass over the training split: forward, loss, backward, Adam per batch, from the batch
 * the progress says on (a resume inside the epoch), adding to its totals. Between two batches
 * it asks should_stop; on yes it returns with *stopped set and the progress at that boundary.
 * Not after the last batch: a stop there comes at the epoch end, after the short validation. */
static int train_epoch(trial *t, int epoch, int bn_train, const trial_hooks *hooks, int *stopped) {
    model *m = &t->net;
    trial_progress *p = &t->progress;
    epoch_totals *tot = &p->train_so_far;
    const int batches = loader_num_batches(t->train);
    loader_batch b;
    for (int g = 0; g < m->n_groups; g++)
        t->group_lr_f32[g] = (float)t->group_lr[g];
    if (p->batches_done >= batches) {
        t->failed_together = 1; /* the voice's progress, shared at the start: alike everywhere */
        return fail(t, "the resume checkpoint stopped epoch %d at batch %d, but it has %d batches",
                    epoch, p->batches_done, batches);
    }
    if (start_totals(t, tot)) return TRIAL_FAILED;
    const trial_group *g = t->spec->group;
    const int shared_buffers = group_active(g) && bn_train && !t->spec->sync_bn;
    char why[512];
    loader_start_epoch_at(t->train, epoch, p->batches_done);
    while (next_batch(t->train, &b, tot)) {
        t->batch = b.index + 1;
        batch_slot *s = upload_batch(t, &b, t->train_store);
        if (!s) return TRIAL_FAILED;
        /* shards with their own statistics start each step from the voice's, as DDP does */
        if (shared_buffers && model_share_buffers(m, why, sizeof why)) return fail(t, "%s", why);
        int group_stop = 0;
        if (run_step(t, s, &b, epoch, bn_train, b.index + 1 < batches, hooks, &group_stop))
            return TRIAL_FAILED;
        if (kn_event_record(t->ctx, s->consumed)) return fail(t, "%s", kn_error(t->ctx));
        tot->images += b.count;
        p->batches_done = b.index + 1;
        show_progress(t, epoch, "train", b.index + 1, batches);
        if (p->batches_done < batches &&
            (group_active(g) ? group_stop
                             : hooks->should_stop && hooks->should_stop(hooks->user))) {
            *stopped = 1;
            break; /* the resume checkpoint keeps the totals so far */
        }
    }
    t->batch = 0;
    t->stage = "the training totals";
    if (read_totals(t, epoch, 1, tot)) return TRIAL_FAILED;
    return group_active(g) ? sum_totals(t, tot) : 0;
}

static int validate(trial *t, int epoch, epoch_totals *tot) {
    model *m = &t->net;
    loader_batch b;
    t->stage = "validation";
    if (start_totals(t, tot)) return TRIAL_FAILED;
    loader_start_epoch(t->val, 0);
    while (next_batch(t->val, &b, tot)) {
        if (b.count == 0) continue; /* a group's empty shard of a short last batch */
        batch_slot *s = upload_batch(t, &b, t->val_store);
        if (!s) return TRIAL_FAILED;
        model_mode mode = {0, 0, b.offset};
        const float *logits = model_forward(m, s->images, b.count, mode, 0, t->err, t->errlen);
        if (!logits) return TRIAL_FAILED;
        if (kn_cross_entropy_accumulate(t->ctx, NULL, t->totals, logits, s->labels, b.count,
                                        m->spec.num_classes, b.index + 1) ||
            kn_event_record(t->ctx, s->consumed))
            return fail(t, "%s", kn_error(t->ctx));
        tot->images += b.count;
        show_progress(t, epoch, "validate", b.index + 1, loader_num_batches(t->val));
    }
    /* a non-finite validation loss is a result to record, not a failure */
    if (read_totals(t, epoch, 0, tot)) return TRIAL_FAILED;
    return group_active(t->spec->group) ? sum_totals(t, tot) : 0;
}

/* Which parameters train in a phase: the head (or the phase's prefix) in feature extraction,
 * everything in fine-tuning. */
static void set_phase_trainable(trial *t, int phase) {
    const char *prefix = t->spec->feature_extraction.trainable;
    step_graphs_reset(&t->graphs); /* other trainable tensors: other calls */
    model_set_trainable(&t->net, phase == 2 ? "" : prefix[0] ? prefix : t->net.head_prefix);
}

/* Groups without a trainable tensor train at lr 0. */
static void zero_frozen_groups(const model *m, double *group_lr) {
    for (int g = 0; g < m->n_groups; g++) {
        int trains = 0;
        for (int i = 0; i < m->params.count && !trains; i++)
            trains = m->params.tensors[i].group == g && m->params.tensors[i].trainable;
        if (!trains) group_lr[g] = 0;
    }
}

/* A new phase gets a fresh Adam, as the seed builds a new optimizer for each phase. */
static int enter_phase(trial *t, int phase) {
    set_phase_trainable(t, phase);
    if (model_adam_reset(&t->net)) return fail(t, "%s", kn_error(t->ctx));
    return 0;
}

/* This trial's phase 2 starts from the complete phase-1 node (phase1.h): its best weights under
 * this trial's name, its end-of-phase-1 state, and its epochs replayed to on_epoch (a trial that
 * computed them itself has them in the file already: the root keeps the first), then this
 * trial's own resume checkpoint, so a rerun continues from here. A node that cannot be read is
 * a checkpoint failure; a write that fails (a full disk) may succeed on a retry. */
static int adopt_phase1(trial *t, const trial_hooks *hooks, trial_summary *summary) {
    const trial_spec *s = t->spec;
    trial_settings node;
    trial_settings_phase1(s, &node);
    char why[1024];
    summary->failure = TRIAL_FAILURE_CHECKPOINT;
    int rc =
        checkpoint_resume(&t->net, t->ctx, s->phase1_dir, &node, &t->progress, t->err, t->errlen);
    if (rc == 0) return fail(t, "the phase-1 node %s has no checkpoint", s->phase1_dir);
    if (rc < 0) return TRIAL_FAILED;
    int stop = 0;
    char *history = t->progress.history; /* the node's to hand on, not this trial's */
    t->progress.history = NULL;
    summary->failure = TRIAL_FAILURE_TRAINING;
    if (make_dirs(s->out_dir, why, sizeof why))
        rc = fail(t, "%s", why);
    else if (phase1_copy_best(s->phase1_dir, s->out_dir, s->name, t->err, t->errlen))
        rc = TRIAL_FAILED;
    else if (phase1_history_replay(history, (const char *const *)t->net.groups, t->net.n_groups,
                                   hooks, &stop, why, sizeof why)) {
        summary->failure = TRIAL_FAILURE_CHECKPOINT;
        rc = fail(t, "%s/resume.safetensors: %s", s->phase1_dir, why);
    } else if (checkpoint_write_resume(&t->net, t->ctx, s->out_dir, &t->progress, &t->settings,
                                       t->err, t->errlen))
        rc = TRIAL_FAILED;
    else
        rc = stop && t->progress.epochs_done < s->feature_extraction.epochs + s->fine_tuning.epochs
                 ? TRIAL_STOPPED
                 : 0;
    free(history);
    return rc;
}

/* A group trial's ranks agree at an epoch end or a stop: failed when any rank failed (this
 * rank's rc; the voice writes the checkpoints), and, when stop is not NULL, stopping when any
 * rank was asked to. 0, or TRIAL_FAILED with a reason: this rank's own, else the group's. */
static int agree(trial *t, int rc, int *stop) {
    if (!group_active(t->spec->group)) return rc;
    double votes[2] = {rc != 0, stop && *stop};
    char why[512];
    if (group_sum_doubles(t->spec->group, votes, 2, why, sizeof why)) return fail(t, "%s", why);
    t->failed_together = votes[0] > 0;
    if (stop) *stop = votes[1] > 0;
    if (rc) return rc;
    return votes[0] > 0 ? fail(t, "another rank of the trial's group failed (the group's first "
                                  "rank reports why)")
                        : 0;
}

/* A group trial that failed on this rank between two of the points where its ranks agree: the
 * others wait, or soon will, in a collective this rank will never join (a sync-BN gather, the
 * gradient sum), and the voice's heartbeats keep the root from noticing. Without ULFM the group
 * cannot be repaired, so the job ends here, loudly, before the teardown (an NCCL communicator
 * with work queued may block its destroy). */
static void leave_group_failed(const trial *t) {
    const trial_group *g = t->spec->group;
    char where[128], why[1400];
    if (!t->epoch)
        snprintf(where, sizeof where, "before its first epoch");
    else if (t->batch)
        snprintf(where, sizeof where, "epoch %d, training batch %d of %d", t->epoch, t->batch,
                 loader_num_batches(t->train));
    else
        snprintf(where, sizeof where, "epoch %d, %s", t->epoch, t->stage);
    snprintf(why, sizeof why,
             "%s (%s; rank %d of the trial's group of %d): the others would wait for it for good",
             t->err, where, g->rank, g->size);
    group_abort(why);
}

/* Test hook TLSWEEP_TEST_FAIL_STEP=EPOCH,BATCH[,RANK]: the forward of training batch BATCH
 * (1-based) of epoch EPOCH fails, as a kernel error would, on MPI_COMM_WORLD rank RANK (every
 * rank without it). */
static void test_fail_step(trial *t) {
    const char *hook = getenv("TLSWEEP_TEST_FAIL_STEP");
    int epoch = 0, batch = 0, rank = -1;
    if (!hook || sscanf(hook, "%d,%d,%d", &epoch, &batch, &rank) < 2) return;
    if (rank >= 0 && rank != group_world_rank()) return;
    t->test_fail_epoch = epoch;
    t->test_fail_batch = batch;
}

/* A group trial on GPUs: its NCCL communicator, from an id the voice makes. */
static int open_comm(trial *t) {
    const trial_spec *s = t->spec;
    struct {
        unsigned char id[KN_COMM_ID_BYTES];
        int ok;
    } made = {{0}, 1};
    char why[512];
    if (group_is_voice(s->group)) made.ok = !kn_comm_id(t->ctx, made.id);
    if (group_broadcast(s->group, &made, sizeof made, why, sizeof why)) return fail(t, "%s", why);
    if (!made.ok)
        return fail(t, "%s",
                    group_is_voice(s->group) ? kn_error(t->ctx)
                                             : "the group's voice made no NCCL id");
    if (!(t->comm = kn_comm_create(t->ctx, made.id, s->group->size, s->group->rank)))
        return fail(t, "%s", kn_error(t->ctx));
    return 0;
}

/* A group trial's model joins the group (every rank opened the trial: they all take part), on
 * GPUs through the trial's NCCL communicator. */
static int join_group(trial *t) {
    const trial_spec *s = t->spec;
    char why[512];
    if (!group_active(s->group)) return 0;
    if (s->device >= 0 && open_comm(t)) return TRIAL_FAILED;
    if (model_set_group(&t->net, s->group, t->comm, s->sync_bn, why, sizeof why))
        return fail(t, "%s", why);
    return 0;
}

/* A group trial's start: the voice's model, Adam state and progress to every rank; the totals
 * of a resumed epoch's earlier batches stay the voice's alone (sum_totals adds them once). */
static int share_start(trial *t) {
    const trial_group *g = t->spec->group;
    char why[512];
    trial_progress p = t->progress;
    p.history = NULL; /* a phase-1 node's, never a group trial's */
    if (model_share_state(&t->net, why, sizeof why) ||
        group_broadcast(g, &p, sizeof p, why, sizeof why))
        return fail(t, "%s", why);
    if (!group_is_voice(g)) {
        free(t->progress.history);
        t->progress = p;
        t->progress.train_so_far = (epoch_totals){0};
    }
    return 0;
}

/* The epochs from the one after the progress's to `last`, checkpointing into dir; a phase-1
 * node's run (record_history) keeps the epoch records in its checkpoint. */
static int run_epochs(trial *t, const char *dir, int last, int record_history,
                      const trial_hooks *hooks) {
    const trial_spec *spec = t->spec;
    const int fe_epochs = spec->feature_extraction.epochs;
    const int voice = group_is_voice(spec->group); /* writes the checkpoints */
    char *err = t->err;
    size_t errlen = t->errlen;
    int rc = 0;
    int phase = 0;
    for (int epoch = t->progress.epochs_done + 1; !rc && epoch <= last; epoch++) {
        t->epoch = epoch;
        t->stage = "its start";
        int now_phase = epoch <= fe_epochs ? 1 : 2;
        if (now_phase != phase) {
            /* A resumed trial continues its phase with the Adam state it saved: one stopped
             * inside this epoch, or at the end of an epoch of the same phase. */
            int resumed_mid_phase =
                phase == 0 && (t->progress.batches_done > 0 ||
                               (epoch > 1 && (epoch - 1 <= fe_epochs) == (now_phase == 1)));
            if (resumed_mid_phase)
                set_phase_trainable(t, now_phase);
            else if ((rc = enter_phase(t, now_phase)))
                break;
            phase = now_phase;
        }
        int in_phase = phase == 1 ? epoch - 1 : epoch - fe_epochs - 1;
        if (phase == 1) {
            lr_feature_extraction(t->group_lr, t->net.n_groups, &spec->feature_extraction,
                                  in_phase);
            zero_frozen_groups(&t->net, t->group_lr); /* what the records show for frozen groups */
        } else {
            lr_fine_tuning(t->group_lr, t->net.n_groups, &spec->fine_tuning, in_phase);
        }

        trial_progress *p = &t->progress;
        /* a resumed epoch counts the seconds it ran before the stop */
        double epoch_start = monotonic_seconds() - p->seconds_so_far;
        int stopped = 0;
        rc = train_epoch(t, epoch, phase == 1 ? spec->feature_extraction.bn_train : 1, hooks,
                         &stopped);
        if (!rc && stopped) {
            /* no record for a partial epoch: the root gets this epoch once, when it ends */
            p->seconds_so_far = monotonic_seconds() - epoch_start;
            if (voice)
                rc = checkpoint_write_resume(&t->net, t->ctx, dir, p, &t->settings, err, errlen);
            rc = agree(t, rc, NULL);
            if (!rc) rc = TRIAL_STOPPED;
            break;
        }
        epoch_totals train = p->train_so_far, val = {0};
        /* shards that kept their own statistics validate with the voice's, as it saves them */
        if (!rc && group_active(spec->group) && !spec->sync_bn &&
            model_share_buffers(&t->net, err, errlen))
            rc = TRIAL_FAILED;
        if (!rc) rc = validate(t, epoch, &val);
        t->stage = "its end";
        /* every rank takes part and learns the same (a rank whose copy failed differs) */
        if (!rc && model_check_same(&t->net, err, errlen)) {
            t->failed_together = 1;
            rc = TRIAL_FAILED;
        }
        if (rc) break;
        double seconds = monotonic_seconds() - epoch_start;
        epoch_record r = {
            .epoch = epoch,
            .phase = phase,
            .train_loss = train.loss_sum / (double)train.images,
            .train_acc = (double)train.correct / (double)train.images,
            .val_loss = val.loss_sum / (double)val.images,
            .val_acc = (double)val.correct / (double)val.images,
            .head_lr = t->group_lr[0],
            .n_groups = t->net.n_groups,
            .group_names = (const char *const *)t->net.groups,
            .group_lr = t->group_lr,
            .seconds = seconds,
            .images_per_second = (double)(train.images + val.images) / seconds,
            .data_wait_s = train.data_wait_s + val.data_wait_s,
        };
        p->epochs_done = epoch;
        p->batches_done = 0;
        p->train_so_far = (epoch_totals){0};
        p->seconds_so_far = 0;
        if (record_history && phase1_history_add(&p->history, &r)) {
            rc = fail(t, "out of memory");
            break;
        }
        if (epoch == fe_epochs) p->val_acc_end_of_feature_extraction = r.val_acc;
        if (r.val_acc > p->best_val_acc || p->best_epoch == 0) {
            p->best_val_acc = r.val_acc;
            p->best_epoch = epoch;
            if (voice) rc = checkpoint_write_best(&t->net, t->ctx, dir, spec->name, p, err, errlen);
        }
        /* Report first: on_epoch returns once the epoch is in the results file, so the resume
         * checkpoint is never ahead of it (a kill in between retrains this epoch). */
        int stop = !rc && hooks->on_epoch && hooks->on_epoch(&r, hooks->user);
        /* a stop asked during the last batch or validation takes effect here */
        if (!rc && !stop && hooks->should_stop) stop = hooks->should_stop(hooks->user);
        if (!rc && voice)
            rc = checkpoint_write_resume(&t->net, t->ctx, dir, p, &t->settings, err, errlen);
        if (group_active(spec->group) && agree(t, rc, &stop)) rc = TRIAL_FAILED;
        /* after the last epoch there is nothing left to stop: the trial is done */
        if (!rc && stop && epoch < last) rc = TRIAL_STOPPED;
    }
    return rc;
}

/* The phase-1 node complete: computed here under its lock, in this trial's memory and with its
 * node's own progress and phase-1 settings, unless it already is. Its epochs go to on_epoch
 * when they are this trial's own (phase1_streams), else only into the node. */
static int ensure_phase1(trial *t, const trial_hooks *hooks, trial_summary *summary) {
    const trial_spec *spec = t->spec;
    int fd = -1;
    char why[1024];
    if (phase1_lock(spec->phase1_dir, &fd, why, sizeof why)) {
        summary->failure = TRIAL_FAILURE_SETUP;
        return fail(t, "%s", why);
    }
    int complete =
        phase1_complete(spec->phase1_dir, spec->feature_extraction.epochs, why, sizeof why);
    int rc = 0;
    if (complete < 0) {
        summary->failure = TRIAL_FAILURE_CHECKPOINT;
        rc = fail(t, "phase-1 node: %s", why);
    } else if (!complete) {
        /* one line per computation: a job array's tasks show it happened once */
        fprintf(stderr, "trial %s: computing the shared phase 1 in %s\n", spec->name,
                spec->phase1_dir);
        trial_settings own = t->settings;
        trial_settings_phase1(spec, &t->settings);
        rc = checkpoint_resume(&t->net, t->ctx, spec->phase1_dir, &t->settings, &t->progress,
                               t->err, t->errlen);
        if (rc < 0) summary->failure = TRIAL_FAILURE_CHECKPOINT;
        if (rc == 0 && (rc = load_initial_weights(t))) summary->failure = TRIAL_FAILURE_SETUP;
        if (rc == 1) rc = 0;
        const trial_hooks quiet = {.should_stop = hooks->should_stop, .user = hooks->user};
        if (!rc)
            rc = run_epochs(t, spec->phase1_dir, spec->feature_extraction.epochs, 1,
                            spec->phase1_streams ? hooks : &quiet);
        t->settings = own;
        if (rc != TRIAL_STOPPED) { /* a stop keeps the node's place for the summary */
            free(t->progress.history);
            memset(&t->progress, 0, sizeof t->progress);
        }
    }
    phase1_unlock(fd);
    return rc;
}

int trial_run(const trial_spec *spec, const trial_hooks *hooks, trial_summary *summary, char *err,
              size_t errlen) {
    const trial_hooks none = {0};
    if (!hooks) hooks = &none;
    trial t = {.spec = spec, .err = err, .errlen = errlen};
    test_fail_step(&t);
    memset(summary, 0, sizeof *summary);
    double started = monotonic_seconds();
    const int fe_epochs = spec->feature_extraction.epochs;
    const int voice = group_is_voice(spec->group); /* reads the weights and checkpoints */
    int rc = agree(&t, open_trial(&t), NULL);
    if (!rc) rc = agree(&t, join_group(&t), NULL);
    if (!rc) step_graphs_init(&t.graphs, t.ctx, !group_active(spec->group), spec->name);
    int shares = 0; /* starts from a phase-1 node: its failures are classified there */
    if (!rc) {
        summary->params = model_param_count(&t.net);
        trial_settings_of(spec, &t.settings);
    }
    if (!rc && voice) {
        rc = checkpoint_resume(&t.net, t.ctx, spec->out_dir, &t.settings, &t.progress, err, errlen);
        if (rc < 0) summary->failure = TRIAL_FAILURE_CHECKPOINT;
        if (rc == 0 && spec->phase1_dir[0] && fe_epochs > 0 && !group_active(spec->group)) {
            shares = 1;
            rc = ensure_phase1(&t, hooks, summary);
            if (!rc) rc = adopt_phase1(&t, hooks, summary);
        } else if (rc == 0)
            rc = load_initial_weights(&t); /* nothing to resume */
        else if (rc == 1)
            rc = 0;
    }
    /* made once the trial can start, so that a refused one leaves nothing behind */
    char dir_err[1024];
    if (!rc && voice && !shares && make_dirs(spec->out_dir, dir_err, sizeof dir_err))
        rc = fail(&t, "%s", dir_err);
    if (group_active(spec->group) && !(rc = agree(&t, rc, NULL))) rc = share_start(&t);
    if (rc && rc != TRIAL_STOPPED && !shares && summary->failure == TRIAL_FAILURE_TRAINING)
        summary->failure = TRIAL_FAILURE_SETUP;
    if (!rc) rc = run_epochs(&t, spec->out_dir, fe_epochs + spec->fine_tuning.epochs, 0, hooks);
    if (rc < 0 && group_active(spec->group) && !t.failed_together) leave_group_failed(&t);
    summary->val_acc_end_of_feature_extraction = t.progress.val_acc_end_of_feature_extraction;
    summary->best_val_acc = t.progress.best_val_acc;
    summary->best_epoch = t.progress.best_epoch;
    summary->epochs_done = t.progress.epochs_done;
    summary->batches_done = t.progress.batches_done;
    summary->batches_per_epoch = t.train ? loader_num_batches(t.train) : 0;
    summary->seconds = monotonic_seconds() - started;
    /* what this trial needs of a GPU, to size ranks_per_gpu (tools/gpu-check.sh reads it) */
    if (t.ctx && spec->device >= 0)
        fprintf(stderr, "trial %s: peak device memory %.1f MiB (buffers, workspace, plans)\n",
                spec->name, (double)kn_memory_peak(t.ctx) / (1 << 20));
    free(t.progress.history);
    close_trial(&t);
    return rc == TRIAL_STOPPED ? TRIAL_STOPPED : rc ? TRIAL_FAILED : TRIAL_DONE;
}
