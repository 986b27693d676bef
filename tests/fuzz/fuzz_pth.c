/* Fuzz target: a PyTorch .pth file (zip archive or the legacy pre-1.6 format, both through
 * the strict pickle machine) read by weights_read_pth. */
#include <stdint.h>
#include <unistd.h>

#include "tests/fuzz/fuzz_util.h"
#include "worker/weights/weights.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char path[64], err[1024];
    int fd = fuzz_memfile(data, size, path, sizeof path);
    weights_file w;
    if (weights_read_pth(path, &w, err, sizeof err) == 0) weights_free(&w);
    close(fd);
    return 0;
}
