/* `tlsweep run SWEEP.yaml`: under mpirun rank 0 orchestrates and ranks >= 1 train; with one
 * rank, rank 0 runs the trials itself. Exit status: 0 every trial done, 1 some failed after
 * their retries, 2 bad input (nothing written), 3 stopped (signal, --time-limit, silent
 * worker; rerun to resume), 4 an internal error, 5 a rank of a data-parallel group ended the
 * job (worker/group.h: it failed between two agreements, or waited TLSWEEP_GROUP_TIMEOUT;
 * rerun to resume). This file is the
 * command's flow on every rank and a worker rank's part; the rest: run_mpi.h (MPI up),
 * run_options.h (the command line), run_dry_run.h (-n) and run_root.h (rank 0's run). */
#include <mpi.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "orchestrator/farm.h"
#include "orchestrator/preflight.h"
#include "orchestrator/ranks.h"
#include "orchestrator/run_dry_run.h"
#include "orchestrator/run_mpi.h"
#include "orchestrator/run_options.h"
#include "orchestrator/run_root.h"
#include "orchestrator/schedule.h"
#include "orchestrator/slurm.h"
#include "worker/clock.h"
#include "worker/commands.h"

/* Rank 0: the sweep file read, validated and every input it names checked (preflight);
 * every problem reported. 0 valid, -1 not. */
static int check_sweep(const run_options *o, sweep *s) {
    sweep_errors errs = {0};
    const sweep_options opt = {.check_paths = !o->simulate};
    /* a simulated sweep reads no dataset or weights */
    int rc = sweep_load(o->sweep_file, &opt, s, &errs) == 0 &&
                     (o->simulate || preflight_sweep(s, &errs) == 0)
                 ? 0
                 : -1;
    if (rc) {
        sweep_errors_print(&errs, stderr, "");
        fprintf(stderr, "tlsweep run: %s is not a valid sweep; nothing was started\n",
                o->sweep_file);
    }
    sweep_errors_free(&errs);
    return rc;
}

static double seconds_per_cost(const sweep *s, const trial_list *trials, double seconds) {
    double most = 0;
    for (int i = 0; i < trials->count; i++) {
        trial_spec spec;
        grid_trial_spec(s, &trials->items[i], &spec);
        for (int phase = 1; phase <= 2; phase++)
            if (schedule_epoch_cost(&spec, phase) > most) most = schedule_epoch_cost(&spec, phase);
    }
    return most > 0 ? seconds / most : 0;
}

/* A worker rank: HELLO, the root's START (or SHUTDOWN when its setup failed), then trials until
 * SHUTDOWN. Returns the exit status (negative: abort). */
static int run_worker(farm_options *f) {
    char err[1024];
    int rc = farm_send_hello(f, err, sizeof err);
    if (!rc) rc = farm_wait_start(f, err, sizeof err);
    if (rc == 1) return 2; /* the root said why */
    trial_group group;
    if (!rc) rc = farm_split_groups(f, &group, err, sizeof err);
    /* a group's voice and a rank alone (or idle) hear the root; a member hears its voice */
    if (!rc)
        rc = farm_is_member(f) ? farm_member(f, err, sizeof err) : farm_worker(f, err, sizeof err);
    if (!rc) farm_leave_group(f, &group); /* after an error MPI aborts: nothing to free */
    if (!rc) return 0;
    fprintf(stderr, "tlsweep run: rank %d on %s: %s\n", f->rank, f->worker.host, err);
    return -4;
}

int cmd_run(int argc, char **argv) {
    int rank = 0, size = 1, provided = 0;
    int status = run_mpi_start(&argc, &argv, &rank, &size, &provided);
    if (status) return status;
    run_options o;
    int prc = run_options_parse(argc, argv, &o, rank);
    if (prc) {
        MPI_Finalize();
        return prc > 0 ? 0 : 2;
    }
    sweep s;
    memset(&s, 0, sizeof s);
    const int valid = rank == 0 ? check_sweep(&o, &s) == 0 : 1;
    if (ranks_share_sweep(MPI_COMM_WORLD, rank, o.sweep_file, valid, &s)) {
        sweep_free(&s);
        MPI_Finalize();
        return 2;
    }
    trial_list trials;
    char err[1024];
    if (grid_expand(&s, &trials, err, sizeof err)) {
        if (rank == 0) fprintf(stderr, "tlsweep run: %s\n", err);
        sweep_free(&s);
        MPI_Finalize();
        return 2;
    }
    if (o.dry_run) {
        int listed = rank == 0 ? run_dry_run(&o, &s, &trials, size) : 0;
        grid_trials_free(&trials);
        sweep_free(&s);
        MPI_Finalize();
        return listed;
    }
    if ((status = run_mpi_threads_for_groups(&s, rank, provided)) ||
        (status = run_mpi_group_timeout_valid(&s, rank))) {
        grid_trials_free(&trials);
        sweep_free(&s);
        MPI_Finalize();
        return status;
    }
    farm_options f = {.comm = MPI_COMM_WORLD,
                      .rank = rank,
                      .size = size,
                      .s = &s,
                      .trials = &trials,
                      .heartbeat_interval = o.heartbeat,
                      .time_limit = o.time_limit,
                      .start = monotonic_seconds(),
                      .group = -1,
                      .voice = -1};
    f.worker.simulate = o.simulate;
    f.worker.seconds_per_cost = seconds_per_cost(&s, &trials, o.sim_seconds);
    ranks_place(MPI_COMM_WORLD, &s, o.threads, o.simulate, &f.worker);
    status = rank == 0 ? run_root(&o, &s, &trials, &f) : run_worker(&f);
    grid_trials_free(&trials);
    sweep_free(&s);
    if (status < 0) {
        /* a rank is lost or the protocol broke: MPI cannot end cleanly; the file is closed */
        fflush(NULL);
        MPI_Abort(MPI_COMM_WORLD, -status);
        return -status;
    }
    MPI_Finalize();
    /* SIGUSR1 is Slurm's time-limit warning (sbatch --signal=B:USR1@T): the job comes back and
     * resumes. A SIGTERM/SIGINT stop does not requeue: scancel means stop, and Slurm's own
     * preemption requeues by itself. After MPI is gone (no fork under MPI). */
    if (rank == 0 && status == 3 && farm_stop_signal == SIGUSR1) slurm_requeue();
    return status;
}
