/* Which device a worker rank trains on. The choice is a pure function of what the rank knows
 * (its index among the workers on its node that see the same devices, how many those are, how
 * many devices they see, ranks_per_gpu and what was asked for), so it is unit-tested without a
 * GPU; placement_place adds the device query and the words for the placement print. */
#ifndef TLSWEEP_PLACEMENT_H
#define TLSWEEP_PLACEMENT_H

#include <stddef.h>

typedef enum { DEVICE_AUTO = 0, DEVICE_CPU, DEVICE_CUDA } device_kind;

typedef struct {
    device_kind kind;
    int ordinal; /* cuda:N: N; -1: chosen from the rank's place on its node */
} device_request;

/* "auto", "cpu", "cuda" or "cuda:N" (N a device ordinal). 0 ok, -1 not one of them. */
int placement_parse(const char *text, device_request *out);

/* The device ordinal (>= 0) or -1 for the CPU; -2 when the request cannot be met, with the
 * reason in why. why also says, for the CPU, why it was chosen ("asked for the CPU", "auto: no
 * GPU visible"). Workers that see the same devices spread over them by their index modulo the
 * device count; at most ranks_per_gpu share one (more workers than visible * ranks_per_gpu is
 * an error, not a silent pile-up). Under Slurm's --gpus-per-task each rank sees its own device:
 * it is alone with its view (view_workers 1) and gets ordinal 0. */
int placement_choose(const device_request *req, int view_index, int view_workers, int visible,
                     int ranks_per_gpu, char *why, size_t len);

typedef struct {
    int device;      /* ordinal, -1 for the CPU */
    char text[512];  /* "GPU 0: NVIDIA H200, 139.8 GiB" or "CPU (auto: no GPU visible: ...)" */
    char error[512]; /* non-empty: the request cannot be met here */
} placement;

/* placement_choose with this process's visible CUDA devices, and the chosen device's name and
 * memory. 0 ok; -1 with out->error set. */
int placement_place(const device_request *req, int view_index, int view_workers, int ranks_per_gpu,
                    placement *out);

/* This machine's name, as the placement print, messages and the results file give it
 * ("unknown" when it has none). */
void placement_host(char *host, size_t len);

#endif
