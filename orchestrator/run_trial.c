/* The one place a trial is started (see run_trial.h). */
#include <stdio.h>
#include <string.h>

#include "orchestrator/run_trial.h"
#include "orchestrator/simulate.h"
#include "worker/paths.h"

int run_trial_dir(const worker_options *o, const char *name, char *dir, size_t len) {
    int n = o->trial_dir[0] ? snprintf(dir, len, "%s", o->trial_dir)
                            : snprintf(dir, len, "%s/%s", o->trials_dir, name);
    return n < 0 || (size_t)n >= len ? -1 : 0;
}

void run_trial(const sweep *s, const grid_point *p, int index, int attempt, const char *phase1_of,
               const worker_options *o, const trial_hooks *hooks, message *final) {
    trial_spec spec;
    grid_trial_spec(s, p, &spec);
    int too_long = run_trial_dir(o, spec.name, spec.out_dir, sizeof spec.out_dir);
    const int in_group = group_active(o->group);
    spec.group = in_group ? o->group : NULL;
    if (phase1_of[0] && !o->trial_dir[0] && !in_group) {
        int n = snprintf(spec.phase1_dir, sizeof spec.phase1_dir, "%s/%s/phase1", o->trials_dir,
                         phase1_of);
        too_long |= n < 0 || (size_t)n >= sizeof spec.phase1_dir;
        spec.phase1_streams = !strcmp(phase1_of, spec.name);
    }
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
    /* a group's voice alone writes files */
    int no_dir = !too_long && group_is_voice(o->group) && make_dirs(spec.out_dir, err, sizeof err);
    if (!too_long && in_group) {
        /* the whole group learns it: its other ranks would wait for good in the trial's first
         * collective for a voice that never comes */
        double votes = no_dir;
        if (group_sum_doubles(o->group, &votes, 1, err, sizeof err)) group_abort(err);
        if (votes > 0 && !err[0])
            snprintf(err, sizeof err,
                     "trial %s: its group's voice could not make the trial's directory (it "
                     "reports why)",
                     spec.name);
        no_dir = votes > 0;
    }
    if (too_long) {
        snprintf(err, sizeof err, "trial %s: directory name too long", spec.name);
        summary.failure = TRIAL_FAILURE_SETUP;
        rc = TRIAL_FAILED;
    } else if (no_dir) {
        summary.failure = TRIAL_FAILURE_SETUP;
        rc = TRIAL_FAILED;
    } else if (o->simulate) {
        rc = simulate_trial(&spec, o->seconds_per_cost, hooks, &summary, err, sizeof err);
    } else {
        rc = trial_run(&spec, hooks, &summary, err, sizeof err);
    }
    if (rc == TRIAL_FAILED) {
        final->type = MSG_FAILED;
        final->failure = summary.failure;
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
    final->done.batches_done = summary.batches_done;
    final->done.batches_per_epoch = summary.batches_per_epoch;
}
