/* JPEG decoding with libjpeg-turbo (TurboJPEG API) into RGB, as PIL's Image.convert("RGB")
 * sees the file: grayscale is replicated, CMYK/YCCK is taken as Adobe-inverted and converted
 * with PIL's formula. */
#ifndef TLSWEEP_JPEG_H
#define TLSWEEP_JPEG_H

#include <stddef.h>

#include "worker/data/image.h"

/* Decodes the JPEG file PATH into OUT (pixels malloc'd). When min_short_side > 0 the decoder
 * scales in the DCT domain (by 1/2, 1/4 or 1/8) as long as the shorter side stays at least
 * JPEG_REDUCING_GAP times min_short_side, so the antialiased resize after it still does most
 * of the reduction (as PIL's reducing_gap). A missing file, a non-JPEG, a truncated or corrupt
 * JPEG: returns -1 with one message naming the file and the problem. */
int jpeg_decode_file(const char *path, int min_short_side, image_u8 *out, char *err, size_t errlen);

/* What decoding checks before it decodes (the file reads, its header parses, the scaled size
 * fits JPEG_MAX_PIXELS), without decoding: fast, so every image can be checked before a
 * sweep starts. A truncated body passes; decoding finds it. */
int jpeg_check_file(const char *path, int min_short_side, char *err, size_t errlen);

#define JPEG_REDUCING_GAP 2

/* The most pixels a decoded (already DCT-scaled) image may have: 8192 x 8192. A header that
 * claims more is refused before anything is allocated (Flowers102 photos are ~500 x 700). */
#define JPEG_MAX_PIXELS ((size_t)1 << 26)

#endif
