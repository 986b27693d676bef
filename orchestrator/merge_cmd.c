/* `tlsweep merge -o OUT.h5 IN.h5...`: the job-array path's last step. Each array task wrote a
 * results file of the whole sweep with its one trial filled in (`tlsweep train --trial I
 * --output FILE`); merge makes one file of them with the schema `tlsweep run` writes, so status,
 * plot, notebooks and a resuming `tlsweep run` read it as a sweep file. The inputs are only
 * read; the output is written beside OUT and renamed into place when complete.
 *
 * Per trial: a done copy wins; two done copies must hold the same numbers; without a done one
 * the copy with the most epochs (the first given among equals) is kept; a trial that no input
 * ran stays pending. Only committed epochs are copied (a /curves row commits an epoch, as in
 * resume), each once, in epoch order. Exit status: 0 merged, 2 bad input or usage, 4 a write
 * failed (OUT is then left as it was). */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "orchestrator/provenance.h"
#include "orchestrator/resume.h"
#include "worker/commands.h"
#include "worker/paths.h"

/* Root attributes that say what produced the numbers: kept from the inputs (distinct values
 * joined by commas) rather than replaced by this binary's. */
static const char *const provenance_attrs[] = {
    "tool_version",  "git_revision", "compiler",       "compiler_flags",
    "mpi_version",   "hdf5_version", "onednn_version", "cuda_version",
    "cudnn_version", "nccl_version", "hosts",
};
#define N_PROVENANCE (sizeof provenance_attrs / sizeof provenance_attrs[0])

typedef struct {
    const char *path;
    results_h5 *h;
    char *sweep_text, *sweep_name, *sweep_file, *mode;
    char *provenance[N_PROVENANCE];
    long long ranks;
    results_trial_row *rows;
    results_curve_row *curves; /* committed epochs only, each once */
    results_lr_row *lr;        /* the groups of committed epochs only, each once */
    int n_rows, n_curves, n_lr;
} merge_input;

static void usage(FILE *out) {
    fprintf(out, "usage: tlsweep merge -o OUT.h5 [--force] IN.h5 [IN.h5 ...]\n"
                 "  combines results files of one sweep (e.g. one per `tlsweep train --trial I\n"
                 "  --output FILE` array task) into one file with `tlsweep run`'s schema. A done\n"
                 "  trial beats a preempted, failed or running copy; two done copies must agree;\n"
                 "  trials no input ran stay pending (`tlsweep run` on OUT runs them). The inputs\n"
                 "  are only read. Use the sweep's output as OUT to have the trial directories\n"
                 "  (OUT.h5.d/TRIAL/best.safetensors) beside it, as `tlsweep run` leaves them.\n"
                 "  -o, --output OUT.h5   the merged file (refused if it exists, unless --force)\n"
                 "      --force           replace an existing OUT\n"
                 "exit status: 0 merged, 2 bad input, 4 the output could not be written\n");
}

static void input_free(merge_input *in) {
    char ignored[256];
    if (in->h) results_h5_close(in->h, ignored, sizeof ignored);
    free(in->sweep_text);
    free(in->sweep_name);
    free(in->sweep_file);
    free(in->mode);
    for (size_t i = 0; i < N_PROVENANCE; i++)
        free(in->provenance[i]);
    free(in->rows);
    free(in->curves);
    free(in->lr);
}

/* Keeps what resume would keep: curves rows of a known trial's epochs, the first of each
 * (trial, epoch); lr rows of those epochs, the first of each group. A killed writer leaves
 * repeats and orphan lr rows, which the inputs are not repaired for (they are only read). */
