/* MPI start-up for `tlsweep run`, the thread level it needs and the group timeout every rank
 * must read alike (run_mpi.h). */
#include "orchestrator/run_mpi.h"

#include <limits.h>
#include <mpi.h>
#include <stdio.h>

#include "orchestrator/farm.h"
#include "worker/group.h"

int run_mpi_start(int *argc, char ***argv, int *rank, int *size, int *provided) {
    if (farm_install_signals()) {
        fprintf(stderr, "tlsweep run: cannot set up the stop signals\n");
        return 4;
    }
    /* MULTIPLE for data-parallel trials (run_mpi_threads_for_groups); SERIALIZED does otherwise */
    if (MPI_Init_thread(argc, argv, MPI_THREAD_MULTIPLE, provided) != MPI_SUCCESS) {
        fprintf(stderr, "tlsweep run: MPI_Init_thread failed\n");
        return 4;
    }
    MPI_Comm_rank(MPI_COMM_WORLD, rank);
    MPI_Comm_size(MPI_COMM_WORLD, size);
    /* heartbeats come from a second thread, so MPI must allow serialized calls */
    if (*provided < MPI_THREAD_SERIALIZED) {
        if (*rank == 0)
            fprintf(stderr, "tlsweep run: this MPI does not provide MPI_THREAD_SERIALIZED\n");
        MPI_Finalize();
        return 4;
    }
    return 0;
}

int run_mpi_threads_for_groups(const sweep *s, int rank, int provided) {
    if (s->ranks_per_trial <= 1) return 0;
    int lowest = provided;
    MPI_Allreduce(&provided, &lowest, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
    if (lowest >= MPI_THREAD_MULTIPLE) return 0;
    if (rank == 0)
        fprintf(stderr,
                "tlsweep run: ranks_per_trial is %d, which needs an MPI that provides "
                "MPI_THREAD_MULTIPLE (a group trial's ranks reduce gradients while heartbeats go "
                "on in another thread), but this one provides only %s; use ranks_per_trial: 1 "
                "or an MPI built with thread support; nothing was started\n",
                s->ranks_per_trial,
                lowest == MPI_THREAD_SERIALIZED ? "MPI_THREAD_SERIALIZED" : "less");
    return 2;
}

int run_mpi_group_timeout_valid(const sweep *s, int rank) {
    if (s->ranks_per_trial <= 1) return 0;
    double seconds;
    char err[256];
    int mine = group_timeout_from_env(&seconds, err, sizeof err) ? rank : INT_MAX, first = mine;
    MPI_Allreduce(&mine, &first, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
    if (first == INT_MAX) return 0;
    if (rank == first) fprintf(stderr, "tlsweep run: %s; nothing was started\n", err);
    return 2;
}
