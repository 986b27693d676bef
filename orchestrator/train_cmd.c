/* `tlsweep train`: one trial in one process, no MPI: from flags, or one grid point of a sweep
 * file (--sweep FILE --trial INDEX|NAME), trained as `tlsweep run` would (same trial directory,
 * retries, state machine) and, with --output, recorded in a results file of the sweep's schema
 * that `tlsweep merge` combines: the job-array path. Exit status as `run`'s: 0 done, 1 failed,
 * 2 bad input, 3 stopped by a signal (rerun the same command to resume), 4 internal error. */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "orchestrator/farm.h"
#include "orchestrator/placement.h"
#include "orchestrator/preflight.h"
#include "orchestrator/resume.h"
#include "worker/cli.h"
#include "worker/clock.h"
#include "worker/commands.h"
#include "worker/lr_schedule.h"
#include "worker/trial.h"

static void usage(FILE *out) {
    fprintf(
        out,
        "usage: tlsweep train --backbone NAME --data DIR [options]\n"
        "       tlsweep train --sweep SWEEP.yaml --trial INDEX|NAME [--output FILE.h5] [options]\n"
        "       tlsweep train --sweep SWEEP.yaml --list\n"
        "One trial of the two-phase transfer learning of docs/experiment.md, in this process.\n"
        "  --sweep FILE --trial T one grid point of a sweep as `tlsweep run` trains it: T is its\n"
        "                         0-based grid index (as SLURM_ARRAY_TASK_ID) or its name; its\n"
        "                         directory is OUTPUT.h5.d/NAME of the sweep's output unless "
        "--out;\n"
        "                         a shared phase 1 (share_phase1) is taken from its computer's\n"
        "                         folder there, or computed there first (a lock: once between\n"
        "                         tasks that run at the same time)\n"
        "  --output FILE.h5       with --trial: record the trial in a results file of the sweep's\n"
        "                         schema (every grid row, the others pending); rerunning resumes\n"
        "                         it; `tlsweep merge` combines such files\n"
        "  --trials-dir DIR       with --trial: the folder of the sweep's trial directories\n"
        "                         (default OUTPUT.h5.d of the sweep's output); a job array's\n"
        "                         tasks share their phase-1 nodes there. --out gives the trial\n"
        "                         a directory of its own instead (its phase 1 not shared)\n"
        "  --list                 with --sweep: the trial names in grid index order, one a line\n"
        "  --backbone NAME        resnet18/34/50/101/152, vgg11_bn/13_bn/16_bn/19_bn\n"
        "  --data DIR             a Flowers102-layout dataset (jpg/, imagelabels.mat, setid.mat)\n"
        "  --weights W            none | torchvision | FILE.pth | FILE.safetensors "
        "(default torchvision)\n"
        "  --schedule NAME        exp-decay-3 | linear-decay (default exp-decay-3)\n"
        "  --out DIR              trial directory: best.safetensors, resume checkpoint\n"
        "                         (default runs/train/BACKBONE__SCHEDULE); a rerun resumes its\n"
        "                         checkpoint and refuses (exit 2) if any setting differs\n"
        "  --restart              delete the directory's checkpoints and start over\n"
        "  --width W              channel divisor (default 1)\n"
        "  --resize N --crop N    preprocessing sizes (default 256, 224)\n"
        "  --batch-size N         (default 16)\n"
        "  --seed N               (default 0)\n"
        "  --fe-epochs N --ft-epochs N   epochs of the two phases (default 16, 8)\n"
        "  --fe-lr X --ft-lr X    base learning rates (default 1e-3, 1e-4)\n"
        "  --train-splits A,B --val-splits A,B   (default tstid / trnid,valid)\n"
        "  --no-augment           eval preprocessing for training too\n"
        "  --no-shuffle           keep the training split's order\n"
        "  --bn-frozen eval       BatchNorm of the frozen backbone in eval mode (default train)\n"
        "  --threads N            CPU threads (default: the sweep's train.threads, else all "
        "cores)\n"
        "  --device D             auto | cpu | cuda | cuda:N (default: the sweep's train.device,\n"
        "                         else auto: the first visible GPU, or the CPU when none is\n"
        "                         visible); cuda without a usable GPU fails (exit 2)\n"
        "  --precision P          fp32 | tf32 (TF32 tensor cores on the GPU; the CPU computes\n"
        "                         fp32) | bf16 (mixed precision; CPUs with AVX512-BF16 only)\n"
        "                         (default fp32; with --sweep: train.precision)\n"
        "  --deterministic        deterministic cuDNN algorithms: a GPU resume is bit-exact\n"
        "                         (the CPU always is; with --sweep: train.deterministic)\n"
        "  --cache-dir DIR        the decoded images' shared cache file goes here (default\n"
        "                         DATA/tlsweep-cache, else ~/.cache/tlsweep; none: private\n"
        "                         memory; a grid point takes the sweep's data.cache_dir)\n"
        "  --device-images M      auto | on | off: the backend makes each batch from its own\n"
        "                         copy of the cached images, the host only draws the\n"
        "                         augmentation (default auto: on for a GPU, off on the CPU;\n"
        "                         the same numbers either way; a grid point takes the sweep's\n"
        "                         data.device_images)\n"
        "SIGUSR1, SIGTERM or SIGINT stop the trial at the next batch with a resume checkpoint.\n"
        "exit status: 0 done, 1 failed, 2 bad input, 3 stopped (rerun to resume), 4 internal "
        "error\n");
}

