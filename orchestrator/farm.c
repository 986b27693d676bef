/* MPI transport for root.c, the worker loop with its heartbeat thread, the loop of a group's
 * members (data-parallel trials), and the one-rank loop. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "orchestrator/farm.h"
#include "worker/clock.h"

volatile sig_atomic_t farm_stop_signal = 0;

/* mpirun forwards SIGUSR1 and SIGUSR2 to every rank (it turns SIGTERM into a kill of the job,
 * so tlsweep.sbatch hands it SIGUSR2 for a SIGTERM: a stop without a requeue); Slurm sends
 * SIGTERM to every task itself. */
static sigset_t stop_signals;

static void *signal_thread(void *arg) {
    (void)arg;
    for (;;) {
        int sig;
        /* the first signal is the reason for the stop (SIGUSR1 asks for a Slurm requeue) */
        if (sigwait(&stop_signals, &sig) == 0 && !farm_stop_signal) farm_stop_signal = sig;
    }
    return NULL;
}

/* The stop signals are blocked in every thread and taken by one thread with sigwait, never
 * delivered asynchronously: SIGUSR1 landing on a worker's thread in the middle of a training
 * step left its heap corrupted (free() aborting inside oneDNN, in about one run in five of
 * mpirun -np 3 with busy workers), and no call anywhere has to cope with EINTR. Called before
 * any thread exists (MPI_Init starts some), so that they all inherit the mask. */
int farm_install_signals(void) {
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGINT);
    sigaddset(&stop_signals, SIGTERM);
    sigaddset(&stop_signals, SIGUSR1);
    sigaddset(&stop_signals, SIGUSR2);
    if (pthread_sigmask(SIG_BLOCK, &stop_signals, NULL)) return -1;
    pthread_attr_t attr;
    pthread_t thread;
    if (pthread_attr_init(&attr)) return -1;
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    int rc = pthread_create(&thread, &attr, signal_thread, NULL);
    pthread_attr_destroy(&attr);
    return rc ? -1 : 0;
}

static void nap(long microseconds) {
    struct timespec ts = {microseconds / 1000000, (microseconds % 1000000) * 1000};
    while (nanosleep(&ts, &ts) && errno == EINTR) {
    }
}

static void mpi_text(int code, char *out, size_t len) {
    char text[MPI_MAX_ERROR_STRING];
    int n = 0;
    if (MPI_Error_string(code, text, &n) != MPI_SUCCESS)
        snprintf(text, sizeof text, "code %d", code);
    snprintf(out, len, "%s", text);
}

static int send_message(MPI_Comm comm, int rank, const message *m, char *err, size_t errlen) {
    unsigned char buf[PROTOCOL_MAX_BYTES];
    size_t len = 0;
    if (protocol_encode(m, buf, sizeof buf, &len)) {
        snprintf(err, errlen, "%s message does not fit %d bytes", msg_type_name(m->type),
                 PROTOCOL_MAX_BYTES);
        return -1;
    }
    int tag = m->type == MSG_ACK ? PROTOCOL_TAG_ACK : PROTOCOL_TAG;
    int rc = MPI_Send(buf, (int)len, MPI_BYTE, rank, tag, comm);
    if (rc != MPI_SUCCESS) {
        char text[256];
        mpi_text(rc, text, sizeof text);
        snprintf(err, errlen, "MPI_Send to rank %d: %s", rank, text);
        return -1;
    }
    return 0;
}

/* Receives one waiting message with tag from `source` (or any) if there is one: 1 got, 0 none,
 * -1 error. */
static int poll_tag(MPI_Comm comm, int source, int tag, message *m, int *from, char *err,
                    size_t errlen) {
    int flag = 0;
    MPI_Status st;
    int rc = MPI_Iprobe(source, tag, comm, &flag, &st);
    if (rc != MPI_SUCCESS) {
        char text[256];
        mpi_text(rc, text, sizeof text);
        snprintf(err, errlen, "MPI_Iprobe: %s", text);
        return -1;
    }
    if (!flag) return 0;
    int count = 0;
    MPI_Get_count(&st, MPI_BYTE, &count);
    unsigned char buf[PROTOCOL_MAX_BYTES];
    if (count < 0 || count > PROTOCOL_MAX_BYTES) {
        snprintf(err, errlen, "rank %d sent a %d-byte message (at most %d)", st.MPI_SOURCE, count,
                 PROTOCOL_MAX_BYTES);
        return -1;
    }
    rc = MPI_Recv(buf, count, MPI_BYTE, st.MPI_SOURCE, tag, comm, MPI_STATUS_IGNORE);
    if (rc != MPI_SUCCESS) {
        char text[256];
        mpi_text(rc, text, sizeof text);
        snprintf(err, errlen, "MPI_Recv from rank %d: %s", st.MPI_SOURCE, text);
        return -1;
    }
    *from = st.MPI_SOURCE;
    char why[256];
    if (protocol_decode(buf, (size_t)count, m, why, sizeof why)) {
        snprintf(err, errlen, "rank %d: bad message: %s", st.MPI_SOURCE, why);
        return -1;
    }
    return 1;
}

