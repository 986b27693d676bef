/* Fuzz target: a sweep file through libyaml, the section readers and the whole-sweep
 * validation (sweep_parse), as `tlsweep run` reads it before anything starts. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "orchestrator/sweep.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    /* a NUL-terminated copy: the file reader hands the parser one too */
    char *text = malloc(size + 1);
    if (!text) return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    sweep_options opt = {.check_paths = 0};
    sweep s;
    sweep_errors errs;
    memset(&s, 0, sizeof s);
    memset(&errs, 0, sizeof errs);
    if (sweep_parse("fuzz.yaml", text, size, &opt, &s, &errs) == 0) sweep_free(&s);
    sweep_errors_free(&errs);
    free(text);
    return 0;
}
