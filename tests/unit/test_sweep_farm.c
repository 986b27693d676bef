/* The orchestrator's pieces without MPI: the trial state machine (legal and illegal
 * transitions, retry budget), the longest-first queue (and retries preferring another rank),
 * the protocol's encoding and its checks, the root's retry decision by failure kind (root_handle
 * in this process, its messages caught by a send function), progress output to a file (plain
 * lines, a periodic summary, no cursor codes), the end-of-run summary, the simulated
 * trials' learning rates, and data-parallel groups at the root (only voices get trials). */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "orchestrator/progress.h"
#include "orchestrator/protocol.h"
#include "orchestrator/root.h"
#include "orchestrator/schedule.h"
#include "orchestrator/simulate.h"
#include "orchestrator/summary.h"
#include "orchestrator/trials.h"
#include "tests/testlib.h"

static const char *const text = "name: t\n"
                                "data: {root: d}\n"
                                "retries: 1\n"
                                "grid:\n"
                                "  backbone: [resnet18, vgg16_bn, resnet152]\n"
                                "  schedule: [s]\n"
                                "schedules:\n"
                                "  s: {}\n";

static int build(sweep *s, trial_list *list, trial_table *t) {
    sweep_errors errs = {0};
    const sweep_options opt = {0};
    char err[256];
    if (sweep_parse("t.yaml", text, strlen(text), &opt, s, &errs) ||
        grid_expand(s, list, err, sizeof err) || trial_table_build(t, s, list, err, sizeof err)) {
        tl_fail(__FILE__, __LINE__, "cannot build the test sweep");
        return -1;
    }
    return 0;
}

static void test_state_machine(void) {
    sweep s;
    trial_list list;
    trial_table t;
    if (build(&s, &list, &t)) return;
    char err[256];
    CHECK(trial_set_state(&t, 0, TS_DONE, err, sizeof err) == -1 &&
              strstr(err, "illegal transition pending -> done"),
          "pending -> done accepted (%s)", err);
    CHECK(trial_set_state(&t, 0, TS_RUNNING, err, sizeof err) == 0, "%s", err);
    CHECK(t.items[0].row.attempts == 1 && !strcmp(t.items[0].row.status, "running"),
          "attempts/status not kept");
    CHECK(trial_set_state(&t, 0, TS_RUNNING, err, sizeof err) == -1, "running -> running accepted");
    CHECK(trial_set_state(&t, 0, TS_FAILED, err, sizeof err) == 0, "%s", err);
    CHECK(trial_set_state(&t, 0, TS_PENDING, err, sizeof err) == 0, "first retry refused: %s", err);
    CHECK(trial_set_state(&t, 0, TS_RUNNING, err, sizeof err) == 0, "%s", err);
    CHECK(trial_set_state(&t, 0, TS_FAILED, err, sizeof err) == 0, "%s", err);
    CHECK(trial_set_state(&t, 0, TS_PENDING, err, sizeof err) == -1 &&
              strstr(err, "no attempts left"),
          "a retry past retries: 1 was accepted (%s)", err);
    CHECK(trial_set_state(&t, 1, TS_RUNNING, err, sizeof err) == 0 &&
              trial_set_state(&t, 1, TS_PREEMPTED, err, sizeof err) == 0 &&
              trial_set_state(&t, 1, TS_PENDING, err, sizeof err) == 0,
          "preemption cycle refused: %s", err);
    CHECK(trial_set_state(&t, 1, TS_RUNNING, err, sizeof err) == 0 &&
              trial_set_state(&t, 1, TS_DONE, err, sizeof err) == 0 &&
              trial_set_state(&t, 1, TS_PENDING, err, sizeof err) == -1,
          "done -> pending accepted");
    int counts[TS_COUNT];
    trial_table_counts(&t, counts);
    CHECK(counts[TS_FAILED] == 1 && counts[TS_DONE] == 1 && counts[TS_PENDING] == 1, "counts");
    trial_table_free(&t);
    grid_trials_free(&list);
    sweep_free(&s);
}

