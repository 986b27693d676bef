/* Root <-> worker messages. Each is encoded field by field into bytes behind a header
 * {magic "TLSW", version, type, payload length} and checked on arrival: a message from another
 * tlsweep version or a truncated one is an error, never misread.
 *
 *   worker -> root: HELLO (where it runs), EPOCH (one epoch record), HEARTBEAT (still alive),
 *                   DONE (summary; or stopped at a batch boundary), FAILED (reason and kind)
 *   root -> worker: START (setup is done: the trials' directory NAME.h5.d and the worker's
 *                   group for ranks_per_trial; or SHUTDOWN when setup failed), ASSIGN (a trial
 *                   by grid index and name), ACK (the EPOCH is in the file; carries "stop"),
 *                   STOP (stop at the next batch boundary, checkpoint, report), SHUTDOWN
 *
 * EPOCH is acknowledged once it is written and flushed, and the worker waits for the ACK before
 * the trial goes on to checkpoint that epoch: so a checkpoint never runs ahead of the file, and
 * after a crash an epoch is either in the file or trained again (the root keeps the first). */
#ifndef TLSWEEP_PROTOCOL_H
#define TLSWEEP_PROTOCOL_H

#include <stddef.h>
#include <stdint.h>

#include "worker/trial.h"

#define PROTOCOL_MAGIC 0x57534C54u /* "TLSW" little-endian */
/* 8: START says the worker's group and its voice (ranks_per_trial); 7: ASSIGN names the trial
 * whose folder holds the shared phase 1; 6: FAILED says what kind of failure (a retry may help or
 * not), START replaces the bare trials-directory send; 5: HELLO says which device, or why none;
 * 4: EPOCH carries data_wait_s */
#define PROTOCOL_VERSION 8
#define PROTOCOL_TAG 17
#define PROTOCOL_TAG_ACK 18 /* ACKs travel apart so the heartbeat thread never takes one */
#define PROTOCOL_MAX_GROUPS 64
#define PROTOCOL_GROUP_NAME 32
#define PROTOCOL_MAX_BYTES 8192
#define PROTOCOL_TEXT 512

typedef enum {
    MSG_HELLO = 1,
    MSG_ASSIGN,
    MSG_EPOCH,
    MSG_DONE,
    MSG_FAILED,
    MSG_HEARTBEAT,
    MSG_STOP,
    MSG_SHUTDOWN,
    MSG_ACK,
    MSG_START,
    MSG_TYPE_END
} msg_type;

typedef struct {
    EPOCH_FIELDS(EPOCH_FIELD_MEMBER) /* as the trainer's epoch_record */
    int32_t n_groups;
    char group_names[PROTOCOL_MAX_GROUPS][PROTOCOL_GROUP_NAME];
    double group_lr[PROTOCOL_MAX_GROUPS];
} msg_epoch;

typedef struct {
    int32_t stopped; /* 1: stopped at a batch boundary (preempted), checkpoint written */
    int64_t params;
    double val_acc_end_of_feature_extraction, best_val_acc, seconds;
    int32_t best_epoch, epochs_done;
    int32_t batches_done, batches_per_epoch; /* stopped: where in epoch epochs_done + 1 */
} msg_done;

typedef struct {
    char host[64];
    int32_t local_rank, device, threads;
    int32_t placement_failed;        /* 1: the rank cannot train as asked; device_text says why */
    char device_text[PROTOCOL_TEXT]; /* "GPU 0: NVIDIA H200, 139.8 GiB", "CPU (...)" */
} msg_hello;

/* START: where the worker stands in the static groups of data-parallel trials (groups.h) */
typedef struct {
    int32_t group; /* its group's id (1, 2, ...); -1: alone (ranks_per_trial 1) or idle */
    int32_t voice; /* the rank of its group's voice (its lowest rank); -1 without a group */
} msg_start;

typedef struct {
    msg_type type;
    int32_t trial;             /* grid index (ASSIGN, EPOCH, DONE, FAILED, HEARTBEAT); -1 if none */
    int32_t attempt;           /* ASSIGN..FAILED */
    char name[TRIAL_NAME_MAX]; /* ASSIGN: the trial's name, checked against the worker's grid */
    char text[PROTOCOL_TEXT];  /* FAILED: the reason; START: the trials' directory; ASSIGN: the
                                  trial whose folder holds its shared phase 1 ("": none) */
    trial_failure failure;     /* FAILED: only a training failure is worth a retry */
    int32_t stop;              /* ACK: the root wants the trial to stop */
    msg_hello hello;
    msg_start start;
    msg_epoch epoch;
    msg_done done;
} message;

const char *msg_type_name(msg_type t);

/* Encodes m into buf (cap bytes); *len is the byte count. -1 if it does not fit. */
int protocol_encode(const message *m, unsigned char *buf, size_t cap, size_t *len);
/* Decodes and checks (magic, version, type, exact length, bounded fields); -1 with err. */
int protocol_decode(const unsigned char *buf, size_t len, message *m, char *err, size_t errlen);

/* Fills an EPOCH message from a trainer's epoch record (group names cut to fit). */
void protocol_epoch_from_record(message *m, int trial, int attempt, const epoch_record *r);

#endif
