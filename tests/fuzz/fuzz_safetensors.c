/* Fuzz target: a .safetensors file (8-byte length, JSON header, data) read by
 * weights_read_safetensors, and its metadata alone by weights_read_metadata. */
#include <stdint.h>
#include <unistd.h>

#include "tests/fuzz/fuzz_util.h"
#include "worker/weights/weights.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char path[64], err[1024];
    int fd = fuzz_memfile(data, size, path, sizeof path);
    weights_file w;
    if (weights_read_safetensors(path, &w, err, sizeof err) == 0) weights_free(&w);
    if (weights_read_metadata(path, &w, err, sizeof err) == 0) weights_free(&w);
    close(fd);
    return 0;
}
