/* The image cache file against private decoding (wall time, resident memory): RANKS processes
 * starting a trial at once, as the ranks of one node, when each decodes into its own memory,
 * when they find no cache file (one builds it, the others wait and map it) and when they find
 * it, with their resident memory and the node's total (the sum of proportional set sizes: a
 * page the ranks share counts once); then one trial's start-up each way. Makes DIR (about
 * IMAGES synthetic 500x600 JPEGs: 80 per class, as many classes as come nearest) when
 * missing. Prints "ours NAME VALUE" lines for tests/bench/cache.sh.
 * usage: bench_cache DIR CACHE_DIR IMAGES RANKS THREADS */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "worker/data/cache_file.h"
#include "worker/data/dataset.h"
#include "worker/data/loader.h"
#include "worker/data/synth.h"

static double wall(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + t.tv_nsec * 1e-9;
}

/* This process's resident memory in MiB: anonymous (private), file-backed, and proportional
 * (shared pages divided among the processes mapping them). */
typedef struct {
    double anon, file, pss;
} memory;

static memory resident(void) {
    memory m = {0, 0, 0};
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    while (f && fgets(line, sizeof line, f)) {
        sscanf(line, "RssAnon: %lf", &m.anon);
        sscanf(line, "RssFile: %lf", &m.file);
    }
    if (f) fclose(f);
    f = fopen("/proc/self/smaps_rollup", "r");
    while (f && fgets(line, sizeof line, f))
        sscanf(line, "Pss: %lf", &m.pss);
    if (f) fclose(f);
    m.anon /= 1024;
    m.file /= 1024;
    m.pss /= 1024;
    return m;
}

/* One trial's start-up: its loader over SPLIT (decoded privately when CACHE_DIR is NULL). */
static loader *start_trial(const dataset_split *split, const char *cache_dir, int threads,
                           double *seconds) {
    loader_options o = {.batch_size = 16,
                        .resize = 256,
                        .crop = 224,
                        .augment = 1,
                        .augment_opts = {0.5, 0.3, 0.3, 30, 20},
                        .shuffle = 1,
                        .threads = threads,
                        .prefetch = 2,
                        .cache_dir = cache_dir};
    loader *l;
    char err[1024];
    double t0 = wall();
    if (loader_create(&l, split, 0, &o, err, sizeof err) != 0) {
        fprintf(stderr, "bench_cache: %s\n", err);
        return NULL;
    }
    *seconds = wall() - t0;
    return l;
}

/* RANKS processes start a trial at once; once all of them hold their loader, each reports its
 * memory (a rank measured before the others mapped the file would count it all as its own).
 * Prints "ours ranks_KIND_seconds / _anon_mib / _file_mib / _total_mib". */
