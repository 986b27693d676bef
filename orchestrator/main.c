/* tlsweep: the one binary. `tlsweep COMMAND [options]`; `tlsweep COMMAND --help` for each. */
#include <stdio.h>
#include <string.h>

#include "orchestrator/provenance.h"
#include "worker/commands.h"

typedef struct {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
} command;

static const command commands[] = {
    {"models", cmd_models, "every backbone: parameters, trainable head, layer groups"},
    {"train", cmd_train, "one trial (two-phase transfer learning) in this process, no MPI"},
    {"synth-flowers", cmd_synth_flowers, "write a synthetic dataset in the Flowers102 layout"},
    {"run", cmd_run, "run a sweep (under mpirun; resumes an existing results file)"},
    {"merge", cmd_merge, "combine results files of one sweep (job-array tasks) into one"},
    {"status", cmd_status, "progress and best trials of a results file (also while it runs)"},
    {"plot", cmd_plot, "the comparison figures of a results file (runs results/plot.py)"},
    {"cache", cmd_cache, "show or clear the decoded-image caches of a cache folder"},
};

static void usage(FILE *out) {
    fprintf(out, "usage: tlsweep COMMAND [options]   (tlsweep COMMAND --help)\n\ncommands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(out, "  %-14s %s\n", commands[i].name, commands[i].summary);
    fprintf(out, "\n  tlsweep --version   the version\n"
                 "sweep files: every key, with examples, in docs/sweep-file.md of the repository;\n"
                 "`tlsweep run -n SWEEP.yaml` checks one (and every input it reads) and lists its "
                 "trials\n");
}

int main(int argc, char **argv) {
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return 0;
    }
    if (!strcmp(argv[1], "--version")) {
        printf("tlsweep %s\n", TLSWEEP_VERSION);
        return 0;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (!strcmp(argv[1], commands[i].name)) return commands[i].run(argc - 1, argv + 1);
    fprintf(stderr, "tlsweep: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return 2;
}
