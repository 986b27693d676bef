/* The HDF5 results writer: one declarative field table per compound dataset drives the types,
 * every HDF5 call is checked, errors name the file and what failed (with HDF5's own reason). */
#include <errno.h>
#include <hdf5.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "orchestrator/results_h5.h"
#include "worker/clock.h"
#include "worker/paths.h"

typedef enum { FIELD_I32, FIELD_I64, FIELD_F64, FIELD_STR } field_kind;

typedef struct {
    const char *name;
    field_kind kind;
    size_t offset, size;
} h5_field;

#define FIELD(T, m, kind)                                                                          \
    { #m, kind, offsetof(T, m), sizeof(((T *)0)->m) }

static const h5_field trial_fields[] = {
    FIELD(results_trial_row, id, FIELD_I32),
    FIELD(results_trial_row, name, FIELD_STR),
    FIELD(results_trial_row, backbone, FIELD_STR),
    FIELD(results_trial_row, schedule, FIELD_STR),
    FIELD(results_trial_row, grid, FIELD_STR),
    FIELD(results_trial_row, status, FIELD_STR),
    FIELD(results_trial_row, attempts, FIELD_I32),
    FIELD(results_trial_row, rank, FIELD_I32),
    FIELD(results_trial_row, host, FIELD_STR),
    FIELD(results_trial_row, device, FIELD_I32),
    FIELD(results_trial_row, params, FIELD_I64),
    FIELD(results_trial_row, estimated_cost, FIELD_F64),
    FIELD(results_trial_row, phase1_trial, FIELD_I32),
    FIELD(results_trial_row, start_time, FIELD_F64),
    FIELD(results_trial_row, end_time, FIELD_F64),
    FIELD(results_trial_row, seconds, FIELD_F64),
    FIELD(results_trial_row, val_acc_end_of_feature_extraction, FIELD_F64),
    FIELD(results_trial_row, best_val_acc, FIELD_F64),
    FIELD(results_trial_row, best_epoch, FIELD_I32),
    FIELD(results_trial_row, epochs_done, FIELD_I32),
    FIELD(results_trial_row, error, FIELD_STR),
    {NULL, 0, 0, 0},
};

#define EPOCH_FIELD_KIND_i32 FIELD_I32
#define EPOCH_FIELD_KIND_f64 FIELD_F64

static const h5_field curve_fields[] = {
    FIELD(results_curve_row, trial_id, FIELD_I32),
    FIELD(results_curve_row, trial, FIELD_STR),
    FIELD(results_curve_row, attempt, FIELD_I32),
    FIELD(results_curve_row, computed_by, FIELD_I32),
#define CURVE_FIELD(kind, name) FIELD(results_curve_row, name, EPOCH_FIELD_KIND_##kind),
    EPOCH_FIELDS(CURVE_FIELD)
#undef CURVE_FIELD
        FIELD(results_curve_row, time, FIELD_F64),
    {NULL, 0, 0, 0},
};

static const h5_field lr_fields[] = {
    FIELD(results_lr_row, trial_id, FIELD_I32),    FIELD(results_lr_row, trial, FIELD_STR),
    FIELD(results_lr_row, epoch, FIELD_I32),       FIELD(results_lr_row, phase, FIELD_I32),
    FIELD(results_lr_row, group_index, FIELD_I32), FIELD(results_lr_row, group, FIELD_STR),
    FIELD(results_lr_row, lr, FIELD_F64),          {NULL, 0, 0, 0},
};

/* One compound table: its dataset, memory type (the fixed fields) and row size. */
typedef struct {
    const char *path; /* "/trials" */
    const h5_field *fields;
    size_t row_size;
    hsize_t chunk;
    hid_t dset, type;
    hsize_t rows;
    /* Fields the file's table lacks (bit i: fields[i]): a file of an older schema. They are
     * neither read (f64 reads as NaN) nor written. */
    uint64_t missing;
} h5_table;

struct results_h5 {
    char path[TRIAL_PATH_MAX];
    char work[TRIAL_PATH_MAX + 16]; /* results_h5_open's working copy until it replaces path */
    hid_t file;
    h5_table trials, curves, lr;
    results_grid_columns columns;
    double write_seconds;
    long kill_after_lr; /* test hook, see results_h5.h */
    long epochs_appended;
};

/* HDF5's reason for the last failure, for our one-line messages: the API call's description
 * and, when a frame below carries one, the system's error message (a full disk says "No space
 * left on device" only there). */
static herr_t first_error(unsigned n, const H5E_error2_t *e, void *out) {
    char *reason = out;
    const char *desc = e->desc ? e->desc : "unknown";
    if (n == 0) snprintf(reason, 200, "%s", desc);
    const char *sys = strstr(desc, "error message = '");
    if (n > 0 && sys && !strchr(reason, '(')) {
        sys += strlen("error message = '");
        size_t len = strcspn(sys, "'"), used = strlen(reason);
        snprintf(reason + used, 200 - used, " (%.*s)", (int)len, sys);
    }
    return 0;
}

__attribute__((format(printf, 4, 5))) static int fail(const char *path, char *err, size_t errlen,
                                                      const char *fmt, ...) {
    char what[512], reason[200] = "";
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    H5Ewalk2(H5E_DEFAULT, H5E_WALK_DOWNWARD, first_error, reason);
    snprintf(err, errlen, "results %s: %s%s%s", path, what, reason[0] ? ": " : "", reason);
    H5Eclear2(H5E_DEFAULT);
    return -1;
}

static hid_t string_type(size_t size) {
    hid_t t = H5Tcopy(H5T_C_S1);
    if (t < 0) return -1;
    if (H5Tset_size(t, size) < 0 || H5Tset_strpad(t, H5T_STR_NULLTERM) < 0) {
        H5Tclose(t);
        return -1;
    }
    return t;
}

/* The compound type of a field table less the missing ones, optionally with extra string
 * columns after row_size. */
static hid_t compound_type(const h5_field *fields, uint64_t missing, size_t row_size,
                           const results_grid_columns *extra) {
    size_t size = row_size + (extra ? (size_t)extra->count * RESULTS_VALUE_MAX : 0);
    hid_t t = H5Tcreate(H5T_COMPOUND, size);
    if (t < 0) return -1;
    for (const h5_field *f = fields; f->name; f++) {
        if (missing >> (f - fields) & 1) continue;
        hid_t member = -1;
        switch (f->kind) {
        case FIELD_I32:
            member = H5Tcopy(H5T_NATIVE_INT32);
            break;
        case FIELD_I64:
            member = H5Tcopy(H5T_NATIVE_INT64);
            break;
        case FIELD_F64:
            member = H5Tcopy(H5T_NATIVE_DOUBLE);
            break;
        case FIELD_STR:
            member = string_type(f->size);
            break;
        }
        herr_t rc = member < 0 ? -1 : H5Tinsert(t, f->name, f->offset, member);
        if (member >= 0) H5Tclose(member);
        if (rc < 0) {
            H5Tclose(t);
            return -1;
        }
    }
    for (int i = 0; extra && i < extra->count; i++) {
        hid_t member = string_type(RESULTS_VALUE_MAX);
        herr_t rc = member < 0 ? -1
                               : H5Tinsert(t, extra->names[i],
                                           row_size + (size_t)i * RESULTS_VALUE_MAX, member);
        if (member >= 0) H5Tclose(member);
        if (rc < 0) {
            H5Tclose(t);
            return -1;
        }
    }
    return t;
}

static void table_init(h5_table *t, const char *path, const h5_field *fields, size_t row_size,
                       hsize_t chunk) {
    memset(t, 0, sizeof *t);
    t->path = path;
    t->fields = fields;
    t->row_size = row_size;
    t->chunk = chunk;
    t->dset = -1;
    t->type = -1;
}

static int table_create(hid_t file, h5_table *t, const results_grid_columns *extra) {
    hid_t file_type = compound_type(t->fields, 0, t->row_size, extra);
    hsize_t zero = 0, unlimited = H5S_UNLIMITED;
    hid_t space = H5Screate_simple(1, &zero, &unlimited);
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    int ok = file_type >= 0 && space >= 0 && dcpl >= 0 && H5Pset_chunk(dcpl, 1, &t->chunk) >= 0;
    if (ok) {
        t->dset = H5Dcreate2(file, t->path, file_type, space, H5P_DEFAULT, dcpl, H5P_DEFAULT);
        ok = t->dset >= 0;
    }
    if (file_type >= 0) H5Tclose(file_type);
    if (space >= 0) H5Sclose(space);
    if (dcpl >= 0) H5Pclose(dcpl);
    if (!ok) return -1;
    t->missing = 0;
    t->type = compound_type(t->fields, 0, t->row_size, NULL);
    return t->type < 0 ? -1 : 0;
}

static int table_open(hid_t file, h5_table *t) {
    t->dset = H5Dopen2(file, t->path, H5P_DEFAULT);
    if (t->dset < 0) return -1;
    hid_t space = H5Dget_space(t->dset);
    if (space < 0) return -1;
    hsize_t dims = 0;
    int rank = H5Sget_simple_extent_dims(space, &dims, NULL);
    H5Sclose(space);
    if (rank != 1) return -1;
    t->rows = dims;
    hid_t file_type = H5Dget_type(t->dset);
    if (file_type < 0 || H5Tget_class(file_type) != H5T_COMPOUND) {
        if (file_type >= 0) H5Tclose(file_type);
        return -1;
    }
    t->missing = 0;
    for (const h5_field *f = t->fields; f->name; f++)
        if (H5Tget_member_index(file_type, f->name) < 0) t->missing |= 1ull << (f - t->fields);
    H5Tclose(file_type);
    H5Eclear2(H5E_DEFAULT); /* the lookups of missing members leave errors behind */
    t->type = compound_type(t->fields, t->missing, t->row_size, NULL);
    return t->type < 0 ? -1 : 0;
}

/* What a column the file lacks reads as: NaN for a number (not 0: "no wait" is a value). */
static void fill_missing(const h5_table *t, void *rows, hsize_t count) {
    for (const h5_field *f = t->fields; t->missing && f->name; f++) {
        if (!(t->missing >> (f - t->fields) & 1) || f->kind != FIELD_F64) continue;
        for (hsize_t i = 0; i < count; i++) {
            double nan = NAN;
            memcpy((char *)rows + i * t->row_size + f->offset, &nan, sizeof nan);
        }
    }
}

static void table_close(h5_table *t) {
    if (t->type >= 0) H5Tclose(t->type);
    if (t->dset >= 0) H5Dclose(t->dset);
    t->type = t->dset = -1;
}

/* Writes count rows at row index start (growing the table when needed) with mem_type. */
static int table_write(h5_table *t, hid_t mem_type, hsize_t start, const void *rows, hsize_t count,
                       int flush) {
    if (count == 0) return 0;
    if (start + count > t->rows) {
        hsize_t dims = start + count;
        if (H5Dset_extent(t->dset, &dims) < 0) return -1;
        t->rows = dims;
    }
    hid_t space = H5Dget_space(t->dset);
    if (space < 0) return -1;
    hid_t mem = H5Screate_simple(1, &count, NULL);
    int ok = mem >= 0 &&
             H5Sselect_hyperslab(space, H5S_SELECT_SET, &start, NULL, &count, NULL) >= 0 &&
             H5Dwrite(t->dset, mem_type, mem, space, H5P_DEFAULT, rows) >= 0 &&
             (!flush || H5Dflush(t->dset) >= 0);
    /* closing would clear the error stack that fail() reports from; keep it across */
    hid_t errors = ok ? H5I_INVALID_HID : H5Eget_current_stack();
    if (mem >= 0) H5Sclose(mem);
    H5Sclose(space);
    if (errors >= 0) H5Eset_current_stack(errors);
    return ok ? 0 : -1;
}

static int table_read(h5_table *t, void **rows, int *count) {
    *rows = NULL;
    *count = 0;
    /* in SWMR the table may have grown since it was opened */
    if (H5Drefresh(t->dset) < 0) return -1;
    hid_t space = H5Dget_space(t->dset);
    if (space < 0) return -1;
    hsize_t dims = 0;
    H5Sget_simple_extent_dims(space, &dims, NULL);
    t->rows = dims;
    *rows = calloc(dims ? dims : 1, t->row_size);
    int ok = *rows != NULL &&
             (dims == 0 || H5Dread(t->dset, t->type, H5S_ALL, space, H5P_DEFAULT, *rows) >= 0);
    H5Sclose(space);
    if (!ok) {
        free(*rows);
        *rows = NULL;
        return -1;
    }
    fill_missing(t, *rows, dims);
    *count = (int)dims;
    return 0;
}

static int table_truncate(h5_table *t, hsize_t rows) {
    if (H5Dset_extent(t->dset, &rows) < 0) return -1;
    t->rows = rows;
    return 0;
}

static int attr_string(hid_t loc, const char *name, const char *value) {
    if (!value) value = "";
    hid_t type = string_type(strlen(value) + 1);
    hid_t space = H5Screate(H5S_SCALAR);
    hid_t attr =
        type >= 0 && space >= 0 ? H5Acreate2(loc, name, type, space, H5P_DEFAULT, H5P_DEFAULT) : -1;
    int ok = attr >= 0 && H5Awrite(attr, type, value) >= 0;
    if (attr >= 0) H5Aclose(attr);
    if (space >= 0) H5Sclose(space);
    if (type >= 0) H5Tclose(type);
    return ok ? 0 : -1;
}

static int attr_int(hid_t loc, const char *name, long long value) {
    hid_t space = H5Screate(H5S_SCALAR);
    hid_t attr =
        space >= 0 ? H5Acreate2(loc, name, H5T_NATIVE_LLONG, space, H5P_DEFAULT, H5P_DEFAULT) : -1;
    int ok = attr >= 0 && H5Awrite(attr, H5T_NATIVE_LLONG, &value) >= 0;
    if (attr >= 0) H5Aclose(attr);
    if (space >= 0) H5Sclose(space);
    return ok ? 0 : -1;
}

static int write_meta(hid_t file, const results_meta *m, const results_grid_columns *columns) {
    unsigned maj, min, rel;
    char hdf5_version[32], created[64];
    H5get_libversion(&maj, &min, &rel);
    snprintf(hdf5_version, sizeof hdf5_version, "%u.%u.%u", maj, min, rel);
    time_t t = time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(created, sizeof created, "%Y-%m-%dT%H:%M:%SZ", &tm);
    char grid_columns[SWEEP_MAX_AXES * (SWEEP_KEY_MAX + 1) + 1] = "";
    for (int i = 0; i < columns->count; i++) {
        size_t used = strlen(grid_columns);
        snprintf(grid_columns + used, sizeof grid_columns - used, "%s%s", i ? "," : "",
                 columns->names[i]);
    }
    struct {
        const char *name, *value;
    } strings[] = {
        {"tool", "tlsweep"},
        {"tool_version", m->tool_version},
        {"git_revision", m->git_revision},
        {"compiler", m->compiler},
        {"compiler_flags", m->compiler_flags},
        {"mpi_version", m->mpi_version},
        {"hdf5_version", m->hdf5_version ? m->hdf5_version : hdf5_version},
        {"onednn_version", m->onednn_version},
        {"cuda_version", m->cuda_version},
        {"cudnn_version", m->cudnn_version},
        {"nccl_version", m->nccl_version},
        {"sweep_name", m->sweep_name},
        {"sweep_file", m->sweep_file},
        {"sweep_text", m->sweep_text},
        {"created", created},
        {"hosts", m->hosts},
        {"mode", m->simulated ? "simulated" : "real"},
        {"grid_columns", grid_columns},
        {"schema", RESULTS_SCHEMA},
    };
    for (size_t i = 0; i < sizeof strings / sizeof strings[0]; i++)
        if (attr_string(file, strings[i].name, strings[i].value)) return -1;
    if (m->merged_from && attr_string(file, "merged_from", m->merged_from)) return -1;
    if (m->image_caches && attr_string(file, "image_caches", m->image_caches)) return -1;
    if (attr_int(file, "simulated", m->simulated) || attr_int(file, "ranks", m->ranks)) return -1;
    return 0;
}

/* A packed /trials buffer: fixed row, then the grid strings. */
static void *pack_trials(const results_trial_row *rows,
                         const char (*grid_values)[SWEEP_MAX_AXES][RESULTS_VALUE_MAX], int count,
                         int columns) {
    size_t size = sizeof(results_trial_row) + (size_t)columns * RESULTS_VALUE_MAX;
    char *buf = calloc(count ? (size_t)count : 1, size);
    if (!buf) return NULL;
    for (int i = 0; i < count; i++) {
        memcpy(buf + (size_t)i * size, &rows[i], sizeof rows[i]);
        for (int c = 0; c < columns; c++)
            memcpy(buf + (size_t)i * size + sizeof(results_trial_row) +
                       (size_t)c * RESULTS_VALUE_MAX,
                   grid_values[i][c], RESULTS_VALUE_MAX);
    }
    return buf;
}

static int write_trial_rows(results_h5 *h, hsize_t start, const results_trial_row *rows,
                            const char (*grid_values)[SWEEP_MAX_AXES][RESULTS_VALUE_MAX],
                            int count) {
    void *buf = pack_trials(rows, grid_values, count, h->columns.count);
    hid_t full =
        compound_type(trial_fields, h->trials.missing, sizeof(results_trial_row), &h->columns);
    int rc = buf && full >= 0 ? table_write(&h->trials, full, start, buf, (hsize_t)count, 1) : -1;
    if (full >= 0) H5Tclose(full);
    free(buf);
    return rc;
}

static results_h5 *alloc_handle(const char *path) {
    results_h5 *h = calloc(1, sizeof *h);
    if (!h) return NULL;
    snprintf(h->path, sizeof h->path, "%s", path);
    h->file = -1;
    table_init(&h->trials, "/trials", trial_fields, sizeof(results_trial_row), 64);
    table_init(&h->curves, "/curves", curve_fields, sizeof(results_curve_row), 256);
    table_init(&h->lr, "/lr", lr_fields, sizeof(results_lr_row), 1024);
    const char *kill_after = getenv("TLSWEEP_TEST_KILL_AFTER_LR");
    h->kill_after_lr = kill_after ? atol(kill_after) : 0;
    return h;
}

static void close_handle(results_h5 *h) {
    table_close(&h->trials);
    table_close(&h->curves);
    table_close(&h->lr);
    if (h->file >= 0) H5Fclose(h->file);
    if (h->work[0]) remove(h->work); /* an abandoned resume: the file stays as it was */
    free(h);
}

static hid_t latest_fapl(void) {
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    if (fapl < 0) return -1;
    /* SWMR needs the latest file format */
    if (H5Pset_libver_bounds(fapl, H5F_LIBVER_LATEST, H5F_LIBVER_LATEST) < 0) {
        H5Pclose(fapl);
        return -1;
    }
    return fapl;
}

int results_h5_create(const char *path, const results_meta *meta,
                      const results_grid_columns *columns, const results_trial_row *rows,
                      const char (*grid_values)[SWEEP_MAX_AXES][RESULTS_VALUE_MAX], int count,
                      results_h5 **out, char *err, size_t errlen) {
    *out = NULL;
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL); /* our messages say what failed, once */
    /* The file is made whole, in SWMR mode, under another name and renamed into place while
     * open, so a kill at any moment leaves either no results file (the rerun starts afresh) or
     * a complete one, and a reader that opens the name finds it ready. A leftover of such a
     * kill is replaced: the caller holds the results file's lock. */
    if (!access(path, F_OK)) return fail(path, err, errlen, "cannot create the file: it exists");
    results_h5 *h = alloc_handle(path);
    if (!h) return fail(path, err, errlen, "out of memory");
    h->columns = *columns;
    if ((size_t)snprintf(h->work, sizeof h->work, "%s.creating", path) >= sizeof h->work) {
        h->work[0] = 0;
        close_handle(h);
        return fail(path, err, errlen, "the path is too long");
    }
    remove(h->work);
    hid_t fapl = latest_fapl();
    h->file = fapl >= 0 ? H5Fcreate(h->work, H5F_ACC_EXCL, H5P_DEFAULT, fapl) : -1;
    if (fapl >= 0) H5Pclose(fapl);
    const char *step = NULL;
    if (h->file < 0)
        step = "cannot create the file";
    else if (write_meta(h->file, meta, columns))
        step = "cannot write the root attributes";
    else if (table_create(h->file, &h->trials, columns))
        step = "cannot create /trials";
    else if (table_create(h->file, &h->curves, NULL))
        step = "cannot create /curves";
    else if (table_create(h->file, &h->lr, NULL))
        step = "cannot create /lr";
    else if (write_trial_rows(h, 0, rows, grid_values, count))
        step = "cannot write /trials";
    if (step) {
        fail(path, err, errlen, "%s", step);
        close_handle(h); /* a half-made file is no results file; nothing else was in it */
        return -1;
    }
    if (results_h5_start_swmr(h, err, errlen) || results_h5_replace(h, err, errlen)) {
        close_handle(h);
        return -1;
    }
    *out = h;
    return 0;
}

