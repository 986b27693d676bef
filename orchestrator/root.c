/* Rank 0's message handling (see root.h). */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "orchestrator/root.h"
#include "orchestrator/schedule.h"
#include "worker/clock.h"

__attribute__((format(printf, 3, 4))) static int fatal(root_ctx *r, root_error kind,
                                                       const char *fmt, ...) {
    r->error_kind = kind;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->error, sizeof r->error, fmt, ap);
    va_end(ap);
    return -1;
}

void root_init(root_ctx *r, const sweep *s, trial_table *t, results_h5 *h5, progress *p,
               worker_slot *workers, int first_worker, int n_ranks, root_send_fn send,
               void *transport) {
    memset(r, 0, sizeof *r);
    r->s = s;
    r->table = t;
    r->h5 = h5;
    r->progress = p;
    r->workers = workers;
    r->first_worker = first_worker;
    r->n_ranks = n_ranks;
    r->send = send;
    r->transport = transport;
    r->only_trial = -1;
    for (int i = 0; i < n_ranks; i++) {
        workers[i].busy = -1;
        workers[i].group = workers[i].voice = -1;
        workers[i].assignable = 1;
    }
}

void root_set_groups(root_ctx *r, const int *group_of, const int *voice_of) {
    for (int rank = r->first_worker; rank < r->n_ranks; rank++) {
        worker_slot *w = &r->workers[rank];
        w->group = group_of[rank];
        w->voice = voice_of[rank];
        w->assignable = w->group > 0 && w->voice == rank;
    }
}

int root_is_member(const root_ctx *r, int rank) {
    const worker_slot *w = &r->workers[rank];
    return w->group > 0 && w->voice != rank;
}

static int save_row(root_ctx *r, trial_entry *e) {
    char err[512];
    if (r->h5 && results_h5_write_trial(r->h5, &e->row, err, sizeof err))
        return fatal(r, ROOT_ERROR_RESULTS, "%s", err);
    return 0;
}

static int transition(root_ctx *r, int index, trial_state to) {
    char err[512];
    if (trial_set_state(r->table, index, to, err, sizeof err))
        return fatal(r, ROOT_ERROR_STATE, "%s", err);
    return 0;
}

static int send_to(root_ctx *r, int rank, const message *m) {
    char err[512];
    if (r->send(r->transport, rank, m, err, sizeof err))
        return fatal(r, ROOT_ERROR_PROTOCOL, "sending %s to rank %d: %s", msg_type_name(m->type),
                     rank, err);
    return 0;
}

static int pending(const root_ctx *r, int index) {
    return r->table->items[index].state == TS_PENDING &&
           (r->only_trial < 0 || r->only_trial == index);
}

static int assign(root_ctx *r, int rank, double now) {
    int index = r->only_trial < 0           ? schedule_next(r->table, rank)
                : pending(r, r->only_trial) ? r->only_trial
                                            : -1;
    if (index < 0) return 0;
    trial_entry *e = &r->table->items[index];
    if (transition(r, index, TS_RUNNING)) return -1;
    worker_slot *w = &r->workers[rank];
    w->busy = index;
    w->last_heard = now;
    e->row.rank = rank;
    snprintf(e->row.host, sizeof e->row.host, "%s", w->host);
    e->row.device = w->device;
    e->row.start_time = wall_seconds();
    e->row.end_time = 0;
    e->current_epoch = 0;
    e->current_phase = 1;
    if (save_row(r, e)) return -1;
    message m = {.type = MSG_ASSIGN, .trial = index, .attempt = e->row.attempts};
    snprintf(m.name, sizeof m.name, "%s", e->row.name);
    if (e->phase1_node) /* the trial whose folder holds the shared phase-1 node */
        snprintf(m.text, sizeof m.text, "%s",
                 r->table->items[e->phase1_from >= 0 ? e->phase1_from : index].row.name);
    progress_event(r->progress, r->table, now, "rank %d on %s: start %s (attempt %d)", rank,
                   w->host, e->row.name, e->row.attempts);
    return send_to(r, rank, &m);
}

