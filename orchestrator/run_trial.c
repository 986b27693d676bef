/* The one place a trial is started (see run_trial.h). */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "orchestrator/run_trial.h"
#include "orchestrator/simulate.h"

int make_dirs(const char *path, char *err, size_t errlen) {
    char buf[TRIAL_PATH_MAX];
    snprintf(buf, sizeof buf, "%s", path);
    for (char *p = buf + 1;; p++) {
        char c = *p;
        if (c == '/' || c == 0) {
            *p = 0;
            if (mkdir(buf, 0777) && errno != EEXIST) {
                snprintf(err, errlen, "cannot create directory %s: %s", buf, strerror(errno));
                return -1;
            }
            *p = c;
        }
        if (!c) break;
    }
    return 0;
}

/* epochs_done of DIR/resume.safetensors (the trainer's resume checkpoint) from its JSON
 * header's metadata; -1 when there is none or it cannot be read. */
static int checkpoint_epochs(const char *dir) {
    char path[TRIAL_PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/resume.safetensors", dir);
    FILE *f = fopen(path, "rb");
    if (!f) return -1;
    unsigned char head[8];
    int epochs = -1;
    if (fread(head, 1, 8, f) == 8) {
        uint64_t n = 0;
        for (int i = 7; i >= 0; i--)
            n = n << 8 | head[i]; /* little-endian header length */
        char *json = n > 0 && n < (1u << 24) ? malloc(n + 1) : NULL;
        if (json && fread(json, 1, n, f) == n) {
            json[n] = 0;
            const char *key = strstr(json, "\"epochs_done\"");
            const char *colon = key ? strchr(key + 13, ':') : NULL;
            const char *quote = colon ? strchr(colon, '"') : NULL;
            if (quote) epochs = atoi(quote + 1);
        }
        free(json);
    }
    fclose(f);
    return epochs;
}

static void set_aside_checkpoint_ahead(const char *dir, int committed, const worker_options *o) {
    int done = checkpoint_epochs(dir);
    if (done <= committed) return;
    char path[TRIAL_PATH_MAX + 32], aside[TRIAL_PATH_MAX + 48];
    snprintf(path, sizeof path, "%s/resume.safetensors", dir);
    snprintf(aside, sizeof aside, "%s/resume.ahead.safetensors", dir);
    if (rename(path, aside) == 0)
        fprintf(stderr,
                "rank %d on %s: %s: the resume checkpoint (epoch %d) is ahead of the "
                "results file (epoch %d): starting the trial over\n",
                o->rank, o->host, dir, done, committed);
}

void run_trial(const sweep *s, const grid_point *p, int index, int attempt, int committed,
               const worker_options *o, epoch_callback on_epoch, void *user, message *final) {
    trial_spec spec;
    grid_trial_spec(s, p, &spec);
    int n = snprintf(spec.out_dir, sizeof spec.out_dir, "%s/%s", o->trials_dir, spec.name);
    /* --threads, else the sweep's train.threads, else this rank's share of the cores */
    if (o->threads_forced || spec.threads <= 0) spec.threads = o->threads;
    spec.device = o->device;
    memset(final, 0, sizeof *final);
    final->trial = index;
    final->attempt = attempt;
    char err[PROTOCOL_TEXT - 100] = "";
    trial_summary summary;
    memset(&summary, 0, sizeof summary);
    int rc;
    if (n < 0 || (size_t)n >= sizeof spec.out_dir) {
        snprintf(err, sizeof err, "trial %s: directory name too long", spec.name);
        rc = TRIAL_FAILED;
    } else if (make_dirs(spec.out_dir, err, sizeof err)) {
        rc = TRIAL_FAILED;
    } else if (o->simulate) {
        rc = simulate_trial(&spec, o->seconds_per_cost, on_epoch, user, &summary, err, sizeof err);
    } else {
        set_aside_checkpoint_ahead(spec.out_dir, committed, o);
        rc = trial_run(&spec, on_epoch, user, &summary, err, sizeof err);
    }
    if (rc == TRIAL_FAILED) {
        final->type = MSG_FAILED;
        snprintf(final->text, sizeof final->text, "rank %d on %s: %s", o->rank, o->host,
                 err[0] ? err : "failed without a reason");
        return;
    }
    final->type = MSG_DONE;
    final->done.stopped = rc == TRIAL_STOPPED;
    final->done.params = (int64_t)summary.params;
    final->done.val_acc_end_of_feature_extraction = summary.val_acc_end_of_feature_extraction;
    final->done.best_val_acc = summary.best_val_acc;
    final->done.best_epoch = summary.best_epoch;
    final->done.seconds = summary.seconds;
    final->done.epochs_done = summary.epochs_done;
}