static int parse_splits(char dst[][16], int *count, const char *list) {
    char buf[256];
    snprintf(buf, sizeof buf, "%s", list);
    *count = 0;
    for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok;
         tok = strtok_r(NULL, ",", &save)) {
        if (*count == TRIAL_MAX_SPLITS || strlen(tok) >= 16) return -1;
        snprintf(dst[(*count)++], 16, "%s", tok);
    }
    return *count ? 0 : -1;
}

/* An integer flag into an int field; -1 (reported) when out of [lo, hi]. */
static int int_flag(const char *flag, const char *text, long lo, long hi, int *out) {
    long v;
    if (cli_long("train", flag, text, lo, hi, &v, stderr)) return -1;
    *out = (int)v;
    return 0;
}

static void print_epoch(const epoch_record *r) {
    printf("epoch %2d  phase %d (%s)  lr %.3g  train loss %.4f acc %6.2f%%  val loss %.4f acc "
           "%6.2f%%  %.1f s  %.0f img/s\n",
           r->epoch, r->phase, r->phase == 1 ? "feature extraction" : "fine-tuning", r->head_lr,
           r->train_loss, 100 * r->train_acc, r->val_loss, 100 * r->val_acc, r->seconds,
           r->images_per_second);
    fflush(stdout);
}

static void print_summary(const char *name, int64_t params, double fe_acc, double best_acc,
                          int best_epoch, double seconds, const char *dir) {
    printf("%s: %lld parameters, val acc %.2f%% at the end of feature extraction, best %.2f%% "
           "(epoch %d), %.1f s; best weights in %s/best.safetensors\n",
           name, (long long)params, 100 * fe_acc, 100 * best_acc, best_epoch, seconds, dir);
}

static void print_stopped(const char *name, int epochs_done) {
    printf("%s: stopped by a signal after epoch %d; rerun the same command to resume\n", name,
           epochs_done);
}

/* Every input of the trials checked before any starts (orchestrator/preflight.h). */
static int preflight(const trial_spec *specs, int count) {
    sweep_errors errs = {0};
    int problems = preflight_trials(specs, count, &errs);
    sweep_errors_print(&errs, stderr, "tlsweep train: ");
    sweep_errors_free(&errs);
    return problems ? -1 : 0;
}

/* This process's device for --device (or the sweep's train.device): the ordinal, -1 for the
 * CPU, or -2 after saying on stderr why it cannot be had. Prints the placement line. */
