/* `tlsweep plot FILE.h5 [-o DIR] [--format png,svg,pdf]`: the comparison figures. A thin
 * front for results/plot.py (matplotlib), found beside the binary (bin/../results) so it works
 * from any directory; runs $PYTHON, default /usr/bin/python3 (Debian's matplotlib/h5py). */
#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

#include "worker/commands.h"

static void usage(FILE *out) {
    fprintf(out,
            "usage: tlsweep plot FILE.h5 [-o DIR] [--format png,svg,pdf] [--data-json PATH]\n"
            "  the comparison figures of a results file (also while the sweep runs):\n"
            "  curves, fe_vs_ft, heatmap, lr, throughput\n"
            "  -o, --out DIR      folder for the figures (default: FILE without .h5 + -figures)\n"
            "  --format LIST      comma-separated png, svg, pdf (default png)\n"
            "  --data-json PATH   also write the arrays each figure drew\n"
            "  runs results/plot.py with $PYTHON (default /usr/bin/python3)\n");
}

/* results/plot.py beside the running binary: DIR/bin/tlsweep -> DIR/results/plot.py. */
static int find_script(char *script, size_t size) {
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n < 0) {
        fprintf(stderr, "tlsweep plot: cannot locate the binary (/proc/self/exe): %s\n",
                strerror(errno));
        return -1;
    }
    exe[n] = '\0';
    int len = snprintf(script, size, "%s/../results/plot.py", dirname(exe));
    if (len < 0 || (size_t)len >= size) {
        fprintf(stderr, "tlsweep plot: path of the binary too long\n");
        return -1;
    }
    if (access(script, R_OK) != 0) {
        fprintf(stderr,
                "tlsweep plot: %s: %s (the plotting module ships in results/ beside bin/)\n",
                script, strerror(errno));
        return -1;
    }
    return 0;
}

int cmd_plot(int argc, char **argv) {
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage(stdout);
            return 0;
        }
    char script[PATH_MAX + 32];
    if (find_script(script, sizeof script)) return 2;
    const char *python = getenv("PYTHON");
    if (!python || !*python) python = "/usr/bin/python3";

    char **args = calloc((size_t)argc + 2, sizeof *args);
    if (!args) {
        fprintf(stderr, "tlsweep plot: out of memory\n");
        return 4;
    }
    args[0] = (char *)python;
    args[1] = script;
    for (int i = 1; i < argc; i++)
        args[i + 1] = argv[i];
    fflush(stdout);
    pid_t child;
    int spawned = posix_spawnp(&child, python, NULL, NULL, args, environ), status = 0;
    free(args);
    if (spawned) {
        fprintf(stderr,
                "tlsweep plot: cannot run Python '%s': %s; install python3 python3-matplotlib "
                "python3-h5py python3-pandas (tools/install-deps.sh) or set PYTHON\n",
                python, strerror(spawned));
        return 3;
    }
    while (waitpid(child, &status, 0) < 0 && errno == EINTR) {
    }
    /* plot.py says what went wrong itself when it exits 2 (the file, the output place) or 3
     * (matplotlib missing); anything else is Python's own failure, which it may not explain */
    int code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    if (code == 0 || code == 2 || code == 3) return code;
    if (code < 0)
        fprintf(stderr, "tlsweep plot: %s %s was killed by signal %d\n", python, script,
                WTERMSIG(status));
    else
        fprintf(stderr, "tlsweep plot: %s %s failed with exit status %d\n", python, script, code);
    return 3;
}
