/* NCCL communicators of a data-parallel group's GPUs (kernels.h, "collectives"): one per trial,
 * every call queued on the context's stream, so a sum runs after the backward that wrote the
 * gradients and before the Adam step that reads them, with no host wait in between. */
#include "kernels/cuda/cuda_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef KN_WITH_NCCL
#include <nccl.h>

_Static_assert(KN_COMM_ID_BYTES == NCCL_UNIQUE_ID_BYTES, "kernels.h's id size is NCCL's");

struct kn_cuda_comm {
    kn_cuda_ctx *ctx;
    ncclComm_t nccl;
    int nranks, rank;
};

static int nccl_check(kn_cuda_ctx *ctx, ncclResult_t st, const char *call, const char *what) {
    if (st == ncclSuccess) return 0;
    return kn_cuda_fail(ctx, what, "%s failed: %s", call, ncclGetErrorString(st));
}

int kn_cuda_comm_id(kn_cuda_ctx *ctx, unsigned char *id) {
    ncclUniqueId u;
    if (nccl_check(ctx, ncclGetUniqueId(&u), "ncclGetUniqueId", "NCCL communicator id")) return -1;
    memcpy(id, u.internal, sizeof u.internal);
    return 0;
}

kn_cuda_comm *kn_cuda_comm_create(kn_cuda_ctx *ctx, const unsigned char *id, int nranks, int rank) {
    char what[KN_CUDA_WHAT_LEN];
    snprintf(what, sizeof what, "NCCL communicator, rank %d of %d", rank, nranks);
    if (nranks < 1 || rank < 0 || rank >= nranks) {
        kn_cuda_fail(ctx, what, "no such rank");
        return NULL;
    }
    kn_cuda_comm *c = calloc(1, sizeof *c);
    if (!c) {
        kn_cuda_fail(ctx, what, "out of memory");
        return NULL;
    }
    ncclUniqueId u;
    memcpy(u.internal, id, sizeof u.internal);
    /* NCCL binds a communicator to the current device: the context's */
    if (CU_CHECK(ctx, what, cudaSetDevice(ctx->device)) ||
        nccl_check(ctx, ncclCommInitRank(&c->nccl, nranks, u, rank), "ncclCommInitRank", what)) {
        free(c);
        return NULL;
    }
    c->ctx = ctx;
    c->nranks = nranks;
    c->rank = rank;
    return c;
}

void kn_cuda_comm_destroy(kn_cuda_comm *c) {
    if (!c) return;
    cudaStreamSynchronize(c->ctx->stream); /* nothing of ours still queued on it */
    ncclCommDestroy(c->nccl);
    free(c);
}

int kn_cuda_comm_sum(kn_cuda_comm *c, float *buf, size_t count) {
    return nccl_check(c->ctx,
                      ncclAllReduce(buf, buf, count, ncclFloat32, ncclSum, c->nccl, c->ctx->stream),
                      "ncclAllReduce", "group sum");
}

int kn_cuda_comm_broadcast(kn_cuda_comm *c, void *buf, size_t bytes) {
    kn_cuda_note_write(c->ctx, buf, bytes); /* may overwrite parameters */
    return nccl_check(c->ctx, ncclBroadcast(buf, buf, bytes, ncclUint8, 0, c->nccl, c->ctx->stream),
                      "ncclBroadcast", "group broadcast");
}

#else /* built without NCCL (the Makefile found no nccl.h): every call says so */

struct kn_cuda_comm {
    int unused;
};

static int no_nccl(kn_cuda_ctx *ctx) {
    return kn_cuda_fail(ctx, "NCCL communicator",
                        "this build has no NCCL (make found no nccl.h; NCCL_HOME=DIR names one)");
}

int kn_cuda_comm_id(kn_cuda_ctx *ctx, unsigned char *id) {
    (void)id;
    return no_nccl(ctx);
}

kn_cuda_comm *kn_cuda_comm_create(kn_cuda_ctx *ctx, const unsigned char *id, int nranks, int rank) {
    (void)id;
    (void)nranks;
    (void)rank;
    no_nccl(ctx);
    return NULL;
}

void kn_cuda_comm_destroy(kn_cuda_comm *c) {
    (void)c;
}

int kn_cuda_comm_sum(kn_cuda_comm *c, float *buf, size_t count) {
    (void)c;
    (void)buf;
    (void)count;
    return -1; /* never reached: no communicator exists */
}

int kn_cuda_comm_broadcast(kn_cuda_comm *c, void *buf, size_t bytes) {
    (void)c;
    (void)buf;
    (void)bytes;
    return -1;
}
#endif
