/* A structural check of a MATLAB .mat file before matio reads it: matio allocates whatever
 * an element's tag or a matrix's dimensions claim, so a 300-byte file can ask for gigabytes.
 * Every element of a v5 file (also inside compressed elements, inflated here with a bound) must
 * fit in what contains it, and every matrix must have at most MAT_CHECK_MAX_ELEMS elements.
 * v7.3 files (HDF5) are left to matio and HDF5. */
#ifndef TLSWEEP_MAT_CHECK_H
#define TLSWEEP_MAT_CHECK_H

#include <stddef.h>

#define MAT_CHECK_MAX_FILE ((size_t)64 << 20)     /* bytes: Flowers102's files are ~50 KB */
#define MAT_CHECK_MAX_INFLATED ((size_t)64 << 20) /* bytes one compressed element inflates to */
#define MAT_CHECK_MAX_ELEMS ((size_t)1 << 20)     /* elements in one matrix (8189 labels) */

/* 0 when PATH looks safe to hand to matio; -1 with "PATH: problem" in err otherwise. */
int mat_check_file(const char *path, char *err, size_t errlen);

#endif
