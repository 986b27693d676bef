/* A small test harness: each test binary registers cases, every CHECK counts, and the binary
 * ends with "N passed, N failed" (per case) and a nonzero exit when anything failed. */
#ifndef TLSWEEP_TESTLIB_H
#define TLSWEEP_TESTLIB_H

#include <stddef.h>
#include <stdint.h>

typedef void (*tl_case_fn)(void);

/* Runs each case in order, prints one line per case and the closing tally; returns the
 * process exit status (0 only when every case passed and at least one ran). */
int tl_run(const char *suite, const char *const *names, const tl_case_fn *cases, int count);
/* tl_run over a names array and a cases array, counted from the arrays; arrays of different
 * lengths do not compile (a char array of size -1). */
#define TL_COUNT(array) ((int)(sizeof(array) / sizeof((array)[0])))
#define TL_RUN(suite, names, cases)                                                                \
    tl_run(suite, names, cases,                                                                    \
           TL_COUNT(cases) + 0 * (int)sizeof(char[TL_COUNT(names) == TL_COUNT(cases) ? 1 : -1]))

/* Records a failure of the current case with its location and message. */
void tl_fail(const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Marks the current case as skipped (with the reason), unless it already failed. Under CI
 * (tests/run.sh with CI=true) such a skip fails the suite. */
void tl_skip(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* The same for a case that needs a GPU where there is none: counted apart in the closing
 * line ("N passed, N failed, N skipped (N need a GPU)"), the one skip CI accepts. */
void tl_skip_no_gpu(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
int tl_case_failed(void);

#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        if (!(cond)) tl_fail(__FILE__, __LINE__, __VA_ARGS__);                                     \
    } while (0)

/* Compares two float arrays: max|a-b| / max(max|ref|, floor) <= rel_tol. Reports the name,
 * the worst index and both values on failure. Returns the relative error. */
double tl_compare(const char *file, int line, const char *name, const float *got, const float *ref,
                  size_t count, double rel_tol, double floor);
#define CHECK_CLOSE(name, got, ref, count, rel_tol)                                                \
    tl_compare(__FILE__, __LINE__, name, got, ref, count, rel_tol, 1e-12)

/* Reference tensors written by the Python exporters: DIR/NAME.bin holds raw little-endian
 * float32 (or int32 for labels) values and DIR/NAME.shape their shape ("2 3 32 32").
 * Returns malloc'd data and its element count, or NULL (and records a failure). */
float *tl_load_f32(const char *dir, const char *name, size_t *count);
int32_t *tl_load_i32(const char *dir, const char *name, size_t *count);
/* $TLSWEEP_TESTDATA/SUB, the folder the exporters write into (build/testdata by default). */
const char *tl_data_dir(const char *sub);

/* Deterministic uniform floats in [lo, hi) for inputs. */
void tl_fill_uniform(float *x, size_t count, float lo, float hi, uint64_t seed);

#endif
