/* The root's checks before a run starts, and its data-parallel groups (run_start.h). */
#include "orchestrator/run_start.h"

#include <stdio.h>
#include <stdlib.h>

#include "kernels/kernels.h"
#include "orchestrator/groups.h"

/* ranks_per_trial > 1: the groups of the workers in workers[1..size-1] (groups.h), by rank:
 * group_of[rank] and voice_of[rank] (-1: idle; rank 0 is -1). Returns the number of groups,
 * -1 when out of memory. */
static int form_groups(const sweep *s, const worker_slot *workers, int size, int *group_of,
                       int *voice_of) {
    const int n = size - 1;
    const char **hosts = calloc((size_t)(n > 0 ? n : 1), sizeof *hosts);
    int *group = calloc((size_t)(n > 0 ? n : 1), sizeof *group);
    int *voice = calloc((size_t)(n > 0 ? n : 1), sizeof *voice);
    int groups = -1;
    if (hosts && group && voice) {
        for (int i = 0; i < n; i++)
            hosts[i] = workers[i + 1].host;
        groups = groups_form(hosts, n, s->ranks_per_trial, group, voice);
        group_of[0] = voice_of[0] = -1;
        for (int i = 0; i < n; i++) {
            group_of[i + 1] = group[i];
            voice_of[i + 1] = voice[i] < 0 ? -1 : voice[i] + 1;
        }
    }
    free(hosts);
    free(group);
    free(voice);
    return groups;
}

/* A group with two ranks on one GPU (ranks_per_gpu > 1) named on stderr; 0 when there is none. */
static int shared_gpu_refused(const sweep *s, const worker_slot *workers, int size,
                              const int *group_of) {
    const char *hosts[size];
    int devices[size], a, b;
    for (int rank = 0; rank < size; rank++) {
        hosts[rank] = workers[rank].host;
        devices[rank] = workers[rank].device;
    }
    if (!groups_shared_gpu(hosts, devices, size, group_of, &a, &b)) return 0;
    fprintf(stderr,
            "tlsweep run: ranks_per_trial is %d and ranks %d and %d of group %d would both train "
            "on %s of %s, but NCCL runs one rank of a group per GPU: set ranks_per_gpu: 1, or "
            "start no more ranks per node than it has GPUs; nothing was started\n",
            s->ranks_per_trial, a, b, group_of[a], workers[a].device_text, workers[a].host);
    return 1;
}

int run_start_placement_failures(const worker_slot *workers, int size) {
    int failed = 0;
    for (int rank = 0; rank < size; rank++)
        if (workers[rank].placement_failed) {
            fprintf(stderr, "tlsweep run: rank %d on %s: %s\n", rank, workers[rank].host,
                    workers[rank].device_text);
            failed++;
        }
    if (failed)
        fprintf(stderr,
                "tlsweep run: %d rank%s cannot train on the device asked for; nothing "
                "was started\n",
                failed, failed == 1 ? "" : "s");
    return failed;
}

int run_start_groups(const sweep *s, const worker_slot *workers, int size, int **group_of,
                     int **voice_of, int *groups) {
    *group_of = *voice_of = NULL;
    *groups = 0;
    const int k = s->ranks_per_trial, n_workers = size - 1;
    if (k <= 1) return 0;
    /* with too few workers for one group, no run */
    if (k > n_workers) {
        fprintf(stderr,
                "tlsweep run: ranks_per_trial is %d but only %d worker rank%s: start at least %d "
                "ranks (rank 0 orchestrates and trains nothing); nothing was started\n",
                k, n_workers, n_workers == 1 ? "" : "s", k + 1);
        return 2;
    }
    /* a group on GPUs reduces over NCCL: a build without it refuses them at once */
    char no_nccl[256];
    for (int rank = 1; rank < size; rank++)
        if (workers[rank].device >= 0 && !kn_comm_supported(no_nccl, sizeof no_nccl)) {
            fprintf(stderr,
                    "tlsweep run: ranks_per_trial is %d and rank %d on %s trains on %s, but %s: "
                    "set train.device: cpu, or ranks_per_trial: 1; nothing was started\n",
                    k, rank, workers[rank].host, workers[rank].device_text, no_nccl);
            return 2;
        }
    int status = 0;
    int *rank_group = calloc((size_t)size, sizeof *rank_group);
    int *rank_voice = calloc((size_t)size, sizeof *rank_voice);
    if (!rank_group || !rank_voice ||
        (*groups = form_groups(s, workers, size, rank_group, rank_voice)) < 0) {
        fprintf(stderr, "tlsweep run: out of memory\n");
        status = 4;
    } else if (shared_gpu_refused(s, workers, size, rank_group)) {
        status = 2;
    }
    if (status) {
        free(rank_group);
        free(rank_voice);
        return status;
    }
    *group_of = rank_group;
    *voice_of = rank_voice;
    return 0;
}