static int place(const char *asked, const char *host) {
    device_request req;
    placement p;
    if (placement_parse(asked, &req)) {
        fprintf(stderr, "tlsweep train: --device expects auto, cpu, cuda or cuda:N, got '%s'\n",
                asked);
        return -2;
    }
    if (placement_place(&req, 0, 1, 1, &p)) {
        fprintf(stderr, "tlsweep train: rank 0 on %s: device %s: %s; nothing was started\n", host,
                asked, p.error);
        return -2;
    }
    printf("tlsweep train on %s: %s\n", host, p.text);
    return p.device;
}

/* ---- the command line ---------------------------------------------------------------------- */

/* Options that build a trial from flags: `X(name, has_arg, code)`. The sweep-point command
 * refuses each by name (a grid point's settings are the sweep's). */
#define FLAG_TRIAL_OPTIONS(X)                                                                      \
    X("backbone", required_argument, O_BACKBONE)                                                   \
    X("data", required_argument, O_DATA)                                                           \
    X("weights", required_argument, O_WEIGHTS)                                                     \
    X("schedule", required_argument, O_SCHEDULE)                                                   \
    X("width", required_argument, O_WIDTH)                                                         \
    X("seed", required_argument, O_SEED)                                                           \
    X("resize", required_argument, O_RESIZE)                                                       \
    X("crop", required_argument, O_CROP)                                                           \
    X("batch-size", required_argument, O_BATCH)                                                    \
    X("fe-epochs", required_argument, O_FE_EPOCHS)                                                 \
    X("ft-epochs", required_argument, O_FT_EPOCHS)                                                 \
    X("fe-lr", required_argument, O_FE_LR)                                                         \
    X("ft-lr", required_argument, O_FT_LR)                                                         \
    X("train-splits", required_argument, O_TRAIN)                                                  \
    X("val-splits", required_argument, O_VAL)                                                      \
    X("no-augment", no_argument, O_NO_AUG)                                                         \
    X("no-shuffle", no_argument, O_NO_SHUF)                                                        \
    X("bn-frozen", required_argument, O_BN)                                                        \
    X("restart", no_argument, O_RESTART)                                                           \
    X("precision", required_argument, O_PRECISION)                                                 \
    X("deterministic", no_argument, O_DETERMINISTIC)                                               \
    X("cache-dir", required_argument, O_CACHE_DIR)                                                 \
    X("device-images", required_argument, O_DEVICE_IMAGES)

/* Options of the sweep-point command, which the flag-built one refuses. */
#define SWEEP_POINT_OPTIONS(X)                                                                     \
    X("sweep", required_argument, O_SWEEP)                                                         \
    X("trial", required_argument, O_TRIAL)                                                         \
    X("output", required_argument, O_OUTPUT)                                                       \
    X("trials-dir", required_argument, O_TRIALS_DIR)                                               \
    X("list", no_argument, O_LIST)

#define OPTION_CODE(name, has_arg, code) code,
enum {
    O_OUT = 256,
    O_THREADS,
    O_DEVICE,
    O_OTHER_COMMAND, /* an option of the other command: refused by name */
    FLAG_TRIAL_OPTIONS(OPTION_CODE) SWEEP_POINT_OPTIONS(OPTION_CODE)
};
#undef OPTION_CODE
#define OWN_OPTION(name, has_arg, code) {name, has_arg, NULL, code},
#define OTHER_OPTION(name, has_arg, code) {name, has_arg, NULL, O_OTHER_COMMAND},
/* both commands */
#define SHARED_OPTIONS                                                                             \
    {"out", required_argument, NULL, O_OUT}, {"threads", required_argument, NULL, O_THREADS},      \
        {"device", required_argument, NULL, O_DEVICE}, {"help", no_argument, NULL, 'h'},

/* getopt_long over argv with longopts; each option goes to take(code, optarg, user), an option
 * of the other command to refuse(name). 0 ok, 1 --help printed, -1 bad (reported). */
