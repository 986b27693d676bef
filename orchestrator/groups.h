/* Data-parallel trials (the sweep's ranks_per_trial = K > 1): which worker ranks train together.
 * The groups are formed once, when every worker has said where it runs, and never change (K is
 * the same for every trial): a rank belongs to one group for the whole run, or is idle. */
#ifndef TLSWEEP_GROUPS_H
#define TLSWEEP_GROUPS_H

#include <stdio.h>

/* Forms groups of k from n_workers workers, hosts[i] being worker i's host (workers in rank
 * order). First on each host, its workers in order, in chunks of k (no traffic between nodes);
 * then the workers every host has left over, together in order, in chunks of k (cross-node
 * groups); fewer than k left at the end stay idle. A group's voice is its first (lowest) worker.
 * Out, per worker: group_of[i], the group's id (1, 2, ... in the order of their voices; -1:
 * idle), and voice_of[i], the index of its group's voice (-1: idle). Returns the number of
 * groups. k < 1 counts as 1 (every worker its own group). */
int groups_form(const char *const *hosts, int n_workers, int k, int *group_of, int *voice_of);

/* 1 when the workers of group_of/voice_of's group `group` are not all on one host. */
int groups_cross_node(const char *const *hosts, int n_workers, const int *group_of, int group);

/* The first two workers of one group that train on the same GPU (same host, same device >= 0;
 * devices[i] -1 is the CPU): 1 with *a < *b, or 0 when there are none. NCCL refuses a
 * communicator with two ranks on one device, so such a group could never start. */
int groups_shared_gpu(const char *const *hosts, const int *devices, int n_workers,
                      const int *group_of, int *a, int *b);

/* The start's lines: "group 1: ranks 1,2 on node17 (voice: rank 1)" for each group ("across
 * nodes a,b" for one that spans hosts), then "idle: ..." for the workers in none. Indexed by
 * rank here: hosts, group_of and voice_of (a rank, as groups_form's indexes are), ranks
 * first .. n-1. */
void groups_print(FILE *out, const char *const *hosts, int first, int n, int k, const int *group_of,
                  const int *voice_of);

#endif
