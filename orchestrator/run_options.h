/* `tlsweep run`'s command line: its options, their defaults and its usage text. Only rank 0
 * speaks (a bad flag, --help), so a message appears once however many ranks parse it. */
#ifndef TLSWEEP_RUN_OPTIONS_H
#define TLSWEEP_RUN_OPTIONS_H

typedef struct {
    const char *sweep_file, *output;
    int simulate, extend, dry_run, quiet, threads;
    double sim_seconds, time_limit, heartbeat, heartbeat_timeout;
} run_options;

/* Parses argv (argv[0] is "run") into o. 0 ok, 1 --help printed, -1 bad usage (reported by
 * rank 0). */
int run_options_parse(int argc, char **argv, run_options *o, int rank);

#endif