static int parse(int argc, char **argv, const struct option *longopts,
                 int (*take)(int code, const char *arg, void *user),
                 void (*refuse)(const char *name), void *user) {
    int code, which = -1, bad = 0;
    optind = 1;
    while ((code = getopt_long(argc, argv, "h", longopts, &which)) != -1) {
        if (code == 'h') {
            usage(stdout);
            return 1;
        }
        if (code == '?') {
            usage(stderr);
            return -1;
        }
        if (code == O_OTHER_COMMAND) {
            refuse(longopts[which].name);
            bad = 1;
        } else
            bad |= take(code, optarg, user) != 0;
    }
    if (!bad && optind < argc) {
        fprintf(stderr, "tlsweep train: unexpected argument '%s'\n", argv[optind]);
        bad = 1;
    }
    return bad ? -1 : 0;
}

/* The first of --sweep's forms on the command line decides which command this is. */
static int asks_for_sweep_point(int argc, char **argv) {
    for (int i = 1; i < argc && strcmp(argv[i], "--"); i++)
        if (!strcmp(argv[i], "--sweep") || !strncmp(argv[i], "--sweep=", 8)) return 1;
    return 0;
}

/* ---- a flag-built trial -------------------------------------------------------------------- */

/* The flag-built trial's hooks: a stop signal ends it at the next batch or epoch end (trial_run
 * also asks should_stop once an epoch is recorded). */
static int flags_epoch(const epoch_record *record, void *user) {
    (void)user;
    print_epoch(record);
    return 0;
}

static int flags_should_stop(void *user) {
    (void)user;
    return farm_stop_signal != 0;
}

/* --restart: the directory's checkpoints go, so the trial starts from its initial weights. */
static int remove_checkpoints(const char *dir) {
    static const char *const files[] = {"resume.safetensors", "best.safetensors"};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        char path[TRIAL_PATH_MAX + 32];
        snprintf(path, sizeof path, "%s/%s", dir, files[i]);
        if (remove(path) && errno != ENOENT) {
            fprintf(stderr, "tlsweep train: --restart: cannot remove %s: %s\n", path,
                    strerror(errno));
            return -1;
        }
    }
    return 0;
}

/* Trains the flag-built trial in out (default runs/train/NAME). Returns the exit status: a
 * failure before the first batch or on the checkpoint is bad input (2), as `train` promises. */
static int train_flag_trial(trial_spec *spec, const char *out, int restart) {
    spec->show_progress = isatty(STDERR_FILENO);
    if (out)
        snprintf(spec->out_dir, sizeof spec->out_dir, "%s", out);
    else
        snprintf(spec->out_dir, sizeof spec->out_dir, "runs/train/%s", spec->name);
    if (preflight(spec, 1) || (restart && remove_checkpoints(spec->out_dir))) return 2;
    char err[4096];
    trial_summary summary;
    const trial_hooks hooks = {.on_epoch = flags_epoch, .should_stop = flags_should_stop};
    int rc = trial_run(spec, &hooks, &summary, err, sizeof err);
    if (rc == TRIAL_FAILED && summary.failure != TRIAL_FAILURE_TRAINING) {
        fprintf(stderr, "tlsweep train: %s\n", err);
        if (summary.failure == TRIAL_FAILURE_CHECKPOINT)
            fprintf(stderr,
                    "rerun with --restart to start this trial over in %s, or choose another "
                    "directory with --out\n",
                    spec->out_dir);
        return 2;
    }
    if (rc == TRIAL_FAILED) {
        fprintf(stderr, "tlsweep train: %s\n", err);
        return 1;
    }
    if (rc == TRIAL_STOPPED) {
        print_stopped(spec->name, summary.epochs_done);
        return 3;
    }
    print_summary(spec->name, (int64_t)summary.params, summary.val_acc_end_of_feature_extraction,
                  summary.best_val_acc, summary.best_epoch, summary.seconds, spec->out_dir);
    return 0;
}

typedef struct {
    trial_spec spec; /* the defaults, then the flags */
    const char *schedule, *out, *device;
    double fe_lr, ft_lr; /* < 0: the schedule's */
    int fe_epochs, ft_epochs, no_augment, restart;
} flag_trial;