static int poll_message(MPI_Comm comm, int source, message *m, int *from, char *err,
                        size_t errlen) {
    return poll_tag(comm, source, PROTOCOL_TAG, m, from, err, errlen);
}

/* ---- root ---------------------------------------------------------------------------------- */

static int mpi_send_fn(void *transport, int rank, const message *m, char *err, size_t errlen) {
    return send_message(*(MPI_Comm *)transport, rank, m, err, errlen);
}

int farm_collect_hellos(const farm_options *o, worker_slot *workers, char *err, size_t errlen) {
    int missing = o->size - 1;
    double deadline = monotonic_seconds() + 120.0;
    while (missing > 0) {
        message m;
        int from = -1;
        int got = poll_message(o->comm, MPI_ANY_SOURCE, &m, &from, err, errlen);
        if (got < 0) return -1;
        if (!got) {
            if (monotonic_seconds() > deadline) {
                snprintf(err, errlen, "%d worker ranks did not report within 120 s", missing);
                return -1;
            }
            nap(1000);
            continue;
        }
        if (m.type != MSG_HELLO) {
            snprintf(err, errlen, "rank %d sent %s before HELLO", from, msg_type_name(m.type));
            return -1;
        }
        worker_slot *w = &workers[from];
        snprintf(w->host, sizeof w->host, "%s", m.hello.host);
        w->device = m.hello.device;
        w->threads = m.hello.threads;
        w->local_rank = m.hello.local_rank;
        w->placement_failed = m.hello.placement_failed;
        snprintf(w->device_text, sizeof w->device_text, "%s", m.hello.device_text);
        missing--;
    }
    return 0;
}

int farm_start_workers(const farm_options *o, const int *group_of, const int *voice_of, char *err,
                       size_t errlen) {
    message m = {.type = MSG_START, .trial = -1};
    snprintf(m.text, sizeof m.text, "%s", o->worker.trials_dir);
    for (int rank = 1; rank < o->size; rank++) {
        m.start.group = group_of ? group_of[rank] : -1;
        m.start.voice = group_of ? voice_of[rank] : -1;
        if (send_message(o->comm, rank, &m, err, errlen)) return -1;
    }
    return 0;
}

int farm_wait_start(farm_options *o, char *err, size_t errlen) {
    for (;;) {
        message m;
        int from = -1;
        int got = poll_message(o->comm, 0, &m, &from, err, errlen);
        if (got < 0) return -1;
        if (!got) {
            nap(1000);
            continue;
        }
        if (m.type == MSG_SHUTDOWN) return 1;
        if (m.type != MSG_START) {
            snprintf(err, errlen, "expected START or SHUTDOWN from the root, got %s",
                     msg_type_name(m.type));
            return -1;
        }
        snprintf(o->worker.trials_dir, sizeof o->worker.trials_dir, "%s", m.text);
        o->group = m.start.group;
        o->voice = m.start.voice;
        return 0;
    }
}

int farm_split_groups(farm_options *o, trial_group *g, char *err, size_t errlen) {
    g->comm = MPI_COMM_NULL;
    g->rank = 0;
    g->size = 1;
    g->timeout_s = 0;
    o->worker.group = NULL;
    if (o->s->ranks_per_trial <= 1) return 0; /* every rank decides alike: the sweep is shared */
    const int color = o->rank > 0 && o->group > 0 ? o->group : MPI_UNDEFINED;
    int rc = MPI_Comm_split(o->comm, color, o->rank, &g->comm);
    if (rc != MPI_SUCCESS) {
        char text[256];
        mpi_text(rc, text, sizeof text);
        snprintf(err, errlen, "MPI_Comm_split into groups of %d ranks: %s", o->s->ranks_per_trial,
                 text);
        g->comm = MPI_COMM_NULL;
        return -1;
    }
    if (g->comm == MPI_COMM_NULL) return 0; /* the root, or an idle rank */
    MPI_Comm_rank(g->comm, &g->rank);
    MPI_Comm_size(g->comm, &g->size);
    if (group_timeout_from_env(&g->timeout_s, err, errlen)) return -1;
    /* the key (the world rank) puts the voice, the group's lowest rank, at group rank 0 */
    if (g->size != o->s->ranks_per_trial || (g->rank == 0) != (o->voice == o->rank)) {
        snprintf(err, errlen,
                 "group %d: %d ranks (want %d), rank %d at group rank %d (its voice is rank %d)",
                 o->group, g->size, o->s->ranks_per_trial, o->rank, g->rank, o->voice);
        return -1;
    }
    o->worker.group = g;
    return 0;
}

