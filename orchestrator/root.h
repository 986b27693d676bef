/* Rank 0's logic, apart from how messages travel: it assigns trials (longest first), takes
 * EPOCH/DONE/FAILED/HEARTBEAT messages, drives the state machine, writes /trials, /curves and
 * /lr, and notices silent workers. farm.c feeds it from MPI; the scheduling benchmark feeds it
 * from a discrete-event simulation; with one rank it feeds itself. */
#ifndef TLSWEEP_ROOT_H
#define TLSWEEP_ROOT_H

#include <stddef.h>

#include "orchestrator/progress.h"
#include "orchestrator/protocol.h"
#include "orchestrator/results_h5.h"
#include "orchestrator/trials.h"

typedef struct {
    int busy; /* trial index, -1 when idle */
    double last_heard;
    char host[64];
    int device, threads, local_rank;
    int placement_failed;            /* the rank cannot train as asked: the run does not start */
    char device_text[PROTOCOL_TEXT]; /* the placement print's words, or why it failed */
    /* ranks_per_trial > 1 (root_set_groups): the rank's group (1, 2, ...; -1: idle) and the
     * rank of its voice (-1: idle). root_init: -1 and -1, every worker alone. */
    int group, voice;
    int assignable; /* the root gives it trials and hears from it: a lone worker or a voice */
} worker_slot;

/* What ended a sweep early (a root_* call returned -1): the kind decides what the run does
 * next (its exit status), the text in root_ctx.error says what happened. */
typedef enum {
    ROOT_ERROR_NONE = 0,
    ROOT_ERROR_SILENT_WORKER, /* a busy worker was silent past the heartbeat timeout: resumable */
    ROOT_ERROR_RESULTS,       /* the results file could not be written */
    ROOT_ERROR_PROTOCOL,      /* a message broke the protocol, or moving one failed */
    ROOT_ERROR_STATE,         /* an illegal trial transition: a bug */
} root_error;

/* Sends one message to a rank; -1 with err on failure. */
typedef int (*root_send_fn)(void *transport, int rank, const message *m, char *err, size_t errlen);

typedef struct {
    const sweep *s;
    trial_table *table;
    results_h5 *h5;            /* NULL: keep results in memory only */
    progress *progress;        /* NULL: quiet */
    worker_slot *workers;      /* indexed by rank */
    int first_worker, n_ranks; /* workers are ranks first_worker .. n_ranks-1 */
    root_send_fn send;
    void *transport;
    double heartbeat_timeout; /* seconds; <= 0 disables the check */
    int only_trial;           /* >= 0: the one trial to run (tlsweep train --trial); -1: all */
    int stopping;             /* no new assignments; STOP sent to busy workers */
    double stop_seen;         /* the `now` of root_stop: when the stop was decided */
    const char *stop_why;     /* root_stop's reason: "signal", "time limit" */
    char error[1024];         /* set when root_* returns -1 */
    root_error error_kind;    /* and what kind of error it is */
    /* statistics */
    long messages;
    double handle_seconds; /* time spent in root_handle */
} root_ctx;

/* Sets the context up (workers idle). workers must hold n_ranks slots. */
void root_init(root_ctx *r, const sweep *s, trial_table *t, results_h5 *h5, progress *p,
               worker_slot *workers, int first_worker, int n_ranks, root_send_fn send,
               void *transport);
/* Data-parallel trials: group_of[rank] and voice_of[rank] (indexed by rank, as workers) from
 * groups_form. Only each group's voice is assigned trials and watched for silence; its other
 * ranks and the idle ranks get nothing (and root_shutdown tells only voices and idle ranks). */
void root_set_groups(root_ctx *r, const int *group_of, const int *voice_of);
/* 1 for a rank that trains in a group without being its voice (it hears only its voice). */
int root_is_member(const root_ctx *r, int rank);
/* Gives every idle worker a trial. */
int root_assign_idle(root_ctx *r, double now);
/* Handles one message from a worker rank. -1 (r->error) only for what must end the sweep:
 * an HDF5 write failure, a protocol violation, a state machine bug. */
int root_handle(root_ctx *r, int source, const message *m, double now);
/* -1 (r->error names the rank, host and trial) when a busy worker has been silent too long. */
int root_check_silence(root_ctx *r, double now);
/* Graceful stop: STOP to every busy worker, no more assignments. */
int root_stop(root_ctx *r, double now, const char *why);
int root_busy(const root_ctx *r);
/* Nothing left to run (or stopping and nothing running). */
int root_finished(const root_ctx *r);
/* SHUTDOWN to every worker rank that listens to the root (not a group's members). */
int root_shutdown(root_ctx *r);

#endif
