/* kn_images_to_batch on the CPU: the loader's transform of cached images in host memory, with
 * the code transform_image runs (kernels/image_ops.h), so a batch is its bit for bit. Each
 * image's table is built once; then rows of every image are filled in parallel. */
#include <stdlib.h>

#include "kernels/cpu/cpu_internal.h"
#include "kernels/image_ops.h"

int kn_cpu_images_to_batch(kn_cpu_ctx *ctx,
                           float *out,           // (N, crop, crop, 3)
                           const uint8_t *store, // cached images, (height, width, 3) each
                           const kn_image_job *jobs, int n, int crop) {
    kn_img_table *tables = malloc((size_t)n * sizeof *tables);
    if (!tables) return kn_fail(ctx, "images to batch", "out of memory for %d colour tables", n);
#pragma omp parallel for num_threads(ctx->threads) schedule(dynamic)
    for (int i = 0; i < n; i++)
        kn_img_job_table(&tables[i], store + jobs[i].offset, &jobs[i]);
#pragma omp parallel for collapse(2) num_threads(ctx->threads) schedule(static)
    for (int i = 0; i < n; i++)
        for (int y = 0; y < crop; y++)
            kn_img_job_row(out + (((size_t)i * crop + y) * crop) * 3, store + jobs[i].offset,
                           &jobs[i], &tables[i], y, crop);
    free(tables);
    return 0;
}