static void keep_committed(merge_input *in, const trial_table *t) {
    int kept = 0;
    for (int i = 0; i < in->n_curves; i++) {
        const results_curve_row *c = &in->curves[i];
        int index = trial_table_find(t, c->trial), seen = 0;
        if (index < 0 || c->epoch < 1 || c->epoch > t->items[index].total_epochs) continue;
        for (int j = 0; j < kept && !seen; j++)
            seen = in->curves[j].epoch == c->epoch && !strcmp(in->curves[j].trial, c->trial);
        if (!seen) in->curves[kept++] = *c;
    }
    in->n_curves = kept;
    kept = 0;
    for (int i = 0; i < in->n_lr; i++) {
        const results_lr_row *l = &in->lr[i];
        int committed = 0, seen = 0;
        for (int j = 0; j < in->n_curves && !committed; j++)
            committed = in->curves[j].epoch == l->epoch && !strcmp(in->curves[j].trial, l->trial);
        for (int j = 0; j < kept && !seen; j++)
            seen = in->lr[j].epoch == l->epoch && in->lr[j].group_index == l->group_index &&
                   !strcmp(in->lr[j].trial, l->trial);
        if (committed && !seen) in->lr[kept++] = *l;
    }
    in->n_lr = kept;
}

static int read_input(merge_input *in, char *err, size_t errlen) {
    if (results_h5_open_read(in->path, &in->h, err, errlen)) return -1;
    if (!(in->sweep_text = results_h5_attr(in->h, "sweep_text", err, errlen)) ||
        !(in->sweep_name = results_h5_attr(in->h, "sweep_name", err, errlen)) ||
        !(in->sweep_file = results_h5_attr(in->h, "sweep_file", err, errlen)) ||
        !(in->mode = results_h5_attr(in->h, "mode", err, errlen)))
        return -1;
    for (size_t i = 0; i < N_PROVENANCE; i++)
        if (!(in->provenance[i] = results_h5_attr(in->h, provenance_attrs[i], err, errlen)))
            return -1;
    in->ranks = 1;
    results_h5_attr_int(in->h, "ranks", &in->ranks);
    return results_h5_read_trials(in->h, &in->rows, &in->n_rows, err, errlen) ||
                   results_h5_read_curves(in->h, &in->curves, &in->n_curves, err, errlen) ||
                   results_h5_read_lr(in->h, &in->lr, &in->n_lr, err, errlen)
               ? -1
               : 0;
}

static const results_trial_row *find_row(const merge_input *in, const char *name) {
    for (int i = 0; i < in->n_rows; i++)
        if (!strcmp(in->rows[i].name, name)) return &in->rows[i];
    return NULL;
}

static int epochs_of(const merge_input *in, const char *trial) {
    int n = 0;
    for (int i = 0; i < in->n_curves; i++)
        n += !strcmp(in->curves[i].trial, trial);
    return n;
}

/* The committed curve row of (trial, epoch), or NULL. */
static const results_curve_row *curve_of(const merge_input *in, const char *trial, int epoch) {
    for (int i = 0; i < in->n_curves; i++)
        if (in->curves[i].epoch == epoch && !strcmp(in->curves[i].trial, trial))
            return &in->curves[i];
    return NULL;
}

/* Two done copies of a trial agree when every epoch's numbers do (times and attempts may
 * differ: the same trial trained twice). 0 same, else the first differing epoch (or -1 for
 * the summary). */
static int differs(const merge_input *a, const merge_input *b, const results_trial_row *ra,
                   const results_trial_row *rb, int total_epochs) {
    if (ra->params != rb->params || ra->best_val_acc != rb->best_val_acc ||
        ra->best_epoch != rb->best_epoch)
        return -1;
    for (int epoch = 1; epoch <= total_epochs; epoch++) {
        const results_curve_row *x = curve_of(a, ra->name, epoch),
                                *y = curve_of(b, rb->name, epoch);
        if (!x != !y) return epoch;
        if (x && (x->phase != y->phase || x->train_loss != y->train_loss ||
                  x->train_acc != y->train_acc || x->val_loss != y->val_loss ||
                  x->val_acc != y->val_acc || x->head_lr != y->head_lr))
            return epoch;
    }
    return 0;
}

/* Which input's copy of trial t->items[index] goes into the output: -1 none ran it, -2 two
 * done copies disagree (reported). */
