/* The scheduling benchmark: 1,000 trials of varied cost over 256 workers, run as a
 * discrete-event simulation through the root's real message handling (root.c: state machine,
 * longest-first queue, HDF5 appends) in one process, since 256 real ranks do not fit on a
 * laptop. Trial durations are the scheduler's estimates times a +-15% error, so the scheduler
 * works from imperfect estimates as it does in real sweeps.
 *
 * Prints: scheduling efficiency = sum of trial times / (workers x makespan) for longest-first
 * and for grid order (FIFO), the bound no scheduler can beat (longest trial vs. perfect
 * balance), and the root's wall time per message with and without the HDF5 writes. Then the
 * seed sweep (3 backbones x 2 schedules x 16+8 epochs) on 2, 4 and 7 ranks with and without a
 * shared phase 1: the epochs computed and the makespan (exact estimates; a replayed phase 1
 * takes no time). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "orchestrator/phase1_plan.h"
#include "orchestrator/root.h"
#include "orchestrator/schedule.h"
#include "orchestrator/simulate.h"
#include "worker/clock.h"

#define WORKERS 256

/* 4 backbones x 2 schedules (24 or 12 epochs) x 2 crops x 63 seeds, less 8 = 1000 trials;
 * costs differ by 10x between the cheapest and the costliest */
static const char *const sweep_text =
    "name: bench-sched\n"
    "data: {root: unused, resize: 256}\n"
    "grid:\n"
    "  backbone: [resnet50, resnet101, resnet152, vgg16_bn]\n"
    "  schedule: [seed, short]\n"
    "  data.crop: [192, 224]\n"
    "  train.seed: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20,\n"
    "               21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32, 33, 34, 35, 36, 37, 38, 39,\n"
    "               40, 41, 42, 43, 44, 45, 46, 47, 48, 49, 50, 51, 52, 53, 54, 55, 56, 57, 58,\n"
    "               59, 60, 61, 62]\n"
    "exclude:\n"
    "  - {backbone: vgg16_bn, schedule: short, data.crop: 192, train.seed: 62}\n"
    "  - {backbone: vgg16_bn, schedule: short, data.crop: 224, train.seed: 62}\n"
    "  - {backbone: vgg16_bn, schedule: seed, data.crop: 192, train.seed: 62}\n"
    "  - {backbone: vgg16_bn, schedule: seed, data.crop: 224, train.seed: 62}\n"
    "  - {backbone: resnet152, schedule: short, data.crop: 192, train.seed: 62}\n"
    "  - {backbone: resnet152, schedule: short, data.crop: 224, train.seed: 62}\n"
    "  - {backbone: resnet152, schedule: seed, data.crop: 192, train.seed: 62}\n"
    "  - {backbone: resnet152, schedule: seed, data.crop: 224, train.seed: 62}\n"
    "schedules:\n"
    "  seed: {}\n"
    "  short: {feature_extraction: {epochs: 8}, fine_tuning: {epochs: 4}}\n";

typedef struct {
    double time;
    int rank, epoch; /* epoch 0: the trial's DONE */
} event;

typedef struct {
    event *heap;
    int count, cap;
    const sweep *s;
    const trial_table *table;
    double *epoch_seconds[WORKERS + 1]; /* per busy rank: its trial's epoch durations */
    int trial_of[WORKERS + 1];
    double now, busy_seconds;
    unsigned long long rng;
    int fifo, exact;
} simulation;

static double uniform(simulation *sim) {
    sim->rng = sim->rng * 6364136223846793005ull + 1442695040888963407ull;
    return (double)(sim->rng >> 11) / 9007199254740992.0;
}