static void test_longest_first(void) {
    sweep s;
    trial_list list;
    trial_table t;
    if (build(&s, &list, &t)) return;
    char err[256];
    /* vgg16_bn (15.5 GFLOPs) > resnet152 (11.6) > resnet18 (1.8) */
    int first = schedule_next(&t, 1);
    CHECK(first == 1, "first pick is %s, want vgg16_bn",
          first >= 0 ? t.items[first].row.name : "-");
    trial_set_state(&t, first, TS_RUNNING, err, sizeof err);
    int second = schedule_next(&t, 2);
    CHECK(second == 2, "second pick is %s, want resnet152",
          second >= 0 ? t.items[second].row.name : "-");
    /* a failed trial goes to another rank when it can */
    trial_set_state(&t, first, TS_FAILED, err, sizeof err);
    t.items[first].last_failed_rank = 1;
    trial_set_state(&t, first, TS_PENDING, err, sizeof err);
    CHECK(schedule_next(&t, 1) == 2, "rank 1 got its own failed trial back while others wait");
    CHECK(schedule_next(&t, 3) == 1, "rank 3 did not get the retry");
    trial_table_free(&t);
    grid_trials_free(&list);
    sweep_free(&s);
}

static void test_protocol(void) {
    message m, back;
    unsigned char buf[PROTOCOL_MAX_BYTES];
    size_t len = 0;
    char err[256];
    epoch_record r = {.epoch = 17,
                      .phase = 2,
                      .train_loss = 0.5,
                      .val_acc = 0.9,
                      .head_lr = 1e-4,
                      .data_wait_s = 0.25,
                      .n_groups = 2,
                      .group_names = (const char *const[]){"fc", "layer4"},
                      .group_lr = (const double[]){1e-4, 1e-4 / 3}};
    protocol_epoch_from_record(&m, 4, 2, &r);
    CHECK(protocol_encode(&m, buf, sizeof buf, &len) == 0, "encode");
    CHECK(protocol_decode(buf, len, &back, err, sizeof err) == 0, "decode: %s", err);
    CHECK(back.type == MSG_EPOCH && back.trial == 4 && back.attempt == 2 &&
              back.epoch.epoch == 17 && back.epoch.n_groups == 2 &&
              !strcmp(back.epoch.group_names[1], "layer4") && back.epoch.group_lr[1] == 1e-4 / 3 &&
              back.epoch.val_acc == 0.9 && back.epoch.data_wait_s == 0.25,
          "EPOCH did not round-trip");
    /* every field of the record crosses the wire, a field added to epoch_fields.h too */
    epoch_record all = {0};
    double value = 1;
#define SET_FIELD(kind, name) all.name = (EPOCH_FIELD_TYPE_##kind)(value += 1);
    EPOCH_FIELDS(SET_FIELD)
#undef SET_FIELD
    all.phase = 2; /* the decoder checks epoch >= 1 and phase 1 or 2 */
    protocol_epoch_from_record(&m, 0, 1, &all);
    CHECK(protocol_encode(&m, buf, sizeof buf, &len) == 0, "encode");
    CHECK(protocol_decode(buf, len, &back, err, sizeof err) == 0, "decode: %s", err);
#define SAME_FIELD(kind, name)                                                                     \
    CHECK(back.epoch.name == all.name, "EPOCH field %s: sent %g, got %g", #name, (double)all.name, \
          (double)back.epoch.name);
    EPOCH_FIELDS(SAME_FIELD)
#undef SAME_FIELD
    message d = {.type = MSG_DONE, .trial = 3, .attempt = 1};
    d.done =
        (msg_done){.stopped = 1, .epochs_done = 1, .batches_done = 37, .batches_per_epoch = 385};
    protocol_encode(&d, buf, sizeof buf, &len);
    CHECK(protocol_decode(buf, len, &back, err, sizeof err) == 0 && back.done.stopped == 1 &&
              back.done.epochs_done == 1 && back.done.batches_done == 37 &&
              back.done.batches_per_epoch == 385,
          "DONE (stopped inside an epoch) did not round-trip");
    message st = {.type = MSG_START, .trial = -1, .start = {.group = -1, .voice = -1}};
    snprintf(st.text, sizeof st.text, "runs/x.h5.d");
    protocol_encode(&st, buf, sizeof buf, &len);
    CHECK(protocol_decode(buf, len, &back, err, sizeof err) == 0 && back.type == MSG_START &&
              !strcmp(back.text, "runs/x.h5.d") && back.start.group == -1 && back.start.voice == -1,
          "START (no group) did not round-trip: %s", err);
    st.start = (msg_start){.group = 3, .voice = 5}; /* ranks_per_trial: group 3, voice rank 5 */
    protocol_encode(&st, buf, sizeof buf, &len);
    CHECK(protocol_decode(buf, len, &back, err, sizeof err) == 0 && back.start.group == 3 &&
              back.start.voice == 5 && !strcmp(back.text, "runs/x.h5.d"),
          "START (group 3, voice 5) did not round-trip: %s", err);
    /* a group without a voice, a voice without a group, group 0, the root as a voice */
    static const msg_start bad_start[] = {{3, -1}, {-1, 2}, {0, 1}, {2, 0}, {-2, -1}, {-1, -7}};
    for (size_t i = 0; i < sizeof bad_start / sizeof bad_start[0]; i++) {
        st.start = bad_start[i];
        protocol_encode(&st, buf, sizeof buf, &len);
        char want[64];
        snprintf(want, sizeof want, "START message with group %d and voice rank %d",
                 bad_start[i].group, bad_start[i].voice);
        CHECK(protocol_decode(buf, len, &back, err, sizeof err) == -1 && strstr(err, want),
              "START with group %d voice %d accepted (%s)", bad_start[i].group, bad_start[i].voice,
              err);
    }
    st.start = (msg_start){.group = 1, .voice = 1};
    protocol_encode(&st, buf, sizeof buf, &len);
    CHECK(protocol_decode(buf, len - 4, &back, err, sizeof err) == -1,
          "a START without its voice was accepted");
    message f = {.type = MSG_FAILED, .trial = 1, .attempt = 1, .failure = TRIAL_FAILURE_SETUP};
    snprintf(f.text, sizeof f.text, "rank 3 on node17: trial x: no such weights file");
    protocol_encode(&f, buf, sizeof buf, &len);
    CHECK(protocol_decode(buf, len, &back, err, sizeof err) == 0 && !strcmp(back.text, f.text) &&
              back.failure == TRIAL_FAILURE_SETUP,
          "FAILED did not round-trip");
    buf[len - 4] = 7; /* the failure kind, last in the message */
    CHECK(protocol_decode(buf, len, &back, err, sizeof err) == -1 && strstr(err, "failure kind 7"),
          "an unknown failure kind was accepted (%s)", err);
    protocol_encode(&f, buf, sizeof buf, &len);
    /* the checks */
    CHECK(protocol_decode(buf, len - 1, &back, err, sizeof err) == -1 && strstr(err, "header says"),
          "a truncated message was accepted (%s)", err);
    buf[4] = 9; /* version */
    CHECK(protocol_decode(buf, len, &back, err, sizeof err) == -1 &&
              strstr(err, "protocol version 9"),
          "another version was accepted (%s)", err);
    buf[0] = 0;
    CHECK(protocol_decode(buf, len, &back, err, sizeof err) == -1 &&
              strstr(err, "not a tlsweep message"),
          "a foreign message was accepted (%s)", err);
    message a = {.type = MSG_ASSIGN, .trial = 2, .attempt = 1};
    snprintf(a.name, sizeof a.name, "resnet152__s");
    snprintf(a.text, sizeof a.text, "resnet152__t"); /* whose folder holds its shared phase 1 */
    protocol_encode(&a, buf, sizeof buf, &len);
    CHECK(protocol_decode(buf, len, &back, err, sizeof err) == 0 && back.trial == 2 &&
              back.attempt == 1 && !strcmp(back.name, "resnet152__s") &&
              !strcmp(back.text, "resnet152__t"),
          "ASSIGN did not round-trip");
    message bad = {.type = MSG_EPOCH, .trial = 0};
    bad.epoch.epoch = 0;
    bad.epoch.phase = 1;
    protocol_encode(&bad, buf, sizeof buf, &len);
    CHECK(protocol_decode(buf, len, &back, err, sizeof err) == -1, "epoch 0 accepted");
}