void farm_leave_group(farm_options *o, trial_group *g) {
    if (g->comm != MPI_COMM_NULL) MPI_Comm_free(&g->comm);
    o->worker.group = NULL;
}

int farm_is_member(const farm_options *o) {
    return o->rank > 0 && o->group > 0 && o->voice != o->rank;
}

void farm_abandon(const farm_options *o) {
    char err[256];
    for (int rank = 1; rank < o->size; rank++) {
        message m = {.type = MSG_SHUTDOWN, .trial = -1};
        send_message(o->comm, rank, &m, err, sizeof err);
    }
}

static int time_is_up(const farm_options *o, double now) {
    return o->time_limit > 0 && now - o->start > o->time_limit;
}

static int want_stop(root_ctx *r, const farm_options *o, double now) {
    if (r->stopping) return 0;
    if (farm_stop_signal) return root_stop(r, now, "signal");
    if (time_is_up(o, now)) return root_stop(r, now, "time limit");
    return 0;
}

int farm_root(root_ctx *r, const farm_options *o) {
    MPI_Comm comm = o->comm;
    r->send = mpi_send_fn;
    r->transport = &comm;
    double now = monotonic_seconds(), last_check = now;
    for (int rank = 1; rank < o->size; rank++)
        r->workers[rank].last_heard = now;
    if (root_assign_idle(r, now)) return -1;
    while (!root_finished(r)) {
        now = monotonic_seconds();
        if (want_stop(r, o, now)) return -1;
        message m;
        int from = -1;
        int got = poll_message(comm, MPI_ANY_SOURCE, &m, &from, r->error, sizeof r->error);
        if (got < 0) {
            r->error_kind = ROOT_ERROR_PROTOCOL;
            return -1;
        }
        if (got && root_handle(r, from, &m, now)) return -1;
        if (!got) nap(200);
        if (now - last_check > 0.5) {
            last_check = now;
            if (root_check_silence(r, now)) return -1;
            progress_tick(r->progress, r->table, now);
        }
    }
    return root_shutdown(r);
}

/* ---- worker -------------------------------------------------------------------------------- */

/* What a group's voice tells the group's other ranks: train this trial with me, or leave. One
 * fixed-size struct, broadcast from the voice (every rank runs the same binary). */
typedef struct {
    int32_t type; /* MSG_ASSIGN or MSG_SHUTDOWN */
    int32_t trial, attempt;
    char phase1_of[PROTOCOL_TEXT]; /* the ASSIGN's text */
} group_command;

/* The voice's command to every rank of its group: nonblocking, waited for with group_wait so
 * that members waiting for their voice's next trial take no core from the trials on their node
 * (a nonblocking broadcast matches only nonblocking ones, so the voice uses it too). */
static int group_command_bcast(const trial_group *g, group_command *c, char *err, size_t errlen) {
    MPI_Request request;
    int rc = MPI_Ibcast(c, (int)sizeof *c, MPI_BYTE, 0, g->comm, &request);
    if (rc != MPI_SUCCESS) {
        char text[256];
        mpi_text(rc, text, sizeof text);
        snprintf(err, errlen, "group broadcast of %s: %s", msg_type_name((msg_type)c->type), text);
        return -1;
    }
    /* no time limit: a group may wait for its next trial as long as the sweep runs */
    return group_wait(&request, 0, NULL, err, errlen);
}

/* A voice: the command to its group (nothing for a rank alone). */
static int tell_group(const farm_options *o, msg_type type, const message *assign, char *err,
                      size_t errlen) {
    const trial_group *g = o->worker.group;
    if (!g || g->size < 2) return 0;
    group_command c;
    memset(&c, 0, sizeof c);
    c.type = type;
    c.trial = assign ? assign->trial : -1;
    c.attempt = assign ? assign->attempt : 0;
    if (assign) snprintf(c.phase1_of, sizeof c.phase1_of, "%s", assign->text);
    return group_command_bcast(g, &c, err, errlen);
}

