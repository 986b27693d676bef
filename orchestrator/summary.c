/* The end-of-run summary (summary.h). */
#include <stdlib.h>
#include <string.h>

#include "orchestrator/phase1_plan.h"
#include "orchestrator/summary.h"

enum { BEST_SHOWN = 3 };

/* The BEST_SHOWN trials with a validation accuracy, best first: their indices, how many. */
static int best_trials(const trial_table *t, int best[BEST_SHOWN]) {
    int n = 0;
    for (int i = 0; i < t->count; i++) {
        if (t->items[i].row.best_epoch <= 0) continue; /* no epoch yet */
        double acc = t->items[i].row.best_val_acc;
        int at = n < BEST_SHOWN ? n++ : BEST_SHOWN;
        while (at > 0 && t->items[best[at - 1]].row.best_val_acc < acc) {
            if (at < BEST_SHOWN) best[at] = best[at - 1];
            at--;
        }
        if (at < BEST_SHOWN) best[at] = i;
    }
    return n;
}

/* A path inside a single-quoted Python string. */
static void python_quoted(FILE *out, const char *path) {
    fputc('\'', out);
    for (const char *c = path; *c; c++) {
        if (*c == '\'' || *c == '\\') fputc('\\', out);
        fputc(*c, out);
    }
    fputc('\'', out);
}

void summary_print(FILE *out, FILE *err, const trial_table *t, const run_summary *s) {
    int counts[TS_COUNT];
    trial_table_counts(t, counts);
    fprintf(out,
            "tlsweep run: %d done, %d failed, %d not finished of %d trials in %.1f s; HDF5 "
            "writes %.3f s (%.2f%%), root %.1f us per message (%ld messages)%s\n",
            counts[TS_DONE], counts[TS_FAILED], t->count - counts[TS_DONE] - counts[TS_FAILED],
            t->count, s->seconds, s->h5_seconds,
            s->seconds > 0 ? 100.0 * s->h5_seconds / s->seconds : 0.0,
            s->messages ? 1e6 * s->handle_seconds / (double)s->messages : 0.0, s->messages,
            s->resumable ? "; rerun the same command to resume" : "");
    long with[2], without[2];
    phase1_epochs(t, with, without);
    if (with[0] < without[0])
        fprintf(out, "shared phase 1: %ld of %ld phase-1 epochs computed, %ld reused\n", with[0],
                without[0], without[0] - with[0]);
    int best[BEST_SHOWN];
    int n = best_trials(t, best);
    if (n) fprintf(out, "best trials (validation accuracy):\n");
    for (int i = 0; i < n; i++) {
        const trial_entry *e = &t->items[best[i]];
        fprintf(out, "  %-48s %7.4f at epoch %-3d %s\n", e->row.name, e->row.best_val_acc,
                e->row.best_epoch, trial_state_name(e->state));
    }
    /* tlsweep plot's default folder: FILE without .h5, plus -figures */
    size_t stem = strlen(s->output);
    if (stem > 3 && !strcmp(s->output + stem - 3, ".h5")) stem -= 3;
    fprintf(out, "results:     %s (tlsweep status %s)\n", s->output, s->output);
    fprintf(out, "checkpoints: %s/TRIAL/best.safetensors\n", s->trials_dir);
    fprintf(out, "figures:     tlsweep plot %s (into %.*s-figures/)\n", s->output, (int)stem,
            s->output);
    fprintf(out, "in Python:   import h5py, pandas; pandas.DataFrame(h5py.File(");
    python_quoted(out, s->output);
    fprintf(out, ", 'r', libver='latest', swmr=True)['trials'][:])\n");
    fflush(out);
    for (int i = 0; i < t->count; i++)
        if (t->items[i].state == TS_FAILED)
            fprintf(err, "failed: %s: %s\n", t->items[i].row.name, t->items[i].row.error);
}
