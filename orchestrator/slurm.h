/* The Slurm requeue after a time-limit stop, so that the job comes back and resumes its file. */
#ifndef TLSWEEP_SLURM_H
#define TLSWEEP_SLURM_H

/* Inside a Slurm job ($SLURM_JOB_ID): `scontrol requeue $SLURM_JOB_ID`, unless
 * TLSWEEP_NO_REQUEUE is set (and not 0). One line on stderr says what happened. Call it after
 * MPI_Finalize (no fork under MPI) and once the results file is closed. */
void slurm_requeue(void);

#endif
