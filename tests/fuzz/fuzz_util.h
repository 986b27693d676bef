/* Helpers shared by the fuzz targets: the readers under test take paths, so each input is
 * handed to them as an in-memory file. */
#ifndef TLSWEEP_FUZZ_UTIL_H
#define TLSWEEP_FUZZ_UTIL_H

#include <stddef.h>
#include <stdint.h>

/* An anonymous in-memory file holding DATA; PATH (at least 64 bytes) receives a name that
 * open() accepts (/proc/self/fd/N). Returns the descriptor to close afterwards; aborts when
 * the file cannot be made, since that is the harness failing, not the code under test. */
int fuzz_memfile(const uint8_t *data, size_t size, char *path, size_t pathlen);

/* Writes DATA to PATH (replacing it); aborts on failure, as above. */
void fuzz_write_file(const char *path, const uint8_t *data, size_t size);

/* Reads PATH whole into a malloc'd buffer; aborts on failure. */
uint8_t *fuzz_read_file(const char *path, size_t *size);

#endif
