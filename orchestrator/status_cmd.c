/* `tlsweep status FILE.h5`: counts per state, the best trials, failures with their reasons,
 * running trials and an ETA; with --curves, every epoch's record; with --json, the same for
 * scripts. Reads in SWMR mode, so it works while the sweep runs. A trial that the file says
 * is running while no writer holds the file's lock (the run was killed) is "interrupted". */
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "orchestrator/results_h5.h"
#include "orchestrator/resume.h"
#include "orchestrator/trials.h"
#include "worker/cli.h"
#include "worker/commands.h"
#include "worker/weights/json.h"

static void usage(FILE *out) {
    fprintf(out, "usage: tlsweep status [--top N] [--curves[=TRIAL]] [--json] FILE.h5\n"
                 "  progress of a sweep (also while it runs): trials per state, the best\n"
                 "  trials, failures with their reasons, running trials, ETA; a trial shown\n"
                 "  'interrupted' was running when its run died (rerun the run to resume it)\n"
                 "  --json            all of it as one JSON object: counts, eta_seconds, and\n"
                 "                    every /trials row (NaN as null)\n"
                 "  --curves[=TRIAL]  then a table of every epoch (/curves) of every trial, or\n"
                 "                    of TRIAL (a name or a 0-based id); '-' marks a column\n"
                 "                    the file does not have (an older tlsweep wrote it)\n");
}

/* One column per field of the epoch record: a new field shows here without a change. */
static int column_width(const char *name) {
    int n = (int)strlen(name);
    return n < 9 ? 9 : n;
}

static void print_curve_header(void) {
    printf("  ");
#define HEADER(kind, name) printf(" %*s", column_width(#name), #name);
    EPOCH_FIELDS(HEADER)
#undef HEADER
    printf("\n");
}

static void print_f64(const char *name, double v) {
    if (isnan(v))
        printf(" %*s", column_width(name), "-");
    else
        printf(" %*.4g", column_width(name), v);
}

static void print_i32(const char *name, int32_t v) {
    printf(" %*d", column_width(name), (int)v);
}

static void print_curve_row(const results_curve_row *c) {
    printf("  ");
#define VALUE(kind, name) print_##kind(#name, c->name);
    EPOCH_FIELDS(VALUE)
#undef VALUE
    printf("\n");
}

/* The epochs of every trial (which == NULL) or of the one named or numbered WHICH. */
static int print_curves(const char *path, const results_trial_row *rows, int count,
                        const char *which) {
    char err[512], *end = NULL;
    long id = which ? strtol(which, &end, 10) : -1;
    int found = 0;
    for (int i = 0; which && i < count; i++)
        found |= !strcmp(rows[i].name, which) || (end && !*end && rows[i].id == id);
    if (which && !found) {
        fprintf(stderr, "tlsweep status: %s: no trial '%s' (a name or an id 0..%d)\n", path, which,
                count - 1);
        return 2;
    }
    results_h5 *h = NULL;
    results_curve_row *curves = NULL;
    int n = 0;
    if (results_h5_open_read(path, &h, err, sizeof err) ||
        results_h5_read_curves(h, &curves, &n, err, sizeof err)) {
        fprintf(stderr, "tlsweep status: %s\n", err);
        results_h5_close(h, err, sizeof err);
        return 2;
    }
    results_h5_close(h, err, sizeof err);
    for (int i = 0; i < count; i++) {
        if (which && strcmp(rows[i].name, which) && !(end && !*end && rows[i].id == id)) continue;
        const char *from = NULL; /* the trial that computed its shared phase 1 */
        for (int j = 0; j < count && rows[i].phase1_trial != rows[i].id; j++)
            if (rows[j].id == rows[i].phase1_trial) from = rows[j].name;
        printf("%s (%s%s%s):\n", rows[i].name, rows[i].status, from ? "; phase 1 computed by " : "",
               from ? from : "");
        print_curve_header();
        /* /curves is in arrival order; a trial's epochs arrive in order */
        for (int c = 0; c < n; c++)
            if (curves[c].trial_id == rows[i].id) print_curve_row(&curves[c]);
    }
    free(curves);
    return 0;
}

