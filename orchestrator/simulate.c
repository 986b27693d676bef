/* Simulated trials (see simulate.h). */
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "orchestrator/schedule.h"
#include "orchestrator/simulate.h"
#include "worker/group.h"
#include "worker/lr_schedule.h"
#include "worker/models/model.h"

int simulate_layer_groups(const char *backbone, char names[][32], int max) {
    /* The real model's groups: building one only lays out its tables (no tensor memory). */
    model m;
    model_spec spec = {backbone, 2, 1, 224, 0.5f};
    char err[256];
    if (model_build(&m, &spec, err, sizeof err)) return 0;
    int n = 0;
    for (; n < m.n_groups && n < max; n++)
        snprintf(names[n], 32, "%s", m.groups[n]);
    model_free(&m);
    return n;
}

void simulate_group_lr(const trial_spec *spec, int epoch, int n_groups, double *lr) {
    const feature_extraction_phase *fe = &spec->feature_extraction;
    if (epoch <= fe->epochs) {
        /* only the head (group 0) trains in feature extraction */
        lr_feature_extraction(lr, n_groups, fe, epoch - 1);
        for (int g = 1; g < n_groups; g++)
            lr[g] = 0.0;
        return;
    }
    lr_fine_tuning(lr, n_groups, &spec->fine_tuning, epoch - fe->epochs - 1);
}