int results_h5_start_swmr(results_h5 *h, char *err, size_t errlen) {
    /* Objects are closed around the switch so it needs no assumptions about open handles. */
    table_close(&h->trials);
    table_close(&h->curves);
    table_close(&h->lr);
    if (H5Fstart_swmr_write(h->file) < 0)
        return fail(h->path, err, errlen, "cannot start SWMR writing");
    if (table_open(h->file, &h->trials) || table_open(h->file, &h->curves) ||
        table_open(h->file, &h->lr))
        return fail(h->path, err, errlen, "cannot reopen the tables after starting SWMR");
    return 0;
}

static int is_hdf5(const char *path) {
#if H5_VERSION_GE(1, 12, 0)
    int yes = H5Fis_accessible(path, H5P_DEFAULT) > 0;
#else
    int yes = H5Fis_hdf5(path) > 0;
#endif
    H5Eclear2(H5E_DEFAULT);
    return yes;
}

/* h5clear's logic: reopen with the status flags cleared. Only called by resume after it has
 * made sure no writer is alive. */
static hid_t open_clearing_flags(const char *path) {
    hid_t fapl = latest_fapl();
    if (fapl < 0) return -1;
    hbool_t clear = 1;
    /* "clear_status_flags" is the file-access property h5clear sets; HDF5 1.10 registers it */
    if (H5Pexist(fapl, "clear_status_flags") > 0) H5Pset(fapl, "clear_status_flags", &clear);
    hid_t file = H5Fopen(path, H5F_ACC_RDWR, fapl);
    H5Pclose(fapl);
    /* h5clear -i: a killed SWMR writer never wrote the superblock's final end-of-allocation,
     * so chunks it appended lie past it; take the end of the file as the end of allocation */
    if (file >= 0 && H5Fincrement_filesize(file, 0) < 0) {
        H5Fclose(file);
        return -1;
    }
    return file;
}

