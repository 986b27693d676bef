/* `tlsweep run SWEEP.yaml`: under mpirun rank 0 orchestrates and ranks >= 1 train; with one
 * rank, rank 0 runs the trials itself. Exit status: 0 every trial done, 1 some failed after
 * their retries, 2 bad input (nothing written), 3 stopped (signal, --time-limit, silent
 * worker; rerun to resume), 4 an internal error. */
#include <mpi.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "orchestrator/farm.h"
#include "orchestrator/groups.h"
#include "orchestrator/preflight.h"
#include "orchestrator/provenance.h"
#include "orchestrator/ranks.h"
#include "orchestrator/resume.h"
#include "orchestrator/run_dry_run.h"
#include "orchestrator/run_mpi.h"
#include "orchestrator/run_options.h"
#include "orchestrator/run_results.h"
#include "orchestrator/run_start.h"
#include "orchestrator/schedule.h"
#include "orchestrator/slurm.h"
#include "orchestrator/summary.h"
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

/* The placement print: where each worker trains. */
static void print_mapping(const root_ctx *r, int size) {
    for (int rank = size > 1 ? 1 : 0; rank < size; rank++) {
        const worker_slot *w = &r->workers[rank];
        printf("rank %d on %s: %s, %d threads\n", rank, w->host, w->device_text, w->threads);
    }
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

/* The exit status of a sweep that root.c ended with an error. Negative: MPI must abort, since
 * a rank may be lost (the results file is closed by then). A silent worker is a stop: rerun to
 * resume. */
static int error_status(root_error kind) {
    switch (kind) {
    case ROOT_ERROR_SILENT_WORKER:
        return -3;
    case ROOT_ERROR_NONE:
    case ROOT_ERROR_RESULTS:
    case ROOT_ERROR_PROTOCOL:
    case ROOT_ERROR_STATE:
        break;
    }
    return -4;
}

/* Rank 0 of a run with workers, or the one rank of -np 1: HELLOs, the results file, START, the
 * farm, the summary. Returns the exit status (negative: abort, see error_status). */
static int run_root(const run_options *o, const sweep *s, const trial_list *trials,
                    farm_options *f) {
    char err[1024];
    trial_table table;
    worker_slot *workers = calloc((size_t)f->size, sizeof *workers);
    if (!workers || trial_table_build(&table, s, trials, err, sizeof err)) {
        fprintf(stderr, "tlsweep run: %s\n", workers ? err : "out of memory");
        free(workers);
        farm_abandon(f);
        return 4;
    }
    snprintf(workers[0].host, sizeof workers[0].host, "%s", f->worker.host);
    workers[0].threads = f->worker.threads;
    workers[0].device = f->worker.device;
    workers[0].placement_failed = f->worker.placement_failed;
    snprintf(workers[0].device_text, sizeof workers[0].device_text, "%s", f->worker.device_text);
    int status = 0;
    if (f->size > 1 && farm_collect_hellos(f, workers, err, sizeof err)) {
        fprintf(stderr, "tlsweep run: %s\n", err);
        status = -4; /* workers may be lost: abort */
    } else if (run_start_placement_failures(workers, f->size))
        status = 2;
    /* data-parallel trials: the groups, formed once */
    const int k = s->ranks_per_trial;
    int *group_of = NULL, *voice_of = NULL, groups = 0;
    if (!status) status = run_start_groups(s, workers, f->size, &group_of, &voice_of, &groups);
    const char *output = o->output ? o->output : s->output;
    resume_trials_dir(output, f->worker.trials_dir, sizeof f->worker.trials_dir);
    results_h5 *h5 = NULL;
    if (!status && run_results_open(o, s, &table, workers, f, output, &h5)) status = 2;
    if (!status && farm_start_workers(f, group_of, voice_of, err, sizeof err)) {
        fprintf(stderr, "tlsweep run: %s\n", err);
        status = -4;
    }
    /* the root takes part in the split (it belongs to no group) */
    trial_group no_group;
    if (!status && f->size > 1 && farm_split_groups(f, &no_group, err, sizeof err)) {
        fprintf(stderr, "tlsweep run: %s\n", err);
        status = -4;
    }
    if (status) {
        if (status > 0) farm_abandon(f);
        if (h5) {
            results_h5_close(h5, err, sizeof err);
            resume_unlock(f->worker.trials_dir);
        }
        free(group_of);
        free(voice_of);
        free(workers);
        trial_table_free(&table);
        return status;
    }
    progress *p = progress_create(stdout, o->quiet, f->start);
    root_ctx r;
    root_init(&r, s, &table, h5, p, workers, f->size > 1 ? 1 : 0, f->size, NULL, NULL);
    r.heartbeat_timeout = o->heartbeat_timeout;
    if (group_of) root_set_groups(&r, group_of, voice_of);
    if (!o->quiet) {
        char grouping[128] = "";
        if (k > 1)
            snprintf(grouping, sizeof grouping, " in %d group%s of %d", groups,
                     groups == 1 ? "" : "s", k);
        printf("tlsweep %s: sweep %s, %d trials, %d worker%s%s%s -> %s\n", TLSWEEP_VERSION, s->name,
               table.count, f->size > 1 ? f->size - 1 : 1, f->size > 2 ? "s" : "", grouping,
               o->simulate ? " (SIMULATED: nothing trains)" : "", output);
        print_mapping(&r, f->size);
    }
    if (group_of) { /* quiet or not: the run's shape */
        const char **hosts = calloc((size_t)f->size, sizeof *hosts);
        for (int rank = 0; hosts && rank < f->size; rank++)
            hosts[rank] = workers[rank].host;
        if (hosts) groups_print(stdout, hosts, 1, f->size, k, group_of, voice_of);
        free(hosts);
    }
    free(group_of);
    free(voice_of);
    fflush(stdout);
    int rc = f->size > 1 ? farm_root(&r, f) : farm_single(&r, f);
    run_summary summary = {.output = output,
                           .trials_dir = f->worker.trials_dir,
                           .seconds = monotonic_seconds() - f->start,
                           .h5_seconds = results_h5_write_seconds(h5),
                           .messages = r.messages,
                           .handle_seconds = r.handle_seconds};
    char close_err[512];
    int close_rc = results_h5_close(h5, close_err, sizeof close_err);
    resume_unlock(f->worker.trials_dir);
    /* the grace period (Slurm's --signal=B:USR1@120) must cover this */
    if (r.stopping && r.stop_seen > 0)
        fprintf(stderr, "tlsweep run: stopped in %.1f s (%s to results closed)\n",
                monotonic_seconds() - r.stop_seen, r.stop_why);
    if (rc) {
        fprintf(stderr, "tlsweep run: %s\n", r.error);
        status = error_status(r.error_kind);
    } else if (close_rc) {
        fprintf(stderr, "tlsweep run: %s\n", close_err);
        status = 4;
    } else if (r.stopping)
        status = 3;
    else {
        int counts[TS_COUNT];
        trial_table_counts(&table, counts);
        status = counts[TS_FAILED] ? 1 : 0;
    }
    summary.resumable = status == 3 || status == -3;
    summary_print(stdout, stderr, &table, &summary);
    progress_free(p);
    trial_table_free(&table);
    free(workers);
    return status;
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
    if ((status = run_mpi_threads_for_groups(&s, rank, provided))) {
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
