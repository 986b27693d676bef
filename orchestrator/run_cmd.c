/* `tlsweep run SWEEP.yaml`: under mpirun rank 0 orchestrates and ranks >= 1 train; with one
 * rank, rank 0 runs the trials itself. Exit status: 0 every trial done, 1 some failed after
 * their retries, 2 bad input (nothing written), 3 stopped (signal, --time-limit, silent
 * worker; rerun to resume), 4 an internal error. */
#include <errno.h>
#include <getopt.h>
#include <mpi.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "orchestrator/farm.h"
#include "orchestrator/placement.h"
#include "orchestrator/preflight.h"
#include "orchestrator/provenance.h"
#include "orchestrator/resume.h"
#include "orchestrator/schedule.h"
#include "worker/cli.h"
#include "worker/commands.h"

typedef struct {
    const char *sweep_file, *output;
    int simulate, extend, dry_run, quiet, threads;
    double sim_seconds, time_limit, heartbeat, heartbeat_timeout;
} run_options;

static void usage(FILE *out) {
    fprintf(out,
            "usage: mpirun -np N tlsweep run [options] SWEEP.yaml\n"
            "  Expands the sweep into trials; rank 0 farms them out (longest first) and writes\n"
            "  every epoch into one HDF5 file (SWMR: readable while it runs). An existing file\n"
            "  is resumed. With -np 1 rank 0 runs the trials itself.\n"
            "  Each worker trains where the sweep's train.device says (auto: a GPU when one is\n"
            "  visible, else the CPU; cpu; cuda), workers on a node spread over the GPUs they\n"
            "  see, ranks_per_gpu of them per GPU at most; the start lists every rank's device.\n"
            "  A rank that cannot have its device stops the run before it starts (exit 2).\n\n"
            "  -o, --output FILE          results file (default: the sweep's output:)\n"
            "      --extend               the sweep file gained grid points: add them\n"
            "  -n, --dry-run              check the sweep, list its trials, run nothing\n"
            "      --time-limit SECONDS   stop cleanly after this long (resumable)\n"
            "      --heartbeat SECONDS    a busy worker's heartbeat interval (default 5)\n"
            "      --heartbeat-timeout S  a worker silent this long stops the sweep (default 600)\n"
            "      --threads N            CPU threads per worker (default: cores / workers)\n"
            "  -q, --quiet                no progress lines\n"
            "      --simulate             TEST MODE: train nothing; each epoch sleeps for its\n"
            "                             scaled estimated cost and reports synthetic numbers\n"
            "                             (the file's mode attribute says simulated)\n"
            "      --sim-seconds S        --simulate: seconds of the sweep's costliest epoch\n"
            "                             (default 0.1)\n"
            "SIGUSR1, SIGTERM, SIGINT and SIGUSR2 stop every rank cleanly (exit 3); after a\n"
            "SIGUSR1 (Slurm's time-limit signal) inside a Slurm job rank 0 runs `scontrol requeue\n"
            "$SLURM_JOB_ID` (TLSWEEP_NO_REQUEUE=1: it does not)\n"
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

/* Rank 0 reads and validates the sweep, then every rank gets its text. 0 ok, -1 invalid. */
static int share_sweep(const run_options *o, int rank, sweep *s) {
    long long len = -1;
    if (rank == 0) {
        sweep_errors errs = {0};
        const sweep_options opt = {.check_paths = !o->simulate};
        /* a simulated sweep reads no dataset or weights */
        if (sweep_load(o->sweep_file, &opt, s, &errs) == 0 &&
            (o->simulate || preflight_sweep(s, &errs) == 0))
            len = (long long)s->text_len;
        else {
            for (int i = 0; i < errs.count; i++)
                fprintf(stderr, "%s\n", errs.messages[i]);
            if (errs.dropped) fprintf(stderr, "(%d more problems)\n", errs.dropped);
            fprintf(stderr, "tlsweep run: %s is not a valid sweep; nothing was started\n",
                    o->sweep_file);
        }
        sweep_errors_free(&errs);
    }
    if (MPI_Bcast(&len, 1, MPI_LONG_LONG, 0, MPI_COMM_WORLD) != MPI_SUCCESS || len < 0) return -1;
    if (rank == 0)
        return MPI_Bcast(s->text, (int)len, MPI_CHAR, 0, MPI_COMM_WORLD) == MPI_SUCCESS ? 0 : -1;
    char *text = malloc((size_t)len + 1);
    if (!text || MPI_Bcast(text, (int)len, MPI_CHAR, 0, MPI_COMM_WORLD) != MPI_SUCCESS) {
        free(text);
        return -1;
    }
    sweep_errors errs = {0};
    const sweep_options opt = {.check_paths = 0};
    int rc = sweep_parse(o->sweep_file, text, (size_t)len, &opt, s, &errs);
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

/* Where this rank runs: local rank (Open MPI / Slurm / shared-memory split), device, threads.
 * A rank that cannot have the device the sweep asks for says so in its HELLO (the root then
 * names it and stops the run with exit 2); it never falls back to the CPU by itself. */
static void place_worker(const run_options *o, const sweep *s, int rank, int size,
                         worker_options *w) {
    MPI_Comm node;
    int local_rank = 0, local_size = 1, root_here = rank == 0, any_root = 0;
    const int trains = rank > 0 || size == 1;
    int view_index = 0, view_workers = 1;
    if (MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, rank, MPI_INFO_NULL, &node) ==
        MPI_SUCCESS) {
        MPI_Comm_rank(node, &local_rank);
        MPI_Comm_size(node, &local_size);
        MPI_Allreduce(&root_here, &any_root, 1, MPI_INT, MPI_MAX, node);
        view_position(node, local_size, trains, &view_index, &view_workers);
        MPI_Comm_free(&node);
    }
    const char *env = getenv("OMPI_COMM_WORLD_LOCAL_RANK");
    if (!env) env = getenv("SLURM_LOCALID");
    if (env) local_rank = atoi(env);
    int workers_here = local_size - (any_root && local_size > 1 ? 1 : 0);
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    w->threads = o->threads ? o->threads
                            : (int)(cores / (workers_here > 0 ? workers_here : 1) > 0
                                        ? cores / (workers_here > 0 ? workers_here : 1)
                                        : 1);
    w->threads_forced = o->threads > 0;
    w->local_rank = local_rank;
    w->device = -1;
    /* the root of a multi-rank run trains nothing; --simulate trains nothing anywhere */
    if (!trains || o->simulate) {
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

static void hosts_text(const worker_slot *workers, int size, const char *root_host, char *out,
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

/* Creates or resumes the results file. 0 ok, -1 reported. */
static int open_results(const run_options *o, const sweep *s, trial_table *t,
                        const worker_slot *workers, int size, const char *host, const char *output,
                        const char *trials_dir, results_h5 **h5) {
    char err[8192], hosts[1024];
    hosts_text(workers, size, host, hosts, sizeof hosts);
    const resume_writer writer = {
        .host = host, .hosts = hosts, .ranks = size, .simulated = o->simulate, .extend = o->extend};
    int kept = 0;
    if (resume_start(output, trials_dir, s, t, &writer, h5, &kept, err, sizeof err)) {
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

/* Rank 0's part after setup. Returns the exit status. */
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
    if (f->size > 1 && farm_collect_hellos(f, workers, err, sizeof err)) {
        fprintf(stderr, "tlsweep run: %s\n", err);
        free(workers);
        trial_table_free(&table);
        return -4; /* workers may be lost: abort */
    }
    if (placement_failures(workers, f->size)) {
        farm_abandon(f);
        free(workers);
        trial_table_free(&table);
        return 2;
    }
    const char *output = o->output ? o->output : s->output;
    char trials_dir[TRIAL_PATH_MAX];
    snprintf(trials_dir, sizeof trials_dir, "%.500s.d", output);
    snprintf(f->worker.trials_dir, sizeof f->worker.trials_dir, "%s", trials_dir);
    results_h5 *h5 = NULL;
    if (open_results(o, s, &table, workers, f->size, f->worker.host, output, trials_dir, &h5)) {
        farm_abandon(f);
        free(workers);
        trial_table_free(&table);
        return 2;
    }
    /* workers learn where NAME.h5.d is with their first ASSIGN's sweep; send it once here */
    int dir_len = (int)strlen(trials_dir) + 1;
    for (int rank = 1; rank < f->size; rank++)
        MPI_Send(trials_dir, dir_len, MPI_CHAR, rank, PROTOCOL_TAG + 1, f->comm);
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
    int counts[TS_COUNT];
    trial_table_counts(&table, counts);
    double elapsed = farm_now() - f->start;
    double h5_seconds = results_h5_write_seconds(h5);
    char close_err[512];
    int close_rc = results_h5_close(h5, close_err, sizeof close_err);
    resume_unlock(trials_dir);
    /* the grace period (Slurm's --signal=B:USR1@120) must cover this */
    if (r.stopping && r.stop_seen > 0)
        fprintf(stderr, "tlsweep run: stopped in %.1f s (%s to results closed)\n",
                farm_now() - r.stop_seen, farm_stop_signal ? "signal" : "time limit");
    int status;
    if (rc) {
        fprintf(stderr, "tlsweep run: %s\n", r.error);
        status = strstr(r.error, "heartbeat timeout") ? -3 : -4;
    } else if (close_rc) {
        fprintf(stderr, "tlsweep run: %s\n", close_err);
        status = 4;
    } else if (r.stopping)
        status = 3;
    else
        status = counts[TS_FAILED] ? 1 : 0;
    if (!o->quiet || status) {
        printf("tlsweep run: %d done, %d failed, %d not finished of %d trials in %.1f s; HDF5 "
               "writes %.3f s (%.2f%%), root %.1f us per message (%ld messages)%s\n",
               counts[TS_DONE], counts[TS_FAILED],
               table.count - counts[TS_DONE] - counts[TS_FAILED], table.count, elapsed, h5_seconds,
               elapsed > 0 ? 100.0 * h5_seconds / elapsed : 0.0,
               r.messages ? 1e6 * r.handle_seconds / (double)r.messages : 0.0, r.messages,
               status == 3 || status == -3 ? "; rerun the same command to resume" : "");
    }
    for (int i = 0; i < table.count; i++)
        if (table.items[i].state == TS_FAILED)
            fprintf(stderr, "failed: %s: %s\n", table.items[i].row.name, table.items[i].row.error);
    progress_free(p);
    trial_table_free(&table);
    free(workers);
    return status;
}

extern char **environ;

/* After a stop by SIGUSR1 (what `sbatch --signal=B:USR1@T` sends before the time limit) inside
 * a Slurm job: `scontrol requeue $SLURM_JOB_ID`, so the job comes back and resumes the file.
 * SIGTERM/SIGINT stops do not requeue: scancel means stop, and Slurm's own preemption requeues
 * by itself. TLSWEEP_NO_REQUEUE=1 turns it off. One line on stderr says what happened. */
static void slurm_requeue(void) {
    const char *job = getenv("SLURM_JOB_ID");
    if (!job || !*job) return;
    if (strspn(job, "0123456789") != strlen(job)) {
        fprintf(stderr, "tlsweep run: not requeued: SLURM_JOB_ID '%s' is not a job number\n", job);
        return;
    }
    const char *off = getenv("TLSWEEP_NO_REQUEUE");
    if (off && *off && strcmp(off, "0")) {
        fprintf(stderr, "tlsweep run: not requeued: TLSWEEP_NO_REQUEUE is set (Slurm job %s)\n",
                job);
        return;
    }
    fflush(NULL);
    char *args[] = {"scontrol", "requeue", (char *)job, NULL};
    pid_t pid;
    /* scontrol must not inherit the stop signals blocked by farm_install_signals */
    posix_spawnattr_t attr;
    sigset_t none;
    sigemptyset(&none);
    int rc = posix_spawnattr_init(&attr);
    if (!rc) rc = posix_spawnattr_setsigmask(&attr, &none);
    if (!rc) rc = posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK);
    if (!rc) rc = posix_spawnp(&pid, "scontrol", NULL, &attr, args, environ);
    posix_spawnattr_destroy(&attr);
    if (rc) {
        fprintf(stderr, "tlsweep run: not requeued: cannot run scontrol: %s (Slurm job %s)\n",
                strerror(rc), job);
        return;
    }
    int wstatus = 0;
    while (waitpid(pid, &wstatus, 0) < 0)
        if (errno != EINTR) {
            fprintf(stderr, "tlsweep run: not requeued: waiting for scontrol: %s\n",
                    strerror(errno));
            return;
        }
    if (WIFEXITED(wstatus) && WEXITSTATUS(wstatus) == 0)
        fprintf(stderr, "tlsweep run: requeued Slurm job %s\n", job);
    else if (WIFEXITED(wstatus))
        fprintf(stderr, "tlsweep run: not requeued: scontrol requeue %s exited with status %d\n",
                job, WEXITSTATUS(wstatus));
    else
        fprintf(stderr, "tlsweep run: not requeued: scontrol requeue %s died of signal %d\n", job,
                WTERMSIG(wstatus));
}

int cmd_run(int argc, char **argv) {
    int provided = 0, rank = 0, size = 1;
    /* first: a stop signal must never kill a rank that has not got this far, and MPI's
     * threads must inherit the blocked mask */
    if (farm_install_signals()) {
        fprintf(stderr, "tlsweep run: cannot set up the stop signals\n");
        return 4;
    }
    if (MPI_Init_thread(&argc, &argv, MPI_THREAD_SERIALIZED, &provided) != MPI_SUCCESS) {
        fprintf(stderr, "tlsweep run: MPI_Init_thread failed\n");
        return 4;
    }
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    /* heartbeats come from a second thread, so MPI must allow serialized calls */
    if (provided < MPI_THREAD_SERIALIZED) {
        if (rank == 0)
            fprintf(stderr, "tlsweep run: this MPI does not provide MPI_THREAD_SERIALIZED\n");
        MPI_Finalize();
        return 4;
    }
    run_options o;
    int prc = parse_options(argc, argv, &o, rank);
    if (prc) {
        MPI_Finalize();
        return prc > 0 ? 0 : 2;
    }
    sweep s;
    memset(&s, 0, sizeof s);
    if (share_sweep(&o, rank, &s)) {
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
        if (rank == 0) {
            printf("sweep %s: %d trials -> %s\n", s.name, trials.count,
                   o.output ? o.output : s.output);
            for (int i = 0; i < trials.count; i++) {
                trial_spec spec;
                grid_trial_spec(&s, &trials.items[i], &spec);
                printf("  %-48s cost %10.3f\n", trials.items[i].name,
                       schedule_estimate_cost(&spec));
            }
        }
        grid_trials_free(&trials);
        sweep_free(&s);
        MPI_Finalize();
        return 0;
    }
    farm_options f = {.comm = MPI_COMM_WORLD,
                      .rank = rank,
                      .size = size,
                      .s = &s,
                      .trials = &trials,
                      .heartbeat_interval = o.heartbeat,
                      .time_limit = o.time_limit,
                      .start = farm_now()};
    f.worker.simulate = o.simulate;
    f.worker.seconds_per_cost = seconds_per_cost(&s, &trials, o.sim_seconds);
    f.worker.rank = rank;
    if (gethostname(f.worker.host, sizeof f.worker.host))
        snprintf(f.worker.host, sizeof f.worker.host, "unknown");
    f.worker.host[sizeof f.worker.host - 1] = 0;
    place_worker(&o, &s, rank, size, &f.worker);

    int status = 0;
    if (rank == 0)
        status = run_root(&o, &s, &trials, &f);
    else {
        if (farm_send_hello(&f, err, sizeof err))
            status = -4;
        else {
            /* the root sends NAME.h5.d, or a SHUTDOWN when setup failed */
            MPI_Status st;
            int flag = 0;
            while (!flag) {
                MPI_Iprobe(0, MPI_ANY_TAG, MPI_COMM_WORLD, &flag, &st);
                if (!flag) usleep(1000);
            }
            if (st.MPI_TAG == PROTOCOL_TAG + 1) {
                MPI_Recv(f.worker.trials_dir, sizeof f.worker.trials_dir, MPI_CHAR, 0,
                         PROTOCOL_TAG + 1, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
                if (farm_worker(&f, err, sizeof err)) status = -4;
            } else {
                unsigned char buf[PROTOCOL_MAX_BYTES];
                MPI_Recv(buf, sizeof buf, MPI_BYTE, 0, PROTOCOL_TAG, MPI_COMM_WORLD,
                         MPI_STATUS_IGNORE);
                status = 2;
            }
        }
        if (status < 0)
            fprintf(stderr, "tlsweep run: rank %d on %s: %s\n", rank, f.worker.host, err);
    }
    grid_trials_free(&trials);
    sweep_free(&s);
    if (status < 0) {
        /* a rank is lost or the protocol broke: MPI cannot end cleanly; the file is closed */
        fflush(NULL);
        MPI_Abort(MPI_COMM_WORLD, -status);
        return -status;
    }
    MPI_Finalize();
    /* after MPI is gone (no fork under MPI) and the results file is closed */
    if (rank == 0 && status == 3 && farm_stop_signal == SIGUSR1) slurm_requeue();
    return status;
}