int results_h5_open(const char *path, results_h5 **out, char *err, size_t errlen) {
    *out = NULL;
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    results_h5 *h = alloc_handle(path);
    if (!h) return fail(path, err, errlen, "out of memory");
    /* Checked first: HDF5's recovery open (open_clearing_flags) writes into a file that is not
     * HDF5, such as an empty one, and would leave a broken file that every later run refuses. */
    if (!is_hdf5(path)) {
        fail(path, err, errlen,
             "not an HDF5 file; refusing to write over it (remove it or choose another output)");
        close_handle(h);
        return -1;
    }
    char why[TRIAL_PATH_MAX + 64];
    if ((size_t)snprintf(h->work, sizeof h->work, "%s.resuming", path) >= sizeof h->work ||
        copy_file(path, h->work, why, sizeof why)) {
        if (strlen(h->work) >= sizeof h->work - 1) snprintf(why, sizeof why, "path too long");
        fail(path, err, errlen, "cannot make the working copy: %s", why);
        close_handle(h);
        return -1;
    }
    hid_t fapl = latest_fapl();
    h->file = fapl >= 0 ? H5Fopen(h->work, H5F_ACC_RDWR, fapl) : -1;
    if (fapl >= 0) H5Pclose(fapl);
    if (h->file < 0) {
        H5Eclear2(H5E_DEFAULT);
        h->file = open_clearing_flags(h->work);
    }
    if (h->file < 0) {
        fail(path, err, errlen, "cannot open the file for writing");
        close_handle(h);
        return -1;
    }
    if (table_open(h->file, &h->trials) || table_open(h->file, &h->curves) ||
        table_open(h->file, &h->lr) || results_h5_grid_columns(h, &h->columns)) {
        fail(path, err, errlen, "not a tlsweep results file (no /trials, /curves or /lr)");
        close_handle(h);
        return -1;
    }
    *out = h;
    return 0;
}