typedef struct {
    const farm_options *o;
    pthread_mutex_t lock; /* every MPI call of this rank on o->comm happens under it (a
                             group's communicator is the trainer's, used without it: that
                             takes MPI_THREAD_MULTIPLE, see run_mpi.c) */
    int running;          /* a trial is running: heartbeats flow */
    int trial, attempt;
    int stop; /* the root asked this trial to stop */
    int quit; /* the heartbeat thread ends */
    int failed;
    char error[512];
    int hang_after_epoch; /* test hook, see farm.h; 0 = off */
} worker_ctx;

/* Test hook TLSWEEP_TEST_HANG_AFTER_EPOCH=N[,RANK]: returns N when it applies to this rank. */
static int hang_after_epoch(int rank) {
    const char *hook = getenv("TLSWEEP_TEST_HANG_AFTER_EPOCH");
    int epoch = 0, only_rank = -1;
    if (!hook || sscanf(hook, "%d,%d", &epoch, &only_rank) < 1 || epoch < 1) return 0;
    return only_rank < 0 || only_rank == rank ? epoch : 0;
}

/* The test hook's hang: the whole process stops answering, heartbeat thread included (it
 * waits for the lock held here), as a rank stuck in the kernel or a deadlock would. Only a
 * kill ends it. */
static void hang_forever(worker_ctx *w) {
    pthread_mutex_lock(&w->lock);
    fprintf(stderr, "rank %d: TLSWEEP_TEST_HANG_AFTER_EPOCH: hanging after epoch %d\n", w->o->rank,
            w->hang_after_epoch);
    for (;;)
        pause();
}

/* Under the lock: takes a STOP the root may have sent. */
static void take_stop(worker_ctx *w) {
    message m;
    int from;
    char err[256];
    int got = poll_message(w->o->comm, 0, &m, &from, err, sizeof err);
    if (got < 0 && !w->failed) {
        w->failed = 1;
        snprintf(w->error, sizeof w->error, "%s", err);
    }
    if (got > 0 && (m.type == MSG_STOP || m.type == MSG_SHUTDOWN)) w->stop = 1;
}

static void *heartbeat_thread(void *arg) {
    worker_ctx *w = arg;
    double next = monotonic_seconds() + w->o->heartbeat_interval;
    for (;;) {
        nap(50000);
        pthread_mutex_lock(&w->lock);
        int quit = w->quit;
        if (!quit && w->running && monotonic_seconds() >= next) {
            message m = {.type = MSG_HEARTBEAT, .trial = w->trial, .attempt = w->attempt};
            char err[256];
            if (send_message(w->o->comm, 0, &m, err, sizeof err) && !w->failed) {
                w->failed = 1;
                snprintf(w->error, sizeof w->error, "%s", err);
            }
            next = monotonic_seconds() + w->o->heartbeat_interval;
        }
        /* every nap, not every heartbeat (5 s by default): the trial polls w->stop at each
         * batch, so a STOP stops it within a batch */
        if (!quit && w->running) take_stop(w);
        pthread_mutex_unlock(&w->lock);
        if (quit) return NULL;
    }
}

/* Sends the epoch and waits until the root has it in the file (see protocol.h). */
static int worker_epoch(const epoch_record *record, void *user) {
    worker_ctx *w = user;
    message m;
    protocol_epoch_from_record(&m, w->trial, w->attempt, record);
    char err[256];
    pthread_mutex_lock(&w->lock);
    if (send_message(w->o->comm, 0, &m, err, sizeof err) && !w->failed) {
        w->failed = 1;
        snprintf(w->error, sizeof w->error, "%s", err);
    }
    pthread_mutex_unlock(&w->lock);
    for (;;) {
        pthread_mutex_lock(&w->lock);
        message ack;
        int from, got = w->failed ? -1
                                  : poll_tag(w->o->comm, 0, PROTOCOL_TAG_ACK, &ack, &from, err,
                                             sizeof err);
        if (got < 0 && !w->failed) {
            w->failed = 1;
            snprintf(w->error, sizeof w->error, "%s", err);
        }
        if (got > 0 && (ack.type != MSG_ACK || ack.trial != w->trial) && !w->failed) {
            w->failed = 1;
            snprintf(w->error, sizeof w->error, "expected the ACK of trial %d, got %s for %d",
                     w->trial, msg_type_name(ack.type), ack.trial);
        }
        if (got > 0 && ack.stop) w->stop = 1;
        take_stop(w);
        int stop = w->stop || farm_stop_signal || w->failed;
        pthread_mutex_unlock(&w->lock);
        if (got > 0 && w->hang_after_epoch == record->epoch) hang_forever(w);
        if (got != 0) return stop;
        nap(100);
    }
}