int root_assign_idle(root_ctx *r, double now) {
    if (r->stopping) return 0;
    for (int rank = r->first_worker; rank < r->n_ranks; rank++)
        if (r->workers[rank].assignable && r->workers[rank].busy < 0 && assign(r, rank, now))
            return -1;
    return 0;
}

/* The epoch is in the file (or was already): the worker may checkpoint it and go on. */
static int acknowledge(root_ctx *r, const trial_entry *e, const message *m) {
    message ack = {.type = MSG_ACK, .trial = m->trial, .attempt = m->attempt, .stop = r->stopping};
    return send_to(r, e->row.rank, &ack);
}

static int on_epoch(root_ctx *r, trial_entry *e, const message *m, double now) {
    const msg_epoch *ep = &m->epoch;
    e->current_epoch = ep->epoch;
    e->current_phase = ep->phase;
    e->last_epoch_seconds = ep->seconds;
    if (ep->val_acc > e->row.best_val_acc) {
        e->row.best_val_acc = ep->val_acc;
        e->row.best_epoch = ep->epoch;
    }
    if (ep->epoch > e->total_epochs) {
        return fatal(r, ROOT_ERROR_PROTOCOL, "rank %d: trial %s: epoch %d of a %d-epoch trial",
                     e->row.rank, e->row.name, ep->epoch, e->total_epochs);
    }
    /* A restarted trial repeats epochs that are already in the file: keep the first. */
    if (e->epoch_written[ep->epoch]) return acknowledge(r, e, m);
    results_curve_row c;
    memset(&c, 0, sizeof c);
    c.trial_id = e->row.id;
    snprintf(c.trial, sizeof c.trial, "%s", e->row.name);
    c.attempt = m->attempt;
    /* a shared phase 1 was computed by its computer, whoever sent it */
    c.computed_by = ep->phase == 1 ? e->row.phase1_trial : e->row.id;
#define COPY_FIELD(kind, name) c.name = ep->name;
    EPOCH_FIELDS(COPY_FIELD)
#undef COPY_FIELD
    c.time = wall_seconds();
    results_lr_row lr[PROTOCOL_MAX_GROUPS];
    for (int g = 0; g < ep->n_groups; g++) {
        memset(&lr[g], 0, sizeof lr[g]);
        lr[g].trial_id = e->row.id;
        snprintf(lr[g].trial, sizeof lr[g].trial, "%s", e->row.name);
        lr[g].epoch = ep->epoch;
        lr[g].phase = ep->phase;
        lr[g].group_index = g;
        snprintf(lr[g].group, sizeof lr[g].group, "%s", ep->group_names[g]);
        lr[g].lr = ep->group_lr[g];
    }
    char err[512];
    if (r->h5 && results_h5_append_epoch(r->h5, &c, lr, ep->n_groups, err, sizeof err))
        return fatal(r, ROOT_ERROR_RESULTS, "%s", err);
    e->epoch_written[ep->epoch] = 1;
    progress_event(r->progress, r->table, now, "rank %d: %s epoch %d/%d (phase %d) val_acc %.4f",
                   e->row.rank, e->row.name, ep->epoch, e->total_epochs, ep->phase, ep->val_acc);
    /* a shared phase 1 is complete: the trials that start from it may go to idle ranks */
    if (ep->epoch == e->phase1_epochs && e->phase1_node && root_assign_idle(r, now)) return -1;
    return acknowledge(r, e, m);
}

