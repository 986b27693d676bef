/* `tlsweep train`: one trial in one process, no MPI: from flags, or one grid point of a sweep
 * file (--sweep FILE --trial NAME). */
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "orchestrator/grid.h"
#include "orchestrator/sweep.h"
#include "worker/cli.h"
#include "worker/commands.h"
#include "worker/lr_schedule.h"
#include "worker/trial.h"

static void usage(FILE *out) {
    fprintf(
        out,
        "usage: tlsweep train --backbone NAME --data DIR [options]\n"
        "One trial of SEED.md's two-phase transfer learning, in this process.\n"
        "  --backbone NAME        resnet18/34/50/101/152, vgg11_bn/13_bn/16_bn/19_bn\n"
        "  --data DIR             a Flowers102-layout dataset (jpg/, imagelabels.mat, setid.mat)\n"
        "  --weights W            none | torchvision | FILE.pth | FILE.safetensors "
        "(default torchvision)\n"
        "  --schedule NAME        exp-decay-3 | linear-decay (default exp-decay-3)\n"
        "  --out DIR              trial directory: best.safetensors, resume checkpoint\n"
        "                         (default runs/train/BACKBONE__SCHEDULE)\n"
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
        "  --threads N            CPU threads (default: all cores)\n");
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

static int print_epoch(const epoch_record *r, void *user) {
    (void)user;
    printf("epoch %2d  phase %d (%s)  lr %.3g  train loss %.4f acc %6.2f%%  val loss %.4f acc "
           "%6.2f%%  %.1f s  %.0f img/s\n",
           r->epoch, r->phase, r->phase == 1 ? "feature extraction" : "fine-tuning", r->head_lr,
           r->train_loss, 100 * r->train_acc, r->val_loss, 100 * r->val_acc, r->seconds,
           r->images_per_second);
    fflush(stdout);
    return 0;
}

/* The grid point NAME of a sweep file, as `tlsweep run` would train it. */
static int spec_from_sweep(trial_spec *spec, const char *file, const char *name) {
    sweep s;
    sweep_errors errs = {0};
    const sweep_options opt = {.check_paths = 1};
    if (sweep_load(file, &opt, &s, &errs)) {
        for (int i = 0; i < errs.count; i++)
            fprintf(stderr, "%s\n", errs.messages[i]);
        sweep_errors_free(&errs);
        return -1;
    }
    sweep_errors_free(&errs);
    trial_list trials = {0};
    char err[512];
    int rc = -1;
    if (grid_expand(&s, &trials, err, sizeof err)) {
        fprintf(stderr, "tlsweep train: %s: %s\n", file, err);
    } else {
        for (int i = 0; i < trials.count && rc; i++)
            if (!strcmp(trials.items[i].name, name)) {
                grid_trial_spec(&s, &trials.items[i], spec);
                rc = 0;
            }
        if (rc) {
            fprintf(stderr, "tlsweep train: %s has no trial '%s'; its trials:", file, name);
            for (int i = 0; i < trials.count; i++)
                fprintf(stderr, " %s", trials.items[i].name);
            fputc('\n', stderr);
        }
    }
    grid_trials_free(&trials);
    sweep_free(&s);
    return rc;
}

static int train(trial_spec *spec, const char *out) {
    spec->show_progress = isatty(STDERR_FILENO);
    if (out)
        snprintf(spec->out_dir, sizeof spec->out_dir, "%s", out);
    else
        snprintf(spec->out_dir, sizeof spec->out_dir, "runs/train/%s", spec->name);
    char err[2048];
    trial_summary summary;
    const trial_hooks hooks = {.on_epoch = print_epoch};
    int rc = trial_run(spec, &hooks, &summary, err, sizeof err);
    if (rc == TRIAL_FAILED) {
        fprintf(stderr, "tlsweep train: %s\n", err);
        return 1;
    }
    printf("%s: %zu parameters, val acc %.2f%% at the end of feature extraction, best %.2f%% "
           "(epoch %d), %.1f s; best weights in %s/best.safetensors\n",
           spec->name, summary.params, 100 * summary.val_acc_end_of_feature_extraction,
           100 * summary.best_val_acc, summary.best_epoch, summary.seconds, spec->out_dir);
    return 0;
}

int cmd_train(int argc, char **argv) {
    enum {
        O_FE_EPOCHS = 256,
        O_FT_EPOCHS,
        O_FE_LR,
        O_FT_LR,
        O_TRAIN,
        O_VAL,
        O_NO_AUG,
        O_NO_SHUF,
        O_BN,
        O_RESIZE,
        O_CROP,
        O_BATCH,
        O_SWEEP,
        O_TRIAL
    };
    static const struct option options[] = {
        {"backbone", required_argument, NULL, 'b'},
        {"data", required_argument, NULL, 'd'},
        {"weights", required_argument, NULL, 'w'},
        {"schedule", required_argument, NULL, 's'},
        {"out", required_argument, NULL, 'o'},
        {"width", required_argument, NULL, 'W'},
        {"seed", required_argument, NULL, 'S'},
        {"threads", required_argument, NULL, 't'},
        {"resize", required_argument, NULL, O_RESIZE},
        {"crop", required_argument, NULL, O_CROP},
        {"batch-size", required_argument, NULL, O_BATCH},
        {"fe-epochs", required_argument, NULL, O_FE_EPOCHS},
        {"ft-epochs", required_argument, NULL, O_FT_EPOCHS},
        {"fe-lr", required_argument, NULL, O_FE_LR},
        {"ft-lr", required_argument, NULL, O_FT_LR},
        {"train-splits", required_argument, NULL, O_TRAIN},
        {"val-splits", required_argument, NULL, O_VAL},
        {"no-augment", no_argument, NULL, O_NO_AUG},
        {"no-shuffle", no_argument, NULL, O_NO_SHUF},
        {"bn-frozen", required_argument, NULL, O_BN},
        {"sweep", required_argument, NULL, O_SWEEP},
        {"trial", required_argument, NULL, O_TRIAL},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    trial_spec spec;
    trial_spec_defaults(&spec);
    const char *schedule = "exp-decay-3", *out = NULL, *sweep_file = NULL, *trial_name = NULL;
    double fe_lr = -1, ft_lr = -1;
    int fe_epochs = -1, ft_epochs = -1, opt, bad = 0, no_augment = 0;
    long seed = 0;
    optind = 1;
    while ((opt = getopt_long(argc, argv, "h", options, NULL)) != -1) {
        switch (opt) {
        case 'b':
            snprintf(spec.backbone, sizeof spec.backbone, "%s", optarg);
            break;
        case 'd':
            snprintf(spec.data_root, sizeof spec.data_root, "%s", optarg);
            break;
        case 'w':
            snprintf(spec.weights, sizeof spec.weights, "%s", optarg);
            break;
        case 's':
            schedule = optarg;
            break;
        case 'o':
            out = optarg;
            break;
        case 'W':
            bad |= int_flag("width", optarg, 1, 4096, &spec.width);
            break;
        case 'S':
            bad |= cli_long("train", "seed", optarg, 0, LONG_MAX, &seed, stderr);
            spec.seed = (uint64_t)seed;
            break;
        case 't':
            bad |= int_flag("threads", optarg, 0, 4096, &spec.threads);
            break;
        case O_RESIZE:
            bad |= int_flag("resize", optarg, 1, 65536, &spec.resize);
            break;
        case O_CROP:
            bad |= int_flag("crop", optarg, 1, 65536, &spec.crop);
            break;
        case O_BATCH:
            bad |= int_flag("batch-size", optarg, 1, 65536, &spec.batch_size);
            break;
        case O_FE_EPOCHS:
            bad |= int_flag("fe-epochs", optarg, 0, 100000, &fe_epochs);
            break;
        case O_FT_EPOCHS:
            bad |= int_flag("ft-epochs", optarg, 0, 100000, &ft_epochs);
            break;
        case O_FE_LR:
            bad |= cli_double("train", "fe-lr", optarg, 0, &fe_lr, stderr);
            break;
        case O_FT_LR:
            bad |= cli_double("train", "ft-lr", optarg, 0, &ft_lr, stderr);
            break;
        case O_TRAIN:
        case O_VAL:
            if (opt == O_TRAIN ? parse_splits(spec.train_splits, &spec.n_train_splits, optarg)
                               : parse_splits(spec.val_splits, &spec.n_val_splits, optarg)) {
                fprintf(stderr, "tlsweep train: bad split list '%s'\n", optarg);
                bad = 1;
            }
            break;
        case O_NO_AUG:
            no_augment = 1;
            break;
        case O_NO_SHUF:
            spec.shuffle = 0;
            break;
        case O_BN:
            if (strcmp(optarg, "train") && strcmp(optarg, "eval")) {
                fprintf(stderr, "tlsweep train: --bn-frozen is train or eval, got '%s'\n", optarg);
                bad = 1;
            }
            spec.feature_extraction.bn_train = !strcmp(optarg, "train");
            break;
        case O_SWEEP:
            sweep_file = optarg;
            break;
        case O_TRIAL:
            trial_name = optarg;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (bad) return 2;
    if (sweep_file || trial_name) {
        if (!sweep_file || !trial_name || optind < argc) {
            fprintf(stderr, "tlsweep train: --sweep and --trial go together\n");
            return 2;
        }
        int threads = spec.threads;
        if (spec_from_sweep(&spec, sweep_file, trial_name)) return 2;
        spec.threads = threads;
        return train(&spec, out);
    }
    if (optind < argc || !spec.backbone[0] || !spec.data_root[0]) {
        fprintf(stderr, "tlsweep train: %s\n",
                optind < argc ? "unexpected argument" : "--backbone and --data are required");
        usage(stderr);
        return 2;
    }
    int bn_train = spec.feature_extraction.bn_train;
    if (lr_schedule_preset(schedule, &spec.feature_extraction, &spec.fine_tuning)) {
        fprintf(stderr, "tlsweep train: unknown schedule '%s' (known: exp-decay-3, linear-decay)\n",
                schedule);
        return 2;
    }
    spec.feature_extraction.bn_train = bn_train;
    if (fe_epochs >= 0) spec.feature_extraction.epochs = fe_epochs;
    if (ft_epochs >= 0) spec.fine_tuning.epochs = ft_epochs;
    if (fe_lr >= 0) spec.feature_extraction.lr = fe_lr;
    if (ft_lr >= 0) spec.fine_tuning.lr = ft_lr;
    if (no_augment)
        spec.hflip = spec.brightness = spec.contrast = spec.rotate_deg = spec.shear_deg = 0;
    snprintf(spec.name, sizeof spec.name, "%s__%s", spec.backbone, schedule);
    return train(&spec, out);
}