/* The root's messages to its one worker, kept for the checks. */
typedef struct {
    int count;
    message last;
} outbox;

static int keep(void *transport, int rank, const message *m, char *err, size_t errlen) {
    outbox *box = transport;
    (void)rank;
    (void)err;
    (void)errlen;
    box->count++;
    box->last = *m;
    return 0;
}

/* The worker's report of a failure of this kind; returns the trial it was about. */
static int fail_assigned(root_ctx *r, const outbox *box, trial_failure kind, const char *why) {
    message f = {.type = MSG_FAILED, .trial = box->last.trial, .attempt = box->last.attempt};
    f.failure = kind;
    snprintf(f.text, sizeof f.text, "rank 1 on node17: %s", why);
    CHECK(root_handle(r, 1, &f, 1.0) == 0, "FAILED refused: %s", r->error);
    return f.trial;
}

/* Only a training failure (it may pass next time) is retried; a setup or checkpoint failure
 * fails the trial at once and its error says why there is no retry. */
static void test_failure_kinds(void) {
    sweep s;
    trial_list list;
    trial_table t;
    if (build(&s, &list, &t)) return; /* retries: 1, so two attempts */
    worker_slot workers[2];
    outbox box = {0};
    root_ctx r;
    root_init(&r, &s, &t, NULL, NULL, workers, 1, 2, keep, &box);
    CHECK(root_assign_idle(&r, 0.0) == 0 && box.last.type == MSG_ASSIGN, "no ASSIGN");
    int setup = fail_assigned(&r, &box, TRIAL_FAILURE_SETUP, "weights: no such file");
    CHECK(t.items[setup].state == TS_FAILED && t.items[setup].row.attempts == 1,
          "a setup failure was retried (state %d, attempts %d)", t.items[setup].state,
          t.items[setup].row.attempts);
    CHECK(strstr(t.items[setup].row.error, "weights: no such file") &&
              strstr(t.items[setup].row.error, "not retried"),
          "setup failure's error: '%s'", t.items[setup].row.error);
    CHECK(box.last.type == MSG_ASSIGN && box.last.trial != setup, "the worker got no next trial");
    int checkpoint = fail_assigned(&r, &box, TRIAL_FAILURE_CHECKPOINT, "resume: other settings");
    CHECK(t.items[checkpoint].state == TS_FAILED &&
              strstr(t.items[checkpoint].row.error, "resume checkpoint"),
          "a checkpoint failure was retried or says no why: '%s'", t.items[checkpoint].row.error);
    int training = fail_assigned(&r, &box, TRIAL_FAILURE_TRAINING, "diverged at epoch 1");
    CHECK(t.items[training].state == TS_RUNNING && box.last.trial == training &&
              t.items[training].row.attempts == 2,
          "a training failure was not retried (state %d)", t.items[training].state);
    CHECK(!strstr(t.items[training].row.error, "not retried"), "retried, yet says not: '%s'",
          t.items[training].row.error);
    trial_table_free(&t);
    grid_trials_free(&list);
    sweep_free(&s);
}

