/*
 * watershed.h - seeds and marker-controlled watershed (Meyer's flooding
 * with a priority queue), for splitting touching nuclei and for growing
 * cells around nuclei.
 */
#ifndef TESSERA_IMAGE_WATERSHED_H
#define TESSERA_IMAGE_WATERSHED_H

#include <stdint.h>

#include "image/scratch.h"

/* Markers at the regional maxima of img that rise more than h above every
 * path to a higher maximum (the h-maxima transform: morphological
 * reconstruction by dilation of img - h under img, then regional maxima of
 * the result; a maximum rising exactly h merges into the plateau around it
 * and gives no marker; the highest maximum of each connected part of the
 * mask always gives one). Only pixels with mask != 0 are considered, with
 * 8-connectivity. Each marker (a plateau, 8-connected) gets its own label
 * 1..n in markers, numbered in raster order of its first pixel (others 0).
 * hmin >= 0. Returns n, or -1 on bad arguments. */
int watershed_maxima(const float *img, const uint8_t *mask, int w, int h, float hmin,
                     int32_t *markers);

/* Floods labels (in: markers > 0; out: every reached pixel labelled) over
 * pixels with mask != 0, lowest elevation first, 8-connected; ties are
 * served first-in first-out so fronts advance evenly. Pixels of mask == 0
 * and pixels not connected to any marker stay 0. No watershed lines are
 * drawn (every reached pixel gets a label). Returns TS_OK or TS_ERR. */
int watershed_flood(const float *elevation, const uint8_t *mask, int w, int h, int32_t *labels);

/* watershed_flood for elevations that are whole numbers in [0, levels)
 * (e.g. squared Euclidean distances in pixels; values outside are
 * clamped, fractions truncated): the same labels as watershed_flood gives
 * for such an image, in time linear in the pixels (a bucket queue). */
int watershed_flood_levels(const float *elevation, int levels, const uint8_t *mask, int w, int h,
                           int32_t *labels);

/* The same from markers into labels (w x h each; they may be the same
 * array): markers is left as it is, labels gets watershed_flood_levels'
 * result for those markers. occ, when not NULL, marks per row y and block
 * b of 64 columns (occ[y * ceil(w / 64) + b]) where mask may be set; mask
 * must be 0 in every other block, which is then neither read (nor are
 * the markers there) and comes out 0. */
int watershed_flood_levels_into(const float *elevation, int levels, const uint8_t *mask, int w, int h,
                                const uint8_t *occ, const int32_t *markers, int32_t *labels);

/* The three above with their temporary arrays taken from scratch (not
 * NULL; scratch.h) instead of allocated and freed per call, so that a
 * worker's window after window reuses the same memory: the same results.
 * The scratch's previous contents are lost. */
int watershed_maxima_with(image_scratch *scratch, const float *img, const uint8_t *mask, int w, int h,
                          float hmin, int32_t *markers);
int watershed_flood_with(image_scratch *scratch, const float *elevation, const uint8_t *mask, int w, int h,
                         int32_t *labels);
int watershed_flood_levels_with(image_scratch *scratch, const float *elevation, int levels, const uint8_t *mask,
                                int w, int h, const uint8_t *occ, const int32_t *markers, int32_t *labels);

#endif