static int on_done(root_ctx *r, trial_entry *e, int index, const message *m, double now) {
    const msg_done *d = &m->done;
    e->row.end_time = wall_seconds();
    e->row.params = d->params;
    e->row.seconds = d->seconds;
    e->row.epochs_done = d->epochs_done;
    if (d->best_epoch > 0) {
        e->row.best_val_acc = d->best_val_acc;
        e->row.best_epoch = d->best_epoch;
    }
    e->row.val_acc_end_of_feature_extraction = d->val_acc_end_of_feature_extraction;
    if (d->stopped) {
        /* Stopped without the root asking: the worker took a stop signal itself (a kill -TERM
         * to one rank, or a signal that reached it first). Its next trial would stop at once
         * too, so the whole sweep stops as if the root had taken the signal. */
        if (!r->stopping && root_stop(r, now, "signal")) return -1;
        if (transition(r, index, TS_PREEMPTED) || save_row(r, e)) return -1;
        if (d->batches_done > 0)
            progress_event(r->progress, r->table, now,
                           "rank %d: %s preempted in epoch %d at batch %d/%d", e->row.rank,
                           e->row.name, d->epochs_done + 1, d->batches_done, d->batches_per_epoch);
        else
            progress_event(r->progress, r->table, now, "rank %d: %s preempted after epoch %d",
                           e->row.rank, e->row.name, d->epochs_done);
        /* preempted goes back to pending: the next run (or worker) continues it */
        return transition(r, index, TS_PENDING);
    }
    if (d->epochs_done < e->total_epochs)
        return fatal(r, ROOT_ERROR_PROTOCOL,
                     "rank %d: trial %s reported done after %d of %d epochs", e->row.rank,
                     e->row.name, d->epochs_done, e->total_epochs);
    e->row.error[0] = 0;
    if (transition(r, index, TS_DONE) || save_row(r, e)) return -1;
    progress_event(r->progress, r->table, now, "rank %d: %s done, best val_acc %.4f (epoch %d)",
                   e->row.rank, e->row.name, e->row.best_val_acc, e->row.best_epoch);
    return 0;
}

/* Why a failure of this kind is not retried; NULL when a retry may succeed. */
static const char *hopeless(trial_failure failure) {
    switch (failure) {
    case TRIAL_FAILURE_SETUP:
        return "not retried: its input or settings fail the same way every time";
    case TRIAL_FAILURE_CHECKPOINT:
        return "not retried: its resume checkpoint is unusable";
    case TRIAL_FAILURE_TRAINING:
        break;
    }
    return NULL;
}

/* A computer of a shared phase 1 that failed for good before its phase 1 was complete takes
 * the trials waiting to start from it along: they would compute the same phase 1 and fail the
 * same way (a rerun retries them all). */
static int fail_sharers(root_ctx *r, const trial_entry *computer, int index, double now) {
    if (!computer->phase1_node || computer->epoch_written[computer->phase1_epochs]) return 0;
    for (int i = 0; i < r->table->count; i++) {
        trial_entry *e = &r->table->items[i];
        if (e->phase1_from != index || e->state != TS_PENDING) continue;
        /* the computer's reason is cut, never the words that say whose it is */
        snprintf(e->row.error, sizeof e->row.error, "its shared phase 1 failed in trial %s: %.*s",
                 computer->row.name, (int)(sizeof e->row.error - 40 - strlen(computer->row.name)),
                 computer->row.error);
        e->failure = computer->failure;
        e->row.end_time = wall_seconds();
        if (transition(r, i, TS_FAILED) || save_row(r, e)) return -1;
        progress_event(r->progress, r->table, now, "FAILED %s: its shared phase 1 failed in %s",
                       e->row.name, computer->row.name);
    }
    return 0;
}

static int on_failed(root_ctx *r, trial_entry *e, int index, const message *m, double now) {
    e->row.end_time = wall_seconds();
    const char *no_retry = hopeless(m->failure);
    if (no_retry) /* the reason is cut, never the word why it is final */
        snprintf(e->row.error, sizeof e->row.error, "%.*s (%s)",
                 (int)(sizeof e->row.error - strlen(no_retry) - 4), m->text, no_retry);
    else
        snprintf(e->row.error, sizeof e->row.error, "%.255s", m->text);
    e->last_failed_rank = e->row.rank;
    e->failure = m->failure;
    if (transition(r, index, TS_FAILED)) return -1;
    int retry = !no_retry && e->attempts_this_run < r->table->max_attempts;
    progress_event(r->progress, r->table, now, "FAILED %s (attempt %d of %d, %s): %s", e->row.name,
                   e->attempts_this_run, r->table->max_attempts,
                   retry      ? "will retry"
                   : no_retry ? no_retry
                              : "no retries left",
                   m->text);
    if (retry && transition(r, index, TS_PENDING)) return -1;
    if (!retry && fail_sharers(r, e, index, now)) return -1;
    return save_row(r, e);
}