static int take_flag(int code, const char *arg, void *user) {
    flag_trial *a = user;
    trial_spec *spec = &a->spec;
    long seed;
    switch (code) {
    case O_BACKBONE:
        snprintf(spec->backbone, sizeof spec->backbone, "%s", arg);
        return 0;
    case O_DATA:
        snprintf(spec->data_root, sizeof spec->data_root, "%s", arg);
        return 0;
    case O_CACHE_DIR:
        snprintf(spec->cache_dir, sizeof spec->cache_dir, "%s", arg);
        return 0;
    case O_WEIGHTS:
        snprintf(spec->weights, sizeof spec->weights, "%s", arg);
        return 0;
    case O_SCHEDULE:
        a->schedule = arg;
        return 0;
    case O_OUT:
        a->out = arg;
        return 0;
    case O_DEVICE:
        a->device = arg;
        return 0;
    case O_WIDTH:
        return int_flag("width", arg, 1, TRIAL_MAX_WIDTH, &spec->width);
    case O_SEED:
        if (cli_long("train", "seed", arg, 0, LONG_MAX, &seed, stderr)) return -1;
        spec->seed = (uint64_t)seed;
        return 0;
    case O_THREADS:
        return int_flag("threads", arg, 0, TRIAL_MAX_THREADS, &spec->threads);
    case O_RESIZE:
        return int_flag("resize", arg, 1, TRIAL_MAX_IMAGE, &spec->resize);
    case O_CROP:
        return int_flag("crop", arg, 1, TRIAL_MAX_IMAGE, &spec->crop);
    case O_BATCH:
        return int_flag("batch-size", arg, 1, TRIAL_MAX_BATCH, &spec->batch_size);
    case O_FE_EPOCHS:
        return int_flag("fe-epochs", arg, 0, 100000, &a->fe_epochs);
    case O_FT_EPOCHS:
        return int_flag("ft-epochs", arg, 0, 100000, &a->ft_epochs);
    case O_FE_LR:
        return cli_double("train", "fe-lr", arg, 0, &a->fe_lr, stderr);
    case O_FT_LR:
        return cli_double("train", "ft-lr", arg, 0, &a->ft_lr, stderr);
    case O_TRAIN:
    case O_VAL:
        if (code == O_TRAIN ? parse_splits(spec->train_splits, &spec->n_train_splits, arg)
                            : parse_splits(spec->val_splits, &spec->n_val_splits, arg)) {
            fprintf(stderr, "tlsweep train: bad split list '%s'\n", arg);
            return -1;
        }
        return 0;
    case O_NO_AUG:
        a->no_augment = 1;
        return 0;
    case O_NO_SHUF:
        spec->shuffle = 0;
        return 0;
    case O_BN:
        if (strcmp(arg, "train") && strcmp(arg, "eval")) {
            fprintf(stderr, "tlsweep train: --bn-frozen is train or eval, got '%s'\n", arg);
            return -1;
        }
        spec->feature_extraction.bn_train = !strcmp(arg, "train");
        return 0;
    case O_RESTART:
        a->restart = 1;
        return 0;
    case O_PRECISION:
        if (strcmp(arg, "fp32") && strcmp(arg, "tf32") && strcmp(arg, "bf16")) {
            fprintf(stderr, "tlsweep train: --precision is fp32, tf32 or bf16, got '%s'\n", arg);
            return -1;
        }
        snprintf(spec->precision, sizeof spec->precision, "%s", arg);
        return 0;
    case O_DETERMINISTIC:
        spec->deterministic = 1;
        return 0;
    case O_DEVICE_IMAGES:
        if (strcmp(arg, "auto") && strcmp(arg, "on") && strcmp(arg, "off")) {
            fprintf(stderr, "tlsweep train: --device-images is auto, on or off, got '%s'\n", arg);
            return -1;
        }
        spec->device_images = !strcmp(arg, "auto") ? -1 : !strcmp(arg, "on");
        return 0;
    }
    return -1;
}

static void refuse_sweep_option(const char *name) {
    fprintf(stderr,
            "tlsweep train: --%s needs --sweep (--trial, --output and --list are for a "
            "sweep's grid point)\n",
            name);
}

