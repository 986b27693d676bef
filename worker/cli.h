/* Numbers on the command line, the same for every subcommand: the whole argument must be a
 * number in range, or one message "tlsweep COMMAND: --FLAG expects ..., got 'TEXT'" goes to
 * report (stderr; NULL to stay quiet, as MPI ranks other than 0 do) and -1 comes back. */
#ifndef TLSWEEP_CLI_H
#define TLSWEEP_CLI_H

#include <stdio.h>

int cli_long(const char *command, const char *flag, const char *text, long lo, long hi, long *out,
             FILE *report);
int cli_double(const char *command, const char *flag, const char *text, double lo, double *out,
               FILE *report);

#endif
