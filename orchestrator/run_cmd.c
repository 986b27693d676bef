/* `tlsweep run SWEEP.yaml`: under mpirun rank 0 orchestrates and ranks >= 1 train; with one
 * rank, rank 0 runs the trials itself. Exit status: 0 every trial done, 1 some failed after
 * their retries, 2 bad input (nothing written), 3 stopped (signal, --time-limit, silent
 * worker; rerun to resume), 4 an internal error. */
#include <getopt.h>
#include <mpi.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "orchestrator/farm.h"
#include "orchestrator/phase1_plan.h"
#include "orchestrator/preflight.h"
#include "orchestrator/provenance.h"
#include "orchestrator/ranks.h"
#include "orchestrator/resume.h"
#include "orchestrator/schedule.h"
#include "orchestrator/slurm.h"
#include "orchestrator/summary.h"
#include "worker/cli.h"
#include "worker/clock.h"
#include "worker/commands.h"

typedef struct {
    const char *sweep_file, *output;
    int simulate, extend, dry_run, quiet, threads;
    double sim_seconds, time_limit, heartbeat, heartbeat_timeout;
} run_options;

static void usage(FILE *out) {
    fprintf(
        out,
        "usage: mpirun -np N tlsweep run [options] SWEEP.yaml\n"
        "  Expands the sweep into trials; rank 0 farms them out (longest first) and writes\n"
        "  every epoch into one HDF5 file (SWMR: readable while it runs). An existing file\n"
        "  is resumed. With -np 1 rank 0 runs the trials itself. Progress: a line per event;\n"
        "  on a terminal a live table, elsewhere (a file, | tee, Slurm) a summary line every\n"
        "  30 s. At the end: counts, the best trials, where the results file, checkpoints\n"
        "  and figures are, and the line that opens the file in pandas.\n"
        "  Each worker trains where the sweep's train.device says (auto: a GPU when one is\n"
        "  visible, else the CPU; cpu; cuda), workers on a node spread over the GPUs they\n"
        "  see, ranks_per_gpu of them per GPU at most; the start lists every rank's device.\n"
        "  A rank that cannot have its device stops the run before it starts (exit 2).\n\n"
        "  -o, --output FILE          results file (default: the sweep's output:)\n"
        "      --extend               the sweep file gained grid points: add them\n"
        "  -n, --dry-run              check the sweep and every input its trials read (dataset,\n"
        "                             images, weights, memory), list its trials and who\n"
        "                             computes whose shared phase 1, run nothing\n"
        "      --time-limit SECONDS   stop cleanly after this long (resumable)\n"
        "      --heartbeat SECONDS    a busy worker's heartbeat interval (default 5)\n"
        "      --heartbeat-timeout S  a worker silent this long stops the sweep (default 600)\n"
        "      --threads N            CPU threads per worker (default: cores / workers)\n"
        "  -q, --quiet                no progress lines (the end-of-run summary still prints)\n"
        "      --simulate             TEST MODE: train nothing; each epoch sleeps for its\n"
        "                             scaled estimated cost and reports synthetic numbers\n"
        "                             (the file's mode attribute says simulated)\n"
        "      --sim-seconds S        --simulate: seconds of the sweep's costliest epoch\n"
        "                             (default 0.1)\n"
        "SIGUSR1, SIGTERM, SIGINT and SIGUSR2 stop every rank cleanly (exit 3); after a\n"
        "SIGUSR1 (Slurm's time-limit signal) inside a Slurm job rank 0 runs `scontrol requeue\n"
        "$SLURM_JOB_ID` (TLSWEEP_NO_REQUEUE=1: it does not). Sent to mpirun itself, SIGUSR1\n"
        "and SIGUSR2 reach every rank (exit 3), but Open MPI's mpirun answers SIGINT (Ctrl-C)\n"
        "and SIGTERM by ending the job: it exits 1 whatever the ranks return and kills them\n"
        "shortly after they are told to stop (the next run resumes all the same). For a\n"
        "clean stop with exit 3 send mpirun SIGUSR2.\n"
        "The sweep file: every key with its type, default and an example in\n"
        "docs/sweep-file.md of the repository.\n"
        "exit status: 0 all done, 1 some trials failed, 2 bad input, 3 stopped (rerun to\n"
        "resume), 4 internal error\n");
}

/* Only rank 0 reports a bad number, so the message appears once. */
static int number(const char *flag, const char *text, double min, double *out, int rank) {
    return cli_double("run", flag, text, min, out, rank == 0 ? stderr : NULL);
}

