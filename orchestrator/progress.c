/* Progress lines and the live table. */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "orchestrator/progress.h"

struct progress {
    FILE *out;
    int quiet, tty;
    double start, last_draw, last_summary;
    int drawn_lines; /* lines of the live table currently on screen */
};

progress *progress_create(FILE *out, int quiet, double start_time) {
    progress *p = calloc(1, sizeof *p);
    if (!p) return NULL;
    p->out = out;
    p->quiet = quiet;
    /* mpirun hands rank 0 a pty even when its own output is a file, so TERM decides too:
     * TERM=dumb (or unset) gives plain lines */
    const char *term = getenv("TERM");
    p->tty = !quiet && isatty(fileno(out)) && term && *term && strcmp(term, "dumb");
    p->start = start_time;
    p->last_draw = -1;
    p->last_summary = start_time;
    return p;
}

void progress_free(progress *p) {
    free(p);
}

static void clock_text(double seconds, char *out, size_t len) {
    if (seconds < 0) {
        snprintf(out, len, "?");
        return;
    }
    long s = (long)(seconds + 0.5);
    snprintf(out, len, "%ld:%02ld:%02ld", s / 3600, (s / 60) % 60, s % 60);
}

double progress_eta(const trial_table *t, double elapsed) {
    double done = 0, left = 0;
    for (int i = 0; i < t->count; i++) {
        const trial_entry *e = &t->items[i];
        double cost = e->row.estimated_cost;
        double fraction = e->state == TS_DONE ? 1.0
                          : e->total_epochs   ? (double)e->current_epoch / e->total_epochs
                                              : 0.0;
        if (e->state == TS_FAILED) continue;
        if (e->state != TS_RUNNING && e->state != TS_DONE) fraction = 0;
        done += cost * fraction;
        left += cost * (1.0 - fraction);
    }
    if (done <= 0 || elapsed <= 0) return -1;
    return left / (done / elapsed);
}

/* Erases the live table so event lines go above it. */
static void erase_table(progress *p) {
    if (!p->tty || !p->drawn_lines) return;
    fprintf(p->out, "\033[%dA\033[J", p->drawn_lines);
    p->drawn_lines = 0;
}

/* "trials: 1 done, 2 running, ... | ETA 0:01:02", the table's head and the periodic line. */
static void print_counts(progress *p, const trial_table *t, double now) {
    int counts[TS_COUNT];
    trial_table_counts(t, counts);
    char eta[32];
    clock_text(progress_eta(t, now - p->start), eta, sizeof eta);
    fprintf(p->out, "trials: %d done, %d running, %d pending, %d failed, %d preempted | ETA %s\n",
            counts[TS_DONE], counts[TS_RUNNING], counts[TS_PENDING], counts[TS_FAILED],
            counts[TS_PREEMPTED], eta);
}

static void draw_table(progress *p, const trial_table *t, double now) {
    print_counts(p, t, now);
    fprintf(p->out, "  %-5s %-12s %-16s %5s %7s %7s %9s\n", "rank", "backbone", "schedule", "phase",
            "epoch", "val_acc", "ETA");
    p->drawn_lines = 2;
    for (int i = 0; i < t->count && p->drawn_lines < 40; i++) {
        const trial_entry *e = &t->items[i];
        if (e->state != TS_RUNNING) continue;
        char trial_eta[32], epoch[16];
        clock_text(e->last_epoch_seconds > 0
                       ? e->last_epoch_seconds * (e->total_epochs - e->current_epoch)
                       : -1,
                   trial_eta, sizeof trial_eta);
        snprintf(epoch, sizeof epoch, "%d/%d", e->current_epoch, e->total_epochs);
        fprintf(p->out, "  %-5d %-12s %-16s %5d %7s %7.3f %9s\n", e->row.rank, e->row.backbone,
                e->row.schedule, e->current_phase, epoch, e->row.best_val_acc, trial_eta);
        p->drawn_lines++;
    }
    fflush(p->out);
}

void progress_event(progress *p, const trial_table *t, double now, const char *fmt, ...) {
    if (!p || p->quiet) return;
    erase_table(p);
    int counts[TS_COUNT];
    trial_table_counts(t, counts);
    char line[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    fprintf(p->out, "[%7.1fs] %d/%d done, %d running, %d failed | %s\n", now - p->start,
            counts[TS_DONE], t->count, counts[TS_RUNNING], counts[TS_FAILED], line);
    if (p->tty) draw_table(p, t, now);
    fflush(p->out);
}

void progress_tick(progress *p, const trial_table *t, double now) {
    if (!p || p->quiet) return;
    if (!p->tty) {
        if (now - p->last_summary < PROGRESS_SUMMARY_EVERY) return;
        p->last_summary = now;
        fprintf(p->out, "[%7.1fs] ", now - p->start);
        print_counts(p, t, now);
        fflush(p->out);
        return;
    }
    if (now - p->last_draw < 0.5) return;
    p->last_draw = now;
    erase_table(p);
    draw_table(p, t, now);
}
