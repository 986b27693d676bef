/* The HDF5 results writer: a file made by results_h5_create reads back with the schema of
 * results/SCHEMA.md (attributes, /trials with grid columns, /curves, /lr), in-place trial
 * updates keep the grid columns, a reader in SWMR mode sees appended epochs, and a writer
 * killed without closing leaves a file that reopens for writing. */
#include <hdf5.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "orchestrator/results_h5.h"
#include "tests/testlib.h"

static char dir[64];

static void make_rows(results_trial_row *rows, char (*values)[SWEEP_MAX_AXES][RESULTS_VALUE_MAX],
                      int count) {
    memset(rows, 0, sizeof *rows * (size_t)count);
    memset(values, 0, sizeof *values * (size_t)count);
    for (int i = 0; i < count; i++) {
        rows[i].id = i;
        snprintf(rows[i].name, sizeof rows[i].name, "resnet18__s__seed=%d", i);
        snprintf(rows[i].backbone, sizeof rows[i].backbone, "resnet18");
        snprintf(rows[i].schedule, sizeof rows[i].schedule, "s");
        snprintf(rows[i].status, sizeof rows[i].status, "pending");
        rows[i].rank = -1;
        rows[i].device = -1;
        rows[i].estimated_cost = 10.0 + i;
        snprintf(values[i][0], RESULTS_VALUE_MAX, "%d", i);
    }
}

static const results_meta meta = {.tool_version = "0.1.0",
                                  .git_revision = "abc",
                                  .sweep_name = "unit",
                                  .sweep_file = "unit.yaml",
                                  .sweep_text = "name: unit\n",
                                  .hosts = "node1",
                                  .ranks = 3,
                                  .simulated = 1};

static results_h5 *create(const char *path, int count) {
    results_grid_columns columns = {.count = 1};
    snprintf(columns.names[0], SWEEP_KEY_MAX, "train.seed");
    results_trial_row rows[8];
    char values[8][SWEEP_MAX_AXES][RESULTS_VALUE_MAX];
    make_rows(rows, values, count);
    results_h5 *h = NULL;
    char err[512];
    int rc = results_h5_create(path, &meta, &columns, rows,
                               (const char(*)[SWEEP_MAX_AXES][RESULTS_VALUE_MAX])values, count, &h,
                               err, sizeof err);
    CHECK(rc == 0, "create: %s", err);
    return rc ? NULL : h;
}

static void append(results_h5 *h, int trial, int epoch) {
    results_curve_row c = {.trial_id = trial,
                           .attempt = 1,
                           .epoch = epoch,
                           .phase = 1,
                           .val_acc = 0.1 * epoch,
                           .head_lr = 1e-3,
                           .data_wait_s = 0.5 * epoch};
    snprintf(c.trial, sizeof c.trial, "resnet18__s__seed=%d", trial);
    results_lr_row lr[2];
    for (int g = 0; g < 2; g++) {
        memset(&lr[g], 0, sizeof lr[g]);
        lr[g].trial_id = trial;
        snprintf(lr[g].trial, sizeof lr[g].trial, "%s", c.trial);
        lr[g].epoch = epoch;
        lr[g].phase = 1;
        lr[g].group_index = g;
        snprintf(lr[g].group, sizeof lr[g].group, "%s", g ? "layer4" : "fc");
        lr[g].lr = g ? 0 : 1e-3;
    }
    char err[512];
    CHECK(results_h5_append_epoch(h, &c, lr, 2, err, sizeof err) == 0, "append: %s", err);
}

