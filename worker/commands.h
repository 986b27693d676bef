/* Subcommands of the tlsweep binary; each takes the arguments after its name (argv[0] is the
 * subcommand's name) and returns the process exit status. */
#ifndef TLSWEEP_COMMANDS_H
#define TLSWEEP_COMMANDS_H

int cmd_models(int argc, char **argv);
int cmd_train(int argc, char **argv);
int cmd_synth_flowers(int argc, char **argv);
int cmd_run(int argc, char **argv);    /* orchestrator/run_cmd.c */
int cmd_status(int argc, char **argv); /* orchestrator/status_cmd.c */
int cmd_plot(int argc, char **argv);   /* orchestrator/plot_cmd.c */
int cmd_merge(int argc, char **argv);  /* orchestrator/merge_cmd.c */
int cmd_cache(int argc, char **argv);  /* orchestrator/cache_cmd.c */

#endif
