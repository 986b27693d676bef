/* `tlsweep run`'s MPI start-up: the stop signals blocked before MPI starts any thread, MPI up
 * with the thread level heartbeats need, and the higher level and the valid group timeout a
 * data-parallel sweep needs. The messages are rank 0's where every rank sees the same. */
#ifndef TLSWEEP_RUN_MPI_H
#define TLSWEEP_RUN_MPI_H

#include "orchestrator/sweep.h"

/* MPI up with the stop signals blocked first: a stop signal must never kill a rank that has not
 * got this far, and MPI's threads must inherit the blocked mask. *provided: the thread level MPI
 * gives. 0 ok, else the exit status. */
int run_mpi_start(int *argc, char ***argv, int *rank, int *size, int *provided);

/* A group trial's ranks reduce gradients in the trainer's thread while each voice's heartbeat
 * thread talks to the root, both in MPI at once: ranks_per_trial > 1 needs MPI_THREAD_MULTIPLE.
 * Decided alike on every rank (the lowest level any rank got). 0 ok, else the exit status. */
int run_mpi_threads_for_groups(const sweep *s, int rank, int provided);

/* TLSWEEP_GROUP_TIMEOUT (worker/group.h), read where the groups form, checked before anything
 * starts: a bad value is bad input. Decided alike on every rank; the first bad one says why.
 * 0 ok, else the exit status. */
int run_mpi_group_timeout_valid(const sweep *s, int rank);

#endif