int results_h5_replace(results_h5 *h, char *err, size_t errlen) {
    if (getenv("TLSWEEP_TEST_KILL_BEFORE_RENAME")) raise(SIGKILL);
    /* renamed while open: HDF5 writes through its descriptor, never by the name */
    if (rename(h->work, h->path))
        return fail(h->path, err, errlen, "cannot rename %s over it: %s", h->work, strerror(errno));
    h->work[0] = 0;
    return 0;
}

char *results_h5_attr(results_h5 *h, const char *name, char *err, size_t errlen) {
    hid_t attr = H5Aopen(h->file, name, H5P_DEFAULT);
    if (attr < 0) {
        fail(h->path, err, errlen, "no attribute '%s'", name);
        return NULL;
    }
    hid_t type = H5Aget_type(attr);
    size_t size = type >= 0 ? H5Tget_size(type) : 0;
    char *value = size ? calloc(1, size + 1) : NULL;
    hid_t mem = value ? string_type(size) : -1;
    if (mem < 0 || H5Aread(attr, mem, value) < 0) {
        free(value);
        value = NULL;
        fail(h->path, err, errlen, "cannot read attribute '%s'", name);
    }
    if (mem >= 0) H5Tclose(mem);
    if (type >= 0) H5Tclose(type);
    H5Aclose(attr);
    return value;
}

