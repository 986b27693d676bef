/* The phase-1 node's folder, lock and epoch history (see phase1.h). */
#include "worker/phase1.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "worker/paths.h"
#include "worker/weights/weights.h"

int phase1_lock(const char *dir, int *fd, char *err, size_t errlen) {
    char path[TRIAL_PATH_MAX + 8];
    if (make_dirs(dir, err, errlen)) return -1;
    snprintf(path, sizeof path, "%s/lock", dir);
    *fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (*fd < 0) {
        snprintf(err, errlen, "cannot open %s: %s", path, strerror(errno));
        return -1;
    }
    int rc;
    while ((rc = flock(*fd, LOCK_EX)) && errno == EINTR) {
    }
    if (rc) {
        snprintf(err, errlen, "cannot lock %s: %s", path, strerror(errno));
        close(*fd);
        *fd = -1;
        return -1;
    }
    return 0;
}

void phase1_unlock(int fd) {
    if (fd >= 0) close(fd); /* closing releases the flock */
}

int phase1_complete(const char *dir, int fe_epochs, char *err, size_t errlen) {
    char path[TRIAL_PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/resume.safetensors", dir);
    if (access(path, F_OK)) return 0;
    weights_file w = {0};
    if (weights_read_metadata(path, &w, err, errlen)) return -1;
    const char *done = weights_metadata(&w, "epochs_done");
    const char *inside = weights_metadata(&w, "epoch_batches_done");
    int complete = done && atoi(done) == fe_epochs && (!inside || atoi(inside) == 0) &&
                   weights_metadata(&w, "history");
    weights_free(&w);
    return complete;
}

int phase1_history_add(char **history, const epoch_record *r) {
    char line[4096];
    size_t n = 0;
#define ADD(...) n += (size_t)snprintf(line + n, n < sizeof line ? sizeof line - n : 0, __VA_ARGS__)
#define FIELD_TEXT_i32(name) ADD("%d ", (int)r->name);
#define FIELD_TEXT_f64(name) ADD("%.17g ", r->name);
#define FIELD_TEXT(kind, name) FIELD_TEXT_##kind(name)
    EPOCH_FIELDS(FIELD_TEXT)
#undef FIELD_TEXT
#undef FIELD_TEXT_f64
#undef FIELD_TEXT_i32
    ADD("%d", r->n_groups);
    for (int g = 0; g < r->n_groups; g++)
        ADD(" %.17g", r->group_lr[g]);
    ADD(";");
#undef ADD
    if (n >= sizeof line) return -1;
    size_t had = *history ? strlen(*history) : 0;
    char *grown = realloc(*history, had + n + 1);
    if (!grown) return -1;
    memcpy(grown + had, line, n + 1);
    *history = grown;
    return 0;
}

int phase1_history_replay(const char *history, const char *const *group_names, int n_groups,
                          const trial_hooks *hooks, int *stop, char *err, size_t errlen) {
    *stop = 0;
    double *lr = calloc((size_t)n_groups + 1, sizeof *lr);
    if (!lr) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    int rc = 0;
    const char *p = history;
    while (!rc && p && *p) {
        epoch_record r = {0};
        char *end = NULL;
        int ok = 1;
#define FIELD_READ(kind, name)                                                                     \
    if (ok) {                                                                                      \
        r.name = (EPOCH_FIELD_TYPE_##kind)strtod(p, &end);                                         \
        ok = end != p;                                                                             \
        p = end;                                                                                   \
    }
        EPOCH_FIELDS(FIELD_READ)
#undef FIELD_READ
        long groups = ok ? strtol(p, &end, 10) : -1;
        ok = ok && end != p && groups == n_groups;
        p = end;
        for (int g = 0; ok && g < n_groups; g++) {
            lr[g] = strtod(p, &end);
            ok = end != p;
            p = end;
        }
        if (!ok || *p != ';') {
            snprintf(err, errlen, "a malformed epoch history (epoch %d)", (int)r.epoch);
            rc = -1;
            break;
        }
        p++;
        r.n_groups = n_groups;
        r.group_names = group_names;
        r.group_lr = lr;
        if (hooks->on_epoch && hooks->on_epoch(&r, hooks->user)) *stop = 1;
    }
    free(lr);
    return rc;
}

int phase1_copy_best(const char *dir, const char *to_dir, const char *trial_name, char *err,
                     size_t errlen) {
    char from[TRIAL_PATH_MAX + 32], to[TRIAL_PATH_MAX + 32];
    snprintf(from, sizeof from, "%s/best.safetensors", dir);
    snprintf(to, sizeof to, "%s/best.safetensors", to_dir);
    weights_file w = {0};
    if (weights_read(from, &w, err, errlen)) return -1;
    weights_out_tensor *out = calloc((size_t)w.count + 1, sizeof *out);
    const char **meta = calloc(2 * (size_t)w.metadata_pairs + 1, sizeof *meta);
    int rc = -1;
    if (out && meta) {
        for (int i = 0; i < w.count; i++)
            out[i] = (weights_out_tensor){w.tensors[i].name, w.tensors[i].ndim, w.tensors[i].shape,
                                          w.tensors[i].data};
        for (int i = 0; i < 2 * w.metadata_pairs; i += 2) {
            meta[i] = w.metadata[i];
            meta[i + 1] = strcmp(w.metadata[i], "trial") ? w.metadata[i + 1] : trial_name;
        }
        rc = weights_write_safetensors(to, out, w.count, meta, w.metadata_pairs, err, errlen);
    } else
        snprintf(err, errlen, "out of memory");
    free(out);
    free(meta);
    weights_free(&w);
    return rc;
}
