/* An 8-bit RGB image, rows top to bottom, pixels interleaved: (height, width, 3). */
#ifndef TLSWEEP_IMAGE_H
#define TLSWEEP_IMAGE_H

#include <stdint.h>

typedef struct {
    uint8_t *pixels; /* (height, width, 3), owned */
    int width, height;
} image_u8;

#endif