static uint64_t mix(uint64_t x) {
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

static double noise(const trial_spec *spec, int epoch, int which) {
    uint64_t h = spec->seed * 1000003u + (uint64_t)epoch * 7919u + (uint64_t)which;
    for (const char *c = spec->name; *c; c++)
        h = mix(h ^ (unsigned char)*c);
    return (double)(mix(h) >> 11) / 9007199254740992.0 - 0.5; /* [-0.5, 0.5) */
}

static void sleep_seconds(double s) {
    if (s <= 0) return;
    struct timespec ts = {(time_t)s, (long)((s - floor(s)) * 1e9)};
    while (nanosleep(&ts, &ts) && errno == EINTR) {
    }
}

/* The trial whose folder holds spec's shared phase-1 node (TRIALS/NAME/phase1) when it is
 * another trial: 1 with its name in name, else 0. */
static int phase1_computer(const trial_spec *spec, char *name, size_t len) {
    char dir[TRIAL_PATH_MAX];
    snprintf(dir, sizeof dir, "%s", spec->phase1_dir);
    char *end = strrchr(dir, '/');
    if (!dir[0] || spec->phase1_streams || !end) return 0;
    *end = 0;
    const char *base = strrchr(dir, '/');
    snprintf(name, len, "%.*s", TRIAL_NAME_MAX - 1, base ? base + 1 : dir);
    return 1;
}

/* A weights file must at least look like one: a .pth zip or a safetensors header. */
static int check_weights(const trial_spec *spec, char *err, size_t errlen) {
    if (!strcmp(spec->weights, "none") || !strcmp(spec->weights, "torchvision")) return 0;
    FILE *f = fopen(spec->weights, "rb");
    unsigned char head[9] = {0};
    size_t got = f ? fread(head, 1, sizeof head, f) : 0;
    if (f) fclose(f);
    if (!f) {
        snprintf(err, errlen, "trial %s: cannot open weights file '%s': %s", spec->name,
                 spec->weights, strerror(errno));
        return -1;
    }
    int zip = got >= 4 && !memcmp(head, "PK\x03\x04", 4);
    int safetensors = got == 9 && head[8] == '{';
    if (!zip && !safetensors) {
        snprintf(err, errlen,
                 "trial %s: weights file '%s' is neither a PyTorch .pth (zip) nor "
                 "a safetensors file",
                 spec->name, spec->weights);
        return -1;
    }
    return 0;
}

typedef struct {
    int epoch, best_epoch;
    double best, end_fe;
    double part;  /* the fraction of epoch `epoch` + 1 slept before a stop inside it */
    double state; /* what the weights are to a real trial: each epoch's numbers depend on it */
} sim_checkpoint;

static void checkpoint_path(const trial_spec *spec, char *path, size_t len) {
    snprintf(path, len, "%s/simulated.ckpt", spec->out_dir);
}

static int checkpoint_read(const trial_spec *spec, sim_checkpoint *c) {
    memset(c, 0, sizeof *c);
    char path[TRIAL_PATH_MAX + 32];
    checkpoint_path(spec, path, sizeof path);
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    /* no "part" (an epoch-end checkpoint of an older tlsweep): the epoch starts at 0 */
    int n = fscanf(f, "epoch %d best %lf best_epoch %d end_fe %lf part %lf state %lf", &c->epoch,
                   &c->best, &c->best_epoch, &c->end_fe, &c->part, &c->state);
    fclose(f);
    if (n < 4 || c->part < 0 || c->part >= 1)
        memset(c, 0, sizeof *c); /* unreadable: start over, like a missing one */
    return 0;
}

static int checkpoint_write(const trial_spec *spec, const sim_checkpoint *c, char *err,
                            size_t errlen) {
    /* a group's voice alone writes the trial's files; the others read them as it does */
    if (!spec->out_dir[0] || !group_is_voice(spec->group)) return 0;
    char path[TRIAL_PATH_MAX + 32], tmp[TRIAL_PATH_MAX + 40];
    checkpoint_path(spec, path, sizeof path);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    int ok =
        f && fprintf(f, "epoch %d best %.17g best_epoch %d end_fe %.17g part %.17g state %.17g\n",
                     c->epoch, c->best, c->best_epoch, c->end_fe, c->part, c->state) > 0;
    if (f && fclose(f)) ok = 0;
    /* rename makes the checkpoint appear whole or not at all */
    if (!ok || rename(tmp, path)) {
        snprintf(err, errlen, "trial %s: cannot write checkpoint %s: %s", spec->name, path,
                 strerror(errno));
        return -1;
    }
    return 0;
}

/* A group trial's ranks stop together, as the real trainer's do: any rank's stop is the
 * group's (one sum over the group per poll; alone, the rank's own word). */
static int group_stop(const trial_spec *spec, int stop) {
    if (!group_active(spec->group)) return stop;
    double flag = stop ? 1 : 0;
    char err[256];
    if (group_sum_doubles(spec->group, &flag, 1, err, sizeof err)) return 1;
    return flag > 0;
}

/* Sleeps the rest of an epoch of `seconds` from fraction *part on, in batches, asking
 * should_stop between two of them: 1 when stopped (*part is then where, *batch and *batches say
 * it in batches), 0 when the epoch's sleep is over. */
static int sleep_epoch(const trial_spec *spec, double seconds, const trial_hooks *hooks,
                       double *part, int *batch, int *batches) {
    int n = (int)ceil(seconds / SIMULATE_BATCH_SECONDS);
    if (n < 1) n = 1;
    *batches = n;
    /* a resume (maybe with another --sim-seconds) starts at the batch nearest to its part */
    for (int k = (int)floor(*part * n + 0.5); k < n; k++) {
        sleep_seconds(seconds / n);
        if (k + 1 < n &&
            group_stop(spec, hooks && hooks->should_stop && hooks->should_stop(hooks->user))) {
            *part = (double)(k + 1) / n;
            *batch = k + 1;
            return 1;
        }
    }
    return 0;
}

int simulate_trial(const trial_spec *spec, double seconds_per_cost, const trial_hooks *hooks,
                   trial_summary *summary, char *err, size_t errlen) {
    memset(summary, 0, sizeof *summary);
    char names[SIMULATE_MAX_GROUPS][32];
    const char *name_ptrs[SIMULATE_MAX_GROUPS];
    double lr[SIMULATE_MAX_GROUPS];
    int n_groups = simulate_layer_groups(spec->backbone, names, SIMULATE_MAX_GROUPS);
    if (n_groups == 0) {
        snprintf(err, errlen, "trial %s: unknown backbone '%s'", spec->name, spec->backbone);
        summary->failure = TRIAL_FAILURE_SETUP;
        return TRIAL_FAILED;
    }
    if (check_weights(spec, err, errlen)) {
        summary->failure = TRIAL_FAILURE_SETUP; /* as a real trial's weights load */
        return TRIAL_FAILED;
    }
    for (int g = 0; g < n_groups; g++)
        name_ptrs[g] = names[g];
    sim_checkpoint ck;
    checkpoint_read(spec, &ck);
    int total = spec->feature_extraction.epochs + spec->fine_tuning.epochs;
    /* A shared phase 1 computed by another trial (its folder holds the node, NAME/phase1):
     * its epochs are that trial's numbers and cost no time here, as a real replay. */
    trial_spec computer = *spec;
    int replays = phase1_computer(spec, computer.name, sizeof computer.name);
    for (int epoch = ck.epoch + 1; epoch <= total; epoch++) {
        int phase = epoch <= spec->feature_extraction.epochs ? 1 : 2;
        const trial_spec *who = phase == 1 && replays ? &computer : spec;
        /* a per-trial ceiling so the curves differ between backbones and schedules */
        double ceiling = 0.80 + 0.15 * (noise(who, 0, 1) + 0.5);
        double seconds = seconds_per_cost * schedule_epoch_cost(spec, phase);
        double started = ck.part;
        if (sleep_epoch(spec, who == spec ? seconds : 0, hooks, &ck.part, &summary->batches_done,
                        &summary->batches_per_epoch)) {
            /* no record for a partial epoch, as in a real trial */
            summary->seconds += (ck.part - started) * seconds;
            summary->epochs_done = ck.epoch;
            summary->best_val_acc = ck.best;
            summary->best_epoch = ck.best_epoch;
            summary->val_acc_end_of_feature_extraction = ck.end_fe;
            return checkpoint_write(spec, &ck, err, errlen) ? TRIAL_FAILED : TRIAL_STOPPED;
        }
        ck.part = 0;
        double progress = 1.0 - exp(-epoch / 3.0);
        /* Each epoch depends on the checkpointed state, as a real one does on its weights, so
         * that a resume from a lost, stale or garbled checkpoint gives other numbers than an
         * uninterrupted run (a pure function of the epoch would hide it). */
        double carried = 0.02 * ck.state + 0.01 * ck.best + 0.01 * ck.end_fe;
        ck.state = 0.7 * ck.state + noise(who, epoch, 5);
        double val = ceiling * (0.55 + 0.40 * progress) + (phase == 2 ? 0.04 : 0.0) +
                     0.01 * noise(who, epoch, 2) + carried;
        if (val > 0.999) val = 0.999;
        simulate_group_lr(spec, epoch, n_groups, lr);
        epoch_record r = {
            .epoch = epoch,
            .phase = phase,
            .train_loss = 3.0 * exp(-epoch / 4.0) + 0.1 + 0.02 * noise(who, epoch, 3) + carried,
            .train_acc = val - 0.03,
            .val_loss = 2.5 * exp(-epoch / 4.0) + 0.2 + 0.02 * noise(who, epoch, 4),
            .val_acc = val,
            .head_lr = lr[0],
            .n_groups = n_groups,
            .group_names = name_ptrs,
            .group_lr = lr,
            .seconds = seconds,
            .images_per_second = seconds > 0 ? 6149.0 / seconds : 0.0,
            .data_wait_s = 0.05 * seconds, /* a loader that keeps up, mostly */
        };
        if (val > ck.best) {
            ck.best = val;
            ck.best_epoch = epoch;
        }
        if (epoch == spec->feature_extraction.epochs) ck.end_fe = val;
        ck.epoch = epoch;
        summary->seconds += (1 - started) * seconds;
        summary->epochs_done = epoch;
        /* the checkpoint follows the callback: the root has the epoch before we skip it */
        int stop = hooks && hooks->on_epoch && hooks->on_epoch(&r, hooks->user);
        if (!stop && hooks && hooks->should_stop) stop = hooks->should_stop(hooks->user);
        stop = group_stop(spec, stop);
        if (checkpoint_write(spec, &ck, err, errlen)) return TRIAL_FAILED;
        if (stop && epoch < total) {
            summary->best_val_acc = ck.best;
            summary->best_epoch = ck.best_epoch;
            summary->val_acc_end_of_feature_extraction = ck.end_fe;
            return TRIAL_STOPPED;
        }
    }
    summary->params = 0; /* nothing was built */
    summary->epochs_done = total;
    summary->best_val_acc = ck.best;
    summary->best_epoch = ck.best_epoch;
    summary->val_acc_end_of_feature_extraction = ck.end_fe;
    return TRIAL_DONE;
}