static int choose(const merge_input *inputs, int n, const trial_table *t, int index) {
    const trial_entry *e = &t->items[index];
    int best = -1, best_done = 0, best_epochs = -1;
    for (int i = 0; i < n; i++) {
        const results_trial_row *r = find_row(&inputs[i], e->row.name);
        /* a pending row that was never started is a grid point this input did not run */
        if (!r || (!strcmp(r->status, "pending") && r->attempts == 0)) continue;
        int done = !strcmp(r->status, "done"), epochs = epochs_of(&inputs[i], r->name);
        if (done && best_done) {
            const results_trial_row *kept = find_row(&inputs[best], e->row.name);
            int where = differs(&inputs[best], &inputs[i], kept, r, e->total_epochs);
            if (where) {
                char what[64] = "its best accuracy or parameters";
                if (where > 0) snprintf(what, sizeof what, "epoch %d", where);
                fprintf(stderr,
                        "tlsweep merge: trial %s is done in both %s and %s with different "
                        "numbers (%s); give only one of them\n",
                        e->row.name, inputs[best].path, inputs[i].path, what);
                return -2;
            }
            continue; /* the same numbers twice: keep the first */
        }
        if ((done && !best_done) || (!done && !best_done && epochs > best_epochs)) {
            best = i;
            best_done = done;
            best_epochs = epochs;
        }
    }
    return best;
}

/* Whether the comma-separated list holds item. */
static int has_item(const char *list, const char *item) {
    size_t len = strlen(item);
    for (const char *p = list; *p; p += p[strcspn(p, ",")] ? strcspn(p, ",") + 1 : strcspn(p, ","))
        if (strcspn(p, ",") == len && !strncmp(p, item, len)) return 1;
    return 0;
}

/* Distinct comma-separated items of the inputs' values, comma-joined; malloc'd. */
static char *union_of(const merge_input *inputs, int n, size_t attr) {
    size_t cap = 1;
    for (int i = 0; i < n; i++)
        cap += strlen(inputs[i].provenance[attr]) + 1;
    char *out = calloc(cap, 1);
    if (!out) return NULL;
    for (int i = 0; i < n; i++) {
        char *copy = strdup(inputs[i].provenance[attr]);
        for (char *save = NULL, *item = copy ? strtok_r(copy, ",", &save) : NULL; item;
             item = strtok_r(NULL, ",", &save)) {
            if (!has_item(out, item))
                snprintf(out + strlen(out), cap - strlen(out), "%s%s", *out ? "," : "", item);
        }
        free(copy);
    }
    return out;
}

static int by_group(const void *a, const void *b) {
    const results_lr_row *x = a, *y = b;
    return (x->group_index > y->group_index) - (x->group_index < y->group_index);
}

/* Copies trial `index`'s committed epochs from `from`, in epoch order, under its output id. */
static int copy_epochs(results_h5 *h, const merge_input *from, const trial_entry *e, char *err,
                       size_t errlen) {
    results_lr_row *groups = calloc((size_t)from->n_lr + 1, sizeof *groups);
    if (!groups) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    int rc = 0;
    for (int epoch = 1; epoch <= e->total_epochs && !rc; epoch++) {
        const results_curve_row *c = curve_of(from, e->row.name, epoch);
        if (!c) continue;
        results_curve_row curve = *c;
        curve.trial_id = e->row.id;
        int n = 0;
        for (int i = 0; i < from->n_lr; i++)
            if (from->lr[i].epoch == epoch && !strcmp(from->lr[i].trial, e->row.name)) {
                groups[n] = from->lr[i];
                groups[n++].trial_id = e->row.id;
            }
        qsort(groups, (size_t)n, sizeof *groups, by_group);
        rc = results_h5_append_epoch(h, &curve, groups, n, err, errlen);
    }
    free(groups);
    return rc;
}

