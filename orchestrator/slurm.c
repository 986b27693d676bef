/* `scontrol requeue` for `tlsweep run` (slurm.h). */
#include <errno.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "orchestrator/slurm.h"

extern char **environ;

void slurm_requeue(void) {
    const char *job = getenv("SLURM_JOB_ID");
    if (!job || !*job) return;
    if (strspn(job, "0123456789") != strlen(job)) {
        fprintf(stderr, "tlsweep run: not requeued: SLURM_JOB_ID '%s' is not a job number\n", job);
        return;
    }
    const char *off = getenv("TLSWEEP_NO_REQUEUE");
    if (off && *off && strcmp(off, "0")) {
        fprintf(stderr, "tlsweep run: not requeued: TLSWEEP_NO_REQUEUE is set (Slurm job %s)\n",
                job);
        return;
    }
    fflush(NULL);
    char *args[] = {"scontrol", "requeue", (char *)job, NULL};
    pid_t pid;
    /* scontrol must not inherit the stop signals blocked by farm_install_signals */
    posix_spawnattr_t attr;
    sigset_t none;
    sigemptyset(&none);
    int rc = posix_spawnattr_init(&attr);
    if (!rc) rc = posix_spawnattr_setsigmask(&attr, &none);
    if (!rc) rc = posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK);
    if (!rc) rc = posix_spawnp(&pid, "scontrol", NULL, &attr, args, environ);
    posix_spawnattr_destroy(&attr);
    if (rc) {
        fprintf(stderr, "tlsweep run: not requeued: cannot run scontrol: %s (Slurm job %s)\n",
                strerror(rc), job);
        return;
    }
    int wstatus = 0;
    while (waitpid(pid, &wstatus, 0) < 0)
        if (errno != EINTR) {
            fprintf(stderr, "tlsweep run: not requeued: waiting for scontrol: %s\n",
                    strerror(errno));
            return;
        }
    if (WIFEXITED(wstatus) && WEXITSTATUS(wstatus) == 0)
        fprintf(stderr, "tlsweep run: requeued Slurm job %s\n", job);
    else if (WIFEXITED(wstatus))
        fprintf(stderr, "tlsweep run: not requeued: scontrol requeue %s exited with status %d\n",
                job, WEXITSTATUS(wstatus));
    else
        fprintf(stderr, "tlsweep run: not requeued: scontrol requeue %s died of signal %d\n", job,
                WTERMSIG(wstatus));
}
