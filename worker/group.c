/* The collectives of a data-parallel trial (group.h) on its MPI communicator. */
#include "worker/group.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "worker/clock.h"

int group_active(const trial_group *g) {
    return g && g->size > 1;
}

int group_is_voice(const trial_group *g) {
    return !group_active(g) || g->rank == 0;
}

static int mpi_failed(int rc, const char *what, char *err, size_t errlen) {
    if (rc == MPI_SUCCESS) return 0;
    char text[MPI_MAX_ERROR_STRING];
    int n = 0;
    if (MPI_Error_string(rc, text, &n) != MPI_SUCCESS) snprintf(text, sizeof text, "code %d", rc);
    snprintf(err, errlen, "%s over the trial's rank group: %s", what, text);
    return -1;
}

int group_wait(MPI_Request *req, double timeout_s, const char *what, char *err, size_t errlen) {
    long nap_ns = 20000;
    const double start = timeout_s > 0 ? monotonic_seconds() : 0;
    for (;;) {
        int done = 0;
        if (mpi_failed(MPI_Test(req, &done, MPI_STATUS_IGNORE), "MPI_Test", err, errlen)) return -1;
        if (done) return 0;
        struct timespec nap = {0, nap_ns};
        nanosleep(&nap, NULL);
        if (nap_ns < 1000000) nap_ns *= 2; /* long waits (the next trial) cost next to nothing */
        if (timeout_s > 0 && monotonic_seconds() - start >= timeout_s) {
            char why[256];
            snprintf(why, sizeof why,
                     "waited %g s (TLSWEEP_GROUP_TIMEOUT) in %s for the other ranks of its "
                     "trial's group: one of them is hung, or left without ending the job",
                     timeout_s, what);
            group_abort(why);
        }
    }
}

int group_timeout_from_env(double *seconds, char *err, size_t errlen) {
    const char *text = getenv("TLSWEEP_GROUP_TIMEOUT");
    *seconds = GROUP_TIMEOUT_DEFAULT;
    if (!text) return 0;
    char *end;
    double value = strtod(text, &end);
    if (end == text || *end || !(value >= 0) || value > 1e9) {
        snprintf(err, errlen,
                 "TLSWEEP_GROUP_TIMEOUT=%s: want seconds (0 for no limit; default %.0f)", text,
                 GROUP_TIMEOUT_DEFAULT);
        return -1;
    }
    *seconds = value;
    return 0;
}

int group_world_rank(void) {
    int running = 0, rank = 0;
    if (MPI_Initialized(&running) == MPI_SUCCESS && running) MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    return rank;
}

void group_abort(const char *why) {
    const int rank = group_world_rank();
    char host[256];
    if (gethostname(host, sizeof host)) snprintf(host, sizeof host, "unknown");
    host[sizeof host - 1] = 0;
    fprintf(stderr,
            "tlsweep run: rank %d on %s: %s, so it ends the job (MPI_Abort, exit %d); the "
            "results so far are kept: rerun the same command to resume\n",
            rank, host, why, GROUP_ABORT_STATUS);
    fflush(NULL);
    MPI_Abort(MPI_COMM_WORLD, GROUP_ABORT_STATUS);
    _exit(GROUP_ABORT_STATUS); /* not reached; if it were, mpirun would see the rank go */
}

int group_gather_doubles(const trial_group *g, const double *mine, double *all, int n, char *err,
                         size_t errlen) {
    if (!group_active(g)) {
        memcpy(all, mine, (size_t)n * sizeof *all);
        return 0;
    }
    MPI_Request req;
    int rc = mpi_failed(MPI_Iallgather(mine, n, MPI_DOUBLE, all, n, MPI_DOUBLE, g->comm, &req),
                        "MPI_Iallgather", err, errlen);
    if (!rc) rc = group_wait(&req, g->timeout_s, "MPI_Iallgather", err, errlen);
    return rc;
}

int group_sum_doubles(const trial_group *g, double *buf, int n, char *err, size_t errlen) {
    if (!group_active(g)) return 0;
    double *all = malloc((size_t)n * (size_t)g->size * sizeof *all);
    if (!all) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    int rc = group_gather_doubles(g, buf, all, n, err, errlen);
    if (!rc)
        for (int i = 0; i < n; i++) {
            double sum = 0;
            for (int r = 0; r < g->size; r++)
                sum += all[(size_t)r * (size_t)n + (size_t)i];
            buf[i] = sum;
        }
    free(all);
    return rc;
}

/* MPI counts are ints: long vectors go in pieces. */
#define GROUP_PIECE (1 << 28)

int group_sum_floats(const trial_group *g, float *buf, size_t n, char *err, size_t errlen) {
    if (!group_active(g)) return 0;
    for (size_t at = 0; at < n; at += GROUP_PIECE) {
        int count = (int)(n - at < GROUP_PIECE ? n - at : GROUP_PIECE);
        if (mpi_failed(MPI_Allreduce(MPI_IN_PLACE, buf + at, count, MPI_FLOAT, MPI_SUM, g->comm),
                       "MPI_Allreduce", err, errlen))
            return -1;
    }
    return 0;
}

int group_broadcast(const trial_group *g, void *buf, size_t bytes, char *err, size_t errlen) {
    if (!group_active(g)) return 0;
    for (size_t at = 0; at < bytes; at += GROUP_PIECE) {
        int count = (int)(bytes - at < GROUP_PIECE ? bytes - at : GROUP_PIECE);
        if (mpi_failed(MPI_Bcast((char *)buf + at, count, MPI_BYTE, 0, g->comm), "MPI_Bcast", err,
                       errlen))
            return -1;
    }
    return 0;
}

/* FNV-1a over the bytes: a mismatch in any bit changes it (with overwhelming odds). */
static uint64_t fingerprint(const void *buf, size_t bytes) {
    const unsigned char *p = buf;
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < bytes; i++)
        h = (h ^ p[i]) * 0x100000001b3ull;
    return h;
}

int group_check_same(const trial_group *g, const void *buf, size_t bytes, const char *what,
                     char *err, size_t errlen) {
    if (!group_active(g)) return 0;
    uint64_t mine = fingerprint(buf, bytes), voice = mine;
    if (group_broadcast(g, &voice, sizeof voice, err, errlen)) return -1;
    /* every rank learns whether any differs, so that all fail together */
    double differs = mine != voice;
    if (group_sum_doubles(g, &differs, 1, err, errlen)) return -1;
    if (differs > 0) {
        snprintf(err, errlen, "%s differ between the ranks of the trial's group (%d of %d)", what,
                 (int)differs, g->size);
        return -1;
    }
    return 0;
}
