/* Directories for results and checkpoints. */
#ifndef TLSWEEP_PATHS_H
#define TLSWEEP_PATHS_H

#include <stddef.h>

/* mkdir -p PATH; -1 with "cannot create directory D: reason" in err. */
int make_dirs(const char *path, char *err, size_t errlen);

#endif