/* `tlsweep train --backbone NAME --data DIR [options]`. Returns the exit status. */
static int train_from_flags(int argc, char **argv) {
    static const struct option longopts[] = {
        SHARED_OPTIONS FLAG_TRIAL_OPTIONS(OWN_OPTION)
            SWEEP_POINT_OPTIONS(OTHER_OPTION){NULL, 0, NULL, 0},
    };
    flag_trial a = {
        .schedule = "exp-decay-3", .fe_lr = -1, .ft_lr = -1, .fe_epochs = -1, .ft_epochs = -1};
    trial_spec_defaults(&a.spec);
    int rc = parse(argc, argv, longopts, take_flag, refuse_sweep_option, &a);
    if (rc) return rc > 0 ? 0 : 2;
    trial_spec *spec = &a.spec;
    if (!spec->backbone[0] || !spec->data_root[0]) {
        fprintf(stderr, "tlsweep train: --backbone and --data are required\n");
        usage(stderr);
        return 2;
    }
    int bn_train = spec->feature_extraction.bn_train;
    if (lr_schedule_preset(a.schedule, &spec->feature_extraction, &spec->fine_tuning)) {
        fprintf(stderr, "tlsweep train: unknown schedule '%s' (known: exp-decay-3, linear-decay)\n",
                a.schedule);
        return 2;
    }
    spec->feature_extraction.bn_train = bn_train;
    if (a.fe_epochs >= 0) spec->feature_extraction.epochs = a.fe_epochs;
    if (a.ft_epochs >= 0) spec->fine_tuning.epochs = a.ft_epochs;
    if (a.fe_lr >= 0) spec->feature_extraction.lr = a.fe_lr;
    if (a.ft_lr >= 0) spec->fine_tuning.lr = a.ft_lr;
    if (a.no_augment)
        spec->hflip = spec->brightness = spec->contrast = spec->rotate_deg = spec->shear_deg = 0;
    snprintf(spec->name, sizeof spec->name, "%s__%s", spec->backbone, a.schedule);
    char host[64];
    placement_host(host, sizeof host);
    if ((spec->device = place(a.device ? a.device : "auto", host)) == -2) return 2;
    if (farm_install_signals()) {
        fprintf(stderr, "tlsweep train: cannot set up the stop signals\n");
        return 4;
    }
    return train_flag_trial(spec, a.out, a.restart);
}

/* ---- one grid point of a sweep ------------------------------------------------------------- */

/* Reads and validates the sweep (every problem reported) and expands its grid. */
static int load_grid(const char *file, sweep *s, trial_list *trials) {
    sweep_errors errs = {0};
    const sweep_options opt = {.check_paths = 1};
    if (sweep_load(file, &opt, s, &errs)) {
        sweep_errors_print(&errs, stderr, "");
        sweep_errors_free(&errs);
        return -1;
    }
    sweep_errors_free(&errs);
    char err[512];
    if (grid_expand(s, trials, err, sizeof err)) {
        fprintf(stderr, "tlsweep train: %s: %s\n", file, err);
        sweep_free(s);
        return -1;
    }
    return 0;
}

/* --trial's value: an all-digits one is a 0-based grid index, anything else a name. */
static int find_trial(const char *file, const trial_list *trials, const char *which) {
    if (which[0] && strspn(which, "0123456789") == strlen(which)) {
        /* strtol saturates at LONG_MAX, which is out of range too */
        long index = strtol(which, NULL, 10);
        if (index < trials->count) return (int)index;
        fprintf(stderr, "tlsweep train: %s has %d trials (indices 0 to %d); no trial index %s\n",
                file, trials->count, trials->count - 1, which);
        return -1;
    }
    for (int i = 0; i < trials->count; i++)
        if (!strcmp(trials->items[i].name, which)) return i;
    fprintf(stderr, "tlsweep train: %s has no trial '%s'; its trials:", file, which);
    for (int i = 0; i < trials->count; i++)
        fprintf(stderr, " %s", trials->items[i].name);
    fputc('\n', stderr);
    return -1;
}

typedef struct {
    const char *out;        /* --out: the trial directory, else TRIALS_DIR/NAME */
    const char *trials_dir; /* --trials-dir: TRIALS_DIR, else the sweep's OUTPUT.h5.d */
    const char *output;     /* --output: the results file, or NULL */
    int threads;            /* --threads, 0 when not given */
    int device;             /* the placement: an ordinal or -1 for the CPU */
} grid_options;

