/* Before a sweep or a trial starts: every input it will read, checked once per distinct use,
 * so that a bad dataset or weights file is refused at once (exit 2, nothing started, nothing
 * written) instead of failing trial after trial. Checked: the dataset's .mat files parse and
 * agree (labels 1..K, splits in range and disjoint), every image it lists exists and its JPEG
 * header decodes (not the pixels: a truncated body is still found by the trial), the
 * weights resolve, read and fit the backbone by name and shape, and one trial's model memory
 * at its batch size fits the memory available. */
#ifndef TLSWEEP_PREFLIGHT_H
#define TLSWEEP_PREFLIGHT_H

#include "orchestrator/sweep.h"
#include "worker/trial.h"

/* Adds one message per problem to errs (naming the file and a trial that uses it); returns
 * the number of problems. */
int preflight_trials(const trial_spec *specs, int count, sweep_errors *errs);

/* The same for every trial of a parsed sweep's grid. */
int preflight_sweep(const sweep *s, sweep_errors *errs);

#endif
