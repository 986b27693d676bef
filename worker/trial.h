/* One trial: a backbone with one learning-rate schedule (and the other sweep values), trained
 * as docs/experiment.md describes (new head, feature extraction, fine-tuning with layer-decayed
 * learning rates). The orchestrator fills a trial_spec from the sweep file and calls trial_run;
 * each finished epoch comes back through the callback so it can stream to the root. */
#ifndef TLSWEEP_TRIAL_H
#define TLSWEEP_TRIAL_H

#include <stddef.h>
#include <stdint.h>

#include "worker/data/dataset.h"
#include "worker/epoch_fields.h"
#include "worker/group.h"

#define TRIAL_MAX_SPLITS 8
#define TRIAL_NAME_MAX 128
#define TRIAL_PATH_MAX 512
/* The largest values a sweep file or a flag may give (a typo, not a real network, beyond) */
#define TRIAL_MAX_WIDTH 4096   /* channel divisor */
#define TRIAL_MAX_IMAGE 65536  /* resize and crop, pixels */
#define TRIAL_MAX_BATCH 65536  /* batch size */
#define TRIAL_MAX_THREADS 4096 /* CPU threads */

typedef enum { LAYER_DECAY_NONE = 0, LAYER_DECAY_LINEAR, LAYER_DECAY_EXPONENTIAL } layer_decay;

typedef struct {
    int epochs;         /* 0 skips the phase */
    double lr;          /* Adam lr of the trainable part */
    int step_every;     /* StepLR step_size, in epochs */
    double gamma;       /* StepLR gamma */
    char trainable[64]; /* name prefix that trains: "" = the new head; "classifier." for VGG */
    int bn_train;       /* BatchNorm of the frozen backbone: 1 train mode (seed), 0 eval */
} feature_extraction_phase;

typedef struct {
    int epochs;
    double lr;         /* lr of the output-most layer group (the head) */
    layer_decay decay; /* how the lr falls from group to group towards the input */
    double factor;     /* exponential: divide by this per group (seed: 3) */
    double lowest_lr;  /* linear: the lr of the input-most group (seed: 1e-7) */
    int step_every;    /* StepLR on every group */
    double gamma;
    double default_lr; /* parameters in no group (seed: 1e-8; none in practice) */
} fine_tuning_phase;

typedef struct {
    char name[TRIAL_NAME_MAX]; /* stable and readable: "resnet50__exp-decay-3__seed=1" */
    /* model */
    char backbone[32];
    int width;                    /* channel divisor, 1 = torchvision's network */
    char weights[TRIAL_PATH_MAX]; /* "none", "torchvision", or a .pth / .safetensors path */
    double dropout;               /* VGG classifier dropout (0.5) */
    /* data */
    char data_root[TRIAL_PATH_MAX];
    char train_splits[TRIAL_MAX_SPLITS][16];
    int n_train_splits;
    char val_splits[TRIAL_MAX_SPLITS][16];
    int n_val_splits;
    int resize, crop;
    int skip_corrupt;
    /* the mapped image cache's folder (worker/data/cache_file.h): "" = the default, "none" =
     * private memory; where the decoded images live, never what they are */
    char cache_dir[TRIAL_PATH_MAX];
    /* the device data path (kn_images_to_batch): 1 the backend transforms the cached images
     * from its own copy of them, 0 the loader's threads do and the floats are uploaded, -1 auto
     * (on for a GPU, off on the CPU, where the threaded loader is faster). Bit-identical
     * batches either way, so it is no resume setting (trial_settings) and no grid value. */
    int device_images;
    /* augmentation (training only) */
    int shuffle; /* reshuffle the training split every epoch (1); 0 keeps its order */
    double hflip, brightness, contrast, rotate_deg, shear_deg;
    /* training */
    int batch_size;
    uint64_t seed;
    char precision[8]; /* fp32 | tf32 (TF32 math on the GPU; the CPU computes fp32) | bf16 */
    int deterministic; /* GPU: deterministic cuDNN algorithms only (the CPU always is) */
    /* a group trial's BatchNorm: 1 statistics over the whole batch (every rank's shard: the
     * one-rank trial's numbers), 0 each rank's shard alone (PyTorch DDP's default) */
    int sync_bn;
    feature_extraction_phase feature_extraction;
    fine_tuning_phase fine_tuning;
    /* where it runs */
    char out_dir[TRIAL_PATH_MAX]; /* best.safetensors and resume checkpoints go here */
    /* Shared feature extraction (worker/phase1.h): "" computes phase 1 in place; else the
     * folder of the phase-1 node this trial starts its phase 2 from, computing it there first
     * when nobody has. phase1_streams: that computation's epochs are this trial's own and go
     * to on_epoch as they finish (the trial whose phase 1 it is); else they are replayed. */
    char phase1_dir[TRIAL_PATH_MAX];
    int phase1_streams;
    int threads;              /* CPU threads (0 = all) */
    int show_progress;        /* a progress bar within epochs on stderr (a terminal) */
    int device;               /* GPU ordinal, -1 for the CPU */
    const trial_group *group; /* the ranks that train it together; NULL: this rank alone */
} trial_spec;

