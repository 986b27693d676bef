/* Directories for results and checkpoints. */
#ifndef TLSWEEP_PATHS_H
#define TLSWEEP_PATHS_H

#include <stddef.h>

/* mkdir -p PATH; -1 with "cannot create directory D: reason" in err. */
int make_dirs(const char *path, char *err, size_t errlen);

/* Copies the file from to the file to (created or truncated, mode 0644); -1 with "cannot ...:
 * reason" naming the file in err. */
int copy_file(const char *from, const char *to, char *err, size_t errlen);

/* For messages about a path that was not found: " (tried /cwd/PATH)" for a relative PATH, so
 * the user sees where it was looked for; "" for an absolute one. Writes into buf. */
const char *path_tried(const char *path, char *buf, size_t len);

#endif