/* 0 ok, 1 --help printed, -1 bad usage (reported by rank 0). */
static int parse_options(int argc, char **argv, run_options *o, int rank) {
    enum { OPT_EXTEND = 256, OPT_TIME, OPT_HB, OPT_HBT, OPT_THREADS, OPT_SIM, OPT_SIMSEC };
    static const struct option longopts[] = {
        {"output", required_argument, NULL, 'o'},
        {"extend", no_argument, NULL, OPT_EXTEND},
        {"dry-run", no_argument, NULL, 'n'},
        {"time-limit", required_argument, NULL, OPT_TIME},
        {"heartbeat", required_argument, NULL, OPT_HB},
        {"heartbeat-timeout", required_argument, NULL, OPT_HBT},
        {"threads", required_argument, NULL, OPT_THREADS},
        {"quiet", no_argument, NULL, 'q'},
        {"simulate", no_argument, NULL, OPT_SIM},
        {"sim-seconds", required_argument, NULL, OPT_SIMSEC},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    memset(o, 0, sizeof *o);
    o->sim_seconds = 0.1;
    o->heartbeat = 5;
    o->heartbeat_timeout = 600;
    opterr = rank == 0;
    optind = 1;
    int c;
    double v;
    while ((c = getopt_long(argc, argv, "o:nqh", longopts, NULL)) != -1) {
        switch (c) {
        case 'o':
            o->output = optarg;
            break;
        case 'n':
            o->dry_run = 1;
            break;
        case 'q':
            o->quiet = 1;
            break;
        case 'h':
            if (rank == 0) usage(stdout);
            return 1;
        case OPT_EXTEND:
            o->extend = 1;
            break;
        case OPT_SIM:
            o->simulate = 1;
            break;
        case OPT_TIME:
            if (number("time-limit", optarg, 0, &o->time_limit, rank)) return -1;
            break;
        case OPT_HB:
            if (number("heartbeat", optarg, 0.01, &o->heartbeat, rank)) return -1;
            break;
        case OPT_HBT:
            if (number("heartbeat-timeout", optarg, 0.1, &o->heartbeat_timeout, rank)) return -1;
            break;
        case OPT_SIMSEC:
            if (number("sim-seconds", optarg, 0, &o->sim_seconds, rank)) return -1;
            break;
        case OPT_THREADS:
            if (number("threads", optarg, 1, &v, rank)) return -1;
            o->threads = (int)v;
            break;
        default:
            if (rank == 0) usage(stderr);
            return -1;
        }
    }
    if (optind != argc - 1) {
        if (rank == 0) {
            fprintf(stderr, "tlsweep run: expected one sweep file, got %d arguments\n",
                    argc - optind);
            usage(stderr);
        }
        return -1;
    }
    o->sweep_file = argv[optind];
    return 0;
}

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

/* --dry-run: the trials, their estimated costs and who computes whose phase 1. */
static int list_trials(const run_options *o, const sweep *s, const trial_list *trials) {
    trial_table t;
    char err[256];
    if (trial_table_build(&t, s, trials, err, sizeof err)) {
        fprintf(stderr, "tlsweep run: %s\n", err);
        return 4;
    }
    printf("sweep %s: %d trials -> %s\n", s->name, trials->count,
           o->output ? o->output : s->output);
    for (int i = 0; i < t.count; i++) {
        const trial_entry *e = &t.items[i];
        int shares = 0;
        for (int j = 0; j < t.count; j++)
            shares += t.items[j].phase1_from == i;
        char lineage[TRIAL_NAME_MAX + 32] = "";
        if (e->phase1_from >= 0)
            snprintf(lineage, sizeof lineage, "phase 1 from %s", t.items[e->phase1_from].row.name);
        else if (shares)
            snprintf(lineage, sizeof lineage, "computes phase 1 for %d more", shares);
        printf("  %-48s cost %10.3f  %s\n", e->row.name, e->row.estimated_cost, lineage);
    }
    long with[2], without[2];
    phase1_epochs(&t, with, without);
    printf("epochs computed: phase 1 %ld (%ld without sharing), phase 2 %ld%s\n", with[0],
           without[0], with[1], s->share_phase1 ? "" : " (share_phase1: false)");
    trial_table_free(&t);
    return 0;
}

/* The placement print: where each worker trains. */
static void print_mapping(const root_ctx *r, int size) {
    for (int rank = size > 1 ? 1 : 0; rank < size; rank++) {
        const worker_slot *w = &r->workers[rank];
        printf("rank %d on %s: %s, %d threads\n", rank, w->host, w->device_text, w->threads);
    }
}

/* Every rank that cannot train as the sweep asks, named on stderr; 0 when there is none. */
static int placement_failures(const worker_slot *workers, int size) {
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

/* Creates or resumes the results file. 0 ok, -1 reported. */
static int open_results(const run_options *o, const sweep *s, trial_table *t,
                        const worker_slot *workers, const farm_options *f, const char *output,
                        results_h5 **h5) {
    char err[8192], hosts[1024];
    ranks_hosts(workers, f->size, f->worker.host, hosts, sizeof hosts);
    const resume_writer writer = {.host = f->worker.host,
                                  .hosts = hosts,
                                  .ranks = f->size,
                                  .simulated = o->simulate,
                                  .extend = o->extend};
    int kept = 0;
    if (resume_start(output, f->worker.trials_dir, s, t, &writer, h5, &kept, err, sizeof err)) {
        fprintf(stderr, "tlsweep run: %s\n", err);
        return -1;
    }
    if (kept >= 0) printf("resuming %s: %d of %d trials already done\n", output, kept, t->count);
    return 0;
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
    } else if (placement_failures(workers, f->size))
        status = 2;
    const char *output = o->output ? o->output : s->output;
    resume_trials_dir(output, f->worker.trials_dir, sizeof f->worker.trials_dir);
    results_h5 *h5 = NULL;
    if (!status && open_results(o, s, &table, workers, f, output, &h5)) status = 2;
    if (!status && farm_start_workers(f, err, sizeof err)) {
        fprintf(stderr, "tlsweep run: %s\n", err);
        status = -4;
    }
    if (status) {
        if (status > 0) farm_abandon(f);
        if (h5) {
            results_h5_close(h5, err, sizeof err);
            resume_unlock(f->worker.trials_dir);
        }
        free(workers);
        trial_table_free(&table);
        return status;
    }
    progress *p = progress_create(stdout, o->quiet, f->start);
    root_ctx r;
    root_init(&r, s, &table, h5, p, workers, f->size > 1 ? 1 : 0, f->size, NULL, NULL);
    r.heartbeat_timeout = o->heartbeat_timeout;
    if (!o->quiet) {
        printf("tlsweep %s: sweep %s, %d trials, %d worker%s%s -> %s\n", TLSWEEP_VERSION, s->name,
               table.count, f->size > 1 ? f->size - 1 : 1, f->size > 2 ? "s" : "",
               o->simulate ? " (SIMULATED: nothing trains)" : "", output);
        print_mapping(&r, f->size);
        fflush(stdout);
    }
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
    if (!rc) rc = farm_worker(f, err, sizeof err);
    if (!rc) return 0;
    fprintf(stderr, "tlsweep run: rank %d on %s: %s\n", f->rank, f->worker.host, err);
    return -4;
}

/* MPI up with the stop signals blocked first: a stop signal must never kill a rank that has not
 * got this far, and MPI's threads must inherit the blocked mask. 0 ok, else the exit status. */
static int start_mpi(int *argc, char ***argv, int *rank, int *size) {
    int provided = 0;
    if (farm_install_signals()) {
        fprintf(stderr, "tlsweep run: cannot set up the stop signals\n");
        return 4;
    }
    if (MPI_Init_thread(argc, argv, MPI_THREAD_SERIALIZED, &provided) != MPI_SUCCESS) {
        fprintf(stderr, "tlsweep run: MPI_Init_thread failed\n");
        return 4;
    }
    MPI_Comm_rank(MPI_COMM_WORLD, rank);
    MPI_Comm_size(MPI_COMM_WORLD, size);
    /* heartbeats come from a second thread, so MPI must allow serialized calls */
    if (provided < MPI_THREAD_SERIALIZED) {
        if (*rank == 0)
            fprintf(stderr, "tlsweep run: this MPI does not provide MPI_THREAD_SERIALIZED\n");
        MPI_Finalize();
        return 4;
    }
    return 0;
}

int cmd_run(int argc, char **argv) {
    int rank = 0, size = 1;
    int status = start_mpi(&argc, &argv, &rank, &size);
    if (status) return status;
    run_options o;
    int prc = parse_options(argc, argv, &o, rank);
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
        int listed = rank == 0 ? list_trials(&o, &s, &trials) : 0;
        grid_trials_free(&trials);
        sweep_free(&s);
        MPI_Finalize();
        return listed;
    }
    farm_options f = {.comm = MPI_COMM_WORLD,
                      .rank = rank,
                      .size = size,
                      .s = &s,
                      .trials = &trials,
                      .heartbeat_interval = o.heartbeat,
                      .time_limit = o.time_limit,
                      .start = monotonic_seconds()};
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
