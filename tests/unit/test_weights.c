/* Weights I/O against PyTorch: every tensor of the exporter's state dict (zip .pth, legacy
 * .pth, wrapped checkpoints, safetensors) must come back with its name, shape and torch's own
 * fp32 values bit for bit; our safetensors writer must round-trip through our reader and
 * through an independent Python reader; and every broken or hostile file must fail with its
 * one stated message, never crash (the sweeps of truncations and corruptions below are meant
 * to run under valgrind too). Run tests/unit/export_weights.py first. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tests/testlib.h"
#include "worker/weights/weights.h"

#define MAX_REFS 256

typedef struct {
    char name[256];
    int ndim;
    int64_t shape[WEIGHTS_MAX_DIMS];
    float *data;
    size_t count;
} ref_tensor;

/* One exporter reference folder: REFDIR/manifest.txt and REFDIR/NAME.bin. */
typedef struct {
    const char *dir;
    int min_count;
    ref_tensor t[MAX_REFS];
    int n; /* -1 until loaded on first use */
} ref_set;

static int write_bytes(const char *path, const void *data, size_t n);

static ref_set main_refs = {.dir = "refs", .min_count = 40, .n = -1};
static ref_set old_refs = {.dir = "old_refs", .min_count = 2, .n = -1};
static char tmpdir[64];

static const char *data_path(const char *name) {
    static char path[1024];
    snprintf(path, sizeof path, "%s/%s", tl_data_dir("weights"), name);
    return path;
}

static const char *tmp_path(const char *name) {
    static char path[256];
    snprintf(path, sizeof path, "%s/%s", tmpdir, name);
    return path;
}

static int load_refs(ref_set *set) {
    if (set->n >= 0) return set->n;
    set->n = 0;
    char refdir[1024];
    snprintf(refdir, sizeof refdir, "%s", data_path(set->dir));
    char manifest_path[1100];
    snprintf(manifest_path, sizeof manifest_path, "%s/manifest.txt", refdir);
    FILE *f = fopen(manifest_path, "r");
    if (!f) {
        tl_fail(__FILE__, __LINE__, "cannot open %s (run tests/unit/export_weights.py)",
                manifest_path);
        return 0;
    }
    char line[1024];
    while (fgets(line, sizeof line, f) && set->n < MAX_REFS) {
        ref_tensor *r = &set->t[set->n];
        int used = 0;
        if (sscanf(line, "%255s %d%n", r->name, &r->ndim, &used) != 2 || r->ndim < 0 ||
            r->ndim > WEIGHTS_MAX_DIMS)
            continue;
        char *p = line + used;
        for (int d = 0; d < r->ndim; d++)
            r->shape[d] = strtoll(p, &p, 10);
        r->data = tl_load_f32(refdir, r->name, &r->count);
        if (r->data) set->n++;
    }
    fclose(f);
    CHECK(set->n >= set->min_count, "%s lists only %d tensors", manifest_path, set->n);
    return set->n;
}

/* Bit-exact, so -0.0, infinities and every rounding of f64/i64 to fp32 must match torch. */
static void check_tensor(const char *file, const weights_tensor *t, const ref_tensor *r) {
    if (!t) {
        tl_fail(__FILE__, __LINE__, "%s: tensor '%s' is missing", file, r->name);
        return;
    }
    int same_shape = t->ndim == r->ndim && t->count == r->count;
    for (int d = 0; same_shape && d < r->ndim; d++)
        same_shape = t->shape[d] == r->shape[d];
    if (!same_shape) {
        tl_fail(__FILE__, __LINE__, "%s: '%s' has ndim %d count %zu, expected ndim %d count %zu",
                file, r->name, t->ndim, t->count, r->ndim, r->count);
        return;
    }
    for (size_t i = 0; i < r->count; i++)
        if (memcmp(&t->data[i], &r->data[i], sizeof(float)) != 0) {
            tl_fail(__FILE__, __LINE__, "%s: '%s'[%zu] = %a, torch says %a", file, r->name, i,
                    (double)t->data[i], (double)r->data[i]);
            return;
        }
}