static void push(simulation *sim, event e) {
    if (sim->count == sim->cap) {
        sim->cap = sim->cap ? sim->cap * 2 : 1024;
        sim->heap = realloc(sim->heap, (size_t)sim->cap * sizeof *sim->heap);
        if (!sim->heap) abort();
    }
    int i = sim->count++;
    while (i > 0 && sim->heap[(i - 1) / 2].time > e.time) {
        sim->heap[i] = sim->heap[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    sim->heap[i] = e;
}

static event pop(simulation *sim) {
    event top = sim->heap[0], last = sim->heap[--sim->count];
    int i = 0;
    for (;;) {
        int c = 2 * i + 1;
        if (c >= sim->count) break;
        if (c + 1 < sim->count && sim->heap[c + 1].time < sim->heap[c].time) c++;
        if (sim->heap[c].time >= last.time) break;
        sim->heap[i] = sim->heap[c];
        i = c;
    }
    if (sim->count) sim->heap[i] = last;
    return top;
}

/* The root's messages: an ASSIGN starts the trial's first epoch on that worker. */
static int sim_send(void *transport, int rank, const message *m, char *err, size_t errlen) {
    simulation *sim = transport;
    (void)err;
    (void)errlen;
    if (m->type != MSG_ASSIGN) return 0;
    trial_spec spec;
    grid_trial_spec(sim->s, &sim->table->items[m->trial].point, &spec);
    int total = spec.feature_extraction.epochs + spec.fine_tuning.epochs;
    /* BENCH_EXACT=1: perfect estimates, to separate the estimate error from the schedule */
    double error = sim->exact || getenv("BENCH_EXACT")
                       ? 1.0
                       : 0.85 + 0.30 * uniform(sim); /* the estimate is off by up to 15% */
    /* a phase 1 computed by another trial is replayed from its node: no time */
    const int replayed =
        sim->table->items[m->trial].phase1_from >= 0 ? spec.feature_extraction.epochs : 0;
    free(sim->epoch_seconds[rank]);
    sim->epoch_seconds[rank] = calloc((size_t)total + 1, sizeof(double));
    for (int e = 1; e <= total; e++) {
        sim->epoch_seconds[rank][e] =
            e <= replayed
                ? 0
                : schedule_epoch_cost(&spec, e <= spec.feature_extraction.epochs ? 1 : 2) * error;
        sim->busy_seconds += sim->epoch_seconds[rank][e];
    }
    sim->trial_of[rank] = m->trial;
    push(sim, (event){sim->now + sim->epoch_seconds[rank][1], rank, 1});
    return 0;
}

typedef struct {
    double efficiency, makespan, busy, per_message_us, wall_seconds, h5_seconds;
    long messages, phase1_epochs; /* phase-1 epochs computed (a replayed phase 1 is not) */
    int done;
} outcome;

static int run(const sweep *s, const trial_list *trials, int workers, int fifo, int exact,
               const char *h5_path, outcome *out) {
    trial_table table;
    char err[1024];
    if (trial_table_build(&table, s, trials, err, sizeof err)) {
        fprintf(stderr, "bench_sched: %s\n", err);
        return -1;
    }
    if (fifo) /* equal estimates: the queue degenerates to grid order */
        for (int i = 0; i < table.count; i++)
            table.items[i].priority = 1;
    results_h5 *h5 = NULL;
    if (h5_path) {
        unlink(h5_path);
        results_meta meta = {.tool_version = "bench",
                             .sweep_name = s->name,
                             .sweep_text = s->text,
                             .hosts = "simulated",
                             .ranks = workers + 1,
                             .simulated = 1};
        results_grid_columns columns = {0};
        results_trial_row *rows = calloc((size_t)table.count, sizeof *rows);
        char(*values)[SWEEP_MAX_AXES][RESULTS_VALUE_MAX] =
            calloc((size_t)table.count, sizeof *values);
        for (int i = 0; rows && i < table.count; i++)
            rows[i] = table.items[i].row;
        int rc = rows && values
                     ? results_h5_create(h5_path, &meta, &columns, rows,
                                         (const char(*)[SWEEP_MAX_AXES][RESULTS_VALUE_MAX])values,
                                         table.count, &h5, err, sizeof err)
                     : -1;
        free(rows);
        free(values);
        if (rc) {
            fprintf(stderr, "bench_sched: %s\n", err);
            return -1;
        }
    }
    simulation sim = {.s = s, .table = &table, .rng = 12345, .fifo = fifo, .exact = exact};
    worker_slot slots[WORKERS + 1];
    memset(slots, 0, sizeof slots);
    for (int i = 1; i <= workers; i++)
        snprintf(slots[i].host, sizeof slots[i].host, "sim%03d", i);
    root_ctx r;
    root_init(&r, s, &table, h5, NULL, slots, 1, workers + 1, sim_send, &sim);
    double start = monotonic_seconds();
    int rc = root_assign_idle(&r, 0);
    char names[SIMULATE_MAX_GROUPS][32];
    double lr[SIMULATE_MAX_GROUPS];
    while (!rc && sim.count) {
        event e = pop(&sim);
        sim.now = e.time;
        int index = sim.trial_of[e.rank];
        trial_entry *t = &table.items[index];
        message m;
        memset(&m, 0, sizeof m);
        m.trial = index;
        m.attempt = t->row.attempts;
        if (e.epoch > 0) {
            trial_spec spec;
            grid_trial_spec(s, &t->point, &spec);
            int n = simulate_layer_groups(spec.backbone, names, SIMULATE_MAX_GROUPS);
            simulate_group_lr(&spec, e.epoch, n, lr);
            m.type = MSG_EPOCH;
            m.epoch.epoch = e.epoch;
            m.epoch.phase = e.epoch <= spec.feature_extraction.epochs ? 1 : 2;
            m.epoch.val_acc = 0.5 + 0.01 * e.epoch;
            m.epoch.head_lr = lr[0];
            m.epoch.seconds = sim.epoch_seconds[e.rank][e.epoch];
            m.epoch.n_groups = n;
            for (int g = 0; g < n; g++) {
                memcpy(m.epoch.group_names[g], names[g], 32);
                m.epoch.group_lr[g] = lr[g];
            }
            rc = root_handle(&r, e.rank, &m, sim.now);
            if (e.epoch < t->total_epochs)
                push(&sim, (event){sim.now + sim.epoch_seconds[e.rank][e.epoch + 1], e.rank,
                                   e.epoch + 1});
            else
                push(&sim, (event){sim.now, e.rank, 0});
        } else {
            m.type = MSG_DONE;
            m.done.epochs_done = t->total_epochs;
            m.done.best_epoch = t->total_epochs;
            m.done.best_val_acc = 0.5;
            rc = root_handle(&r, e.rank, &m, sim.now);
        }
    }
    if (rc) fprintf(stderr, "bench_sched: %s\n", r.error);
    int counts[TS_COUNT];
    trial_table_counts(&table, counts);
    out->wall_seconds = monotonic_seconds() - start;
    out->makespan = sim.now;
    out->busy = sim.busy_seconds;
    out->efficiency = sim.busy_seconds / (workers * sim.now);
    long with[2], without[2];
    phase1_epochs(&table, with, without);
    out->phase1_epochs = with[0];
    out->messages = r.messages;
    out->per_message_us = 1e6 * r.handle_seconds / (double)(r.messages ? r.messages : 1);
    out->h5_seconds = h5 ? results_h5_write_seconds(h5) : 0;
    out->done = counts[TS_DONE];
    if (h5) results_h5_close(h5, err, sizeof err);
    for (int i = 0; i <= WORKERS; i++)
        free(sim.epoch_seconds[i]);
    free(sim.heap);
    trial_table_free(&table);
    return rc ? -1 : 0;
}

/* The seed sweep with and without a shared phase 1 on 2, 4 and 7 ranks (1, 3, 6 workers). */
static int seed_sweep_sharing(void) {
    sweep s;
    sweep_errors errs = {0};
    const sweep_options opt = {.check_paths = 0};
    trial_list trials;
    char err[256];
    if (sweep_load("sweeps/flowers102-seed.yaml", &opt, &s, &errs) ||
        grid_expand(&s, &trials, err, sizeof err)) {
        fprintf(stderr, "bench_sched: sweeps/flowers102-seed.yaml: %s\n",
                errs.count ? errs.messages[0] : err);
        return -1;
    }
    int rc = 0;
    const int ranks[] = {2, 4, 7};
    for (int k = 0; k < 3 && !rc; k++) {
        outcome shared, whole;
        s.share_phase1 = 1;
        rc = run(&s, &trials, ranks[k] - 1, 0, 1, NULL, &shared);
        s.share_phase1 = 0;
        if (!rc) rc = run(&s, &trials, ranks[k] - 1, 0, 1, NULL, &whole);
        if (!rc)
            printf("bench_sched: seed sweep on %d ranks: %ld phase-1 epochs computed with a "
                   "shared phase 1, %ld without; makespan %.1f vs %.1f cost units (%.2fx)\n",
                   ranks[k], shared.phase1_epochs, whole.phase1_epochs, shared.makespan,
                   whole.makespan, whole.makespan / shared.makespan);
        if (!rc && (shared.done != trials.count || whole.done != trials.count)) rc = -1;
    }
    grid_trials_free(&trials);
    sweep_free(&s);
    return rc;
}

int main(int argc, char **argv) {
    const char *h5_path = argc > 1 ? argv[1] : "/tmp/tlsweep-bench-sched.h5";
    sweep s;
    sweep_errors errs = {0};
    const sweep_options opt = {.check_paths = 0};
    if (sweep_parse("bench-sched.yaml", sweep_text, strlen(sweep_text), &opt, &s, &errs)) {
        fprintf(stderr, "bench_sched: %s\n", errs.count ? errs.messages[0] : "bad sweep");
        return 1;
    }
    trial_list trials;
    char err[256];
    if (grid_expand(&s, &trials, err, sizeof err)) {
        fprintf(stderr, "bench_sched: %s\n", err);
        return 1;
    }
    outcome lpt, fifo, with_h5;
    if (run(&s, &trials, WORKERS, 0, 0, NULL, &lpt) ||
        run(&s, &trials, WORKERS, 1, 0, NULL, &fifo) ||
        run(&s, &trials, WORKERS, 0, 0, h5_path, &with_h5))
        return 1;
    /* Without preemption the last wave leaves workers idle for up to a trial's length; the
     * shortest trial against a worker's share of the work says how much that can cost. */
    double shortest = 1e300;
    for (int i = 0; i < trials.count; i++) {
        trial_spec spec;
        grid_trial_spec(&s, &trials.items[i], &spec);
        shortest = fmin(shortest, schedule_estimate_cost(&spec));
    }
    double share = lpt.busy / WORKERS;
    printf(
        "bench_sched: %d trials (%d done) over %d simulated workers, estimates off by up to 15%%\n",
        trials.count, lpt.done, WORKERS);
    printf("bench_sched: scheduling efficiency %.2f%% longest-first, %.2f%% grid order (FIFO) "
           "(target >= 98%%: %s)\n",
           100 * lpt.efficiency, 100 * fifo.efficiency, lpt.efficiency >= 0.98 ? "met" : "NOT met");
    printf("bench_sched: makespan %.0f cost units; the shortest trial is %.1f%% of a worker's "
           "share of the work (what the last wave can leave idle)\n",
           lpt.makespan, 100 * shortest / share);
    printf("bench_sched: root %.2f us per message without HDF5, %.1f us with the HDF5 writes "
           "(%ld messages; %.2f s of HDF5 for the whole sweep, %s)\n",
           lpt.per_message_us, with_h5.per_message_us, with_h5.messages, with_h5.h5_seconds,
           h5_path);
    unlink(h5_path);
    grid_trials_free(&trials);
    sweep_free(&s);
    int ok = lpt.done == trials.count && with_h5.done == trials.count;
    return seed_sweep_sharing() == 0 && ok ? 0 : 1;
}
