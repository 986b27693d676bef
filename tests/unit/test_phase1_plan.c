/* Shared phase 1 in the trial table (orchestrator/phase1_plan.h): which trials share, who
 * computes, the costs and priorities the queue uses, when a sharing trial may start, what the
 * root does when a computer fails for good, a resumed table keeping its lineage,
 * share_phase1: false, and no sharing for ranks_per_trial > 1. */
#include <string.h>

#include "orchestrator/phase1_plan.h"
#include "orchestrator/root.h"
#include "orchestrator/schedule.h"
#include "tests/testlib.h"

/* The seed sweep's shape: 3 backbones x 2 schedules with the same phase 1 (16 + 8 epochs), and a
 * third schedule whose phase 1 differs (another lr). */
#define SEED_SWEEP(extra)                                                                          \
    "name: t\n"                                                                                    \
    "data: {root: d}\n" extra "grid:\n"                                                            \
    "  backbone: [vgg16_bn, resnet50, resnet152]\n"                                                \
    "  schedule: [linear-decay, exp-decay-3, other]\n"                                             \
    "schedules:\n"                                                                                 \
    "  linear-decay:\n"                                                                            \
    "    feature_extraction: {epochs: 16, lr: 1.0e-3}\n"                                           \
    "    fine_tuning: {epochs: 8, lr: 1.0e-4, layer_decay: linear, lowest_lr: 1.0e-7}\n"           \
    "  exp-decay-3:\n"                                                                             \
    "    feature_extraction: {epochs: 16, lr: 1.0e-3}\n"                                           \
    "    fine_tuning: {epochs: 10, lr: 1.0e-4, layer_decay: exponential, factor: 3}\n"             \
    "  other:\n"                                                                                   \
    "    feature_extraction: {epochs: 16, lr: 2.0e-3}\n"                                           \
    "    fine_tuning: {epochs: 8, lr: 1.0e-4, layer_decay: exponential, factor: 3}\n"

static int build(const char *text, sweep *s, trial_list *list, trial_table *t) {
    sweep_errors errs = {0};
    const sweep_options opt = {0};
    char err[256];
    if (sweep_parse("t.yaml", text, strlen(text), &opt, s, &errs) ||
        grid_expand(s, list, err, sizeof err) || trial_table_build(t, s, list, err, sizeof err)) {
        tl_fail(__FILE__, __LINE__, "cannot build the test sweep: %s",
                errs.count ? errs.messages[0] : err);
        return -1;
    }
    return 0;
}

static void release(sweep *s, trial_list *list, trial_table *t) {
    trial_table_free(t);
    grid_trials_free(list);
    sweep_free(s);
}

static int find(const trial_table *t, const char *name) {
    int i = trial_table_find(t, name);
    if (i < 0) tl_fail(__FILE__, __LINE__, "no trial %s", name);
    return i;
}

/* Grid order is backbone-major: vgg16_bn x (linear, exp, other), resnet50 x ..., ... */
static void test_groups(void) {
    sweep s;
    trial_list list;
    trial_table t;
    if (build(SEED_SWEEP(""), &s, &list, &t)) return;
    for (int b = 0; b < 3; b++) {
        const trial_entry *lin = &t.items[3 * b], *exp = &t.items[3 * b + 1],
                          *other = &t.items[3 * b + 2];
        /* the longer phase 2 (exp-decay-3: 10 epochs) computes the shared phase 1 */
        CHECK(exp->phase1_from < 0 && exp->phase1_node && exp->row.phase1_trial == exp->row.id,
              "%s: from %d node %d", exp->row.name, exp->phase1_from, exp->phase1_node);
        CHECK(lin->phase1_from == 3 * b + 1 && lin->phase1_node &&
                  lin->row.phase1_trial == exp->row.id,
              "%s: from %d, phase1_trial %d", lin->row.name, lin->phase1_from,
              lin->row.phase1_trial);
        CHECK(other->phase1_from < 0 && !other->phase1_node, "%s shares a different phase 1",
              other->row.name);
        /* costs: what each computes; the computer's priority covers the longest path */
        CHECK(lin->row.estimated_cost < exp->row.estimated_cost &&
                  exp->priority == exp->row.estimated_cost &&
                  lin->priority == lin->row.estimated_cost,
              "%s %g/%g, %s %g/%g", lin->row.name, lin->row.estimated_cost, lin->priority,
              exp->row.name, exp->row.estimated_cost, exp->priority);
    }
    long with[2], without[2];
    phase1_epochs(&t, with, without);
    CHECK(without[0] == 9 * 16 && with[0] == 6 * 16 && with[1] == without[1],
          "phase-1 epochs %ld with sharing, %ld without", with[0], without[0]);
    release(&s, &list, &t);
}

