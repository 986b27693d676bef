/* The clocks tlsweep reads, defined once: a monotonic one for durations (never jumps with the
 * system time) and the wall clock for timestamps written into the results file. */
#ifndef TLSWEEP_CLOCK_H
#define TLSWEEP_CLOCK_H

/* Seconds on CLOCK_MONOTONIC: only differences mean something. */
double monotonic_seconds(void);
/* Seconds since 1970-01-01 UTC. */
double wall_seconds(void);

#endif
