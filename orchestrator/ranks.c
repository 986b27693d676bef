/* The sweep shared from rank 0, and each rank's place on its node (see ranks.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "orchestrator/placement.h"
#include "orchestrator/ranks.h"

int ranks_share_sweep(MPI_Comm comm, int rank, const char *file, int valid, sweep *s) {
    long long len = rank == 0 && valid ? (long long)s->text_len : -1;
    if (MPI_Bcast(&len, 1, MPI_LONG_LONG, 0, comm) != MPI_SUCCESS || len < 0) return -1;
    if (rank == 0) return MPI_Bcast(s->text, (int)len, MPI_CHAR, 0, comm) == MPI_SUCCESS ? 0 : -1;
    char *text = malloc((size_t)len + 1);
    if (!text || MPI_Bcast(text, (int)len, MPI_CHAR, 0, comm) != MPI_SUCCESS) {
        fprintf(stderr, "rank %d: the root's sweep did not arrive\n", rank);
        free(text);
        return -1;
    }
    sweep_errors errs = {0};
    const sweep_options opt = {.check_paths = 0}; /* rank 0 checked them */
    int rc = sweep_parse(file, text, (size_t)len, &opt, s, &errs);
    if (rc)
        fprintf(stderr, "rank %d: the root's sweep does not parse here: %s\n", rank,
                errs.count ? errs.messages[0] : "?");
    sweep_errors_free(&errs);
    free(text);
    return rc;
}

/* What a rank tells the others on its node for the device choice: whether it trains, and
 * which devices it sees (CUDA_VISIBLE_DEVICES; Slurm's --gpus-per-task gives each task its own). */
typedef struct {
    int32_t trains;
    char view[252];
} device_view;

/* This worker's index among the workers on its node that see the same devices, and their
 * count (placement_choose's view_index and view_workers). */
static void view_position(MPI_Comm node, int local_size, int trains, int *index, int *count) {
    device_view mine = {.trains = trains}, *all = calloc((size_t)local_size, sizeof *all);
    const char *visible = getenv("CUDA_VISIBLE_DEVICES");
    snprintf(mine.view, sizeof mine.view, "%s", visible ? visible : "(unset: every device)");
    *index = 0;
    *count = 1;
    if (!all || MPI_Allgather(&mine, sizeof mine, MPI_BYTE, all, sizeof mine, MPI_BYTE, node) !=
                    MPI_SUCCESS) {
        free(all);
        return;
    }
    int local_rank = 0;
    MPI_Comm_rank(node, &local_rank);
    *count = 0;
    for (int j = 0; j < local_size; j++)
        if (all[j].trains && !strcmp(all[j].view, mine.view)) {
            if (j < local_rank) ++*index;
            ++*count;
        }
    free(all);
}

void ranks_place(MPI_Comm comm, const sweep *s, int threads, int simulate, worker_options *w) {
    int rank = 0, size = 1;
    MPI_Comm_rank(comm, &rank);
    MPI_Comm_size(comm, &size);
    placement_host(w->host, sizeof w->host);
    w->rank = rank;
    MPI_Comm node;
    int local_rank = 0, local_size = 1, root_here = rank == 0, any_root = 0;
    const int trains = rank > 0 || size == 1;
    int view_index = 0, view_workers = 1;
    if (MPI_Comm_split_type(comm, MPI_COMM_TYPE_SHARED, rank, MPI_INFO_NULL, &node) ==
        MPI_SUCCESS) {
        MPI_Comm_rank(node, &local_rank);
        MPI_Comm_size(node, &local_size);
        MPI_Allreduce(&root_here, &any_root, 1, MPI_INT, MPI_MAX, node);
        view_position(node, local_size, trains, &view_index, &view_workers);
        MPI_Comm_free(&node);
    }
    /* the launcher's own numbering, where there is one, is what its users see */
    const char *env = getenv("OMPI_COMM_WORLD_LOCAL_RANK");
    if (!env) env = getenv("SLURM_LOCALID");
    if (env) local_rank = atoi(env);
    const int workers_here = local_size - (any_root && local_size > 1 ? 1 : 0);
    const long cores = sysconf(_SC_NPROCESSORS_ONLN);
    const long share = cores / (workers_here > 0 ? workers_here : 1);
    w->threads = threads > 0 ? threads : share > 0 ? (int)share : 1;
    w->threads_forced = threads > 0;
    w->local_rank = local_rank;
    w->device = -1;
    if (!trains || simulate) {
        snprintf(w->device_text, sizeof w->device_text, "CPU (%s)",
                 trains ? "--simulate: nothing trains" : "the root: it trains nothing");
        return;
    }
    device_request req;
    placement p;
    if (placement_parse(sweep_device(s), &req)) /* the sweep's validation allows no other */
        req.kind = DEVICE_AUTO;
    if (placement_place(&req, view_index, view_workers, s->ranks_per_gpu, &p)) {
        w->placement_failed = 1;
        snprintf(w->device_text, sizeof w->device_text, "train.device %s: %.400s", sweep_device(s),
                 p.error);
        return;
    }
    w->device = p.device;
    snprintf(w->device_text, sizeof w->device_text, "%s", p.text);
}

void ranks_hosts(const worker_slot *workers, int size, const char *root_host, char *out,
                 size_t len) {
    snprintf(out, len, "%s", root_host);
    for (int i = 1; i < size; i++) {
        int seen = !strcmp(workers[i].host, root_host);
        for (int j = 1; j < i && !seen; j++)
            seen = !strcmp(workers[i].host, workers[j].host);
        if (!seen) {
            size_t used = strlen(out);
            snprintf(out + used, len - used, ",%s", workers[i].host);
        }
    }
}