/* A trial its worker stopped on its own (a signal to that rank alone) stops the sweep: the root
 * does not hand that worker trial after trial that it stops at once, forever. */
static void test_worker_stop(void) {
    sweep s;
    trial_list list;
    trial_table t;
    if (build(&s, &list, &t)) return;
    worker_slot workers[3];
    outbox box = {0};
    root_ctx r;
    root_init(&r, &s, &t, NULL, NULL, workers, 1, 3, keep, &box);
    CHECK(root_assign_idle(&r, 0.0) == 0 && box.count == 2, "%d messages, want 2 ASSIGNs",
          box.count);
    int trial = workers[1].busy;
    message d = {.type = MSG_DONE, .trial = trial, .attempt = 1};
    d.done = (msg_done){.stopped = 1, .epochs_done = 0, .batches_done = 3, .batches_per_epoch = 9};
    CHECK(root_handle(&r, 1, &d, 1.0) == 0, "DONE refused: %s", r.error);
    CHECK(r.stopping && t.items[trial].state == TS_PENDING && workers[1].busy < 0,
          "stopping %d, state %d, rank 1 busy with %d", r.stopping, t.items[trial].state,
          workers[1].busy);
    CHECK(box.count == 3 && box.last.type == MSG_STOP && box.last.trial == workers[2].busy,
          "after the worker's stop: %d messages, the last %s (want STOP to rank 2's trial)",
          box.count, msg_type_name(box.last.type));
    trial_table_free(&t);
    grid_trials_free(&list);
    sweep_free(&s);
}

