/* Resizing as torchvision's Resize(size) does it on a PIL image: the shorter side becomes
 * SIZE, the longer int(SIZE * long / short), with PIL's antialiased bilinear filter (a
 * triangle filter widened by the scale factor, 22-bit fixed-point coefficients, horizontal
 * pass then vertical pass, each rounded to uint8), so the result matches PIL bit for bit. */
#ifndef TLSWEEP_RESIZE_H
#define TLSWEEP_RESIZE_H

#include <stddef.h>

#include "worker/data/image.h"

/* torchvision's output size for Resize(short_side) of a WIDTHxHEIGHT image. */
void resize_output_size(int width, int height, int short_side, int *out_width, int *out_height);

/* Resizes IN to OUT_WIDTHxOUT_HEIGHT into OUT (pixels malloc'd). Returns -1 with a message
 * (naming WHAT, e.g. the file) when out of memory or the sizes are not positive. */
int resize_bilinear(const image_u8 *in, int out_width, int out_height, image_u8 *out,
                    const char *what, char *err, size_t errlen);

/* Both of the above: the shorter side of IN becomes SHORT_SIDE. */
int resize_shorter_side(const image_u8 *in, int short_side, image_u8 *out, const char *what,
                        char *err, size_t errlen);

#endif
