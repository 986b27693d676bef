/* A trial trained by several ranks at once (data parallelism): the ranks of one group, their
 * MPI communicator, and the few collective operations the trainer needs. The group's rank 0 is
 * its voice: it alone reads and writes the trial's files and talks to the root; the others
 * receive its state and train their shard of every batch.
 *
 * Every collective here gives bit-identical results on every rank (sums are formed in rank
 * order from gathered parts, or by one MPI_Allreduce whose result Open MPI distributes), so
 * the ranks' parameters never drift apart; group_check_same proves it once per epoch.
 * A NULL group, or one of size 1, is a trial on one rank: every call is then a no-op.
 * The ranks fail a trial together only where they agree on it (worker/trial.c); a rank that
 * fails anywhere else ends the whole job with group_abort, as no MPI here can tell the others. */
#ifndef TLSWEEP_GROUP_H
#define TLSWEEP_GROUP_H

#include <mpi.h>
#include <stddef.h>

typedef struct {
    MPI_Comm comm; /* the group's own communicator (MPI_COMM_NULL when alone) */
    int rank, size;
    /* the longest wait in one of a trial's collectives (group_wait) before the job is ended:
     * TLSWEEP_GROUP_TIMEOUT (group_timeout_from_env); 0: no limit */
    double timeout_s;
} trial_group;

/* The exit status of a job that a group rank ended with group_abort (mpirun passes it on). */
#define GROUP_ABORT_STATUS 5
/* TLSWEEP_GROUP_TIMEOUT's default, seconds: far beyond any honest wait of one rank for another
 * (a checkpoint write, a cold start), far below a batch job's time limit. */
#define GROUP_TIMEOUT_DEFAULT 1800.0

/* 1 when g trains with other ranks. */
int group_active(const trial_group *g);
/* 1 for the rank that reads and writes files and reports (rank 0 of the group, or alone). */
int group_is_voice(const trial_group *g);

/* buf[i] = the sum over the group's ranks of buf[i], added in rank order (identical
 * everywhere). For short vectors: statistics, totals, flags. -1 with err on failure. */
int group_sum_doubles(const trial_group *g, double *buf, int n, char *err, size_t errlen);
/* Every rank's n doubles, rank after rank, into all (n * size). */
int group_gather_doubles(const trial_group *g, const double *mine, double *all, int n, char *err,
                         size_t errlen);
/* The sum of a long float vector (the gradients), in place. */
int group_sum_floats(const trial_group *g, float *buf, size_t n, char *err, size_t errlen);
/* The voice's bytes to every rank. */
int group_broadcast(const trial_group *g, void *buf, size_t bytes, char *err, size_t errlen);
/* MPI_Wait without spinning: Open MPI's blocking calls poll at full speed, so a rank that waits
 * for a slower one (they meet at every batch-norm layer) or for its next trial would take a
 * core from the ranks and loader threads that share the node's. This one naps between tests,
 * 20 us at first, longer as the wait goes on (up to 1 ms). After timeout_s seconds (0: never)
 * it ends the job with group_abort, naming `what`: a rank of the group is hung, or left it
 * without ending the job, and the others would wait for good. */
int group_wait(MPI_Request *req, double timeout_s, const char *what, char *err, size_t errlen);
/* *seconds from TLSWEEP_GROUP_TIMEOUT (GROUP_TIMEOUT_DEFAULT when unset; 0 turns the limit
 * off); -1 with err when it is not a number of seconds. */
int group_timeout_from_env(double *seconds, char *err, size_t errlen);
/* Ends the whole job, never returns: one line on stderr, "tlsweep run: rank R on HOST: WHY, so
 * it ends the job (MPI_Abort, exit 5); ...", then MPI_Abort(MPI_COMM_WORLD, GROUP_ABORT_STATUS).
 * For a group rank that can no longer meet its group (it failed between two points where the
 * group agrees, or waited too long): the others wait, or would, in a collective it will never
 * join, and without ULFM (MPI_Comm_revoke) nothing frees them. What the root wrote is safe
 * (SWMR, every epoch flushed, checkpoints renamed into place), so a rerun resumes. */
_Noreturn void group_abort(const char *why);

/* This process's rank in MPI_COMM_WORLD; 0 where MPI is not running (`tlsweep train`). */
int group_world_rank(void);
/* -1 with err when buf's bytes differ between this rank and the voice. */
int group_check_same(const trial_group *g, const void *buf, size_t bytes, const char *what,
                     char *err, size_t errlen);

#endif