/* The root's messages with the ranks they went to. */
typedef struct {
    int count;
    int rank[32];
    msg_type type[32];
} addressed;

static int keep_addressed(void *transport, int rank, const message *m, char *err, size_t errlen) {
    addressed *box = transport;
    (void)err;
    (void)errlen;
    if (box->count < 32) {
        box->rank[box->count] = rank;
        box->type[box->count] = m->type;
    }
    box->count++;
    return 0;
}

/* ranks_per_trial 2 over ranks 1..5: groups {1,2} and {3,4}, rank 5 idle. Only the voices 1
 * and 3 get trials; a member's or an idle rank's message breaks the protocol; SHUTDOWN goes to
 * the voices and the idle rank, never to a member (it listens to its voice). */
static void test_groups_at_root(void) {
    sweep s;
    trial_list list;
    trial_table t;
    if (build(&s, &list, &t)) return;
    worker_slot workers[6];
    memset(workers, 0, sizeof workers);
    addressed box = {0};
    root_ctx r;
    root_init(&r, &s, &t, NULL, NULL, workers, 1, 6, keep_addressed, &box);
    const int group_of[6] = {-1, 1, 1, 2, 2, -1}, voice_of[6] = {-1, 1, 1, 3, 3, -1};
    root_set_groups(&r, group_of, voice_of);
    CHECK(root_is_member(&r, 2) && root_is_member(&r, 4) && !root_is_member(&r, 1) &&
              !root_is_member(&r, 5),
          "members: 2 and 4");
    CHECK(root_assign_idle(&r, 0.0) == 0 && box.count == 2 && box.rank[0] == 1 &&
              box.rank[1] == 3 && box.type[0] == MSG_ASSIGN && box.type[1] == MSG_ASSIGN,
          "%d messages, want ASSIGN to ranks 1 and 3 (got ranks %d, %d)", box.count, box.rank[0],
          box.rank[1]);
    CHECK(workers[2].busy < 0 && workers[4].busy < 0 && workers[5].busy < 0,
          "a member or the idle rank was given a trial");
    /* the voice's DONE frees the group, which takes the third trial */
    message d = {.type = MSG_DONE, .trial = workers[1].busy, .attempt = 1};
    d.done = (msg_done){.epochs_done = t.items[workers[1].busy].total_epochs};
    CHECK(root_handle(&r, 1, &d, 1.0) == 0, "DONE refused: %s", r.error);
    CHECK(box.count == 3 && box.rank[2] == 1 && box.type[2] == MSG_ASSIGN,
          "after the DONE: %d messages, the last to rank %d", box.count, box.rank[2]);
    /* a member, an idle rank: nobody talks to the root but voices */
    message hb = {.type = MSG_HEARTBEAT, .trial = workers[3].busy};
    CHECK(root_handle(&r, 4, &hb, 2.0) == -1 && r.error_kind == ROOT_ERROR_PROTOCOL &&
              strstr(r.error, "rank 4 on ") &&
              strstr(r.error, "trains in group 2, for which only its voice (rank 3) speaks"),
          "a member's message: %s", r.error);
    CHECK(root_handle(&r, 5, &hb, 2.0) == -1 && strstr(r.error, "is idle (in no group)"),
          "an idle rank's message: %s", r.error);
    box.count = 0;
    CHECK(root_shutdown(&r) == 0 && box.count == 3 && box.rank[0] == 1 && box.rank[1] == 3 &&
              box.rank[2] == 5 && box.type[0] == MSG_SHUTDOWN,
          "SHUTDOWN to %d ranks (want 1, 3 and 5)", box.count);
    trial_table_free(&t);
    grid_trials_free(&list);
    sweep_free(&s);
}

