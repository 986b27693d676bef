/* `tlsweep cache info|clear DIR`: the mapped image caches in a cache folder (cache_file.h). */
#include <dirent.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "worker/commands.h"
#include "worker/data/cache_file.h"

static void usage(FILE *out) {
    fprintf(out, "usage: tlsweep cache info|clear DIR\n"
                 "  the decoded-image caches in DIR (data.cache_dir, --cache-dir; by default\n"
                 "  DATA/tlsweep-cache or ~/.cache/tlsweep)\n"
                 "  info   each cache: key, resize, images, size, and whether it checks out\n"
                 "         (a cache that does not is rebuilt by the next trial); builds under way\n"
                 "  clear  removes every cache (processes that map one keep their copy) and what\n"
                 "         a killed builder left; skips caches being built\n"
                 "exit status: 0 done, 1 a cache could not be removed, 2 bad input\n");
}

/* The cache files named in DIR (a leftover .tmp or .lock counts for its cache): a sorted,
 * duplicate-free, malloc'd list of paths. */
static int list_caches(const char *dir, char ***out, int *count) {
    DIR *d = opendir(dir);
    if (!d) {
        perror(dir);
        return -1;
    }
    char **paths = NULL;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        char *suffix = strstr(e->d_name, IMAGE_CACHE_SUFFIX);
        if (!suffix || e->d_name[0] == '.') continue;
        const char *rest = suffix + strlen(IMAGE_CACHE_SUFFIX);
        if (*rest && strcmp(rest, ".tmp") && strcmp(rest, ".lock")) continue;
        char path[PATH_MAX];
        snprintf(path, sizeof path, "%s/%.*s", dir, (int)(rest - e->d_name), e->d_name);
        int seen = 0;
        for (int i = 0; i < n && !seen; i++)
            seen = !strcmp(paths[i], path);
        if (seen) continue;
        char **grown = realloc(paths, (size_t)(n + 1) * sizeof *paths);
        if (!grown || !(grown[n] = strdup(path))) {
            fprintf(stderr, "tlsweep cache: out of memory\n");
            free(grown ? grown : paths);
            closedir(d);
            return -1;
        }
        paths = grown;
        n++;
    }
    closedir(d);
    for (int i = 1; i < n; i++) /* insertion sort: a handful of caches */
        for (int j = i; j > 0 && strcmp(paths[j - 1], paths[j]) > 0; j--) {
            char *t = paths[j];
            paths[j] = paths[j - 1];
            paths[j - 1] = t;
        }
    *out = paths;
    *count = n;
    return 0;
}

static int info(char **paths, int n) {
    int threads = (int)sysconf(_SC_NPROCESSORS_ONLN);
    for (int i = 0; i < n; i++) {
        char holder[256], err[1024];
        image_cache_file_info in;
        if (image_cache_builder(paths[i], holder, sizeof holder))
            printf("%s\n  being built by %s\n", paths[i], holder);
        else if (access(paths[i], F_OK) != 0)
            printf("%s\n  left by a killed builder (clear removes it)\n", paths[i]);
        else if (image_cache_check(paths[i], threads, &in, err, sizeof err) != 0)
            printf("%s\n  unusable, the next trial rebuilds it: %s\n", paths[i], err);
        else
            printf("%s\n  key %s, resize %d, %d images (%d undecodable), %.1f MiB of pixels, "
                   "%.1f MiB file: ok\n",
                   paths[i], in.key, in.resize, in.count, in.failed,
                   (double)in.pixel_bytes / 1048576, (double)in.file_bytes / 1048576);
    }
    if (n == 0) printf("no image caches\n");
    return 0;
}

static int clear(char **paths, int n) {
    int status = 0;
    for (int i = 0; i < n; i++) {
        char holder[256], err[1024];
        int rc = image_cache_remove(paths[i], holder, sizeof holder, err, sizeof err);
        if (rc == 1)
            printf("kept %s: being built by %s\n", paths[i], holder);
        else if (rc == 0)
            printf("removed %s\n", paths[i]);
        else {
            fprintf(stderr, "tlsweep cache: %s\n", err);
            status = 1;
        }
    }
    return status;
}

int cmd_cache(int argc, char **argv) {
    if (argc == 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
        usage(stdout);
        return 0;
    }
    if (argc != 3 || (strcmp(argv[1], "info") && strcmp(argv[1], "clear"))) {
        usage(stderr);
        return 2;
    }
    char **paths;
    int n;
    if (list_caches(argv[2], &paths, &n) != 0) return 2;
    int status = !strcmp(argv[1], "info") ? info(paths, n) : clear(paths, n);
    for (int i = 0; i < n; i++)
        free(paths[i]);
    free(paths);
    return status;
}
