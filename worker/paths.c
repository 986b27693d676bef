#include "worker/paths.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "worker/trial.h"

int make_dirs(const char *path, char *err, size_t errlen) {
    char buf[TRIAL_PATH_MAX];
    snprintf(buf, sizeof buf, "%s", path);
    for (char *p = buf + 1;; p++) {
        char c = *p;
        if (c == '/' || c == 0) {
            *p = 0;
            if (mkdir(buf, 0777) && errno != EEXIST) {
                snprintf(err, errlen, "cannot create directory %s: %s", buf, strerror(errno));
                return -1;
            }
            *p = c;
        }
        if (!c) break;
    }
    return 0;
}

const char *path_tried(const char *path, char *buf, size_t len) {
    char cwd[TRIAL_PATH_MAX];
    if (path[0] == '/' || !getcwd(cwd, sizeof cwd)) return "";
    snprintf(buf, len, " (tried %s/%s)", cwd, path);
    return buf;
}