static int by_best(const void *a, const void *b) {
    const results_trial_row *x = *(const results_trial_row *const *)a;
    const results_trial_row *y = *(const results_trial_row *const *)b;
    return (y->best_val_acc > x->best_val_acc) - (y->best_val_acc < x->best_val_acc);
}

/* Rows marked running whose writer is gone: a killed run leaves them so. */
static int mark_interrupted(const char *path, results_trial_row *rows, int count) {
    char lock_dir[TRIAL_PATH_MAX + 8], host[RESULTS_HOST_MAX];
    snprintf(lock_dir, sizeof lock_dir, "%s.d", path);
    if (gethostname(host, sizeof host)) snprintf(host, sizeof host, "unknown");
    host[sizeof host - 1] = 0;
    if (resume_writer_alive(lock_dir, host)) return 0;
    int marked = 0;
    for (int i = 0; i < count; i++)
        if (!strcmp(rows[i].status, "running")) {
            snprintf(rows[i].status, sizeof rows[i].status, "interrupted");
            marked++;
        }
    return marked;
}

static void json_number(const char *key, double v, const char *after) {
    json_quote(key, json_emit_file, stdout);
    if (isfinite(v))
        printf(": %.17g%s", v, after);
    else
        printf(": null%s", after);
}

static void json_text(const char *key, const char *v, const char *after) {
    json_quote(key, json_emit_file, stdout);
    printf(": ");
    json_quote(v, json_emit_file, stdout);
    printf("%s", after);
}

static void print_json(const char *path, const results_trial_row *rows, int count,
                       const int *counts, int interrupted, double eta) {
    printf("{");
    json_text("file", path, ", ");
    printf("\"counts\": {");
    for (int s = 0; s < TS_COUNT; s++)
        printf("\"%s\": %d, ", trial_state_name((trial_state)s), counts[s]);
    printf("\"interrupted\": %d}, ", interrupted);
    json_number("eta_seconds", eta, ", ");
    printf("\"trials\": [");
    for (int i = 0; i < count; i++) {
        const results_trial_row *r = &rows[i];
        printf("%s{\"id\": %d, ", i ? ", " : "", (int)r->id);
        json_text("name", r->name, ", ");
        json_text("backbone", r->backbone, ", ");
        json_text("schedule", r->schedule, ", ");
        json_text("grid", r->grid, ", ");
        json_text("status", r->status, ", ");
        printf("\"attempts\": %d, \"rank\": %d, ", (int)r->attempts, (int)r->rank);
        json_text("host", r->host, ", ");
        printf("\"device\": %d, \"params\": %lld, ", (int)r->device, (long long)r->params);
        json_number("estimated_cost", r->estimated_cost, ", ");
        printf("\"phase1_trial\": %d, ", (int)r->phase1_trial);
        json_number("start_time", r->start_time, ", ");
        json_number("end_time", r->end_time, ", ");
        json_number("seconds", r->seconds, ", ");
        json_number("val_acc_end_of_feature_extraction", r->val_acc_end_of_feature_extraction,
                    ", ");
        json_number("best_val_acc", r->best_val_acc, ", ");
        printf("\"best_epoch\": %d, \"epochs_done\": %d, ", (int)r->best_epoch,
               (int)r->epochs_done);
        json_text("error", r->error, "}");
    }
    printf("]}\n");
}

