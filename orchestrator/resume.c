/* Resume (see resume.h). */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <utime.h>

#include "orchestrator/phase1_plan.h"
#include "orchestrator/provenance.h"
#include "orchestrator/resume.h"
#include "worker/paths.h"
#include "worker/trial_settings.h"

static void lock_path(const char *trials_dir, char *out, size_t len) {
    snprintf(out, len, "%s/writer.lock", trials_dir);
}

/* kill(pid, 0) also succeeds for a zombie (a killed writer whose parent died too and that
 * nobody reaped), so the process state decides. */
static int process_alive(pid_t pid) {
    if (kill(pid, 0) && errno != EPERM) return 0;
    char path[64], stat_line[256];
    snprintf(path, sizeof path, "/proc/%ld/stat", (long)pid);
    FILE *f = fopen(path, "r");
    if (!f) return 1; /* no /proc: trust kill */
    char *line = fgets(stat_line, sizeof stat_line, f);
    fclose(f);
    const char *close_paren = line ? strrchr(line, ')') : NULL;
    return !(close_paren && close_paren[1] == ' ' &&
             (close_paren[2] == 'Z' || close_paren[2] == 'X'));
}

/* Who holds trials_dir's lock: 1 and *pid, *host, *age when a lock file names someone. */
static int read_lock(const char *trials_dir, char *host, size_t host_len, long *pid, double *age) {
    char path[TRIAL_PATH_MAX + 16];
    lock_path(trials_dir, path, sizeof path);
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    char format[32];
    snprintf(format, sizeof format, "%%%zus %%ld", host_len - 1);
    int n = fscanf(f, format, host, pid);
    fclose(f);
    struct stat st;
    *age = stat(path, &st) ? 1e9 : difftime(time(NULL), st.st_mtime);
    return n == 2;
}

/* A writer other than this process holds the lock: alive on this host, or touched from
 * another host within RESUME_LOCK_STALE seconds (hosts cannot see each other's pids). */
static int held_by_other(const char *other_host, long pid, double age, const char *host) {
    if (!strcmp(other_host, host)) return pid != (long)getpid() && process_alive((pid_t)pid);
    return age < RESUME_LOCK_STALE;
}

int resume_writer_alive(const char *trials_dir, const char *host) {
    char other_host[128];
    long pid = 0;
    double age = 0;
    return read_lock(trials_dir, other_host, sizeof other_host, &pid, &age) &&
           held_by_other(other_host, pid, age, host);
}

int resume_lock(const char *trials_dir, const char *results_path, const char *host, char *err,
                size_t errlen) {
    char path[TRIAL_PATH_MAX + 16], other_host[128];
    long pid = 0;
    double age = 0;
    lock_path(trials_dir, path, sizeof path);
    if (read_lock(trials_dir, other_host, sizeof other_host, &pid, &age) &&
        held_by_other(other_host, pid, age, host)) {
        if (!strcmp(other_host, host))
            snprintf(err, errlen,
                     "%s is being written by tlsweep pid %ld on %s (still "
                     "running); wait for it or stop it first",
                     results_path, pid, host);
        else
            snprintf(err, errlen,
                     "%s was written by pid %ld on %s %.0f s ago; if that run is "
                     "gone, wait %.0f s or remove %s",
                     results_path, pid, other_host, age, RESUME_LOCK_STALE, path);
        return -1;
    }
    char tmp[TRIAL_PATH_MAX + 32];
    snprintf(tmp, sizeof tmp, "%s.%ld", path, (long)getpid());
    FILE *f = fopen(tmp, "w");
    int ok = f && fprintf(f, "%s %ld\n", host, (long)getpid()) > 0;
    if (f && fclose(f)) ok = 0;
    if (!ok || rename(tmp, path)) {
        snprintf(err, errlen, "cannot write the writer lock %s: %s", path, strerror(errno));
        return -1;
    }
    return 0;
}

void resume_touch_lock(const char *trials_dir) {
    char path[TRIAL_PATH_MAX + 16];
    lock_path(trials_dir, path, sizeof path);
    utime(path, NULL);
}

void resume_unlock(const char *trials_dir) {
    char path[TRIAL_PATH_MAX + 16];
    lock_path(trials_dir, path, sizeof path);
    remove(path);
}

