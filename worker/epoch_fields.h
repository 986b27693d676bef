/* The numbers a trial reports for every epoch, listed once. The list expands into the trainer's
 * epoch_record (trial.h), the EPOCH message and its encoding (orchestrator/protocol.c), the
 * /curves row and its HDF5 column (orchestrator/results_h5.c), and `tlsweep status --curves`.
 * A new metric is one line here, plus where the trainer measures it (and results/SCHEMA.md).
 *
 * X(kind, name): kind is i32 (int32_t) or f64 (double). The order is the wire order and the
 * column order of /curves. */
#ifndef TLSWEEP_EPOCH_FIELDS_H
#define TLSWEEP_EPOCH_FIELDS_H

#include <stdint.h>

#define EPOCH_FIELDS(X)                                                                            \
    X(i32, epoch)             /* 1-based over both phases */                                       \
    X(i32, phase)             /* 1 feature extraction, 2 fine-tuning */                            \
    X(f64, train_loss)        /* mean over the epoch's training images */                          \
    X(f64, train_acc)         /* running over the epoch's batches; in [0, 1] */                    \
    X(f64, val_loss)          /* true per-image */                                                 \
    X(f64, val_acc)           /* true per-image, in [0, 1] */                                      \
    X(f64, head_lr)           /* the output-most layer group's lr */                               \
    X(f64, seconds)           /* the epoch's wall time, training and validation */                 \
    X(f64, images_per_second) /* training and validation images over seconds */                    \
    X(f64, data_wait_s)       /* of seconds, the time spent waiting for the loader's batches */

#define EPOCH_FIELD_TYPE_i32 int32_t
#define EPOCH_FIELD_TYPE_f64 double

/* Declares a struct member per field: `EPOCH_FIELDS(EPOCH_FIELD_MEMBER)` inside a struct. */
#define EPOCH_FIELD_MEMBER(kind, name) EPOCH_FIELD_TYPE_##kind name;

#endif
