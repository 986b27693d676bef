/* What the ranks of `tlsweep run` settle over MPI before the farm starts: the sweep, read and
 * checked once by rank 0 and parsed from the same text everywhere (so every rank has the same
 * grid), and each rank's place (host, device, threads) from its neighbours on the node. */
#ifndef TLSWEEP_RANKS_H
#define TLSWEEP_RANKS_H

#include <mpi.h>

#include "orchestrator/root.h"
#include "orchestrator/run_trial.h"

/* Rank 0 passes its loaded sweep in s and valid (0: it was refused, reported there); every other
 * rank gets the text and parses it into s. Collective; 0 ok, -1 when the sweep was refused or
 * does not arrive (reported by the rank that saw it). */
int ranks_share_sweep(MPI_Comm comm, int rank, const char *file, int valid, sweep *s);

/* Fills w's host, local_rank, threads (threads if > 0, else the node's cores over the workers
 * on it) and device for the sweep's train.device. Collective over the node. A rank that cannot
 * have its device gets placement_failed with the reason in device_text: its HELLO says so and
 * the root stops the run before it starts; it never falls back to the CPU by itself. The root of
 * a multi-rank run, and --simulate (trains), train nothing. */
void ranks_place(MPI_Comm comm, const sweep *s, int threads, int simulate, worker_options *w);

/* "root,host1,host2": the distinct hosts of the run, the root's first. */
void ranks_hosts(const worker_slot *workers, int size, const char *root_host, char *out,
                 size_t len);

#endif