/* Writes the merged file at tmp. 0 ok, -1 with err. */
static int write_merged(const char *tmp, const sweep *s, trial_table *t, const merge_input *inputs,
                        int n, const int *winner, const char *merged_from, char *err,
                        size_t errlen) {
    char *joined[N_PROVENANCE] = {0};
    int rc = 0;
    long long ranks = 0;
    for (int i = 0; i < n; i++)
        ranks += inputs[i].ranks;
    for (size_t a = 0; a < N_PROVENANCE && !rc; a++)
        if (!(joined[a] = union_of(inputs, n, a))) rc = -1;
    if (rc) snprintf(err, errlen, "out of memory");
    results_meta meta = {.sweep_name = inputs[0].sweep_name,
                         .sweep_file = inputs[0].sweep_file,
                         .sweep_text = inputs[0].sweep_text,
                         .ranks = (int)ranks,
                         .simulated = !strcmp(inputs[0].mode, "simulated"),
                         .merged_from = merged_from};
    if (!rc) {
        meta.tool_version = joined[0];
        meta.git_revision = joined[1];
        meta.compiler = joined[2];
        meta.compiler_flags = joined[3];
        meta.mpi_version = joined[4];
        meta.hdf5_version = joined[5];
        meta.onednn_version = joined[6];
        meta.cuda_version = joined[7];
        meta.cudnn_version = joined[8];
        meta.nccl_version = joined[9];
        meta.hosts = joined[10];
    }
    results_h5 *h = NULL;
    if (!rc) rc = resume_create(tmp, s, t, &meta, &h, err, errlen);
    for (int i = 0; i < t->count && !rc; i++)
        if (winner[i] >= 0) rc = copy_epochs(h, &inputs[winner[i]], &t->items[i], err, errlen);
    char close_err[512];
    if (h && results_h5_close(h, close_err, sizeof close_err) && !rc) {
        snprintf(err, errlen, "%s", close_err);
        rc = -1;
    }
    for (size_t a = 0; a < N_PROVENANCE; a++)
        free(joined[a]);
    return rc;
}