static void test_create_and_read_back(void) {
    char path[128], err[512];
    snprintf(path, sizeof path, "%s/a.h5", dir);
    results_h5 *h = create(path, 3);
    if (!h) return;
    append(h, 0, 1);
    append(h, 0, 2);
    results_trial_row row;
    memset(&row, 0, sizeof row);
    row.id = 1;
    snprintf(row.name, sizeof row.name, "resnet18__s__seed=1");
    snprintf(row.status, sizeof row.status, "done");
    row.best_val_acc = 0.75;
    CHECK(results_h5_write_trial(h, &row, err, sizeof err) == 0, "write trial: %s", err);
    CHECK(results_h5_close(h, err, sizeof err) == 0, "close: %s", err);

    results_trial_row *trials = NULL;
    int count = 0;
    CHECK(results_h5_read_file(path, &trials, &count, err, sizeof err) == 0, "read: %s", err);
    CHECK(count == 3, "%d trials", count);
    if (count == 3) {
        CHECK(!strcmp(trials[1].status, "done") && trials[1].best_val_acc == 0.75,
              "trial 1 update lost: %s %g", trials[1].status, trials[1].best_val_acc);
        CHECK(!strcmp(trials[2].status, "pending") && trials[2].estimated_cost == 12.0,
              "trial 2 changed");
    }
    free(trials);

    /* the grid column survives the in-place update; attributes are there */
    hid_t file = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    CHECK(file >= 0, "reopen with plain HDF5");
    if (file < 0) return;
    hid_t d = H5Dopen2(file, "/trials", H5P_DEFAULT);
    hid_t str = H5Tcopy(H5T_C_S1);
    H5Tset_size(str, RESULTS_VALUE_MAX);
    hid_t one = H5Tcreate(H5T_COMPOUND, RESULTS_VALUE_MAX);
    H5Tinsert(one, "train.seed", 0, str);
    char seeds[3][RESULTS_VALUE_MAX];
    CHECK(H5Dread(d, one, H5S_ALL, H5S_ALL, H5P_DEFAULT, seeds) >= 0, "read the grid column");
    CHECK(!strcmp(seeds[0], "0") && !strcmp(seeds[1], "1") && !strcmp(seeds[2], "2"),
          "grid column: %s %s %s", seeds[0], seeds[1], seeds[2]);
    static const char *const attrs[] = {"tool_version", "git_revision", "hdf5_version",
                                        "mpi_version",  "sweep_text",   "created",
                                        "hosts",        "mode",         "simulated"};
    for (size_t i = 0; i < sizeof attrs / sizeof attrs[0]; i++)
        CHECK(H5Aexists(file, attrs[i]) > 0, "no root attribute %s", attrs[i]);
    H5Tclose(one);
    H5Tclose(str);
    H5Dclose(d);
    H5Fclose(file);

    results_h5 *again = NULL;
    CHECK(results_h5_open(path, &again, err, sizeof err) == 0, "open: %s", err);
    if (!again) return;
    results_curve_row *curves = NULL;
    results_lr_row *lr = NULL;
    int n_curves = 0, n_lr = 0;
    CHECK(results_h5_read_curves(again, &curves, &n_curves, err, sizeof err) == 0, "%s", err);
    CHECK(results_h5_read_lr(again, &lr, &n_lr, err, sizeof err) == 0, "%s", err);
    CHECK(n_curves == 2 && n_lr == 4, "%d curves, %d lr rows", n_curves, n_lr);
    if (n_curves == 2)
        CHECK(curves[1].epoch == 2 && curves[1].val_acc == 0.2 && curves[1].data_wait_s == 1.0 &&
                  !strcmp(curves[1].trial, "resnet18__s__seed=0"),
              "curve row 2 wrong");
    if (n_lr == 4) CHECK(!strcmp(lr[3].group, "layer4") && lr[2].lr == 1e-3, "lr rows wrong");
    char *text = results_h5_attr(again, "sweep_text", err, sizeof err);
    CHECK(text && !strcmp(text, "name: unit\n"), "sweep_text attribute '%s'", text ? text : "-");
    free(text);
    CHECK(results_h5_rewrite_curves(again, curves, 1, err, sizeof err) == 0, "%s", err);
    free(curves);
    free(lr);
    results_h5_close(again, err, sizeof err);
}

static void test_refuses_to_replace(void) {
    char path[128], err[512];
    snprintf(path, sizeof path, "%s/b.h5", dir);
    results_h5 *h = create(path, 1);
    if (h) results_h5_close(h, err, sizeof err);
    results_grid_columns none = {0};
    results_trial_row row;
    char values[1][SWEEP_MAX_AXES][RESULTS_VALUE_MAX];
    make_rows(&row, values, 1);
    CHECK(results_h5_create(path, &meta, &none, &row,
                            (const char(*)[SWEEP_MAX_AXES][RESULTS_VALUE_MAX])values, 1, &h, err,
                            sizeof err) == -1,
          "an existing file was replaced");
    CHECK(strstr(err, "cannot create the file") != NULL, "message: %s", err);
}

/* The reader of test_swmr_reader, in its own process (in the writer's, HDF5 would share the
 * open file's state and hide a missing flush): opens the file when told ("o" on `go`), says so
 * on `done`, then after "r" refreshes /curves and reports "ROWS EPOCH..." on `done`. */
