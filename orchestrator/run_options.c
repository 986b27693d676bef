/* `tlsweep run`'s options and usage (run_options.h). */
#include "orchestrator/run_options.h"

#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "worker/cli.h"

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
        "  A rank that cannot have its device stops the run before it starts (exit 2).\n"
        "  With ranks_per_trial: K in the sweep, each trial is trained by a group of K worker\n"
        "  ranks (data parallel; train.sync_bn: BatchNorm statistics over the whole batch),\n"
        "  formed once at start: on each host first, then across hosts from the leftovers;\n"
        "  ranks that do not fill a group stay idle. The start lists the groups. A group\n"
        "  rank that fails inside a step, or waits TLSWEEP_GROUP_TIMEOUT seconds (default\n"
        "  1800, 0: no limit) for the others in one, ends the job (exit 5; rerun to resume).\n\n"
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
        "resume), 4 internal error, 5 a group's rank ended the job (rerun to resume)\n");
}

/* Only rank 0 reports a bad number, so the message appears once. */
static int number(const char *flag, const char *text, double min, double *out, int rank) {
    return cli_double("run", flag, text, min, out, rank == 0 ? stderr : NULL);
}

int run_options_parse(int argc, char **argv, run_options *o, int rank) {
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