/* Lines of a that are not in b, prefixed and numbered as in a, appended to out. */
static void line_diff(const char *a, const char *b, const char *prefix, char *out, size_t len) {
    const char *line = a;
    int number = 1;
    while (*line) {
        const char *end = strchr(line, '\n');
        size_t n = end ? (size_t)(end - line) : strlen(line);
        int found = 0;
        for (const char *l = b; *l && !found;) {
            const char *e = strchr(l, '\n');
            size_t m = e ? (size_t)(e - l) : strlen(l);
            if (m == n && !strncmp(l, line, n)) found = 1;
            l = e ? e + 1 : l + m;
        }
        if (!found && n > 0) {
            size_t used = strlen(out);
            snprintf(out + used, len - used, "\n  %s line %d: %.*s", prefix, number, (int)n, line);
        }
        line = end ? end + 1 : line + n;
        number++;
    }
}

/* --extend: every trial of the old sweep must be in the new one with the same settings. */
static int check_extension(const char *old_text, const sweep *s, const trial_table *t, char *err,
                           size_t errlen) {
    sweep old;
    sweep_errors errs = {0};
    const sweep_options opt = {.check_paths = 0};
    if (sweep_parse("(the sweep stored in the results file)", old_text, strlen(old_text), &opt,
                    &old, &errs)) {
        snprintf(err, errlen, "cannot read the stored sweep: %s",
                 errs.count ? errs.messages[0] : "?");
        sweep_errors_free(&errs);
        sweep_free(&old);
        return -1;
    }
    trial_list old_trials;
    int rc = grid_expand(&old, &old_trials, err, errlen);
    for (int i = 0; !rc && i < old_trials.count; i++) {
        int index = trial_table_find(t, old_trials.items[i].name);
        if (index < 0) {
            snprintf(err, errlen,
                     "--extend only adds grid points, but trial %s of the stored "
                     "sweep is not in %s",
                     old_trials.items[i].name, s->file);
            rc = -1;
            break;
        }
        trial_spec a, b;
        grid_trial_spec(&old, &old_trials.items[i], &a);
        grid_trial_spec(s, &t->items[index].point, &b);
        trial_settings stored, now;
        trial_settings_of(&a, &stored);
        trial_settings_of(&b, &now);
        char changes[2048] = "";
        if (trial_settings_diff(&stored, "stored", &now, "new", changes, sizeof changes)) {
            snprintf(err, errlen,
                     "--extend only adds grid points, but %s changes the settings "
                     "of trial %s:%s",
                     s->file, old_trials.items[i].name, changes);
            rc = -1;
        }
    }
    grid_trials_free(&old_trials);
    sweep_free(&old);
    return rc;
}

static int check_sweep(results_h5 *h, const char *path, const sweep *s, const trial_table *t,
                       int extend, int *extending, char *err, size_t errlen) {
    *extending = 0;
    char *old_text = results_h5_attr(h, "sweep_text", err, errlen);
    if (!old_text) return -1;
    int rc = 0;
    if (strcmp(old_text, s->text)) {
        if (!extend) {
            snprintf(err, errlen,
                     "%s was made by a different sweep file than %s (rerun with "
                     "--extend to add grid points, or choose another output); changed lines:",
                     path, s->file);
            line_diff(old_text, s->text, "- stored", err, errlen);
            line_diff(s->text, old_text, "+ new", err, errlen);
            rc = -1;
        } else {
            rc = check_extension(old_text, s, t, err, errlen);
            *extending = !rc;
        }
    }
    free(old_text);
    return rc;
}

