/* Build and library versions for the results file's root attributes. */
#include <mpi.h>
#include <oneapi/dnnl/dnnl.h>
#include <stdio.h>
#include <string.h>

#include "kernels/kernels.h"
#include "orchestrator/provenance.h"

/* The build may pass these; without them the file says so rather than guessing. */
#ifndef TLSWEEP_GIT_REVISION
#define TLSWEEP_GIT_REVISION "unknown"
#endif
#ifndef TLSWEEP_CFLAGS
#define TLSWEEP_CFLAGS "unknown"
#endif

void provenance_fill(provenance *p, results_meta *meta) {
    memset(p, 0, sizeof *p);
    char mpi[MPI_MAX_LIBRARY_VERSION_STRING];
    int len = 0;
    if (MPI_Get_library_version(mpi, &len) == MPI_SUCCESS) {
        mpi[strcspn(mpi, "\n,")] = 0; /* first line: "Open MPI v4.1.4" */
        snprintf(p->mpi, sizeof p->mpi, "%s", mpi);
    } else
        snprintf(p->mpi, sizeof p->mpi, "unknown");
    const dnnl_version_t *v = dnnl_version();
    if (v)
        snprintf(p->onednn, sizeof p->onednn, "%d.%d.%d", v->major, v->minor, v->patch);
    else
        snprintf(p->onednn, sizeof p->onednn, "unknown");
    meta->tool_version = TLSWEEP_VERSION;
    meta->git_revision = TLSWEEP_GIT_REVISION;
    meta->compiler = __VERSION__;
    meta->compiler_flags = TLSWEEP_CFLAGS;
    meta->mpi_version = p->mpi;
    meta->onednn_version = p->onednn;
    /* as loaded at run time, from the kernels layer (which owns the CUDA headers) */
    kn_library_versions(p->cuda, sizeof p->cuda, p->cudnn, sizeof p->cudnn);
    meta->cuda_version = p->cuda;
    meta->cudnn_version = p->cudnn;
    meta->nccl_version = "none (not used: one GPU per rank, gradients stay on the rank)";
}
