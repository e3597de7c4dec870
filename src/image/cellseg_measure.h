/*
 * cellseg_measure.h - the per-label sums of cell segmentation (cellseg.c):
 * areas, centroids and stain sums of the nuclei and the cells of a window.
 * Internal to the image module; apart from cellseg.c so that its tests can
 * hold the kernels to a plain pixel-by-pixel reference.
 */
#ifndef TESSERA_IMAGE_CELLSEG_MEASURE_H
#define TESSERA_IMAGE_CELLSEG_MEASURE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Columns per occupancy block: occ[y * nbx + b] says whether row y has a
 * labelled pixel in columns b * CELLSEG_OCC_W .. (b + 1) * CELLSEG_OCC_W - 1
 * (the last block of a row shorter); nbx = ceil(w / CELLSEG_OCC_W). */
#define CELLSEG_OCC_W 64

/* Per-label sums over a label image, pixel (x, y) counted at its centre
 * (x + 0.5, y + 0.5): area, sx, sy; sh and se the hematoxylin (hraw) and
 * eosin stains. first_x, first_y: the first pixel in raster order. */
typedef struct cellseg_region {
    double area, sx, sy, sh, se;
    int first_x, first_y;
    bool valid; /* the caller's */
} cellseg_region;

/* occ[y * nbx + b] = whether row y of mask (w x h) has a pixel in block b. */
void cellseg_occupancy(const uint8_t *mask, int w, int h, int nbx, uint8_t *occ);

/* reg[0..n] cleared, then area, sx, sy, first_x and first_y of labels
 * 1..n of labels (values outside 1..n other than <= 0 not allowed), as
 * adding 1, x + 0.5 and y + 0.5 pixel by pixel in raster order would give
 * them (those sums are exact: halves below 2^52); sh and se left 0. Only
 * the blocks occ marks are read: every label lies within them. */
void cellseg_measure_shape(const int32_t *labels, int w, int h, const uint8_t *occ, int nbx,
                           cellseg_region *reg, size_t n);

/* creg[0..n] as cellseg_measure_shape's for the labels cells, with sh
 * and se too: hraw[i] and the eosin of rgb[i] (color_stain_at with eosin)
 * added in double pixel by pixel in raster order. Into nreg[l].sh and
 * .se (which the caller has cleared) the same sums over the pixels where
 * both nuclei and cells are l, in raster order: a nucleus lies within its
 * cell, so its stains come from the same reads as the cell's. Only the
 * blocks occ marks are read: every cell label lies within them. */
void cellseg_measure_cells(const int32_t *cells, const int32_t *nuclei, const float *hraw, const uint32_t *rgb,
                           const float eosin[3][256], int w, int h, const uint8_t *occ, int nbx,
                           cellseg_region *creg, cellseg_region *nreg, size_t n);

#endif