/* Trains grid point `index` through `tlsweep run`'s one-rank loop (farm_single) restricted to
 * it: the same directory, retries and trial states, and with --output the same results file
 * handling (writer lock beside the file, resume, exactly-once epochs). Returns the exit status. */
static int train_grid_point(const sweep *s, const trial_list *trials, int index,
                            const grid_options *g) {
    char err[8192];
    trial_table table;
    if (trial_table_build(&table, s, trials, err, sizeof err)) {
        fprintf(stderr, "tlsweep train: %s\n", err);
        return 4;
    }
    farm_options f = {.s = s, .trials = trials, .start = monotonic_seconds(), .echo = print_epoch};
    f.worker.threads = g->threads;
    f.worker.threads_forced = g->threads > 0;
    f.worker.device = g->device;
    placement_host(f.worker.host, sizeof f.worker.host);
    if (g->trials_dir)
        snprintf(f.worker.trials_dir, sizeof f.worker.trials_dir, "%s", g->trials_dir);
    else
        resume_trials_dir(s->output, f.worker.trials_dir, sizeof f.worker.trials_dir);
    if (g->out) snprintf(f.worker.trial_dir, sizeof f.worker.trial_dir, "%s", g->out);
    char trial_dir[TRIAL_PATH_MAX];
    run_trial_dir(&f.worker, trials->items[index].name, trial_dir, sizeof trial_dir);

    results_h5 *h5 = NULL;
    char lock_dir[TRIAL_PATH_MAX] = "";
    trial_entry *e = &table.items[index];
    if (g->output) {
        resume_trials_dir(g->output, lock_dir, sizeof lock_dir);
        const resume_writer writer = {.host = f.worker.host, .hosts = f.worker.host, .ranks = 1};
        int kept = 0;
        if (resume_start(g->output, lock_dir, s, &table, &writer, &h5, &kept, err, sizeof err)) {
            fprintf(stderr, "tlsweep train: %s\n", err);
            trial_table_free(&table);
            return 2;
        }
        if (kept >= 0 && e->state != TS_DONE) {
            int in_file = 0;
            for (int epoch = 1; epoch <= e->total_epochs; epoch++)
                in_file += e->epoch_written[epoch];
            printf("resuming %s: trial %s (%d of %d epochs in the file)\n", g->output, e->row.name,
                   in_file, e->total_epochs);
        }
    }
    int status = 0;
    if (e->state == TS_DONE) {
        printf("%s is already done in %s: best val acc %.2f%% (epoch %d); nothing to do\n",
               e->row.name, g->output, 100 * e->row.best_val_acc, e->row.best_epoch);
    } else {
        worker_slot slot;
        memset(&slot, 0, sizeof slot);
        snprintf(slot.host, sizeof slot.host, "%s", f.worker.host);
        slot.device = f.worker.device;
        slot.threads = f.worker.threads;
        root_ctx r;
        root_init(&r, s, &table, h5, NULL, &slot, 0, 1, NULL, NULL);
        r.only_trial = index;
        if (farm_single(&r, &f)) {
            fprintf(stderr, "tlsweep train: %s\n", r.error);
            status = 4;
        } else if (e->state == TS_DONE) {
            print_summary(e->row.name, e->row.params, e->row.val_acc_end_of_feature_extraction,
                          e->row.best_val_acc, e->row.best_epoch, e->row.seconds, trial_dir);
        } else if (e->state == TS_FAILED) {
            fprintf(stderr, "tlsweep train: %s\n", e->row.error);
            /* as a flag-built trial: its input or its checkpoint is bad, not its luck */
            status = e->failure == TRIAL_FAILURE_TRAINING ? 1 : 2;
        } else {
            print_stopped(e->row.name, e->row.epochs_done);
            status = 3;
        }
    }
    if (h5) {
        if (results_h5_close(h5, err, sizeof err)) {
            fprintf(stderr, "tlsweep train: %s\n", err);
            status = 4;
        }
        resume_unlock(lock_dir);
        /* FILE.h5.d only held the lock, unless it is also the sweep's trial directory */
        rmdir(lock_dir);
    }
    trial_table_free(&table);
    return status;
}