/* Every reference tensor, by name; ORDERED also requires the state dict's order. */
static void check_file(ref_set *set, const char *name, int ordered) {
    int n = load_refs(set);
    const ref_tensor *refs = set->t;
    if (!n) return;
    weights_file w;
    char err[512];
    if (weights_read(data_path(name), &w, err, sizeof err)) {
        tl_fail(__FILE__, __LINE__, "%s", err);
        return;
    }
    CHECK(w.count == n, "%s: %d tensors, expected %d", name, w.count, n);
    for (int i = 0; i < n; i++) {
        if (ordered && i < w.count)
            CHECK(strcmp(w.tensors[i].name, refs[i].name) == 0, "%s: tensor %d is '%s', not '%s'",
                  name, i, w.tensors[i].name, refs[i].name);
        check_tensor(name, weights_find(&w, refs[i].name), &refs[i]);
    }
    weights_free(&w);
}

static void test_zip_pth(void) {
    check_file(&main_refs, "model_zip.pth", 1);
}
static void test_legacy_pth(void) {
    check_file(&main_refs, "model_legacy.pth", 1);
}
static void test_proto4_pth(void) {
    check_file(&main_refs, "model_proto4.pth", 1);
}
static void test_wrapped_zip(void) {
    check_file(&main_refs, "wrapped_zip.pth", 1);
}
static void test_wrapped_legacy(void) {
    check_file(&main_refs, "wrapped_legacy.pth", 1);
}
static void test_safetensors(void) {
    check_file(&main_refs, "model.safetensors", 0);
}
/* _rebuild_tensor, OrderedDict from an item list, a storage view: as torch < 0.4 wrote */
static void test_old_legacy(void) {
    check_file(&old_refs, "old_legacy.pth", 1);
}

/* The format-specific entry points refuse the other format instead of misreading it. */
static void test_explicit_readers(void) {
    weights_file w;
    char err[512];
    CHECK(weights_read_pth(data_path("model.safetensors"), &w, err, sizeof err) == -1,
          "read_pth accepted a safetensors file");
    CHECK(strstr(err, "not a PyTorch file") != NULL, "unexpected error: %s", err);
    CHECK(w.count == 0 && w.tensors == NULL, "failed read left tensors behind");
    CHECK(weights_read_safetensors(data_path("model_zip.pth"), &w, err, sizeof err) == -1,
          "read_safetensors accepted a zip file");
    CHECK(weights_read_pth(data_path("model_legacy.pth"), &w, err, sizeof err) == 0, "%s", err);
    CHECK(weights_find(&w, "fc.weight") != NULL, "fc.weight missing");
    CHECK(weights_find(&w, "no.such.tensor") == NULL, "found a tensor that does not exist");
    weights_free(&w);
    const char *text = "this is not a weights file\n";
    CHECK(write_bytes(tmp_path("text.pth"), text, strlen(text)) == 0, "cannot write text.pth");
    CHECK(weights_read(tmp_path("text.pth"), &w, err, sizeof err) == -1, "read a text file");
    CHECK(strstr(err, "text.pth: not a weights file") != NULL, "unexpected error: %s", err);
    CHECK(weights_read(tmp_path("does-not-exist.pth"), &w, err, sizeof err) == -1,
          "read a missing file");
    CHECK(strstr(err, "does-not-exist.pth: cannot open") != NULL, "unexpected error: %s", err);
}

static const char *const metadata[] = {"format", "pt", "note",
                                       "tab\there \"quoted\" back\\slash \xc3\xa9"};

/* Our writer on everything read from the zip .pth; returns 0 when written. */
static int write_copy(const char *path, weights_file *src) {
    char err[512];
    if (weights_read(data_path("model_zip.pth"), src, err, sizeof err)) {
        tl_fail(__FILE__, __LINE__, "%s", err);
        return -1;
    }
    weights_out_tensor *out = calloc((size_t)src->count, sizeof *out);
    if (!out) return -1;
    for (int i = 0; i < src->count; i++)
        out[i] = (weights_out_tensor){src->tensors[i].name, src->tensors[i].ndim,
                                      src->tensors[i].shape, src->tensors[i].data};
    int rc = weights_write_safetensors(path, out, src->count, metadata, 2, err, sizeof err);
    CHECK(rc == 0, "write failed: %s", err);
    free(out);
    return rc;
}