int results_h5_attr_int(results_h5 *h, const char *name, long long *value) {
    hid_t attr = H5Aopen(h->file, name, H5P_DEFAULT);
    if (attr < 0) {
        H5Eclear2(H5E_DEFAULT);
        return -1;
    }
    herr_t rc = H5Aread(attr, H5T_NATIVE_LLONG, value);
    H5Aclose(attr);
    return rc < 0 ? -1 : 0;
}

int results_h5_set_attr(results_h5 *h, const char *name, const char *value, char *err,
                        size_t errlen) {
    if (H5Aexists(h->file, name) > 0 && H5Adelete(h->file, name) < 0)
        return fail(h->path, err, errlen, "cannot replace attribute '%s'", name);
    if (attr_string(h->file, name, value))
        return fail(h->path, err, errlen, "cannot write attribute '%s'", name);
    return 0;
}

int results_h5_grid_columns(results_h5 *h, results_grid_columns *columns) {
    char err[256];
    memset(columns, 0, sizeof *columns);
    char *text = results_h5_attr(h, "grid_columns", err, sizeof err);
    if (!text) return -1;
    for (char *save = NULL, *tok = strtok_r(text, ",", &save);
         tok && columns->count < SWEEP_MAX_AXES; tok = strtok_r(NULL, ",", &save))
        snprintf(columns->names[columns->count++], SWEEP_KEY_MAX, "%s", tok);
    free(text);
    return 0;
}

