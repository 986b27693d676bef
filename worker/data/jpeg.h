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

#define JPEG_REDUCING_GAP 2

#endif
