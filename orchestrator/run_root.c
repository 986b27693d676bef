/* Rank 0's run of `tlsweep run` (run_root.h). */
#include "orchestrator/run_root.h"

#include <stdio.h>
#include <stdlib.h>

#include "orchestrator/groups.h"
#include "orchestrator/provenance.h"
#include "orchestrator/resume.h"
#include "orchestrator/run_results.h"
#include "orchestrator/run_start.h"
#include "orchestrator/summary.h"
#include "worker/clock.h"

/* The placement print: where each worker trains. */
static void print_mapping(const root_ctx *r, int size) {
    for (int rank = size > 1 ? 1 : 0; rank < size; rank++) {
        const worker_slot *w = &r->workers[rank];
        printf("rank %d on %s: %s, %d threads\n", rank, w->host, w->device_text, w->threads);
    }
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

int run_root(const run_options *o, const sweep *s, const trial_list *trials, farm_options *f) {
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