/* Drops rows a killed run left half-written or twice: the /curves row commits an epoch. */
static int repair_tables(results_h5 *h, trial_table *t, char *err, size_t errlen) {
    results_curve_row *curves = NULL;
    results_lr_row *lr = NULL;
    int n_curves = 0, n_lr = 0;
    if (results_h5_read_curves(h, &curves, &n_curves, err, errlen) ||
        results_h5_read_lr(h, &lr, &n_lr, err, errlen)) {
        free(curves);
        return -1;
    }
    int kept = 0;
    for (int i = 0; i < n_curves; i++) {
        results_curve_row *c = &curves[i];
        int index = trial_table_find(t, c->trial);
        if (index < 0 || t->items[index].row.id != c->trial_id) continue;
        trial_entry *e = &t->items[index];
        if (c->epoch < 1 || c->epoch > e->total_epochs || e->epoch_written[c->epoch]) continue;
        e->epoch_written[c->epoch] = 1;
        curves[kept++] = *c;
    }
    int dropped_curves = n_curves - kept;
    n_curves = kept;
    /* lr rows: only for committed epochs, each (trial, epoch, group) once */
    kept = 0;
    for (int i = 0; i < n_lr; i++) {
        results_lr_row *l = &lr[i];
        int index = trial_table_find(t, l->trial);
        if (index < 0 || l->epoch < 1 || l->epoch > t->items[index].total_epochs ||
            !t->items[index].epoch_written[l->epoch] || l->group_index < 0)
            continue;
        int duplicate = 0;
        for (int j = kept - 1; j >= 0 && !duplicate; j--)
            if (lr[j].trial_id == l->trial_id && lr[j].epoch == l->epoch) {
                if (lr[j].group_index == l->group_index) duplicate = 1;
            } else if (lr[j].trial_id == l->trial_id && lr[j].epoch < l->epoch)
                break; /* rows of one trial come in epoch order */
        if (!duplicate) lr[kept++] = *l;
    }
    int dropped_lr = n_lr - kept;
    n_lr = kept;
    int rc = 0;
    if (dropped_curves) rc = results_h5_rewrite_curves(h, curves, n_curves, err, errlen);
    if (!rc && dropped_lr) rc = results_h5_rewrite_lr(h, lr, n_lr, err, errlen);
    if (!rc && (dropped_curves || dropped_lr))
        fprintf(stderr,
                "tlsweep: resume dropped %d unfinished or repeated /curves rows and %d "
                "/lr rows\n",
                dropped_curves, dropped_lr);
    free(curves);
    free(lr);
    return rc;
}

/* Takes each stored trial's row and state; what was not done runs again. */
static int load_states(results_h5 *h, trial_table *t, int *kept_done, int *next_id, char *err,
                       size_t errlen) {
    results_trial_row *rows = NULL;
    int count = 0;
    if (results_h5_read_trials(h, &rows, &count, err, errlen)) return -1;
    *kept_done = 0;
    *next_id = count;
    for (int i = 0; i < t->count; i++)
        t->items[i].row.id = -1;
    for (int i = 0; i < count; i++) {
        int index = trial_table_find(t, rows[i].name);
        if (index < 0) continue;
        trial_entry *e = &t->items[index];
        double cost = e->row.estimated_cost;
        e->row = rows[i];
        e->row.estimated_cost = cost;
        trial_state stored;
        if (trial_state_parse(rows[i].status, &stored)) stored = TS_PENDING;
        e->state = stored;
        e->attempts_this_run = 0;
        if (stored == TS_DONE) {
            (*kept_done)++;
            continue;
        }
        /* running (killed) -> preempted -> pending; failed -> pending with fresh retries */
        if ((stored == TS_RUNNING && trial_set_state(t, index, TS_PREEMPTED, err, errlen)) ||
            (e->state != TS_PENDING && trial_set_state(t, index, TS_PENDING, err, errlen))) {
            free(rows);
            return -1;
        }
    }
    free(rows);
    return 0;
}

int resume_open(const char *path, const sweep *s, trial_table *t, int extend, results_h5 **out,
                int *kept_done, char *err, size_t errlen) {
    *out = NULL;
    results_h5 *h = NULL;
    if (results_h5_open(path, &h, err, errlen)) return -1;
    int extending = 0, next_id = 0;
    int rc = check_sweep(h, path, s, t, extend, &extending, err, errlen);
    if (!rc) rc = load_states(h, t, kept_done, &next_id, err, errlen);
    if (!rc) rc = repair_tables(h, t, err, errlen);
    unsigned char *fresh = rc ? NULL : calloc((size_t)t->count + 1, 1);
    if (!rc && !fresh) {
        snprintf(err, errlen, "out of memory");
        rc = -1;
    }
    if (!rc && extending) {
        /* new grid points get the next rows, and share a phase 1 as the sweep says if the file
         * can record it; stored trials keep the lineage they were written with */
        int added = 0;
        for (int i = 0; i < t->count; i++)
            if (t->items[i].row.id < 0) {
                fresh[i] = 1;
                t->items[i].row.id = next_id + added++;
            }
        phase1_plan(t, s, fresh, s->share_phase1 && results_h5_has_lineage(h));
        results_trial_row *rows = calloc((size_t)added + 1, sizeof *rows);
        char(*values)[SWEEP_MAX_AXES][RESULTS_VALUE_MAX] =
            calloc((size_t)added + 1, sizeof *values);
        int k = 0;
        for (int i = 0; rows && values && i < t->count; i++)
            if (t->items[i].row.id >= next_id) {
                rows[k] = t->items[i].row;
                memcpy(values[k], t->items[i].grid_values, sizeof values[k]);
                k++;
            }
        rc = rows && values
                 ? results_h5_add_trials(h, rows,
                                         (const char(*)[SWEEP_MAX_AXES][RESULTS_VALUE_MAX])values,
                                         added, err, errlen)
                 : -1;
        free(rows);
        free(values);
        if (!rc) rc = results_h5_set_attr(h, "sweep_text", s->text, err, errlen);
        if (!rc) fprintf(stderr, "tlsweep: --extend adds %d trials to %s\n", added, path);
    } else if (!rc) {
        for (int i = 0; i < t->count; i++)
            if (t->items[i].row.id < 0) {
                snprintf(err, errlen, "%s has no row for trial %s", path, t->items[i].row.name);
                rc = -1;
                break;
            }
        if (!rc) phase1_plan(t, s, fresh, 0);
    }
    free(fresh);
    if (!rc) rc = results_h5_start_swmr(h, err, errlen);
    if (!rc) rc = results_h5_replace(h, err, errlen);
    if (rc) {
        char ignored[256];
        results_h5_close(h, ignored, sizeof ignored);
        return -1;
    }
    *out = h;
    return 0;
}

