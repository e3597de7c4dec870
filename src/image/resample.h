/*
 * resample.h - changing the scale of RGB tiles read from a slide.
 */
#ifndef TESSERA_IMAGE_RESAMPLE_H
#define TESSERA_IMAGE_RESAMPLE_H

#include <stdint.h>

/* Resizes src (sw x sh, 0xAARRGGBB; alpha-0 pixels count as white) to dst
 * (dw x dh, opaque). Reduction averages every source pixel whose centre
 * falls in the destination pixel's footprint (area averaging, as a
 * pyramid level would be made); enlargement interpolates bilinearly. */
void resample_rgb(const uint32_t *src, int sw, int sh, uint32_t *dst, int dw, int dh);

/* White for transparent pixels, else the pixel made opaque. */
static inline uint32_t resample_opaque(uint32_t p) {
    return (p >> 24) == 0 ? 0xFFFFFFFFu : (p | 0xFF000000u);
}

#endif
