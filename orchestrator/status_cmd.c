/* `tlsweep status FILE.h5`: counts per state, the best trials, failures with their reasons,
 * running trials and an ETA. Reads in SWMR mode, so it works while the sweep runs. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "orchestrator/results_h5.h"
#include "orchestrator/trials.h"
#include "worker/cli.h"
#include "worker/commands.h"

static void usage(FILE *out) {
    fprintf(out, "usage: tlsweep status [--top N] FILE.h5\n"
                 "  progress of a sweep (also while it runs): trials per state, the best\n"
                 "  trials, failures with their reasons, running trials, ETA\n");
}

static int by_best(const void *a, const void *b) {
    const results_trial_row *x = *(const results_trial_row *const *)a;
    const results_trial_row *y = *(const results_trial_row *const *)b;
    return (y->best_val_acc > x->best_val_acc) - (y->best_val_acc < x->best_val_acc);
}

int cmd_status(int argc, char **argv) {
    static const struct option longopts[] = {{"top", required_argument, NULL, 't'},
                                             {"help", no_argument, NULL, 'h'},
                                             {NULL, 0, NULL, 0}};
    int top = 5, c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        if (c == 'h') {
            usage(stdout);
            return 0;
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
    if (optind != argc - 1) {
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
    int counts[TS_COUNT] = {0};
    double done_cost = 0, done_seconds = 0, left_cost = 0, first_start = 0;
    const results_trial_row **ranked = calloc((size_t)count + 1, sizeof *ranked);
    int n_ranked = 0;
    for (int i = 0; i < count; i++) {
        trial_state s;
        if (trial_state_parse(rows[i].status, &s)) s = TS_PENDING;
        counts[s]++;
        if (rows[i].start_time > 0 && (first_start == 0 || rows[i].start_time < first_start))
            first_start = rows[i].start_time;
        if (s == TS_DONE) {
            done_cost += rows[i].estimated_cost;
            done_seconds += rows[i].end_time - rows[i].start_time;
        } else if (s != TS_FAILED)
            left_cost += rows[i].estimated_cost;
        if (ranked && rows[i].best_epoch > 0) ranked[n_ranked++] = &rows[i];
    }
    printf("%s: %d trials: %d done, %d running, %d pending, %d failed, %d preempted\n", path, count,
           counts[TS_DONE], counts[TS_RUNNING], counts[TS_PENDING], counts[TS_FAILED],
           counts[TS_PREEMPTED]);
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
        if (rows[i].error[0])
            printf("%s: %s (attempts %d): %s\n",
                   !strcmp(rows[i].status, "failed") ? "failed" : "retried", rows[i].name,
                   rows[i].attempts, rows[i].error);
    if (counts[TS_DONE] && left_cost > 0 && done_cost > 0) {
        /* throughput so far: finished cost per wall second since the first start */
        double elapsed = (double)time(NULL) - first_start;
        double eta = elapsed > 0 ? left_cost / (done_cost / elapsed) : -1;
        if (eta >= 0) printf("ETA: about %.0f s (from the cost finished so far)\n", eta);
    } else if (left_cost == 0)
        printf("ETA: nothing left to run\n");
    (void)done_seconds;
    free(ranked);
    free(rows);
    return 0;
}