int cmd_status(int argc, char **argv) {
    static const struct option longopts[] = {{"top", required_argument, NULL, 't'},
                                             {"curves", optional_argument, NULL, 'c'},
                                             {"json", no_argument, NULL, 'j'},
                                             {"help", no_argument, NULL, 'h'},
                                             {NULL, 0, NULL, 0}};
    int top = 5, curves = 0, json = 0, c;
    const char *curves_of = NULL;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        if (c == 'h') {
            usage(stdout);
            return 0;
        }
        if (c == 'j') {
            json = 1;
            continue;
        }
        if (c == 'c') {
            curves = 1;
            curves_of = optarg;
            continue;
        }
        if (c == 't') {
            long v;
            if (cli_long("status", "top", optarg, 1, 1000000, &v, stderr)) return 2;
            top = (int)v;
            continue;
        }
        usage(stderr);
        return 2;
    }
    if (optind != argc - 1 || (json && curves)) {
        if (json && curves) fprintf(stderr, "tlsweep status: --json goes without --curves\n");
        usage(stderr);
        return 2;
    }
    const char *path = argv[optind];
    results_trial_row *rows = NULL;
    int count = 0;
    char err[512];
    if (results_h5_read_file(path, &rows, &count, err, sizeof err)) {
        fprintf(stderr, "tlsweep status: %s\n", err);
        return 2;
    }
    int interrupted = mark_interrupted(path, rows, count);
    int counts[TS_COUNT] = {0};
    double done_cost = 0, left_cost = 0, first_start = 0;
    const results_trial_row **ranked = calloc((size_t)count + 1, sizeof *ranked);
    int n_ranked = 0;
    for (int i = 0; i < count; i++) {
        trial_state s;
        /* an interrupted trial is still running in the file: pending for the cost left */
        if (trial_state_parse(rows[i].status, &s)) s = TS_PENDING;
        if (strcmp(rows[i].status, "interrupted")) counts[s]++;
        if (rows[i].start_time > 0 && (first_start == 0 || rows[i].start_time < first_start))
            first_start = rows[i].start_time;
        if (s == TS_DONE)
            done_cost += rows[i].estimated_cost;
        else if (s != TS_FAILED)
            left_cost += rows[i].estimated_cost;
        if (ranked && rows[i].best_epoch > 0) ranked[n_ranked++] = &rows[i];
    }
    /* throughput so far: finished cost per wall second since the first start */
    double elapsed = (double)time(NULL) - first_start, eta = NAN;
    if (left_cost == 0)
        eta = 0;
    else if (counts[TS_DONE] && done_cost > 0 && elapsed > 0)
        eta = left_cost / (done_cost / elapsed);
    if (json) {
        print_json(path, rows, count, counts, interrupted, eta);
        free(ranked);
        free(rows);
        return 0;
    }
    printf("%s: %d trials: %d done, %d running, %d pending, %d failed, %d preempted", path, count,
           counts[TS_DONE], counts[TS_RUNNING], counts[TS_PENDING], counts[TS_FAILED],
           counts[TS_PREEMPTED]);
    printf(interrupted ? ", %d interrupted\n" : "\n", interrupted);
    if (ranked && n_ranked) {
        qsort(ranked, (size_t)n_ranked, sizeof *ranked, by_best);
        printf("best trials (validation accuracy):\n");
        for (int i = 0; i < n_ranked && i < top; i++)
            printf("  %-48s %7.4f at epoch %-3d %s\n", ranked[i]->name, ranked[i]->best_val_acc,
                   ranked[i]->best_epoch, ranked[i]->status);
    }
    for (int i = 0; i < count; i++)
        if (!strcmp(rows[i].status, "running"))
            printf("running: %-48s rank %d on %s\n", rows[i].name, rows[i].rank, rows[i].host);
    for (int i = 0; i < count; i++)
        if (!strcmp(rows[i].status, "interrupted"))
            printf("interrupted: %-44s rank %d on %s; its run is gone (rerun it to resume)\n",
                   rows[i].name, rows[i].rank, rows[i].host);
    for (int i = 0; i < count; i++)
        if (rows[i].error[0])
            printf("%s: %s (attempts %d): %s\n",
                   !strcmp(rows[i].status, "failed") ? "failed" : "retried", rows[i].name,
                   rows[i].attempts, rows[i].error);
    if (eta > 0)
        printf("ETA: about %.0f s (from the cost finished so far)\n", eta);
    else if (eta == 0)
        printf("ETA: nothing left to run\n");
    free(ranked);
    int rc = curves ? print_curves(path, rows, count, curves_of) : 0;
    free(rows);
    return rc;
}