typedef struct {
    const char *sweep_file, *trial, *output, *out, *trials_dir, *device;
    int list, threads;
} sweep_point;

static int take_sweep_option(int code, const char *arg, void *user) {
    sweep_point *a = user;
    switch (code) {
    case O_SWEEP:
        a->sweep_file = arg;
        return 0;
    case O_TRIAL:
        a->trial = arg;
        return 0;
    case O_OUTPUT:
        a->output = arg;
        return 0;
    case O_TRIALS_DIR:
        a->trials_dir = arg;
        return 0;
    case O_LIST:
        a->list = 1;
        return 0;
    case O_OUT:
        a->out = arg;
        return 0;
    case O_DEVICE:
        a->device = arg;
        return 0;
    case O_THREADS:
        return int_flag("threads", arg, 0, TRIAL_MAX_THREADS, &a->threads);
    }
    return -1;
}

/* A flag-built trial's option: a grid point's settings are the sweep's, as `tlsweep run` has
 * them; where the sweep file has the setting, say so. */
static void refuse_flag_option(const char *name) {
    static const char *const hints[][2] = {
        {"restart", "a grid point resumes its results file (choose another --output)"},
        {"precision", "set train.precision in the sweep file"},
        {"deterministic", "set train.deterministic in the sweep file"},
        {"device-images", "set data.device_images in the sweep file"},
    };
    const char *hint = "a grid point's settings are the sweep's";
    for (size_t i = 0; i < sizeof hints / sizeof hints[0]; i++)
        if (!strcmp(name, hints[i][0])) hint = hints[i][1];
    fprintf(stderr, "tlsweep train: --%s is for a flag-built trial; %s\n", name, hint);
}

/* `tlsweep train --sweep FILE --trial T [--output FILE.h5]` or `--sweep FILE --list`. Returns
 * the exit status. */
static int train_from_sweep(int argc, char **argv) {
    static const struct option longopts[] = {
        SHARED_OPTIONS SWEEP_POINT_OPTIONS(OWN_OPTION)
            FLAG_TRIAL_OPTIONS(OTHER_OPTION){NULL, 0, NULL, 0},
    };
    sweep_point a = {0};
    int rc = parse(argc, argv, longopts, take_sweep_option, refuse_flag_option, &a);
    if (rc) return rc > 0 ? 0 : 2;
    if (a.list && (a.trial || a.output)) {
        fprintf(stderr, "tlsweep train: --list goes alone with --sweep\n");
        return 2;
    }
    if (!a.list && !a.trial) {
        fprintf(stderr, "tlsweep train: --sweep needs --trial or --list\n");
        return 2;
    }
    sweep s;
    trial_list trials;
    if (load_grid(a.sweep_file, &s, &trials)) return 2;
    int status = 2;
    if (a.list) {
        for (int i = 0; i < trials.count; i++)
            printf("%s\n", trials.items[i].name);
        status = 0;
    } else {
        int index = find_trial(a.sweep_file, &trials, a.trial);
        trial_spec point;
        if (index >= 0) grid_trial_spec(&s, &trials.items[index], &point);
        if (index < 0 || preflight(&point, 1))
            status = 2;
        else if (farm_install_signals()) {
            fprintf(stderr, "tlsweep train: cannot set up the stop signals\n");
            status = 4;
        } else {
            char host[64];
            placement_host(host, sizeof host);
            grid_options g = {
                .out = a.out, .trials_dir = a.trials_dir, .output = a.output, .threads = a.threads};
            g.device = place(a.device ? a.device : sweep_device(&s), host);
            status = g.device == -2 ? 2 : train_grid_point(&s, &trials, index, &g);
        }
    }
    grid_trials_free(&trials);
    sweep_free(&s);
    return status;
}

int cmd_train(int argc, char **argv) {
    return asks_for_sweep_point(argc, argv) ? train_from_sweep(argc, argv)
                                            : train_from_flags(argc, argv);
}