/* Bit of the field `name` in a table's missing mask. */
static int lacks(const h5_table *t, const char *name) {
    for (const h5_field *f = t->fields; f->name; f++)
        if (!strcmp(f->name, name)) return (int)(t->missing >> (f - t->fields) & 1);
    return 1;
}

int results_h5_has_lineage(const results_h5 *h) {
    return !lacks(&h->trials, "phase1_trial") && !lacks(&h->curves, "computed_by");
}

int results_h5_read_trials(results_h5 *h, results_trial_row **rows, int *count, char *err,
                           size_t errlen) {
    if (table_read(&h->trials, (void **)rows, count))
        return fail(h->path, err, errlen, "cannot read /trials");
    /* an older file: every trial computed its own phase 1 */
    if (lacks(&h->trials, "phase1_trial"))
        for (int i = 0; i < *count; i++)
            (*rows)[i].phase1_trial = (*rows)[i].id;
    return 0;
}

int results_h5_read_curves(results_h5 *h, results_curve_row **rows, int *count, char *err,
                           size_t errlen) {
    if (table_read(&h->curves, (void **)rows, count))
        return fail(h->path, err, errlen, "cannot read /curves");
    if (lacks(&h->curves, "computed_by"))
        for (int i = 0; i < *count; i++)
            (*rows)[i].computed_by = (*rows)[i].trial_id;
    return 0;
}