/* The trial's batch-boundary poll: the root's STOP (taken by the heartbeat thread) or a signal
 * to this rank. */
static int worker_should_stop(void *user) {
    worker_ctx *w = user;
    pthread_mutex_lock(&w->lock);
    int stop = w->stop || w->failed;
    pthread_mutex_unlock(&w->lock);
    return stop || farm_stop_signal;
}

int farm_send_hello(const farm_options *o, char *err, size_t errlen) {
    message m = {.type = MSG_HELLO, .trial = -1};
    snprintf(m.hello.host, sizeof m.hello.host, "%s", o->worker.host);
    m.hello.device = o->worker.device;
    m.hello.threads = o->worker.threads;
    m.hello.local_rank = o->worker.local_rank;
    m.hello.placement_failed = o->worker.placement_failed;
    snprintf(m.hello.device_text, sizeof m.hello.device_text, "%s", o->worker.device_text);
    return send_message(o->comm, 0, &m, err, errlen);
}

int farm_worker(const farm_options *o, char *err, size_t errlen) {
    worker_ctx w;
    memset(&w, 0, sizeof w);
    w.o = o;
    w.hang_after_epoch = hang_after_epoch(o->rank);
    if (pthread_mutex_init(&w.lock, NULL)) {
        snprintf(err, errlen, "rank %d: cannot create a mutex", o->rank);
        return -1;
    }
    pthread_t thread;
    if (pthread_create(&thread, NULL, heartbeat_thread, &w)) {
        snprintf(err, errlen, "rank %d: cannot start the heartbeat thread", o->rank);
        pthread_mutex_destroy(&w.lock);
        return -1;
    }
    int rc = 0;
    for (;;) {
        message m;
        int from = -1;
        pthread_mutex_lock(&w.lock);
        int got = poll_message(o->comm, 0, &m, &from, err, errlen);
        pthread_mutex_unlock(&w.lock);
        if (got < 0) {
            rc = -1;
            break;
        }
        if (!got) {
            nap(1000);
            continue;
        }
        if (m.type == MSG_SHUTDOWN) break;
        if (m.type == MSG_STOP) continue; /* for a trial that already ended */
        if (m.type != MSG_ASSIGN || m.trial < 0 || m.trial >= o->trials->count ||
            strcmp(m.name, o->trials->items[m.trial].name)) {
            snprintf(err, errlen,
                     "rank %d on %s: unexpected %s for trial %d '%s' (different "
                     "sweep files on root and worker?)",
                     o->rank, o->worker.host, msg_type_name(m.type), m.trial, m.name);
            rc = -1;
            break;
        }
        pthread_mutex_lock(&w.lock);
        w.trial = m.trial;
        w.attempt = m.attempt;
        w.stop = 0;
        w.running = 1; /* heartbeats flow while the group gathers too */
        pthread_mutex_unlock(&w.lock);
        if (tell_group(o, MSG_ASSIGN, &m, err, errlen)) {
            rc = -1;
            break;
        }
        message final;
        const trial_hooks hooks = {
            .on_epoch = worker_epoch, .should_stop = worker_should_stop, .user = &w};
        run_trial(o->s, &o->trials->items[m.trial], m.trial, m.attempt, m.text, &o->worker, &hooks,
                  &final);
        pthread_mutex_lock(&w.lock);
        w.running = 0;
        int send_rc = send_message(o->comm, 0, &final, err, errlen);
        int failed = w.failed;
        if (failed) snprintf(err, errlen, "%s", w.error);
        pthread_mutex_unlock(&w.lock);
        if (send_rc || failed) {
            rc = -1;
            break;
        }
    }
    /* on SHUTDOWN and on every error: the group's other ranks must not wait for good */
    char group_err[256];
    if (tell_group(o, MSG_SHUTDOWN, NULL, group_err, sizeof group_err) && !rc) {
        snprintf(err, errlen, "%s", group_err);
        rc = -1;
    }
    pthread_mutex_lock(&w.lock);
    w.quit = 1;
    pthread_mutex_unlock(&w.lock);
    pthread_join(thread, NULL);
    pthread_mutex_destroy(&w.lock);
    return rc;
}