static int ranks_at_once(const char *kind, const dataset_split *split, const char *cache_dir,
                         int ranks, int threads) {
    int loaded[2], measure[2], results[2], go[2];
    if (pipe(loaded) != 0 || pipe(measure) != 0 || pipe(results) != 0 || pipe(go) != 0) return -1;
    double t0 = wall();
    for (int r = 0; r < ranks; r++)
        if (fork() == 0) {
            /* so that the parent's writes and close are what these reads see */
            close(measure[1]);
            close(go[1]);
            double s;
            loader *l = start_trial(split, cache_dir, threads, &s);
            char c = 1;
            if (write(loaded[1], &c, 1) != 1 || read(measure[0], &c, 1) != 1) _exit(1);
            memory m = l ? resident() : (memory){-1, -1, -1};
            /* hold the loader until every rank has measured */
            if (write(results[1], &m, sizeof m) != sizeof m || read(go[0], &c, 1) < 0) _exit(1);
            if (l) loader_destroy(l);
            _exit(l ? 0 : 1);
        }
    int ok = 1;
    char c;
    for (int r = 0; r < ranks; r++)
        ok &= read(loaded[0], &c, 1) == 1;
    double seconds = wall() - t0;
    for (int r = 0; r < ranks; r++)
        ok &= write(measure[1], &c, 1) == 1;
    memory sum = {0, 0, 0};
    for (int r = 0; r < ranks; r++) {
        memory m;
        ok &= read(results[0], &m, sizeof m) == sizeof m && m.pss >= 0;
        sum.anon += m.anon;
        sum.file += m.file;
        sum.pss += m.pss;
    }
    close(go[1]); /* every rank's read returns: they exit */
    int status;
    while (wait(&status) > 0)
        ok &= WIFEXITED(status) && WEXITSTATUS(status) == 0;
    int fds[] = {loaded[0], loaded[1], measure[0], measure[1], results[0], results[1], go[0]};
    for (size_t i = 0; i < sizeof fds / sizeof fds[0]; i++)
        close(fds[i]);
    printf("ours ranks_%s_seconds %.2f\n", kind, seconds);
    printf("ours ranks_%s_anon_mib %.0f\n", kind, sum.anon);
    printf("ours ranks_%s_file_mib %.0f\n", kind, sum.file);
    printf("ours ranks_%s_total_mib %.0f\n", kind, sum.pss);
    fflush(stdout);
    return ok ? 0 : -1;
}

int main(int argc, char **argv) {
    if (argc != 6) {
        fprintf(stderr, "usage: bench_cache DIR CACHE_DIR IMAGES RANKS THREADS\n");
        return 2;
    }
    const char *dir = argv[1], *cache_dir = argv[2];
    int images = atoi(argv[3]), ranks = atoi(argv[4]), threads = atoi(argv[5]);
    char err[1024], labels[4096];
    snprintf(labels, sizeof labels, "%s/imagelabels.mat", dir);
    if (access(labels, R_OK) != 0) {
        synth_options o; /* Flowers102-like: 500 x 600 pixels, JPEG quality 90 */
        synth_default_options(&o);
        o.classes = images / o.per_class > 1 ? (images + o.per_class / 2) / o.per_class : 1;
        if (synth_flowers_write(dir, &o, err, sizeof err) != 0) {
            fprintf(stderr, "bench_cache: %s\n", err);
            return 1;
        }
    }
    static const char *const all[] = {"trnid", "valid", "tstid"};
    dataset ds;
    if (dataset_open(&ds, dir, all, 3, NULL, 0, 0, err, sizeof err) != 0) {
        fprintf(stderr, "bench_cache: %s\n", err);
        return 1;
    }
    printf("ours images %d\nours ranks %d\nours threads %d\n", ds.train.count, ranks, threads);
    int rc = 0;
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", cache_dir);
    /* the node first, before this process runs an OpenMP region (a forked child could not):
     * every rank decodes privately; every rank asks for the missing cache (one builds, the
     * others wait and map); every rank maps it */
    if (ranks_at_once("private", &ds.train, NULL, ranks, threads) != 0 || system(cmd) != 0 ||
        ranks_at_once("build", &ds.train, cache_dir, ranks, threads) != 0 ||
        ranks_at_once("map", &ds.train, cache_dir, ranks, threads) != 0)
        rc = 1;
    struct {
        const char *name, *cache_dir;
        int clear;
    } starts[] = {{"private", NULL, 0}, {"build", cache_dir, 1}, {"map", cache_dir, 0}};
    for (size_t k = 0; k < sizeof starts / sizeof starts[0] && rc == 0; k++) {
        if (starts[k].clear && system(cmd) != 0) rc = 1;
        double seconds;
        loader *l = start_trial(&ds.train, starts[k].cache_dir, threads, &seconds);
        if (!l) {
            rc = 1;
            break;
        }
        memory m = resident();
        printf("ours start_%s_seconds %.2f\nours start_%s_anon_mib %.0f\n", starts[k].name, seconds,
               starts[k].name, m.anon);
        fflush(stdout);
        loader_destroy(l);
    }
    dataset_free(&ds);
    return rc;
}