/* Not a terminal (a file, `| tee`, Slurm): event lines and, every PROGRESS_SUMMARY_EVERY
 * seconds, one summary line; never a cursor code. -q: nothing. */
static void test_progress_to_file(void) {
    sweep s;
    trial_list list;
    trial_table t;
    if (build(&s, &list, &t)) return;
    for (int quiet = 0; quiet <= 1; quiet++) {
        FILE *out = tmpfile();
        if (!out) {
            tl_fail(__FILE__, __LINE__, "no temporary file");
            break;
        }
        progress *p = progress_create(out, quiet, 100.0);
        progress_event(p, &t, 101.0, "rank 1 on node17: start %s", t.items[0].row.name);
        for (double now = 101.0; now < 100.0 + 2.5 * PROGRESS_SUMMARY_EVERY; now += 0.5)
            progress_tick(p, &t, now);
        progress_free(p);
        char text[4096] = "";
        rewind(out);
        size_t n = fread(text, 1, sizeof text - 1, out);
        text[n] = 0;
        fclose(out);
        int lines = 0, summaries = 0;
        for (const char *c = text; (c = strchr(c, '\n')); c++)
            lines++;
        for (const char *c = text; (c = strstr(c, "] trials: 0 done, 0 running, 3 pending")); c++)
            summaries++;
        if (quiet) {
            CHECK(n == 0, "-q printed: '%s'", text);
            continue;
        }
        CHECK(!strchr(text, '\033'), "a cursor code in a file: '%s'", text);
        CHECK(strstr(text, "[    1.0s] 0/3 done") && strstr(text, "start resnet18__s"),
              "no event line: '%s'", text);
        CHECK(summaries == 2 && lines == 3, "%d summaries in %d lines over %.0f s: '%s'", summaries,
              lines, 2.5 * PROGRESS_SUMMARY_EVERY, text);
    }
    trial_table_free(&t);
    grid_trials_free(&list);
    sweep_free(&s);
}

/* A file's whole text into buf (NUL-terminated); the file is closed. */
static void read_back(FILE *f, char *buf, size_t len) {
    rewind(f);
    size_t n = fread(buf, 1, len - 1, f);
    buf[n] = 0;
    fclose(f);
}

/* The end of a run: counts, the best trials best first (those with an epoch only), where
 * things are, the pandas line; each failure with its reason on the error stream. */
