#include "tests/testlib.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int case_failed;
static int case_skipped; /* 1 skipped, 2 skipped for want of a GPU */

void tl_fail(const char *file, int line, const char *fmt, ...) {
    va_list ap;
    fprintf(stdout, "    FAIL %s:%d: ", file, line);
    va_start(ap, fmt);
    vfprintf(stdout, fmt, ap);
    va_end(ap);
    fputc('\n', stdout);
    case_failed = 1;
}

static void skip(int kind, const char *fmt, va_list ap) {
    fprintf(stdout, kind == 2 ? "    SKIP (no GPU): " : "    SKIP: ");
    vfprintf(stdout, fmt, ap);
    fputc('\n', stdout);
    case_skipped = kind;
}

void tl_skip(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    skip(1, fmt, ap);
    va_end(ap);
}

void tl_skip_no_gpu(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    skip(2, fmt, ap);
    va_end(ap);
}

int tl_case_failed(void) {
    return case_failed;
}

int tl_run(const char *suite, const char *const *names, const tl_case_fn *cases, int count) {
    int passed = 0, failed = 0, skipped = 0, no_gpu = 0;
    for (int i = 0; i < count; i++) {
        case_failed = 0;
        case_skipped = 0;
        cases[i]();
        const char *verdict = case_failed ? "FAIL" : case_skipped ? "skip" : "ok";
        printf("%-4s %s/%s\n", verdict, suite, names[i]);
        fflush(stdout);
        if (case_failed)
            failed++;
        else if (case_skipped) {
            skipped++;
            no_gpu += case_skipped == 2;
        } else
            passed++;
    }
    printf("%d passed, %d failed, %d skipped", passed, failed, skipped);
    if (no_gpu) printf(" (%d need a GPU)", no_gpu);
    putchar('\n');
    return (failed == 0 && passed + skipped > 0) ? 0 : 1;
}

double tl_compare(const char *file, int line, const char *name, const float *got, const float *ref,
                  size_t count, double rel_tol, double floor) {
    double max_ref = 0, max_diff = 0;
    size_t worst = 0;
    for (size_t i = 0; i < count; i++) {
        double r = fabs((double)ref[i]);
        if (r > max_ref) max_ref = r;
        double d = fabs((double)got[i] - (double)ref[i]);
        if (!(d <= max_diff)) { /* NaN counts as worst */
            max_diff = isnan(d) ? INFINITY : d;
            worst = i;
        }
    }
    double rel = max_diff / (max_ref > floor ? max_ref : floor);
    if (!(rel <= rel_tol))
        tl_fail(file, line,
                "%s: rel err %.3g > %.3g (index %zu: got %.9g, ref %.9g, max|ref| %.4g)", name, rel,
                rel_tol, worst, count ? got[worst] : 0.0, count ? ref[worst] : 0.0, max_ref);
    return rel;
}

static void *load_raw(const char *dir, const char *name, size_t elem, size_t *count) {
    char path[1024];
    snprintf(path, sizeof path, "%s/%s.bin", dir, name);
    FILE *f = fopen(path, "rb");
    if (!f) {
        tl_fail(__FILE__, __LINE__, "cannot open reference %s (run the exporter first)", path);
        return NULL;
    }
    fseek(f, 0, SEEK_END);
    long bytes = ftell(f);
    fseek(f, 0, SEEK_SET);
    if (bytes < 0 || (size_t)bytes % elem) {
        tl_fail(__FILE__, __LINE__, "%s: size %ld is not a multiple of %zu", path, bytes, elem);
        fclose(f);
        return NULL;
    }
    void *data = malloc(bytes ? (size_t)bytes : 1);
    if (!data || fread(data, 1, (size_t)bytes, f) != (size_t)bytes) {
        tl_fail(__FILE__, __LINE__, "%s: read failed", path);
        free(data);
        fclose(f);
        return NULL;
    }
    fclose(f);
    *count = (size_t)bytes / elem;
    return data;
}

float *tl_load_f32(const char *dir, const char *name, size_t *count) {
    return load_raw(dir, name, sizeof(float), count);
}

int32_t *tl_load_i32(const char *dir, const char *name, size_t *count) {
    return load_raw(dir, name, sizeof(int32_t), count);
}

const char *tl_data_dir(const char *sub) {
    static char path[1024];
    const char *root = getenv("TLSWEEP_TESTDATA");
    snprintf(path, sizeof path, "%s/%s", root && *root ? root : "build/testdata", sub);
    return path;
}

void tl_fill_uniform(float *x, size_t count, float lo, float hi, uint64_t seed) {
    uint64_t s = seed * 0x9E3779B97F4A7C15ull + 1;
    for (size_t i = 0; i < count; i++) {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        x[i] = lo + (hi - lo) * (float)((s >> 40) * (1.0 / 16777216.0));
    }
}
