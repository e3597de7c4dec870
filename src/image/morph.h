/*
 * morph.h - binary morphology on masks (uint8_t, 0 = background, non-zero =
 * foreground; outputs are 0 or 1), w x h, row-major, no padding.
 *
 * Structuring elements are Euclidean disks: a pixel p is in the dilation of
 * M by r when some foreground pixel q has |p - q| <= r (computed exactly
 * with the distance transform, so cost does not grow with r). Pixels outside
 * the image count as background for dilation and as foreground for erosion
 * (so erosion does not eat in from the image border of a tile).
 * Functions return TS_OK, or TS_ERR on bad arguments.
 */
#ifndef TESSERA_IMAGE_MORPH_H
#define TESSERA_IMAGE_MORPH_H

#include <stdint.h>

int morph_dilate(uint8_t *mask, int w, int h, float r);
int morph_erode(uint8_t *mask, int w, int h, float r);
int morph_open(uint8_t *mask, int w, int h, float r);  /* erode then dilate */
int morph_close(uint8_t *mask, int w, int h, float r); /* dilate then erode */

/* Fills holes: 4-connected background components that do not touch the
 * image border and have at most max_area pixels (max_area < 0: any size)
 * become foreground. */
int morph_fill_holes(uint8_t *mask, int w, int h, long max_area);

/* Removes 8-connected foreground components of fewer than min_area pixels. */
int morph_remove_small(uint8_t *mask, int w, int h, long min_area);

#endif