static int swmr_reader(const char *path, int go, int done) {
    char cmd = 0, line[256] = "";
    if (read(go, &cmd, 1) != 1) return 1;
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    H5Pset_libver_bounds(fapl, H5F_LIBVER_LATEST, H5F_LIBVER_LATEST);
    hid_t file = H5Fopen(path, H5F_ACC_RDONLY | H5F_ACC_SWMR_READ, fapl);
    hid_t d = file >= 0 ? H5Dopen2(file, "/curves", H5P_DEFAULT) : -1;
    if (write(done, d >= 0 ? "o" : "x", 1) != 1 || d < 0 || read(go, &cmd, 1) != 1) return 1;
    hsize_t rows = 0;
    int epochs[8] = {0};
    hid_t epoch_only = H5Tcreate(H5T_COMPOUND, sizeof(int));
    H5Tinsert(epoch_only, "epoch", 0, H5T_NATIVE_INT);
    hid_t space = -1;
    int ok = H5Drefresh(d) >= 0 && (space = H5Dget_space(d)) >= 0 &&
             H5Sget_simple_extent_dims(space, &rows, NULL) == 1 && rows <= 8 &&
             H5Dread(d, epoch_only, H5S_ALL, H5S_ALL, H5P_DEFAULT, epochs) >= 0;
    int len = snprintf(line, sizeof line, "%d", ok ? (int)rows : -1);
    for (hsize_t i = 0; ok && i < rows; i++)
        len += snprintf(line + len, sizeof line - (size_t)len, " %d", epochs[i]);
    if (space >= 0) H5Sclose(space);
    H5Tclose(epoch_only);
    H5Dclose(d);
    H5Fclose(file);
    H5Pclose(fapl);
    return write(done, line, strlen(line) + 1) == (ssize_t)strlen(line) + 1 ? 0 : 1;
}

/* SWMR: a reader in another process, opened before the appends, sees each of them (and its
 * epoch) after a refresh: only what the writer flushed reaches it. */
static void test_swmr_reader(void) {
    char path[128], err[512], line[256] = "";
    snprintf(path, sizeof path, "%s/c.h5", dir);
    int go[2], done[2];
    if (pipe(go) || pipe(done)) {
        tl_fail(__FILE__, __LINE__, "pipe failed");
        return;
    }
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) _exit(swmr_reader(path, go[0], done[1]));
    close(go[0]);
    close(done[1]);
    results_h5 *h = create(path, 2);
    char opened = 0;
    if (h) {
        append(h, 1, 1);
        CHECK(write(go[1], "o", 1) == 1 && read(done[0], &opened, 1) == 1 && opened == 'o',
              "the SWMR reader process cannot open %s", path);
        append(h, 1, 2);
        append(h, 1, 3);
        CHECK(write(go[1], "r", 1) == 1 && read(done[0], line, sizeof line - 1) > 0,
              "no answer from the reader process");
        CHECK(!strcmp(line, "3 1 2 3"),
              "the reader process sees '%s' (rows, epochs), want "
              "'3 1 2 3'",
              line);
        results_h5_close(h, err, sizeof err);
    }
    close(go[1]);
    close(done[0]);
    int status = 0;
    waitpid(pid, &status, 0);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "the reader process failed");
}

/* A writer that dies leaves the consistency flags set; open clears them and reads the rows. */
static void test_reopen_after_crash(void) {
    char path[128], err[512];
    snprintf(path, sizeof path, "%s/d.h5", dir);
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        results_h5 *h = create(path, 2);
        if (h) append(h, 0, 1);
        _exit(h ? 0 : 1); /* no close: like kill -9 */
    }
    int status = 0;
    waitpid(pid, &status, 0);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "the crashing writer failed early");
    results_h5 *h = NULL;
    CHECK(results_h5_open(path, &h, err, sizeof err) == 0, "reopen after a crash: %s", err);
    if (!h) return;
    results_curve_row *curves = NULL;
    int n = 0;
    CHECK(results_h5_read_curves(h, &curves, &n, err, sizeof err) == 0 && n == 1,
          "%d curve rows after the crash (%s)", n, err);
    free(curves);
    CHECK(results_h5_start_swmr(h, err, sizeof err) == 0, "SWMR after reopen: %s", err);
    append(h, 0, 2);
    CHECK(results_h5_close(h, err, sizeof err) == 0, "%s", err);
}

