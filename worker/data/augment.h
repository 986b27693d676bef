/* The seed's training augmentation with torchvision's semantics on PIL images:
 *   RandomHorizontalFlip(p) -> ColorJitter(brightness, contrast) (the two in random order)
 *   -> RandomAffine(degrees, shear=(-s, s)) about the centre, nearest, fill 0.
 * Parameters are drawn per image from a stream keyed by (seed, epoch, position). */
#ifndef TLSWEEP_AUGMENT_H
#define TLSWEEP_AUGMENT_H

#include <stddef.h>
#include <stdint.h>

#include "worker/data/image.h"

typedef struct {
    double hflip_p;    /* probability of a horizontal flip (0.5) */
    double brightness; /* factor uniform in [max(0, 1 - b), 1 + b] (0.3); 0 = off */
    double contrast;   /* factor uniform in [max(0, 1 - c), 1 + c] (0.3); 0 = off */
    double rotate_deg; /* angle uniform in [-r, r] degrees (30) */
    double shear_deg;  /* x shear uniform in [-s, s] degrees (20) */
} augment_options;

/* One image's drawn parameters; also what the conformance test fixes by hand. */
typedef struct {
    int hflip;
    int use_brightness, use_contrast;
    int contrast_first;                       /* ColorJitter's random order of its two ops */
    float brightness_factor, contrast_factor; /* PIL blends in float */
    int use_affine;
    double angle_deg, shear_deg; /* torchvision's sign conventions (angle clockwise) */
} augment_params;

void augment_draw(augment_params *p, const augment_options *o, uint64_t seed, uint64_t epoch,
                  uint64_t position);

/* PIL's inverse affine matrix for torchvision's F.affine(angle, translate 0, scale 1,
 * shear (s, 0)) about (width/2, height/2): input = M * (output pixel centre). */
void augment_affine_matrix(double m[6], double angle_deg, double shear_deg, int width, int height);

/* Source pixel of output pixels (x_begin .. x_begin + count - 1, y) under M, as Pillow's
 * nearest-neighbour affine finds it (16.16 fixed point, its float loop for huge images);
 * coordinates outside 0..width-1 / 0..height-1 mean fill. */
void augment_affine_row(int *src_x, int *src_y, const double m[6], int width, int height, int y,
                        int x_begin, int count);

/* Plain reference: the augmented full-size image, op by op as PIL does them. OUT has IN's
 * size and must not alias it. The fused path in transform.c is tested against this.
 * Returns -1 only when out of memory. */
int augment_reference(image_u8 *out, const image_u8 *in, const augment_params *p);

#endif
