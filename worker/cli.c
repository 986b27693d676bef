#include "worker/cli.h"

#include <errno.h>
#include <stdlib.h>

int cli_long(const char *command, const char *flag, const char *text, long lo, long hi, long *out,
             FILE *report) {
    char *end = NULL;
    errno = 0;
    long v = strtol(text, &end, 10);
    if (!*text || *end || errno || v < lo || v > hi) {
        if (report)
            fprintf(report, "tlsweep %s: --%s expects an integer in %ld..%ld, got '%s'\n", command,
                    flag, lo, hi, text);
        return -1;
    }
    *out = v;
    return 0;
}

int cli_double(const char *command, const char *flag, const char *text, double lo, double *out,
               FILE *report) {
    char *end = NULL;
    double v = strtod(text, &end);
    if (!*text || *end || !(v >= lo)) {
        if (report)
            fprintf(report, "tlsweep %s: --%s expects a number >= %g, got '%s'\n", command, flag,
                    lo, text);
        return -1;
    }
    *out = v;
    return 0;
}
