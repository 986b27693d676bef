/* Farming over MPI: the root loop (rank 0 with workers), the worker loop (ranks >= 1; with
 * ranks_per_trial a group's voice), the loop of a group's other ranks, and the single-rank loop
 * (-np 1: rank 0 runs the trials itself). All message handling is root.c's;
 * this file moves bytes, keeps heartbeats going and turns signals into a graceful stop. */
#ifndef TLSWEEP_FARM_H
#define TLSWEEP_FARM_H

#include <mpi.h>
#include <signal.h>

#include "orchestrator/root.h"
#include "orchestrator/run_trial.h"

/* The first of SIGINT/SIGTERM/SIGUSR1/SIGUSR2 received (0 while none): every rank stops at
 * its next clean boundary; the root requeues a Slurm job when it is SIGUSR1 (the time-limit
 * signal). SIGUSR2 is SIGTERM's stand-in where mpirun would turn SIGTERM into a kill. */
extern volatile sig_atomic_t farm_stop_signal;
/* Blocks those signals in this thread and every thread started after it, and starts the one
 * thread that takes them; call it before any other thread exists. -1 on failure. */
int farm_install_signals(void);

typedef struct {
    MPI_Comm comm;
    int rank, size;
    const sweep *s;
    const trial_list *trials; /* the grid, identical on every rank */
    worker_options worker;
    double heartbeat_interval; /* seconds between a busy worker's heartbeats */
    double time_limit;         /* seconds from start; 0 = none */
    double start;              /* monotonic seconds when the run began */
    /* farm_single: also shown every epoch (tlsweep train prints its line); may be NULL */
    void (*echo)(const epoch_record *record);
    /* a worker's place in the static groups (the sweep's ranks_per_trial), from START: its
     * group (1, 2, ...; -1: alone or idle) and the rank of the group's voice (-1: none) */
    int group, voice;
} farm_options;

/* Root: waits for every worker's HELLO and fills workers[rank] (host, device, threads). */
int farm_collect_hellos(const farm_options *o, worker_slot *workers, char *err, size_t errlen);
/* Worker: says where it runs. */
int farm_send_hello(const farm_options *o, char *err, size_t errlen);
/* Root, once setup is done: START, with o->worker.trials_dir (NAME.h5.d) and the worker's group
 * and voice (group_of[rank], voice_of[rank]; NULL: -1, every worker alone), to every worker. */
int farm_start_workers(const farm_options *o, const int *group_of, const int *voice_of, char *err,
                       size_t errlen);
/* Worker, after its HELLO: waits for the root's word. 0: START came (o->worker.trials_dir,
 * o->group and o->voice are set); 1: SHUTDOWN came (setup failed at the root: nothing to do);
 * -1 with err. */
int farm_wait_start(farm_options *o, char *err, size_t errlen);
/* After START, when the sweep's ranks_per_trial is above 1 (else it does nothing): every rank,
 * the root and idle ranks too, splits o->comm once by group; a rank in a group gets the group's
 * communicator in *g (rank 0 there is the voice) and o->worker.group = g. Collective; -1 with
 * err. farm_leave_group frees what it made. */
int farm_split_groups(farm_options *o, trial_group *g, char *err, size_t errlen);
void farm_leave_group(farm_options *o, trial_group *g);
/* 1 for a worker that trains in a group without being its voice: it runs farm_member. */
int farm_is_member(const farm_options *o);
/* Root, after setup failed: tells the workers to leave. */
void farm_abandon(const farm_options *o);

/* Each returns 0 when the loop ended normally (finished or stopped; see r->stopping) and -1
 * on an error (r->error / err). */
int farm_root(root_ctx *r, const farm_options *o);
/* Makes no MPI call, so `tlsweep train` runs it without MPI (r->only_trial picks its trial).
 * A stop (signal, time limit) reaches the trial at its next batch and at every epoch end. */
int farm_single(root_ctx *r, const farm_options *o);
/* Test hook (like TLSWEEP_TEST_KILL_AFTER_LR in results_h5.h): with
 * TLSWEEP_TEST_HANG_AFTER_EPOCH=N (or N,RANK for one rank only) in the environment, a worker
 * whose trial has had epoch N acknowledged hangs for good, heartbeats included, so that the
 * root's heartbeat timeout must find it; the fault tests use it. */
int farm_worker(const farm_options *o, char *err, size_t errlen);
/* The voice of a group runs farm_worker, which passes every ASSIGN and the final SHUTDOWN on to
 * the group's other ranks (also when it ends on an error, so they never wait for good). Each of
 * those runs this loop: it trains each trial its voice was assigned, together with it (the
 * voice alone reports to the root), until SHUTDOWN. 0 at SHUTDOWN, -1 with err. */
int farm_member(const farm_options *o, char *err, size_t errlen);

#endif
