/* The root's checks once every worker has said where it runs (HELLO), before the results file
 * is opened: ranks that cannot have their device, and for ranks_per_trial > 1 the
 * data-parallel groups (groups.h), formed once, or refused with the reason (too few workers,
 * GPUs without NCCL, two ranks of a group on one GPU). Each refusal is named on stderr and
 * nothing is started. */
#ifndef TLSWEEP_RUN_START_H
#define TLSWEEP_RUN_START_H

#include "orchestrator/root.h"
#include "orchestrator/sweep.h"

/* Every rank that cannot train as the sweep asks, named on stderr; 0 when there is none. */
int run_start_placement_failures(const worker_slot *workers, int size);

/* The groups of the sweep's ranks_per_trial over workers[1..size-1], by rank: *group_of and
 * *voice_of (size entries each, for root_set_groups and farm_start_workers; the caller frees
 * them) and the number of groups in *groups. With ranks_per_trial 1 they stay NULL and 0. 0 ok,
 * else the exit status: 2 refused, 4 out of memory (reported; nothing to free). */
int run_start_groups(const sweep *s, const worker_slot *workers, int size, int **group_of,
                     int **voice_of, int *groups);

#endif