int resume_create(const char *path, const sweep *s, const trial_table *t, const results_meta *meta,
                  results_h5 **out, char *err, size_t errlen) {
    results_grid_columns columns = {0};
    for (int a = 0; a < s->n_axes; a++)
        if (s->axes[a].key_index >= 0)
            snprintf(columns.names[columns.count++], SWEEP_KEY_MAX, "%s", s->axes[a].key);
    results_trial_row *rows = calloc((size_t)t->count + 1, sizeof *rows);
    char(*values)[SWEEP_MAX_AXES][RESULTS_VALUE_MAX] = calloc((size_t)t->count + 1, sizeof *values);
    int rc = -1;
    if (rows && values) {
        for (int i = 0; i < t->count; i++) {
            rows[i] = t->items[i].row;
            memcpy(values[i], t->items[i].grid_values, sizeof values[i]);
        }
        rc = results_h5_create(path, meta, &columns, rows,
                               (const char(*)[SWEEP_MAX_AXES][RESULTS_VALUE_MAX])values, t->count,
                               out, err, errlen);
    } else
        snprintf(err, errlen, "out of memory");
    free(rows);
    free(values);
    return rc;
}

void resume_trials_dir(const char *results_path, char *dir, size_t len) {
    /* cut the name, not the ".d": a too-long path then fails to open, never lands elsewhere */
    snprintf(dir, len, "%.*s.d", (int)(len > 3 ? len - 3 : 0), results_path);
}

int resume_start(const char *path, const char *lock_dir, const sweep *s, trial_table *t,
                 const resume_writer *w, results_h5 **out, int *kept_done, char *err,
                 size_t errlen) {
    *out = NULL;
    *kept_done = -1;
    char parent[TRIAL_PATH_MAX];
    snprintf(parent, sizeof parent, "%s", path);
    char *slash = strrchr(parent, '/');
    if (slash) *slash = 0;
    /* a refused start leaves the disk as it found it: folders it made go again */
    struct stat st;
    int new_parent = slash && stat(parent, &st), new_lock_dir = stat(lock_dir, &st) != 0;
    int rc = -1;
    if ((slash && make_dirs(parent, err, errlen)) || make_dirs(lock_dir, err, errlen) ||
        resume_lock(lock_dir, path, w->host, err, errlen))
        goto undo_dirs;
    if (!stat(path, &st)) {
        int kept = 0;
        rc = resume_open(path, s, t, w->extend, out, &kept, err, errlen);
        if (!rc) *kept_done = kept;
    } else {
        provenance prov;
        results_meta meta = {.sweep_name = s->name,
                             .sweep_file = s->file,
                             .sweep_text = s->text,
                             .hosts = w->hosts,
                             .ranks = w->ranks,
                             .simulated = w->simulated};
        provenance_fill(&prov, &meta);
        char image_caches[4096];
        provenance_image_caches(s, t, image_caches, sizeof image_caches);
        meta.image_caches = image_caches;
        rc = resume_create(path, s, t, &meta, out, err, errlen);
    }
    if (!rc) return 0;
    resume_unlock(lock_dir);
undo_dirs:
    if (new_lock_dir) rmdir(lock_dir);
    if (new_parent) rmdir(parent);
    return -1;
}