static void test_seed_sweep_epochs(void) {
    sweep s;
    trial_list list;
    trial_table t;
    sweep_errors errs = {0};
    const sweep_options opt = {0};
    char err[256];
    if (sweep_load("sweeps/flowers102-seed.yaml", &opt, &s, &errs) ||
        grid_expand(&s, &list, err, sizeof err) ||
        trial_table_build(&t, &s, &list, err, sizeof err)) {
        tl_fail(__FILE__, __LINE__, "cannot load the seed sweep");
        return;
    }
    long with[2], without[2];
    phase1_epochs(&t, with, without);
    CHECK(without[0] == 96 && with[0] == 48 && with[1] == 48 && without[1] == 48,
          "seed sweep: phase-1 epochs %ld with sharing, %ld without; phase 2 %ld", with[0],
          without[0], with[1]);
    release(&s, &list, &t);
}

static void test_off(void) {
    sweep s;
    trial_list list;
    trial_table t;
    if (build(SEED_SWEEP("share_phase1: false\n"), &s, &list, &t)) return;
    int shared = 0;
    for (int i = 0; i < t.count; i++)
        shared += t.items[i].phase1_from >= 0 || t.items[i].phase1_node ||
                  t.items[i].row.phase1_trial != t.items[i].row.id;
    CHECK(shared == 0, "%d trials share with share_phase1: false", shared);
    release(&s, &list, &t);
    sweep_errors errs = {0};
    const sweep_options opt = {0};
    const char *bad = SEED_SWEEP("share_phase1: maybe\n");
    CHECK(sweep_parse("bad.yaml", bad, strlen(bad), &opt, &s, &errs) != 0 && errs.count == 1 &&
              !strcmp(errs.messages[0],
                      "bad.yaml:3: share_phase1: expected true or false, got 'maybe'"),
          "got: %s", errs.count ? errs.messages[0] : "(accepted)");
    sweep_errors_free(&errs);
    sweep_free(&s);
}

/* ranks_per_trial > 1: a group trains each trial and cannot use a shared node yet, so nothing
 * is shared, and a stored lineage (--extend of a file made with one rank a trial) is dropped for
 * the trials not done; a done trial keeps the lineage it was computed with. */
static void test_off_for_groups(void) {
    sweep s;
    trial_list list;
    trial_table t;
    if (build(SEED_SWEEP("ranks_per_trial: 2\n"), &s, &list, &t)) return;
    int shared = 0;
    for (int i = 0; i < t.count; i++)
        shared += t.items[i].phase1_from >= 0 || t.items[i].phase1_node ||
                  t.items[i].row.phase1_trial != t.items[i].row.id;
    CHECK(shared == 0, "%d trials share with ranks_per_trial: 2", shared);
    int exp = find(&t, "resnet50__exp-decay-3"), lin = find(&t, "resnet50__linear-decay");
    int vexp = find(&t, "vgg16_bn__exp-decay-3"), vlin = find(&t, "vgg16_bn__linear-decay");
    if (exp < 0 || lin < 0 || vexp < 0 || vlin < 0) {
        release(&s, &list, &t);
        return;
    }
    t.items[lin].row.phase1_trial = t.items[exp].row.id;
    t.items[vlin].row.phase1_trial = t.items[vexp].row.id;
    t.items[vlin].state = TS_DONE;
    unsigned char fresh[16] = {0};
    phase1_plan(&t, &s, fresh, 1);
    CHECK(t.items[lin].phase1_from < 0 && t.items[lin].row.phase1_trial == t.items[lin].row.id &&
              !t.items[exp].phase1_node,
          "a stored lineage kept for a trial not done: from %d", t.items[lin].phase1_from);
    CHECK(t.items[vlin].row.phase1_trial == t.items[vexp].row.id,
          "a done trial lost the lineage it was computed with");
    release(&s, &list, &t);
}

/* The queue: a sharing trial waits for its computer's phase-1 epochs in the file. */
static void test_ready(void) {
    sweep s;
    trial_list list;
    trial_table t;
    if (build(SEED_SWEEP(""), &s, &list, &t)) return;
    char err[256];
    int exp = find(&t, "resnet152__exp-decay-3"), lin = find(&t, "resnet152__linear-decay");
    if (exp < 0 || lin < 0) {
        release(&s, &list, &t);
        return;
    }
    CHECK(phase1_ready(&t, exp) && !phase1_ready(&t, lin), "readiness before any epoch");
    /* take everything but resnet152's pair out of the queue */
    for (int i = 0; i < t.count; i++)
        if (i != exp && i != lin) trial_set_state(&t, i, TS_RUNNING, err, sizeof err);
    CHECK(schedule_next(&t, 1) == exp, "the computer is not first");
    trial_set_state(&t, exp, TS_RUNNING, err, sizeof err);
    CHECK(schedule_next(&t, 2) == -1, "a sharing trial started before its phase 1");
    for (int e = 1; e < 16; e++)
        t.items[exp].epoch_written[e] = 1;
    CHECK(schedule_next(&t, 2) == -1, "started after 15 of 16 phase-1 epochs");
    t.items[exp].epoch_written[16] = 1;
    CHECK(schedule_next(&t, 2) == lin, "not started after the phase-1 epochs");
    release(&s, &list, &t);
}