typedef struct {
    EPOCH_FIELDS(EPOCH_FIELD_MEMBER) /* epoch, phase, losses, accuracies ... (epoch_fields.h) */
    int n_groups;
    const char *const *group_names; /* the model's layer groups, output first */
    const double *group_lr;         /* each group's lr this epoch */
} epoch_record;

/* What a retry of a failed trial can hope for: nothing, after a failure before the first
 * batch (on the trial's input or configuration: dataset, weights, memory for its batch size)
 * or on its resume checkpoint (unusable, or written with other settings); maybe, after one
 * while training (divergence, a kernel error). */
typedef enum {
    TRIAL_FAILURE_TRAINING = 0,
    TRIAL_FAILURE_SETUP,
    TRIAL_FAILURE_CHECKPOINT
} trial_failure;

typedef struct {
    size_t params; /* parameters of the model */
    double val_acc_end_of_feature_extraction;
    double best_val_acc;
    int best_epoch;
    double seconds;
    int epochs_done;
    /* A trial stopped inside epoch epochs_done + 1: the training batches it did of that epoch
     * (0: stopped at an epoch end), of batches_per_epoch. */
    int batches_done, batches_per_epoch;
    trial_failure failure; /* why it ended TRIAL_FAILED */
} trial_summary;

/* Called after every epoch; a nonzero return asks the trial to stop (preemption): it then
 * returns TRIAL_STOPPED after writing its resume checkpoint. */
typedef int (*epoch_callback)(const epoch_record *record, void *user);

/* Polled between two training batches (after the Adam step) and at every epoch end; nonzero
 * asks the trial to stop there: it writes a resume checkpoint that holds its position inside
 * the epoch (worker/checkpoint.h) and returns TRIAL_STOPPED, without a record for the partial
 * epoch. Run again, the trial continues at the next batch with the numbers an uninterrupted
 * run has (on the CPU, with the same thread count: bit for bit). A stop that comes during an
 * epoch's last batch or its validation (short next to training) is taken at that epoch's end,
 * which is recorded and checkpointed as usual. */
typedef int (*stop_callback)(void *user);

/* How a trial talks to whoever runs it; any member may be NULL. */
typedef struct {
    epoch_callback on_epoch;
    stop_callback should_stop;
    void *user; /* passed to both */
} trial_hooks;

enum { TRIAL_DONE = 0, TRIAL_FAILED = -1, TRIAL_STOPPED = 1 };

/* Runs (or resumes from out_dir's checkpoint) the whole trial. On TRIAL_FAILED err holds one
 * line naming the trial and the reason. hooks may be NULL.
 * A group trial (spec->group) fails together where its ranks agree: at the start, after every
 * batch (divergence, bad labels), at every epoch end (a checkpoint write, the parameters'
 * fingerprint). A rank that fails anywhere else (a kernel error or an allocation inside a step,
 * validation, a phase change: between two collectives) does not return: it ends the job with
 * group_abort (worker/group.h), naming itself, the trial, the epoch and batch, and the error.
 * Test hook: TLSWEEP_TEST_FAIL_STEP=EPOCH,BATCH[,RANK] in the environment makes the forward of
 * that training batch (1-based) fail on that MPI_COMM_WORLD rank (on every rank without it). */
int trial_run(const trial_spec *spec, const trial_hooks *hooks, trial_summary *summary, char *err,
              size_t errlen);

/* Opens the dataset spec trains on (its root, its splits, skip_corrupt); -1 with the message in
 * err. */
int trial_open_dataset(const trial_spec *spec, dataset *ds, char *err, size_t errlen);

/* 1 when a and b read the same images at the same size: the same root, splits, resize and
 * skip_corrupt (what opening and decoding their dataset depends on). */
int trial_same_data(const trial_spec *a, const trial_spec *b);

/* Fills spec with the seed's defaults (docs/experiment.md): everything except name, backbone,
 * data_root, out_dir. */
void trial_spec_defaults(trial_spec *spec);

#endif
