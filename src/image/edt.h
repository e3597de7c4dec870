/*
 * edt.h - exact Euclidean distance transform (Felzenszwalb & Huttenlocher,
 * "Distance Transforms of Sampled Functions", 2012): two passes of the lower
 * envelope of parabolas, O(w h).
 */
#ifndef TESSERA_IMAGE_EDT_H
#define TESSERA_IMAGE_EDT_H

#include <stdint.h>

/* out[i] = squared Euclidean distance from pixel i to the nearest pixel
 * where mask == 0. Pixels outside the image are not background. If the
 * mask has no zero pixel, every value is EDT_FAR. Returns TS_OK or TS_ERR
 * (bad arguments). */
#define EDT_FAR 1e20f
int edt_squared(const uint8_t *mask, int w, int h, float *out);

/* The same where it is at most limit (>= 0): out[i] is the exact squared
 * distance when that is <= limit, and some value > limit otherwise
 * (EDT_FAR when no background pixel lies within limit). For callers that
 * only look near the background (growing objects by a fixed distance): it
 * skips the far sites. TS_OK / TS_ERR. */
int edt_squared_within(const uint8_t *mask, int w, int h, float limit, float *out);

#endif
