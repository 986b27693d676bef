/* Fuzz target: one image the way the loader sees it: JPEG decode (with DCT scaling), resize of
 * the shorter side, then the eval transform and one augmented transform (centre crop,
 * normalisation). */
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

#include "tests/fuzz/fuzz_util.h"
#include "worker/data/augment.h"
#include "worker/data/jpeg.h"
#include "worker/data/resize.h"
#include "worker/data/transform.h"

enum { RESIZE = 36, CROP = 32 };

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char path[64], err[1024];
    int fd = fuzz_memfile(data, size, path, sizeof path);
    image_u8 decoded, resized;
    if (jpeg_decode_file(path, RESIZE, &decoded, err, sizeof err) == 0) {
        if (resize_shorter_side(&decoded, RESIZE, &resized, path, err, sizeof err) == 0) {
            static float input[CROP * CROP * 3];
            transform_image(input, &resized, NULL, CROP);
            augment_options o = {.hflip_p = 0.5,
                                 .brightness = 0.3,
                                 .contrast = 0.3,
                                 .rotate_deg = 30,
                                 .shear_deg = 20};
            augment_params p;
            augment_draw(&p, &o, size, 1, data[size / 2]);
            transform_image(input, &resized, &p, CROP);
            free(resized.pixels);
        }
        free(decoded.pixels);
    }
    close(fd);
    return 0;
}
