#include "worker/paths.h"

#include <errno.h>
#include <fcntl.h>
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

int copy_file(const char *from, const char *to, char *err, size_t errlen) {
    int in = open(from, O_RDONLY | O_CLOEXEC);
    if (in < 0) {
        snprintf(err, errlen, "cannot read %s: %s", from, strerror(errno));
        return -1;
    }
    int out = open(to, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (out < 0) {
        snprintf(err, errlen, "cannot create %s: %s", to, strerror(errno));
        close(in);
        return -1;
    }
    char buf[1 << 16];
    int rc = 0;
    for (;;) {
        ssize_t got = read(in, buf, sizeof buf);
        if (got < 0 && errno == EINTR) continue;
        if (got < 0) {
            snprintf(err, errlen, "cannot read %s: %s", from, strerror(errno));
            rc = -1;
        }
        if (got <= 0) break;
        for (ssize_t done = 0; done < got && !rc;) {
            ssize_t put = write(out, buf + done, (size_t)(got - done));
            if (put < 0 && errno == EINTR) continue;
            if (put < 0) {
                snprintf(err, errlen, "cannot write %s: %s", to, strerror(errno));
                rc = -1;
            } else
                done += put;
        }
        if (rc) break;
    }
    close(in);
    if (close(out) && !rc) {
        snprintf(err, errlen, "cannot write %s: %s", to, strerror(errno));
        rc = -1;
    }
    return rc;
}

const char *path_tried(const char *path, char *buf, size_t len) {
    char cwd[TRIAL_PATH_MAX];
    if (path[0] == '/' || !getcwd(cwd, sizeof cwd)) return "";
    snprintf(buf, len, " (tried %s/%s)", cwd, path);
    return buf;
}