int results_h5_read_lr(results_h5 *h, results_lr_row **rows, int *count, char *err, size_t errlen) {
    if (table_read(&h->lr, (void **)rows, count))
        return fail(h->path, err, errlen, "cannot read /lr");
    return 0;
}

int results_h5_rewrite_curves(results_h5 *h, const results_curve_row *rows, int count, char *err,
                              size_t errlen) {
    if (table_truncate(&h->curves, (hsize_t)count) ||
        table_write(&h->curves, h->curves.type, 0, rows, (hsize_t)count, 1))
        return fail(h->path, err, errlen, "cannot rewrite /curves");
    return 0;
}

int results_h5_rewrite_lr(results_h5 *h, const results_lr_row *rows, int count, char *err,
                          size_t errlen) {
    if (table_truncate(&h->lr, (hsize_t)count) ||
        table_write(&h->lr, h->lr.type, 0, rows, (hsize_t)count, 1))
        return fail(h->path, err, errlen, "cannot rewrite /lr");
    return 0;
}

int results_h5_add_trials(results_h5 *h, const results_trial_row *rows,
                          const char (*grid_values)[SWEEP_MAX_AXES][RESULTS_VALUE_MAX], int count,
                          char *err, size_t errlen) {
    if (write_trial_rows(h, h->trials.rows, rows, grid_values, count))
        return fail(h->path, err, errlen, "cannot add %d trials to /trials", count);
    return 0;
}