static void test_round_trip(void) {
    const char *path = tmp_path("round_trip.safetensors");
    weights_file src, back;
    char err[512];
    if (write_copy(path, &src)) {
        weights_free(&src);
        return;
    }
    char tmp[300];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    CHECK(access(tmp, F_OK) != 0, "writer left %s behind", tmp);
    struct stat st;
    CHECK(stat(path, &st) == 0, "no file at %s", path);
    FILE *f = fopen(path, "rb");
    unsigned char len_bytes[8] = {0};
    CHECK(f && fread(len_bytes, 1, 8, f) == 8, "cannot read the header length");
    if (f) fclose(f);
    uint64_t header_len = 0;
    for (int b = 0; b < 8; b++)
        header_len |= (uint64_t)len_bytes[b] << (8 * b);
    CHECK((8 + header_len) % 8 == 0, "data starts at %llu, not 8-byte aligned",
          (unsigned long long)(8 + header_len));
    if (weights_read(path, &back, err, sizeof err)) {
        tl_fail(__FILE__, __LINE__, "%s", err);
        weights_free(&src);
        return;
    }
    CHECK(back.count == src.count, "%d tensors back, %d written", back.count, src.count);
    for (int i = 1; i < back.count; i++)
        CHECK(strcmp(back.tensors[i - 1].name, back.tensors[i].name) < 0, "names not sorted");
    for (int i = 0; i < src.count; i++) {
        const weights_tensor *a = &src.tensors[i], *b = weights_find(&back, a->name);
        CHECK(b != NULL, "'%s' missing after round trip", a->name);
        if (!b) continue;
        CHECK(b->ndim == a->ndim && b->count == a->count &&
                  !memcmp(b->shape, a->shape, sizeof(int64_t) * (size_t)a->ndim) &&
                  !memcmp(b->data, a->data, a->count * sizeof(float)),
              "'%s' differs after round trip", a->name);
    }
    /* the metadata alone: the same pairs, no tensors */
    weights_file meta;
    CHECK(weights_read_metadata(path, &meta, err, sizeof err) == 0, "%s", err);
    CHECK(meta.count == 0 && meta.metadata_pairs == back.metadata_pairs &&
              meta.metadata_pairs == 2,
          "metadata-only read: %d tensors, %d pairs (full read %d)", meta.count,
          meta.metadata_pairs, back.metadata_pairs);
    for (int i = 0; i < 2 * meta.metadata_pairs && i < 2 * back.metadata_pairs; i++)
        CHECK(!strcmp(meta.metadata[i], back.metadata[i]), "metadata %d: '%s' vs '%s'", i,
              meta.metadata[i], back.metadata[i]);
    weights_free(&meta);
    weights_free(&back);
    weights_free(&src);
}

/* An independent reader (Python, no C involved) must agree with torch's values. */
static void test_round_trip_python(void) {
    const char *path = tmp_path("python_check.safetensors");
    weights_file src;
    int rc = write_copy(path, &src);
    weights_free(&src);
    if (rc) return;
    const char *python = getenv("PYTHON");
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "%s tests/unit/check_safetensors.py '%s' '%s/refs'",
             python && *python ? python : "/usr/bin/python3", path, tl_data_dir("weights"));
    int status = system(cmd);
    CHECK(status == 0, "check_safetensors.py failed (status %d): %s", status, cmd);
}