static void test_run_summary(void) {
    sweep s;
    trial_list list;
    trial_table t;
    if (build(&s, &list, &t)) return;
    char err[256];
    for (int i = 0; i < 3; i++)
        trial_set_state(&t, i, TS_RUNNING, err, sizeof err);
    trial_set_state(&t, 0, TS_DONE, err, sizeof err);
    t.items[0].row.best_val_acc = 0.5;
    t.items[0].row.best_epoch = 2;
    trial_set_state(&t, 1, TS_DONE, err, sizeof err);
    t.items[1].row.best_val_acc = 0.75;
    t.items[1].row.best_epoch = 3;
    trial_set_state(&t, 2, TS_FAILED, err, sizeof err);
    snprintf(t.items[2].row.error, sizeof t.items[2].row.error, "rank 1 on n: diverged");
    FILE *out = tmpfile(), *errs = tmpfile();
    if (!out || !errs) {
        tl_fail(__FILE__, __LINE__, "no temporary file");
        return;
    }
    const run_summary sum = {.output = "runs/o'k.h5", .trials_dir = "runs/o'k.h5.d", .seconds = 2};
    summary_print(out, errs, &t, &sum);
    char text[4096], failures[1024];
    read_back(out, text, sizeof text);
    read_back(errs, failures, sizeof failures);
    const char *first = strstr(text, "vgg16_bn__s "), *second = strstr(text, "resnet18__s ");
    CHECK(strstr(text, "tlsweep run: 2 done, 1 failed, 0 not finished of 3 trials in 2.0 s") &&
              !strstr(text, "rerun"),
          "counts: '%s'", text);
    CHECK(first && second && first < second && strstr(first, "0.7500 at epoch 3") &&
              !strstr(text, "resnet152__s "),
          "best trials (vgg16_bn 0.75, then resnet18 0.5; none for the failed one): '%s'", text);
    CHECK(strstr(text, "checkpoints: runs/o'k.h5.d/TRIAL/best.safetensors") &&
              strstr(text, "into runs/o'k-figures/") &&
              strstr(text, "h5py.File('runs/o\\'k.h5', 'r', libver='latest', swmr=True)"),
          "paths or the pandas line: '%s'", text);
    CHECK(!strcmp(failures, "failed: resnet152__s: rank 1 on n: diverged\n"), "failures: '%s'",
          failures);
    trial_table_free(&t);
    grid_trials_free(&list);
    sweep_free(&s);
}

static void test_simulated_lr(void) {
    trial_spec spec;
    trial_spec_defaults(&spec);
    snprintf(spec.backbone, sizeof spec.backbone, "vgg16_bn");
    char names[SIMULATE_MAX_GROUPS][32];
    int n = simulate_layer_groups("vgg16_bn", names, SIMULATE_MAX_GROUPS);
    CHECK(n == 45 && !strcmp(names[0], "classifier") && !strcmp(names[1], "features.43") &&
              !strcmp(names[44], "features.0"),
          "vgg16_bn groups: %d, %s .. %s", n, names[0], names[n - 1]);
    CHECK(simulate_layer_groups("resnet50", names, SIMULATE_MAX_GROUPS) == 7 &&
              !strcmp(names[6], "conv1"),
          "resnet groups");
    double lr[SIMULATE_MAX_GROUPS];
    simulate_group_lr(&spec, 7, n, lr); /* phase 1, second StepLR step: 3e-4 on the head only */
    CHECK(fabs(lr[0] - 3e-4) < 1e-15 && lr[1] == 0, "phase 1 lr %g %g", lr[0], lr[1]);
    spec.fine_tuning.decay = LAYER_DECAY_LINEAR;
    simulate_group_lr(&spec, 17, n, lr); /* the seed: features.i at 1e-4 + (1e-7-1e-4)/44*(44-i) */
    CHECK(fabs(lr[0] - 1e-4) < 1e-18 && fabs(lr[44] - 1e-7) < 1e-18 &&
              fabs(lr[1] - (1e-4 + (1e-7 - 1e-4) / 44 * 1)) < 1e-18,
          "linear decay %g %g %g", lr[0], lr[1], lr[44]);
    spec.fine_tuning.decay = LAYER_DECAY_EXPONENTIAL;
    simulate_group_lr(&spec, 19, 7, lr); /* second fine-tuning step: x0.7 */
    CHECK(fabs(lr[0] - 0.7e-4) < 1e-18 && fabs(lr[6] - 0.7e-4 / 729) < 1e-18,
          "exponential decay %g %g", lr[0], lr[6]);
}

int main(void) {
    static const char *const names[] = {"state machine",
                                        "longest first, retries elsewhere",
                                        "protocol",
                                        "retries by failure kind",
                                        "a worker's own stop stops the sweep",
                                        "progress to a file",
                                        "end-of-run summary",
                                        "simulated learning rates",
                                        "groups at the root"};
    static const tl_case_fn cases[] = {
        test_state_machine, test_longest_first, test_protocol,
        test_failure_kinds, test_worker_stop,   test_progress_to_file,
        test_run_summary,   test_simulated_lr,  test_groups_at_root};
    return TL_RUN("farm", names, cases);
}
