/* When the trainer's step runs as a CUDA graph (worker/step_graph.c): the rule that picks
 * eager, capture or replay for each step, and that a CPU context never opens a graph, so a CPU
 * trial runs every step eagerly exactly as before. The graphs themselves need a GPU
 * (tests/gpu/test_cuda_ops.c). */
#include "tests/testlib.h"
#include "worker/step_graph.h"

#include <stdio.h>
#include <stdlib.h>

static void test_rule(void) {
    kn_graph *const some = (kn_graph *)&some; /* any non-NULL graph: the rule only compares */
    step_graphs sg = {.enabled = 1};
    CHECK(step_graphs_plan(&sg, 0, 1) == STEP_EAGER, "the first full step of a phase is captured");
    sg.warm = 1;
    CHECK(step_graphs_plan(&sg, 0, 1) == STEP_CAPTURE,
          "a warm step without a graph is not captured");
    CHECK(step_graphs_plan(&sg, 0, 0) == STEP_EAGER, "a partial batch is not eager");
    sg.graph[1] = some;
    CHECK(step_graphs_plan(&sg, 1, 1) == STEP_REPLAY, "a slot with its graph does not replay");
    CHECK(step_graphs_plan(&sg, 0, 1) == STEP_CAPTURE, "a slot replays another slot's graph");
    CHECK(step_graphs_plan(&sg, 1, 0) == STEP_EAGER, "a partial batch replays");
    CHECK(step_graphs_plan(&sg, STEP_GRAPH_SLOTS, 1) == STEP_EAGER &&
              step_graphs_plan(&sg, -1, 1) == STEP_EAGER,
          "a slot out of range has a graph");
    sg.enabled = 0;
    CHECK(step_graphs_plan(&sg, 1, 1) == STEP_EAGER, "graphs turned off still replay");
}

/* A CPU context: wanted or not, with or without TLSWEEP_CUDA_GRAPHS, every step is eager, the
 * first full one warms up, and a step's end asks for no second run. */
static void test_cpu_is_eager(void) {
    kn_ctx_options opt = {.backend = KN_BACKEND_CPU, .threads = 1};
    char err[256];
    kn_ctx *ctx = kn_ctx_create(&opt, err, sizeof err);
    CHECK(ctx, "CPU context: %s", err);
    if (!ctx) return;
    step_graphs sg;
    step_graphs_init(&sg, ctx, 1, "cpu");
    CHECK(!sg.enabled, "graphs on a CPU context");
    for (int step = 0; step < 4; step++) {
        const step_how how = step_graphs_begin(&sg, step % 2, step < 3);
        CHECK(how == STEP_EAGER, "step %d: %d, not eager", step, (int)how);
        CHECK(step_graphs_end(&sg, step % 2, how, 1, "") == 0, "step %d: made twice", step);
    }
    CHECK(sg.warm, "the first full step did not warm up");
    step_graphs_reset(&sg);
    CHECK(!sg.warm && !sg.graph[0] && !sg.graph[1], "a reset kept a graph or the warm-up");
    step_graphs_free(&sg);
    kn_ctx_destroy(ctx);
}

int main(void) {
    const char *const names[] = {"rule", "cpu_is_eager"};
    const tl_case_fn cases[] = {test_rule, test_cpu_is_eager};
    return TL_RUN("step_graph", names, cases);
}