static void test_writer_errors(void) {
    char err[512];
    int64_t shape[2] = {2, 2};
    float data[4] = {1, 2, 3, 4};
    weights_out_tensor twice[2] = {{"a", 2, shape, data}, {"a", 2, shape, data}};
    CHECK(weights_write_safetensors(tmp_path("twice.safetensors"), twice, 2, NULL, 0, err,
                                    sizeof err) == -1,
          "wrote a duplicate name");
    CHECK(strstr(err, "'a' appears twice") != NULL, "unexpected error: %s", err);
    CHECK(access(tmp_path("twice.safetensors"), F_OK) != 0, "a refused write left a file");
    int64_t negative[1] = {-1};
    weights_out_tensor bad_shape = {"b", 1, negative, data};
    CHECK(weights_write_safetensors(tmp_path("neg.safetensors"), &bad_shape, 1, NULL, 0, err,
                                    sizeof err) == -1,
          "wrote a negative shape");
    CHECK(strstr(err, "invalid shape") != NULL, "unexpected error: %s", err);
    weights_out_tensor ok = {"c", 2, shape, data};
    CHECK(weights_write_safetensors(tmp_path("no/such/dir/x.safetensors"), &ok, 1, NULL, 0, err,
                                    sizeof err) == -1,
          "wrote into a folder that does not exist");
    CHECK(strstr(err, "cannot create") != NULL, "unexpected error: %s", err);
    /* zero tensors and a 0-d tensor are both legal */
    int64_t none[1] = {0};
    weights_out_tensor scalar = {"s", 0, none, data};
    CHECK(weights_write_safetensors(tmp_path("scalar.safetensors"), &scalar, 1, NULL, 0, err,
                                    sizeof err) == 0,
          "%s", err);
    weights_file w;
    CHECK(weights_read(tmp_path("scalar.safetensors"), &w, err, sizeof err) == 0, "%s", err);
    CHECK(w.count == 1 && w.tensors[0].ndim == 0 && w.tensors[0].count == 1 &&
              w.tensors[0].data[0] == 1.0f,
          "0-d tensor did not round-trip");
    weights_free(&w);
}

static int write_bytes(const char *path, const void *data, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    size_t put = n ? fwrite(data, 1, n, f) : 0;
    return (fclose(f) == 0 && put == n) ? 0 : -1;
}