int results_h5_write_trial(results_h5 *h, const results_trial_row *row, char *err, size_t errlen) {
    double start = monotonic_seconds();
    /* The memory type holds the fixed columns only; HDF5 keeps the grid columns (it reads
     * the stored row as background for a partial compound write). */
    int rc = table_write(&h->trials, h->trials.type, (hsize_t)row->id, row, 1, 1);
    h->write_seconds += monotonic_seconds() - start;
    if (rc) return fail(h->path, err, errlen, "cannot write trial %s to /trials", row->name);
    return 0;
}

int results_h5_append_epoch(results_h5 *h, const results_curve_row *curve, const results_lr_row *lr,
                            int n_lr, char *err, size_t errlen) {
    double start = monotonic_seconds();
    int rc = table_write(&h->lr, h->lr.type, h->lr.rows, lr, (hsize_t)n_lr, 1);
    if (h->kill_after_lr && ++h->epochs_appended == h->kill_after_lr) raise(SIGKILL);
    if (!rc) rc = table_write(&h->curves, h->curves.type, h->curves.rows, curve, 1, 1);
    h->write_seconds += monotonic_seconds() - start;
    if (rc)
        return fail(h->path, err, errlen, "cannot append epoch %d of trial %s", curve->epoch,
                    curve->trial);
    return 0;
}

double results_h5_write_seconds(const results_h5 *h) {
    return h->write_seconds;
}

int results_h5_close(results_h5 *h, char *err, size_t errlen) {
    if (!h) return 0;
    char path[TRIAL_PATH_MAX];
    snprintf(path, sizeof path, "%s", h->path);
    table_close(&h->trials);
    table_close(&h->curves);
    table_close(&h->lr);
    herr_t rc = H5Fclose(h->file);
    h->file = -1;
    close_handle(h);
    if (rc < 0) return fail(path, err, errlen, "cannot close the file");
    return 0;
}

int results_h5_open_read(const char *path, results_h5 **out, char *err, size_t errlen) {
    *out = NULL;
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    results_h5 *h = alloc_handle(path);
    if (!h) return fail(path, err, errlen, "out of memory");
    hid_t fapl = latest_fapl();
    h->file = fapl >= 0 ? H5Fopen(path, H5F_ACC_RDONLY | H5F_ACC_SWMR_READ, fapl) : -1;
    if (h->file < 0 && fapl >= 0) {
        /* a file that was never in SWMR mode (or is closed) opens plainly */
        H5Eclear2(H5E_DEFAULT);
        h->file = H5Fopen(path, H5F_ACC_RDONLY, fapl);
    }
    /* fail() before any other call: each HDF5 call clears the error stack it reports */
    int rc = h->file < 0 ? fail(path, err, errlen, "cannot open the file") : 0;
    if (fapl >= 0) H5Pclose(fapl);
    if (!rc && (table_open(h->file, &h->trials) || table_open(h->file, &h->curves) ||
                table_open(h->file, &h->lr) || results_h5_grid_columns(h, &h->columns)))
        rc = fail(path, err, errlen, "not a tlsweep results file (no /trials, /curves or /lr)");
    if (rc) {
        close_handle(h);
        return -1;
    }
    *out = h;
    return 0;
}

int results_h5_read_file(const char *path, results_trial_row **rows, int *count, char *err,
                         size_t errlen) {
    results_h5 *h = NULL;
    if (results_h5_open_read(path, &h, err, errlen)) return -1;
    int rc = results_h5_read_trials(h, rows, count, err, errlen);
    close_handle(h);
    return rc;
}
