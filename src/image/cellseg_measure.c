/*
 * cellseg_measure.c - per-label sums of cell segmentation (see
 * cellseg_measure.h).
 *
 * Labels come in runs along a row. A run's area, x and y sums are whole
 * numbers and halves, exact in double in any order while below 2^52, so a
 * run adds them in closed form (k, k * x0 + k * k / 2, k * (y + 0.5))
 * instead of pixel by pixel: the same doubles. The stain sums are not
 * exact and keep their order, pixel by pixel in raster order, each run
 * summed in registers from the region's sums and stored once.
 *
 * The reads of the stain and of the RGB pixels miss the cache (they were
 * last touched at the start of the window's pipeline), so the nuclei's
 * stains are summed in the cells' pass from the same reads: a nucleus lies
 * within its cell, and the nucleus's pixels come in the same raster order
 * within it.
 */
#include "image/cellseg_measure.h"

#include <string.h>

#include "image/color.h"
#include "image/maskblock.h"

/* Per row and block of CELLSEG_OCC_W columns, whether the mask has a pixel
 * there (the header's contract): whole blocks by maskblock_empty's 64-byte
 * test, the short last block of a row byte by byte. Found once per mask,
 * so that the per-label passes visit the occupied blocks only. */
void cellseg_occupancy(const uint8_t *mask, int w, int h, int nbx, uint8_t *occ) {
    for (int y = 0; y < h; y++) {
        const uint8_t *m = mask + (size_t)y * (size_t)w;
        for (int b = 0; b < nbx; b++) {
            int x0 = b * CELLSEG_OCC_W, x1 = x0 + CELLSEG_OCC_W < w ? x0 + CELLSEG_OCC_W : w;
            uint8_t any = 0;
            if (x1 - x0 == CELLSEG_OCC_W) {
                any = !maskblock_empty(m + x0);
            } else {
                for (int x = x0; x < x1; x++) any |= m[x];
            }
            occ[(size_t)y * (size_t)nbx + (size_t)b] = any != 0;
        }
    }
}

/* Whether labels[0 .. 8) are all 0 (background, most of a window). */
static inline bool measure_zero8(const int32_t *labels) {
    int32_t any = 0;
    for (int k = 0; k < 8; k++) any |= labels[k];
    return any == 0;
}

/* The next run of one positive label in row[*x .. end): moves *x to its
 * start, sets *x1 to its end and returns its label; 0 when none is left.
 * Background (0, most of a window) is skipped 8 columns at a time. Both
 * per-label passes walk the occupied blocks with it. */
static inline int32_t measure_next_run(const int32_t *row, int *x, int end, int *x1) {
    int i = *x;
    for (;;) {
        if (i + 8 <= end && measure_zero8(row + i)) {
            i += 8;
            continue;
        }
        if (i >= end) break;
        int32_t l = row[i];
        if (l <= 0) {
            i++;
            continue;
        }
        int j = i + 1;
        while (j < end && row[j] == l) j++;
        *x = i;
        *x1 = j;
        return l;
    }
    *x = end;
    return 0;
}

/* Adds the run [x0, x1) of row y to r's area and centroid sums (exact:
 * see the top of the file), noting its first pixel if it is r's first. */
static inline void measure_run_shape(cellseg_region *r, int x0, int x1, int y) {
    double k = x1 - x0;
    if (r->area == 0) {
        r->first_x = x0;
        r->first_y = y;
    }
    r->area += k;
    r->sx += k * x0 + k * k * 0.5;
    r->sy += k * (y + 0.5);
}

/* Labels only: the runs of every occupied block, in closed form. */
void cellseg_measure_shape(const int32_t *labels, int w, int h, const uint8_t *occ, int nbx,
                           cellseg_region *reg, size_t n) {
    memset(reg, 0, (n + 1) * sizeof(cellseg_region));
    for (int y = 0; y < h; y++) {
        const int32_t *row = labels + (size_t)y * (size_t)w;
        for (int b = 0; b < nbx; b++) {
            if (!occ[(size_t)y * (size_t)nbx + (size_t)b]) continue; /* no label there */
            int end = (b + 1) * CELLSEG_OCC_W < w ? (b + 1) * CELLSEG_OCC_W : w, x1 = 0;
            int32_t l;
            for (int x = b * CELLSEG_OCC_W; (l = measure_next_run(row, &x, end, &x1)) > 0; x = x1)
                measure_run_shape(&reg[l], x, x1, y);
        }
    }
}

/* The cells' runs with their stains, and the stains of the nucleus of the
 * same label inside each run: a pixel outside the nucleus adds +0.0 to the
 * nucleus's sums, which leaves them as they are (they start at +0.0 and a
 * sum of two doubles is -0.0 only when both are, so they never hold -0.0,
 * the one value +0.0 would change; hraw and the eosin are finite): the
 * same doubles as adding the nucleus's pixels alone, without a branch that
 * goes either way at every nucleus edge. */
void cellseg_measure_cells(const int32_t *cells, const int32_t *nuclei, const float *hraw, const uint32_t *rgb,
                           const float eosin[3][256], int w, int h, const uint8_t *occ, int nbx,
                           cellseg_region *creg, cellseg_region *nreg, size_t n) {
    memset(creg, 0, (n + 1) * sizeof(cellseg_region));
    for (int y = 0; y < h; y++) {
        size_t r0 = (size_t)y * (size_t)w;
        const int32_t *row = cells + r0, *nuc = nuclei + r0;
        const float *hr = hraw + r0;
        const uint32_t *px = rgb + r0;
        for (int b = 0; b < nbx; b++) {
            if (!occ[(size_t)y * (size_t)nbx + (size_t)b]) continue; /* no cell there */
            int end = (b + 1) * CELLSEG_OCC_W < w ? (b + 1) * CELLSEG_OCC_W : w, x1 = 0;
            int32_t l;
            for (int x = b * CELLSEG_OCC_W; (l = measure_next_run(row, &x, end, &x1)) > 0; x = x1) {
                cellseg_region *c = &creg[l], *u = &nreg[l];
                measure_run_shape(c, x, x1, y);
                double sh = c->sh, se = c->se, nh = u->sh, ne = u->se;
                for (int i = x; i < x1; i++) {
                    double hv = hr[i], ev = color_stain_at(eosin, px[i]);
                    bool in = nuc[i] == l;
                    sh += hv;
                    se += ev;
                    nh += in ? hv : 0.0;
                    ne += in ? ev : 0.0;
                }
                c->sh = sh, c->se = se, u->sh = nh, u->se = ne;
            }
        }
    }
}
