/* The trainer's step as CUDA graphs (see step_graph.h). */
#include "worker/step_graph.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void step_graphs_init(step_graphs *sg, kn_ctx *ctx, int wanted, const char *name) {
    memset(sg, 0, sizeof *sg);
    sg->ctx = ctx;
    sg->name = name;
    const char *env = getenv("TLSWEEP_CUDA_GRAPHS");
    char why[160];
    sg->enabled =
        wanted && !(env && !strcmp(env, "0")) && kn_graphs_supported(ctx, why, sizeof why);
}

static void drop_graphs(step_graphs *sg) {
    for (int i = 0; i < STEP_GRAPH_SLOTS; i++) {
        kn_graph_destroy(sg->ctx, sg->graph[i]);
        sg->graph[i] = NULL;
    }
}

void step_graphs_reset(step_graphs *sg) {
    drop_graphs(sg);
    sg->warm = 0;
}

void step_graphs_free(step_graphs *sg) {
    drop_graphs(sg);
}

static void turn_off(step_graphs *sg, const char *why) {
    drop_graphs(sg);
    sg->enabled = 0;
    fprintf(stderr, "trial %s: CUDA graphs off, the step runs eagerly: %s\n", sg->name, why);
}

step_how step_graphs_plan(const step_graphs *sg, int slot, int full) {
    if (!sg->enabled || !full || !sg->warm || slot < 0 || slot >= STEP_GRAPH_SLOTS)
        return STEP_EAGER;
    return sg->graph[slot] ? STEP_REPLAY : STEP_CAPTURE;
}

step_how step_graphs_begin(step_graphs *sg, int slot, int full) {
    const step_how how = step_graphs_plan(sg, slot, full);
    if (how == STEP_EAGER) {
        sg->warm |= full;
        return STEP_EAGER;
    }
    if (how == STEP_REPLAY) {
        const int rc = kn_graph_replay_begin(sg->ctx, sg->graph[slot]);
        if (rc == 0) return STEP_REPLAY;
        if (rc < 0) {
            turn_off(sg, kn_error(sg->ctx));
            return STEP_EAGER;
        }
        /* stale: memory the graphs read was freed or moved since (a plan for another batch
         * size grew the scratch); this step's plans exist, so it is captured at once */
        drop_graphs(sg);
    }
    if (kn_graph_capture_begin(sg->ctx)) {
        turn_off(sg, kn_error(sg->ctx));
        return STEP_EAGER;
    }
    return STEP_CAPTURE;
}

int step_graphs_end(step_graphs *sg, int slot, step_how how, int ok, const char *why) {
    if (how == STEP_EAGER) return 0;
    if (!ok) {
        kn_graph_abandon(sg->ctx);
        turn_off(sg, why);
        return 1;
    }
    if (how == STEP_CAPTURE && !(sg->graph[slot] = kn_graph_capture_end(sg->ctx))) {
        turn_off(sg, kn_error(sg->ctx));
        return 1;
    }
    if (kn_graph_launch(sg->ctx, sg->graph[slot])) {
        turn_off(sg, kn_error(sg->ctx));
        return 1;
    }
    if (!sg->announced) {
        sg->announced = 1;
        fprintf(stderr,
                "trial %s: the training step runs as a CUDA graph, one per batch slot "
                "(TLSWEEP_CUDA_GRAPHS=0 runs it eagerly)\n",
                sg->name);
    }
    return 0;
}