static int drop(void *transport, int rank, const message *m, char *err, size_t errlen) {
    (void)transport, (void)rank, (void)m, (void)err, (void)errlen;
    return 0;
}

/* A computer that fails for good before its phase 1 is complete fails the trials waiting on
 * it, which would otherwise wait forever (or compute the same failing phase 1 each). */
static void test_computer_fails(void) {
    sweep s;
    trial_list list;
    trial_table t;
    if (build(SEED_SWEEP("retries: 0\n"), &s, &list, &t)) return;
    int exp = find(&t, "vgg16_bn__exp-decay-3"), lin = find(&t, "vgg16_bn__linear-decay");
    if (exp < 0 || lin < 0) {
        release(&s, &list, &t);
        return;
    }
    worker_slot workers[2];
    memset(workers, 0, sizeof workers);
    root_ctx r;
    root_init(&r, &s, &t, NULL, NULL, workers, 1, 2, drop, NULL);
    CHECK(root_assign_idle(&r, 0.0) == 0 && workers[1].busy == exp, "rank 1 got %d, want %d",
          workers[1].busy, exp);
    message f = {.type = MSG_FAILED, .trial = exp, .attempt = 1};
    f.failure = TRIAL_FAILURE_TRAINING;
    snprintf(f.text, sizeof f.text, "rank 1 on node17: diverged at epoch 3");
    CHECK(root_handle(&r, 1, &f, 1.0) == 0, "FAILED refused: %s", r.error);
    CHECK(
        t.items[exp].state == TS_FAILED && t.items[lin].state == TS_FAILED &&
            strstr(t.items[lin].row.error, "shared phase 1 failed in trial vgg16_bn__exp-decay-3"),
        "computer %d, sharing trial %d ('%s')", t.items[exp].state, t.items[lin].state,
        t.items[lin].row.error);
    int others = 0;
    for (int i = 0; i < t.count; i++)
        others += i != exp && i != lin && t.items[i].state == TS_FAILED;
    CHECK(others == 0, "%d trials of other groups failed too", others);
    release(&s, &list, &t);
}

/* A resumed table keeps its stored lineage; a fresh (--extend) trial joins a stored computer. */
static void test_stored(void) {
    sweep s;
    trial_list list;
    trial_table t;
    if (build(SEED_SWEEP(""), &s, &list, &t)) return;
    int exp = find(&t, "resnet50__exp-decay-3"), lin = find(&t, "resnet50__linear-decay");
    if (exp < 0 || lin < 0) {
        release(&s, &list, &t);
        return;
    }
    /* stored: linear-decay computes its own and leads nothing; exp-decay-3 is new */
    unsigned char fresh[16] = {0};
    for (int i = 0; i < t.count; i++)
        t.items[i].row.phase1_trial = t.items[i].row.id;
    fresh[exp] = 1;
    phase1_plan(&t, &s, fresh, 1);
    CHECK(t.items[exp].phase1_from == lin && t.items[lin].phase1_node &&
              t.items[lin].phase1_from < 0,
          "the new trial does not join the stored computer: from %d", t.items[exp].phase1_from);
    int others = 0;
    for (int i = 0; i < t.count; i++)
        others += i != exp && t.items[i].phase1_from >= 0;
    CHECK(others == 0, "%d stored trials changed lineage", others);
    /* nothing fresh: the stored lineage alone */
    memset(fresh, 0, sizeof fresh);
    phase1_plan(&t, &s, fresh, 1);
    CHECK(t.items[exp].phase1_from == lin, "a derived lineage lost its stored computer");
    release(&s, &list, &t);
}

int main(void) {
    static const char *const names[] = {"groups, computers, costs",
                                        "the seed sweep's epochs",
                                        "share_phase1: false",
                                        "the queue waits for phase 1",
                                        "a computer failing for good fails its sharers",
                                        "stored lineage",
                                        "off for ranks_per_trial > 1"};
    static const tl_case_fn cases[] = {test_groups,        test_seed_sweep_epochs, test_off,
                                       test_ready,         test_computer_fails,    test_stored,
                                       test_off_for_groups};
    return TL_RUN("phase1 plan", names, cases);
}
