/* Build and library versions for the results file's root attributes. */
#include <mpi.h>
#include <oneapi/dnnl/dnnl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/kernels.h"
#include "orchestrator/grid.h"
#include "orchestrator/provenance.h"
#include "worker/data/cache_file.h"
#include "worker/data/dataset.h"

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

/* Appends SPLIT's cache file name to OUT unless it is there already. */
static void add_cache_name(const dataset_split *split, int resize, char *out, size_t outlen) {
    char key[IMAGE_CACHE_KEY_CHARS + 1], err[1024], name[1200];
    if (image_cache_key(key, split->paths, split->count, resize, err, sizeof err)) return;
    image_cache_path(name, sizeof name, ".", key, resize, split->count);
    if (strstr(out, name + 2)) return;
    size_t used = strlen(out);
    snprintf(out + used, outlen - used, "%s%s", used ? " " : "", name + 2);
}

void provenance_image_caches(const sweep *s, const trial_table *t, char *out, size_t outlen) {
    out[0] = 0;
    trial_spec *specs = calloc((size_t)(t->count ? t->count : 1), sizeof *specs);
    if (!specs) return;
    for (int i = 0; i < t->count; i++) {
        grid_trial_spec(s, &t->items[i].point, &specs[i]);
        /* one dataset open per distinct dataset, resize and splits, however many trials */
        int seen = 0;
        for (int j = 0; j < i && !seen; j++)
            seen = trial_same_data(&specs[i], &specs[j]);
        dataset ds;
        char err[1024];
        if (seen || trial_open_dataset(&specs[i], &ds, err, sizeof err)) continue;
        add_cache_name(&ds.train, specs[i].resize, out, outlen);
        add_cache_name(&ds.val, specs[i].resize, out, outlen);
        dataset_free(&ds);
    }
    free(specs);
}