/* A member's batch-boundary poll: only a signal to this rank. The root's STOP reaches the voice,
 * and the trainer combines the group's stop decisions, so all stop at the same batch. */
static int member_should_stop(void *user) {
    (void)user;
    return farm_stop_signal != 0;
}

int farm_member(const farm_options *o, char *err, size_t errlen) {
    const trial_group *g = o->worker.group;
    if (!g || g->size < 2 || g->rank == 0) {
        snprintf(err, errlen, "rank %d is not a member of a group", o->rank);
        return -1;
    }
    /* the voice reports every epoch and the outcome; a member only trains */
    const trial_hooks hooks = {.on_epoch = NULL, .should_stop = member_should_stop, .user = NULL};
    for (;;) {
        group_command c;
        memset(&c, 0, sizeof c);
        if (group_command_bcast(g, &c, err, errlen)) return -1;
        if (c.type == MSG_SHUTDOWN) return 0;
        if (c.type != MSG_ASSIGN || c.trial < 0 || c.trial >= o->trials->count) {
            snprintf(err, errlen, "group %d: its voice (rank %d) sent command %d for trial %d",
                     o->group, o->voice, c.type, c.trial);
            return -1;
        }
        c.phase1_of[sizeof c.phase1_of - 1] = 0;
        message final;
        run_trial(o->s, &o->trials->items[c.trial], c.trial, c.attempt, c.phase1_of, &o->worker,
                  &hooks, &final);
        /* the voice reports the trial's outcome; a member's own failure is said here */
        if (final.type == MSG_FAILED) fprintf(stderr, "tlsweep run: %s\n", final.text);
    }
}

/* ---- one rank ------------------------------------------------------------------------------ */

typedef struct {
    int has_assign;
    message assign;
    int stop;
} mailbox;

typedef struct {
    root_ctx *r;
    const farm_options *o;
    mailbox *box;
    int trial, attempt;
    int failed;
} single_ctx;

static int mailbox_send(void *transport, int rank, const message *m, char *err, size_t errlen) {
    mailbox *box = transport;
    (void)rank;
    (void)err;
    (void)errlen;
    if (m->type == MSG_ASSIGN) {
        box->assign = *m;
        box->has_assign = 1;
    } else if (m->type == MSG_STOP || (m->type == MSG_ACK && m->stop))
        box->stop = 1;
    return 0;
}

static int single_epoch(const epoch_record *record, void *user) {
    single_ctx *c = user;
    double now = monotonic_seconds();
    if (!c->failed && want_stop(c->r, c->o, now)) c->failed = 1;
    if (c->o->echo) c->o->echo(record);
    message m;
    protocol_epoch_from_record(&m, c->trial, c->attempt, record);
    if (!c->failed && root_handle(c->r, 0, &m, now)) c->failed = 1;
    progress_tick(c->r->progress, c->r->table, now);
    return c->box->stop || c->failed;
}

/* Polled at every batch: the trial stops there and checkpoints its place in the epoch. */
static int single_should_stop(void *user) {
    const single_ctx *c = user;
    return farm_stop_signal || time_is_up(c->o, monotonic_seconds());
}

int farm_single(root_ctx *r, const farm_options *o) {
    mailbox box = {0};
    r->send = mailbox_send;
    r->transport = &box;
    r->heartbeat_timeout = 0; /* the root is the worker: nobody to be silent */
    if (root_assign_idle(r, monotonic_seconds())) return -1;
    while (box.has_assign) {
        message assign = box.assign;
        box.has_assign = 0;
        box.stop = 0;
        single_ctx c = {r, o, &box, assign.trial, assign.attempt, 0};
        message final;
        const trial_hooks hooks = {
            .on_epoch = single_epoch, .should_stop = single_should_stop, .user = &c};
        run_trial(o->s, &o->trials->items[assign.trial], assign.trial, assign.attempt, assign.text,
                  &o->worker, &hooks, &final);
        if (c.failed) return -1;
        /* before the outcome: a stopped trial goes back to pending and must not be assigned
         * again, nor the next one started */
        if (!r->stopping && want_stop(r, o, monotonic_seconds())) return -1;
        if (root_handle(r, 0, &final, monotonic_seconds())) return -1;
    }
    return 0;
}