static unsigned char *slurp(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    unsigned char *buf = NULL;
    long size = -1;
    if (fseek(f, 0, SEEK_END) == 0 && (size = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0)
        buf = malloc((size_t)size + 1);
    if (buf && fread(buf, 1, (size_t)size, f) != (size_t)size) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    *n = buf ? (size_t)size : 0;
    return buf;
}

/* Reads PATH, which must fail with FRAGMENT in the message (and the file named in it). */
typedef int (*reader_fn)(const char *, weights_file *, char *, size_t);

static void expect_error_from(reader_fn read, const char *path, const char *fragment, int line) {
    weights_file w;
    char err[512] = "";
    int rc = read(path, &w, err, sizeof err);
    if (rc == 0) {
        tl_fail(__FILE__, line, "%s was accepted, expected \"%s\"", path, fragment);
        weights_free(&w);
        return;
    }
    if (!strstr(err, fragment))
        tl_fail(__FILE__, line, "expected \"%s\", got \"%s\"", fragment, err);
    if (strncmp(err, path, strlen(path)) != 0)
        tl_fail(__FILE__, line, "message does not start with the file name: %s", err);
    if (w.count != 0 || w.tensors != NULL) tl_fail(__FILE__, line, "failed read kept tensors");
}
#define EXPECT_ERROR(path, fragment) expect_error_from(weights_read, path, fragment, __LINE__)
/* past weights_read's content sniffing, straight into the safetensors reader */
#define EXPECT_ST_ERROR(path, fragment)                                                            \
    expect_error_from(weights_read_safetensors, path, fragment, __LINE__)

/* Copies the first N bytes of a test file into the temp folder. */
static const char *truncated(const char *name, size_t n, const char *out) {
    size_t size;
    unsigned char *data = slurp(data_path(name), &size);
    if (!data || n > size || write_bytes(tmp_path(out), data, n)) {
        tl_fail(__FILE__, __LINE__, "cannot make a truncated copy of %s", name);
        free(data);
        return tmp_path(out);
    }
    free(data);
    return tmp_path(out);
}

static size_t file_size(const char *name) {
    struct stat st;
    return stat(data_path(name), &st) == 0 ? (size_t)st.st_size : 0;
}

static void test_bad_pth(void) {
    EXPECT_ERROR(truncated("model_zip.pth", 0, "empty.pth"), "file is empty");
    EXPECT_ERROR(truncated("model_zip.pth", file_size("model_zip.pth") / 2, "half.pth"),
                 "not a readable zip archive");
    /* cut inside the object pickle, and inside the storage records */
    EXPECT_ERROR(truncated("model_legacy.pth", 400, "legacy_pickle_cut.pth"),
                 "pickle is truncated");
    EXPECT_ERROR(
        truncated("model_legacy.pth", file_size("model_legacy.pth") - 100, "legacy_data_cut.pth"),
        "file is truncated: storage");
    /* the crafted files: first one well-formed, so each other fails for its one reason */
    weights_file w;
    char err[512];
    CHECK(weights_read(data_path("bad/crafted_ok.pth"), &w, err, sizeof err) == 0, "%s", err);
    CHECK(w.count == 1 && w.tensors[0].count == 6 && w.tensors[0].data[5] == 5.0f,
          "crafted file read wrong");
    weights_free(&w);
    EXPECT_ERROR(data_path("bad/no_data_pkl.pth"), "has no data.pkl");
    EXPECT_ERROR(data_path("bad/os_system.pth"), "global 'os.system', which is not allowed");
    EXPECT_ERROR(data_path("bad/builtins_eval.pth"),
                 "global 'builtins.eval', which is not allowed");
    EXPECT_ERROR(data_path("bad/missing_storage.pth"),
                 "pickle refers to storage '1' which the archive lacks");
    EXPECT_ERROR(data_path("bad/view_past_end.pth"),
                 "tensor 'w' (offset 2, shape and strides reaching element 7) runs past the end "
                 "of its storage '0' of 6 elements");
    EXPECT_ERROR(data_path("bad/storage_too_small.pth"), "storage '0' holds 24 bytes");
}

/* A legacy .pth around one hand-written object pickle (BODY, LEN bytes) and an empty
 * storage key list, so each case below reaches the pickle machine with exactly that input. */
static const char *legacy_file_with(const char *body, size_t len, const char *tail,
                                    size_t tail_len) {
    static const unsigned char preamble[] = {0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9,
                                             0x20, 0x6a, 0xa8, 0x50, 0x19, 0x2e, 0x80, 0x02, 'M',
                                             0xe9, 0x03, '.',  0x80, 0x02, '}',  '.'};
    unsigned char *buf = malloc(sizeof preamble + len + tail_len);
    if (!buf) return tmp_path("hostile.pth");
    memcpy(buf, preamble, sizeof preamble);
    memcpy(buf + sizeof preamble, body, len);
    memcpy(buf + sizeof preamble + len, tail, tail_len);
    CHECK(write_bytes(tmp_path("hostile.pth"), buf, sizeof preamble + len + tail_len) == 0,
          "cannot write hostile.pth");
    free(buf);
    return tmp_path("hostile.pth");
}

static const char *legacy_file(const char *body, size_t len) {
    return legacy_file_with(body, len, "\x80\x02].", 4);
}
#define HOSTILE(body, fragment) EXPECT_ERROR(legacy_file(body, sizeof(body) - 1), fragment)

static void test_hostile_pickles(void) {
    /* the harness itself: a minimal valid file reads as an empty state dict */
    weights_file w;
    char err[512];
    const char *empty = legacy_file("\x80\x02}.", 4);
    CHECK(weights_read(empty, &w, err, sizeof err) == 0 && w.count == 0, "%s", err);
    weights_free(&w);
    /* Python 2 str opcodes (SHORT_BINSTRING) as a py2-era torch wrote them, with real data */
    static const char py2[] = "\x80\x02}U\x01wctorch._utils\n_rebuild_tensor\n((U\x07storagec"
                              "torch\nFloatStorage\nU\x01"
                              "0U\x03"
                              "cpuK\x06tQK\x00K\x02K\x03\x86K"
                              "\x03K\x01\x86tRs.";
    static const char py2_tail[] = "\x80\x02]U\x01"
                                   "0a.\x06\0\0\0\0\0\0\0"
                                   "\0\0\0\0\0\0\x80?\0\0\0@\0\0@@\0\0\x80@\0\0\xa0@";
    CHECK(weights_read(legacy_file_with(py2, sizeof py2 - 1, py2_tail, sizeof py2_tail - 1), &w,
                       err, sizeof err) == 0,
          "%s", err);
    CHECK(w.count == 1 && w.tensors[0].count == 6 && w.tensors[0].ndim == 2 &&
              w.tensors[0].data[1] == 1.0f && w.tensors[0].data[5] == 5.0f,
          "py2-style legacy file read wrong");
    weights_free(&w);
    HOSTILE("\x80\x02X\xff\xff\xff\x7f", "pickle is truncated: string");
    HOSTILE("\x80\x02h\x05.", "memo entry 5 which was never stored");
    HOSTILE("\x80\x02)r\xff\xff\xff\x7f.", "memo index 2147483647 is out of range");
    HOSTILE("\x80\x02\x8a\x09\x01\x02\x03\x04\x05\x06\x07\x08\x09.",
            "integer of 9 bytes is too large");
    HOSTILE("\x80\x02.", "STOP with 0 values");
    HOSTILE("\x80\x02(((}.", "STOP with 1 values and 3 open MARKs");
    HOSTILE("\x80\x02R", "stack underflow");
    HOSTILE("\x80\x02(t}0.", "opcode 0x30");
    HOSTILE("\x80\x02K\x01(s.", "stack underflow");
    HOSTILE("\x80\x02"
            "ctorch\nFloatStorage\n)R.",
            "calls a storage type");
    HOSTILE("\x80\x02K\x01Q.", "is not a storage reference");
    HOSTILE("\x80\x02"
            "cposix\nsystem\n.",
            "global 'posix.system', which is not allowed");
    HOSTILE("\x80\x02"
            "ctorch\nload\n.",
            "global 'torch.load', which is not allowed");
    HOSTILE("\x80\x02"
            "c__builtin__\neval\n.",
            "global '__builtin__.eval'");
    HOSTILE("\x80\x02"
            "cos\nsystem",
            "has no end of line");
    HOSTILE("\x80\x02].", "holds a list, not a state dict");
    HOSTILE("\x80\x02}X\x01\x00\x00\x00"
            "aK\x01s.",
            "holds no tensors");
    HOSTILE("\x80\x02K\x01K\x02"
            "b.",
            "BUILD on a int");
    HOSTILE("\x80\x09}.", "pickle protocol 9 is not supported");
    /* a tensor whose sizes are not ints, and one with more dimensions than allowed */
    HOSTILE("\x80\x02}X\x01\x00\x00\x00wctorch._utils\n_rebuild_tensor\n((X\x07\x00\x00\x00sto"
            "ragectorch\nFloatStorage\nX\x01\x00\x00\x00"
            "0X\x03\x00\x00\x00"
            "cpuK\x06tQK"
            "\x00X\x01\x00\x00\x00x\x85K\x01\x85tRs.",
            "tensor size entry is a str, expected an int");
    HOSTILE("\x80\x02}X\x01\x00\x00\x00wctorch._utils\n_rebuild_tensor\n((X\x07\x00\x00\x00sto"
            "ragectorch\nFloatStorage\nX\x01\x00\x00\x00"
            "0X\x03\x00\x00\x00"
            "cpuK\x06tQK"
            "\x00(K\x01K\x01K\x01K\x01K\x01K\x01K\x01K\x01K\x01tK\x01\x85tRs.",
            "has 9 dimensions, more than 8");
    /* a storage the key list never mentions: the data is not in the file */
    HOSTILE("\x80\x02}X\x01\x00\x00\x00wctorch._utils\n_rebuild_tensor\n((X\x07\x00\x00\x00sto"
            "ragectorch\nFloatStorage\nX\x01\x00\x00\x00"
            "0X\x03\x00\x00\x00"
            "cpuK\x06tQK"
            "\x00K\x06\x85K\x01\x85tRs.",
            "pickle refers to storage '0' which the file lacks");
    /* deep MARK nesting is only memory, bounded by the file: refused at STOP */
    size_t deep = 200000;
    char *marks = malloc(deep + 4);
    if (marks) {
        memcpy(marks, "\x80\x02", 2);
        memset(marks + 2, '(', deep);
        memcpy(marks + 2 + deep, "}.", 2);
        EXPECT_ERROR(legacy_file(marks, deep + 4), "open MARKs");
        free(marks);
    }
}

/* A safetensors file from a header and DATA_LEN bytes of data (0, 1, 2, ...). */
static const char *safetensors_file(const char *name, const char *header, size_t data_len,
                                    int64_t claimed_len) {
    size_t hlen = strlen(header);
    size_t n = 8 + hlen + data_len;
    unsigned char *buf = malloc(n);
    if (!buf) return tmp_path(name);
    uint64_t len = claimed_len >= 0 ? (uint64_t)claimed_len : hlen;
    for (int b = 0; b < 8; b++)
        buf[b] = (unsigned char)(len >> (8 * b));
    memcpy(buf + 8, header, hlen);
    for (size_t i = 0; i < data_len; i++)
        buf[8 + hlen + i] = (unsigned char)i;
    CHECK(write_bytes(tmp_path(name), buf, n) == 0, "cannot write %s", name);
    free(buf);
    return tmp_path(name);
}

static void test_bad_safetensors(void) {
    const char *good = "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                       "\"b\":{\"dtype\":\"U8\",\"shape\":[2,2],\"data_offsets\":[8,12]}}";
    weights_file w;
    char err[512];
    CHECK(weights_read(safetensors_file("good.safetensors", good, 12, -1), &w, err, sizeof err) ==
              0,
          "%s", err);
    const weights_tensor *b = weights_find(&w, "b");
    CHECK(b && b->count == 4 && b->data[0] == 8.0f && b->data[3] == 11.0f, "U8 tensor read wrong");
    weights_free(&w);
    CHECK(write_bytes(tmp_path("short.safetensors"), "\x05\0\0\0\0", 5) == 0, "cannot write");
    EXPECT_ST_ERROR(tmp_path("short.safetensors"), "file is 5 bytes, too short");
    EXPECT_ST_ERROR(safetensors_file("zero_header.safetensors", "", 0, 0),
                    "does not start with '{'");
    EXPECT_ERROR(safetensors_file("long_header.safetensors", good, 12, 1000),
                 "header length 1000 is larger than the file");
    EXPECT_ERROR(safetensors_file("overlap.safetensors",
                                  "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                                  "\"b\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[6,10]}}",
                                  10, -1),
                 "tensors 'a' and 'b' overlap");
    EXPECT_ERROR(
        safetensors_file("mismatch.safetensors",
                         "{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", 8, -1),
        "tensor 'a' is F32 with 3 elements (12 bytes) but its data_offsets span 8 bytes");
    EXPECT_ERROR(
        safetensors_file("invalid.safetensors",
                         "{\"a\":{\"dtype\":\"F32\",\"shape\":[2] \"data_offsets\":[0,8]}}", 8, -1),
        "header is not valid JSON");
    EXPECT_ERROR(safetensors_file(
                     "outside.safetensors",
                     "{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}", 8, -1),
                 "lie outside the 8 data bytes");
    EXPECT_ERROR(
        safetensors_file("gap.safetensors",
                         "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8, -1),
        "data bytes 0 to 4 belong to no tensor");
    EXPECT_ERROR(safetensors_file(
                     "dtype.safetensors",
                     "{\"a\":{\"dtype\":\"F8_E4M3\",\"shape\":[1],\"data_offsets\":[0,1]}}", 1, -1),
                 "dtype 'F8_E4M3', which is not supported");
    EXPECT_ERROR(safetensors_file("dup.safetensors",
                                  "{\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]},"
                                  "\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[1,2]}}",
                                  2, -1),
                 "duplicate key");
    EXPECT_ERROR(
        safetensors_file("negative.safetensors",
                         "{\"a\":{\"dtype\":\"U8\",\"shape\":[-1],\"data_offsets\":[0,1]}}", 1, -1),
        "not a valid size");
    EXPECT_ERROR(safetensors_file("meta.safetensors", "{\"__metadata__\":{\"k\":1}}", 0, -1),
                 "__metadata__ value 'k' is not a string");
}

/* Cuts each file at many points: every read must fail cleanly (or, for cuts that leave a
 * well-formed prefix, which none of these formats allows, succeed). */
static void test_truncation_sweep(void) {
    static const char *const names[] = {"model_zip.pth", "model_legacy.pth", "model.safetensors"};
    for (size_t f = 0; f < 3; f++) {
        size_t size;
        unsigned char *data = slurp(data_path(names[f]), &size);
        CHECK(data != NULL, "cannot read %s", names[f]);
        if (!data) continue;
        int accepted = 0;
        for (size_t n = 0; n < size; n += n < 512 ? 7 : 211) {
            const char *path = tmp_path("cut.bin");
            if (write_bytes(path, data, n)) break;
            weights_file w;
            char err[512];
            if (weights_read(path, &w, err, sizeof err) == 0) {
                accepted++;
                weights_free(&w);
            }
        }
        CHECK(accepted == 0, "%s: %d truncated copies were accepted", names[f], accepted);
        free(data);
    }
}

/* Random byte changes in the legacy file's pickles and the safetensors header: either a
 * clean error or a successful read, never a crash or a read out of bounds (valgrind). */
static void test_corruption_sweep(void) {
    static const char *const names[] = {"model_legacy.pth", "model.safetensors", "model_zip.pth"};
    uint64_t s = 0x2545F4914F6CDD1Dull;
    for (size_t f = 0; f < 3; f++) {
        size_t size;
        unsigned char *data = slurp(data_path(names[f]), &size);
        CHECK(data != NULL, "cannot read %s", names[f]);
        if (!data) continue;
        size_t region = size < 6000 ? size : 6000; /* where the pickles and header live */
        int failed = 0;
        for (int trial = 0; trial < 300; trial++) {
            unsigned char *copy = malloc(size);
            if (!copy) break;
            memcpy(copy, data, size);
            for (int k = 0; k < 1 + trial % 3; k++) {
                s ^= s << 13, s ^= s >> 7, s ^= s << 17;
                copy[(s >> 16) % region] = (unsigned char)(s >> 40);
            }
            const char *path = tmp_path("corrupt.bin");
            int wrote = write_bytes(path, copy, size);
            free(copy);
            if (wrote) break;
            weights_file w;
            char err[512] = "";
            if (weights_read(path, &w, err, sizeof err) == 0)
                weights_free(&w);
            else
                failed += strncmp(err, path, strlen(path)) == 0;
        }
        CHECK(failed > 0, "%s: no corruption was detected", names[f]);
        free(data);
    }
}

int main(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/tlsweep_weights_XXXXXX");
    if (!mkdtemp(tmpdir)) {
        fprintf(stderr, "mkdtemp: %s\n", strerror(errno));
        return 1;
    }
    static const char *const names[] = {
        "zip_pth",         "legacy_pth",        "proto4_pth",       "wrapped_zip",
        "wrapped_legacy",  "old_legacy",        "safetensors",      "explicit_readers",
        "round_trip",      "round_trip_python", "writer_errors",    "bad_pth",
        "hostile_pickles", "bad_safetensors",   "truncation_sweep", "corruption_sweep",
    };
    static const tl_case_fn cases[] = {
        test_zip_pth,         test_legacy_pth,        test_proto4_pth,       test_wrapped_zip,
        test_wrapped_legacy,  test_old_legacy,        test_safetensors,      test_explicit_readers,
        test_round_trip,      test_round_trip_python, test_writer_errors,    test_bad_pth,
        test_hostile_pickles, test_bad_safetensors,   test_truncation_sweep, test_corruption_sweep,
    };
    int rc = TL_RUN("weights", names, cases);
    for (int i = 0; i < main_refs.n; i++)
        free(main_refs.t[i].data);
    for (int i = 0; i < old_refs.n; i++)
        free(old_refs.t[i].data);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmpdir);
    return rc;
}