int root_handle(root_ctx *r, int source, const message *m, double now) {
    double start = monotonic_seconds();
    r->messages++;
    int rc = 0;
    if (source < r->first_worker || source >= r->n_ranks) {
        rc = fatal(r, ROOT_ERROR_PROTOCOL, "message from rank %d, which is not a worker", source);
        goto out;
    }
    worker_slot *w = &r->workers[source];
    if (!w->assignable && w->group > 0) {
        rc = fatal(r, ROOT_ERROR_PROTOCOL,
                   "rank %d on %s sent %s, but it trains in group %d, for which only its voice "
                   "(rank %d) speaks",
                   source, w->host, msg_type_name(m->type), w->group, w->voice);
        goto out;
    }
    if (!w->assignable) {
        rc = fatal(r, ROOT_ERROR_PROTOCOL, "rank %d on %s sent %s, but it is idle (in no group)",
                   source, w->host, msg_type_name(m->type));
        goto out;
    }
    w->last_heard = now;
    if (m->type == MSG_HEARTBEAT) goto out;
    if (m->type != MSG_EPOCH && m->type != MSG_DONE && m->type != MSG_FAILED) {
        rc = fatal(r, ROOT_ERROR_PROTOCOL, "rank %d on %s sent an unexpected %s", source, w->host,
                   msg_type_name(m->type));
        goto out;
    }
    int index = m->trial;
    if (w->busy < 0 || index != w->busy) {
        rc = fatal(r, ROOT_ERROR_PROTOCOL, "rank %d on %s: %s for trial %d, but it was assigned %d",
                   source, w->host, msg_type_name(m->type), index, w->busy);
        goto out;
    }
    trial_entry *e = &r->table->items[index];
    if (m->type == MSG_EPOCH) {
        rc = on_epoch(r, e, m, now);
        goto out;
    }
    w->busy = -1;
    rc = m->type == MSG_DONE ? on_done(r, e, index, m, now) : on_failed(r, e, index, m, now);
    if (!rc && !r->stopping) rc = assign(r, source, now);
out:
    r->handle_seconds += monotonic_seconds() - start;
    return rc;
}

int root_check_silence(root_ctx *r, double now) {
    if (r->heartbeat_timeout <= 0) return 0;
    for (int rank = r->first_worker; rank < r->n_ranks; rank++) {
        worker_slot *w = &r->workers[rank];
        if (w->busy >= 0 && now - w->last_heard > r->heartbeat_timeout)
            return fatal(r, ROOT_ERROR_SILENT_WORKER,
                         "rank %d on %s: trial %s: no message for %.0f s (heartbeat timeout "
                         "%.0f s); stopping the sweep, rerun to resume",
                         rank, w->host, r->table->items[w->busy].row.name, now - w->last_heard,
                         r->heartbeat_timeout);
    }
    return 0;
}

int root_stop(root_ctx *r, double now, const char *why) {
    if (r->stopping) return 0;
    r->stopping = 1;
    r->stop_seen = now;
    r->stop_why = why;
    progress_event(r->progress, r->table, now,
                   "stopping (%s): running trials stop at their next batch", why);
    for (int rank = r->first_worker; rank < r->n_ranks; rank++)
        if (r->workers[rank].busy >= 0) {
            message m = {.type = MSG_STOP, .trial = r->workers[rank].busy};
            if (send_to(r, rank, &m)) return -1;
        }
    return 0;
}

int root_busy(const root_ctx *r) {
    int busy = 0;
    for (int rank = r->first_worker; rank < r->n_ranks; rank++)
        busy += r->workers[rank].busy >= 0;
    return busy;
}

int root_finished(const root_ctx *r) {
    if (root_busy(r)) return 0;
    if (r->stopping) return 1;
    for (int i = 0; i < r->table->count; i++)
        if (pending(r, i)) return 0;
    return 1;
}

int root_shutdown(root_ctx *r) {
    for (int rank = r->first_worker; rank < r->n_ranks; rank++) {
        /* rank 0 is not a separate worker; a group's member hears its voice, not the root */
        if (rank == 0 || root_is_member(r, rank)) continue;
        message m = {.type = MSG_SHUTDOWN, .trial = -1};
        if (send_to(r, rank, &m)) return -1;
    }
    return 0;
}