/* A /curves of an older schema (no data_wait_s, as tlsweep-results-1 wrote it): made by
 * replacing the table with one whose type lacks the column. */
static int make_old_curves(const char *path) {
    hid_t file = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    if (file < 0) return -1;
    hid_t d = H5Dopen2(file, "/curves", H5P_DEFAULT);
    hid_t type = d >= 0 ? H5Dget_type(d) : -1;
    hid_t old = H5Tcreate(H5T_COMPOUND, H5Tget_size(type));
    for (int i = 0; i < H5Tget_nmembers(type); i++) {
        char *name = H5Tget_member_name(type, (unsigned)i);
        hid_t member = H5Tget_member_type(type, (unsigned)i);
        if (strcmp(name, "data_wait_s"))
            H5Tinsert(old, name, H5Tget_member_offset(type, (unsigned)i), member);
        H5Tclose(member);
        H5free_memory(name);
    }
    H5Dclose(d);
    H5Ldelete(file, "/curves", H5P_DEFAULT);
    hsize_t zero = 0, unlimited = H5S_UNLIMITED, chunk = 16;
    hid_t space = H5Screate_simple(1, &zero, &unlimited);
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    H5Pset_chunk(dcpl, 1, &chunk);
    d = H5Dcreate2(file, "/curves", old, space, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    int rc = d >= 0 && H5Tget_member_index(old, "data_wait_s") < 0 ? 0 : -1;
    H5Dclose(d);
    H5Pclose(dcpl);
    H5Sclose(space);
    H5Tclose(old);
    H5Tclose(type);
    H5Fclose(file);
    return rc;
}

/* A file of the previous schema resumes: its rows append and read back, the column it lacks
 * reads as NaN and is not added. */
static void test_older_schema(void) {
    char path[128], err[512];
    snprintf(path, sizeof path, "%s/e.h5", dir);
    results_h5 *h = create(path, 1);
    if (!h) return;
    results_h5_close(h, err, sizeof err);
    CHECK(make_old_curves(path) == 0, "cannot make a /curves without data_wait_s");
    CHECK(results_h5_open(path, &h, err, sizeof err) == 0, "open: %s", err);
    if (!h) return;
    CHECK(results_h5_start_swmr(h, err, sizeof err) == 0, "SWMR: %s", err);
    append(h, 0, 1);
    append(h, 0, 2);
    results_curve_row *curves = NULL;
    int n = 0;
    CHECK(results_h5_read_curves(h, &curves, &n, err, sizeof err) == 0 && n == 2,
          "%d curve rows (%s)", n, err);
    if (n == 2)
        CHECK(curves[1].epoch == 2 && curves[1].val_acc == 0.2 && curves[1].head_lr == 1e-3 &&
                  isnan(curves[1].data_wait_s),
              "old-schema row 2: epoch %d val_acc %g data_wait_s %g", curves[1].epoch,
              curves[1].val_acc, curves[1].data_wait_s);
    free(curves);
    CHECK(results_h5_close(h, err, sizeof err) == 0, "%s", err);
    hid_t file = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    hid_t d = file >= 0 ? H5Dopen2(file, "/curves", H5P_DEFAULT) : -1;
    hid_t type = d >= 0 ? H5Dget_type(d) : -1;
    CHECK(type >= 0 && H5Tget_member_index(type, "data_wait_s") < 0 &&
              H5Tget_member_index(type, "val_acc") >= 0,
          "the old file's /curves changed its columns");
    H5Eclear2(H5E_DEFAULT);
    if (type >= 0) H5Tclose(type);
    if (d >= 0) H5Dclose(d);
    if (file >= 0) H5Fclose(file);
}

int main(void) {
    snprintf(dir, sizeof dir, "/tmp/tlsweep-results-XXXXXX");
    if (!mkdtemp(dir)) return 1;
    static const char *const names[] = {"create and read back", "refuses to replace a file",
                                        "SWMR reader sees appends", "reopen after a crash",
                                        "a file of the previous schema resumes"};
    static const tl_case_fn cases[] = {test_create_and_read_back, test_refuses_to_replace,
                                       test_swmr_reader, test_reopen_after_crash,
                                       test_older_schema};
    int rc = TL_RUN("results", names, cases);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (getenv("KEEP")) return rc;
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
    return rc;
}