/* Everything after the options: 0 merged, or the exit status. */
static int merge(const char *out, int force, char **paths, int n) {
    struct stat out_st;
    int out_exists = !stat(out, &out_st);
    if (out_exists && !force) {
        fprintf(stderr, "tlsweep merge: %s exists; --force replaces it\n", out);
        return 2;
    }
    merge_input *inputs = calloc((size_t)n, sizeof *inputs);
    int *winner = NULL;
    char *merged_from = NULL;
    char err[1024];
    sweep s;
    memset(&s, 0, sizeof s);
    trial_list trials = {0};
    trial_table table = {0};
    int status = 2;
    if (!inputs) {
        fprintf(stderr, "tlsweep merge: out of memory\n");
        return 4;
    }
    size_t from_len = 1;
    for (int i = 0; i < n; i++) {
        inputs[i].path = paths[i];
        from_len += strlen(paths[i]) + 1;
        struct stat st;
        if (out_exists && !stat(paths[i], &st) && st.st_dev == out_st.st_dev &&
            st.st_ino == out_st.st_ino) {
            fprintf(stderr, "tlsweep merge: %s is also an input; write the merged file elsewhere\n",
                    out);
            goto done;
        }
        if (read_input(&inputs[i], err, sizeof err)) {
            fprintf(stderr, "tlsweep merge: %s\n", err);
            goto done;
        }
        if (i > 0 && strcmp(inputs[i].sweep_text, inputs[0].sweep_text)) {
            fprintf(stderr,
                    "tlsweep merge: %s comes from a different sweep than %s (sweep '%s' from %s, "
                    "not '%s' from %s: the stored sweep files differ)\n",
                    paths[i], paths[0], inputs[i].sweep_name, inputs[i].sweep_file,
                    inputs[0].sweep_name, inputs[0].sweep_file);
            goto done;
        }
        if (i > 0 && strcmp(inputs[i].mode, inputs[0].mode)) {
            fprintf(stderr,
                    "tlsweep merge: %s is %s but %s is %s; merge only real or only "
                    "simulated files\n",
                    paths[i], inputs[i].mode, paths[0], inputs[0].mode);
            goto done;
        }
    }
    /* the grid is the stored sweep's, expanded as `tlsweep run` expands it */
    sweep_errors errs = {0};
    const sweep_options opt = {.check_paths = 0};
    char label[TRIAL_PATH_MAX + 64];
    snprintf(label, sizeof label, "(the sweep stored in %s)", paths[0]);
    int bad =
        sweep_parse(label, inputs[0].sweep_text, strlen(inputs[0].sweep_text), &opt, &s, &errs);
    if (bad) fprintf(stderr, "tlsweep merge: %s\n", errs.count ? errs.messages[0] : label);
    sweep_errors_free(&errs);
    if (bad) goto done;
    if (grid_expand(&s, &trials, err, sizeof err) ||
        trial_table_build(&table, &s, &trials, err, sizeof err)) {
        fprintf(stderr, "tlsweep merge: %s: %s\n", paths[0], err);
        goto done;
    }
    for (int i = 0; i < n; i++) {
        for (int r = 0; r < inputs[i].n_rows; r++)
            if (trial_table_find(&table, inputs[i].rows[r].name) < 0) {
                fprintf(stderr, "tlsweep merge: %s has trial %s, which its sweep's grid lacks\n",
                        paths[i], inputs[i].rows[r].name);
                goto done;
            }
        keep_committed(&inputs[i], &table);
    }
    winner = calloc((size_t)table.count + 1, sizeof *winner);
    merged_from = calloc(from_len, 1);
    if (!winner || !merged_from) {
        fprintf(stderr, "tlsweep merge: out of memory\n");
        status = 4;
        goto done;
    }
    for (int i = 0; i < n; i++)
        snprintf(merged_from + strlen(merged_from), from_len - strlen(merged_from), "%s%s",
                 i ? "," : "", paths[i]);
    int counts[TS_COUNT] = {0};
    for (int i = 0; i < table.count; i++) {
        winner[i] = choose(inputs, n, &table, i);
        if (winner[i] == -2) goto done;
        trial_entry *e = &table.items[i];
        if (winner[i] >= 0) {
            double cost = e->row.estimated_cost;
            e->row = *find_row(&inputs[winner[i]], e->row.name);
            e->row.id = i;
            e->row.estimated_cost = cost;
            if (trial_state_parse(e->row.status, &e->state)) e->state = TS_PENDING;
        }
        counts[e->state]++;
    }
    char parent[TRIAL_PATH_MAX], tmp[TRIAL_PATH_MAX + 32];
    snprintf(parent, sizeof parent, "%s", out);
    char *slash = strrchr(parent, '/');
    if (slash) {
        *slash = 0;
        if (make_dirs(parent, err, sizeof err)) {
            fprintf(stderr, "tlsweep merge: %s\n", err);
            goto done;
        }
    }
    snprintf(tmp, sizeof tmp, "%s.merging-%ld", out, (long)getpid());
    status = 4;
    if (write_merged(tmp, &s, &table, inputs, n, winner, merged_from, err, sizeof err)) {
        fprintf(stderr, "tlsweep merge: %s\n", err);
        remove(tmp);
        goto done;
    }
    if (rename(tmp, out)) {
        perror("tlsweep merge: rename");
        remove(tmp);
        goto done;
    }
    printf("%s: %d trials from %d files: %d done, %d running, %d pending, %d failed, %d "
           "preempted\n",
           out, table.count, n, counts[TS_DONE], counts[TS_RUNNING], counts[TS_PENDING],
           counts[TS_FAILED], counts[TS_PREEMPTED]);
    status = 0;
done:
    for (int i = 0; i < n; i++)
        input_free(&inputs[i]);
    free(inputs);
    free(winner);
    free(merged_from);
    trial_table_free(&table);
    grid_trials_free(&trials);
    sweep_free(&s);
    return status;
}

int cmd_merge(int argc, char **argv) {
    static const struct option longopts[] = {{"output", required_argument, NULL, 'o'},
                                             {"force", no_argument, NULL, 'f'},
                                             {"help", no_argument, NULL, 'h'},
                                             {NULL, 0, NULL, 0}};
    const char *out = NULL;
    int force = 0, c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "o:h", longopts, NULL)) != -1) {
        switch (c) {
        case 'o':
            out = optarg;
            break;
        case 'f':
            force = 1;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (!out || optind >= argc) {
        fprintf(stderr, "tlsweep merge: %s\n", !out ? "-o OUT.h5 is required" : "no input files");
        usage(stderr);
        return 2;
    }
    return merge(out, force, argv + optind, argc - optind);
}
