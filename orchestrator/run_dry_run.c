/* `tlsweep run --dry-run`'s listing (run_dry_run.h). */
#include "orchestrator/run_dry_run.h"

#include <stdio.h>

#include "orchestrator/phase1_plan.h"
#include "orchestrator/trials.h"

/* --dry-run: how ranks_per_trial groups the `size` ranks of this run (or of a run with more). */
static void print_group_plan(const sweep *s, int size) {
    const int k = s->ranks_per_trial;
    if (k <= 1) return;
    printf("trials train on groups of %d ranks (ranks_per_trial): ", k);
    const int workers = size - 1, idle = workers % k;
    if (size > 1)
        printf("%d worker ranks form %d group%s, %d idle (each host's ranks first, then the "
               "leftovers across hosts)\n",
               workers, workers / k, workers / k == 1 ? "" : "s", idle);
    else
        printf("mpirun -np N gives (N - 1) / %d groups; start at least %d ranks\n", k, k + 1);
}

int run_dry_run(const run_options *o, const sweep *s, const trial_list *trials, int size) {
    trial_table t;
    char err[256];
    if (trial_table_build(&t, s, trials, err, sizeof err)) {
        fprintf(stderr, "tlsweep run: %s\n", err);
        return 4;
    }
    printf("sweep %s: %d trials -> %s\n", s->name, trials->count,
           o->output ? o->output : s->output);
    print_group_plan(s, size);
    for (int i = 0; i < t.count; i++) {
        const trial_entry *e = &t.items[i];
        int shares = 0;
        for (int j = 0; j < t.count; j++)
            shares += t.items[j].phase1_from == i;
        char lineage[TRIAL_NAME_MAX + 32] = "";
        if (e->phase1_from >= 0)
            snprintf(lineage, sizeof lineage, "phase 1 from %s", t.items[e->phase1_from].row.name);
        else if (shares)
            snprintf(lineage, sizeof lineage, "computes phase 1 for %d more", shares);
        printf("  %-48s cost %10.3f  %s\n", e->row.name, e->row.estimated_cost, lineage);
    }
    long with[2], without[2];
    phase1_epochs(&t, with, without);
    printf("epochs computed: phase 1 %ld (%ld without sharing), phase 2 %ld%s\n", with[0],
           without[0], with[1],
           s->share_phase1 || s->ranks_per_trial > 1 ? "" : " (share_phase1: false)");
    if (s->ranks_per_trial > 1) printf("shared phase 1: off (ranks_per_trial > 1)\n");
    trial_table_free(&t);
    return 0;
}
