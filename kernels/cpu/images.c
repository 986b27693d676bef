/* kn_images_to_batch on the CPU: the loader's transform of cached images in host memory, with
 * the loader's own per-value functions (kernels/image_ops.h), so a batch is transform_image's
 * bit for bit. Each image's colour map and normalisation fold into one table, built once per
 * image; then rows of every image are filled in parallel. */
#include <stdlib.h>

#include "kernels/cpu/cpu_internal.h"
#include "kernels/image_ops.h"

/* One image's output values: value[c][v] for cached value v in channel c. */
typedef struct {
    float value[3][256];
} image_table;

/* The contrast grey level over every pixel of the image (not only the crop), as PIL takes it;
 * the integer sum is exact. */
static int contrast_mean(const uint8_t *pixels, const kn_image_job *j) {
    uint8_t seen[256];
    for (int v = 0; v < 256; v++)
        seen[v] =
            kn_img_contrast_input(v, j->use_brightness, j->brightness_factor, j->contrast_first);
    const size_t count = (size_t)j->width * j->height;
    uint64_t sum = 0;
    for (size_t i = 0; i < count; i++) {
        const uint8_t *s = pixels + 3 * i;
        sum += (uint64_t)kn_img_luma(seen[s[0]], seen[s[1]], seen[s[2]]);
    }
    return kn_img_contrast_mean(sum, count);
}

static void build_table(image_table *t, const uint8_t *pixels, const kn_image_job *j) {
    const int mean = j->augment && j->use_contrast ? contrast_mean(pixels, j) : 0;
    for (int v = 0; v < 256; v++) {
        const uint8_t mapped = kn_img_job_color(j, v, mean);
        for (int c = 0; c < 3; c++)
            t->value[c][v] = kn_img_normalize(mapped, c);
    }
}

int kn_cpu_images_to_batch(kn_cpu_ctx *ctx,
                           float *out,           // (N, crop, crop, 3)
                           const uint8_t *store, // cached images, (height, width, 3) each
                           const kn_image_job *jobs, int n, int crop) {
    image_table *tables = malloc((size_t)n * sizeof *tables);
    if (!tables) return kn_fail(ctx, "images to batch", "out of memory for %d colour tables", n);
#pragma omp parallel for num_threads(ctx->threads) schedule(dynamic)
    for (int i = 0; i < n; i++)
        build_table(&tables[i], store + jobs[i].offset, &jobs[i]);
    const float fill[3] = {kn_img_normalize(0, 0), kn_img_normalize(0, 1), kn_img_normalize(0, 2)};
#pragma omp parallel for collapse(2) num_threads(ctx->threads) schedule(static)
    for (int i = 0; i < n; i++)
        for (int y = 0; y < crop; y++) {
            const kn_image_job *j = &jobs[i];
            const uint8_t *pixels = store + j->offset;
            const image_table *t = &tables[i];
            float *o = out + (((size_t)i * crop + y) * crop) * 3;
            for (int x = 0; x < crop; x++, o += 3) {
                int sx, sy;
                if (!kn_img_job_source(&sx, &sy, j, x, y)) {
                    o[0] = fill[0], o[1] = fill[1], o[2] = fill[2];
                    continue;
                }
                const uint8_t *s = pixels + ((size_t)sy * j->width + sx) * 3;
                o[0] = t->value[0][s[0]];
                o[1] = t->value[1][s[1]];
                o[2] = t->value[2][s[2]];
            }
        }
    free(tables);
    return 0;
}
