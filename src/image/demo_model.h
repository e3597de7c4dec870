/*
 * demo_model.h - the procedural model behind `tessera demo-slide` (internal
 * to demo.c and demo_render.c): tissue polygons, the nucleus grid, noise.
 *
 * Everything is a pure function of (options, seed). Tissue is an even-odd
 * set of rings (outer rings and their holes) with an index of their edges
 * by horizontal band, so that a scanline or a point query touches only a
 * few edges. Nuclei come from a grid of square cells: each cell holds 0..4
 * nuclei (a single one, or a touching cluster) derived from a hash of
 * (cell, seed), wholly inside the cell shrunk by half a gap, so nuclei of
 * different cells never overlap and any cell can be generated on its own.
 * A nucleus is a polygon whose vertices sit at uniform angles around its
 * centre (star-shaped), which makes the point test one atan2 and one cross
 * product; the ground truth writes those very vertices.
 */
#ifndef TESSERA_IMAGE_DEMO_MODEL_H
#define TESSERA_IMAGE_DEMO_MODEL_H

#include <stdbool.h>
#include <stdint.h>

#include "image/contour.h"
#include "image/demo.h"

#define DEMO_MAX_REGIONS 5
#define DEMO_MAX_HOLES 3
#define DEMO_REGION_VERTS 192
#define DEMO_HOLE_VERTS 64
#define DEMO_NUC_VERTS 28
#define DEMO_CELL_MAX 4 /* nuclei per grid cell (largest cluster) */
#define DEMO_LUT_SIZE 4096
#define DEMO_LUT_SCALE 1024.0 /* LUT entries per unit of optical density */
#define DEMO_BG 242           /* background grey level */

typedef struct demo_region {
    contour_ring rings[1 + DEMO_MAX_HOLES]; /* [0] outer (positive area), holes negative */
    int n_rings;
    double minx, miny, maxx, maxy; /* bounding box of the outer ring */
} demo_region;

typedef struct demo_edge {
    double x0, y0, x1, y1;
} demo_edge;

typedef struct demo_nucleus {
    double cx, cy;                 /* centre: vertices are at uniform angles around it */
    double minx, miny, maxx, maxy; /* bounding box of the vertices */
    double conc;                   /* hematoxylin concentration (optical density units) */
    double eosin;                  /* eosin (or DAB) concentration inside the nucleus */
    double ramp;                   /* edge width, level-0 pixels */
    int cluster;                   /* size of its cluster (1 = alone) */
    pt2 v[DEMO_NUC_VERTS];         /* polygon, counter-clockwise in image coordinates */
    double inv_len[DEMO_NUC_VERTS]; /* 1 / length of edge v[j] -> v[j+1] */
} demo_nucleus;

typedef struct demo_model {
    demo_options o;
    demo_region regions[DEMO_MAX_REGIONS];
    int n_regions;
    demo_edge *edges; /* every ring's edges */
    size_t n_edges;
    double band_h;         /* edge index: band b covers y in [b*band_h, (b+1)*band_h) */
    int n_bands;
    uint32_t *band_start;  /* n_bands + 1 offsets into band_edges */
    uint32_t *band_edges;  /* edge indices */
    double cell;           /* nucleus grid cell edge, level-0 pixels */
    int64_t cell_cols, cell_rows;
    double gap;            /* minimum distance between nuclei of different cells, pixels */
    double px_per_um;
    double fib[2][2];      /* two fibre directions (cos, sin) */
    float lut[DEMO_LUT_SIZE]; /* 255 * 10^-od */
    double v1[3], v2[3];   /* unit OD vectors: hematoxylin, eosin or DAB (turned by hue) */
    double ramp;           /* nucleus edge width, level-0 pixels (>= 1) */
} demo_model;

/* Builds the model (regions, holes, edge index). Options must be valid. */
void demo_model_init(demo_model *m, const demo_options *o);
void demo_model_free(demo_model *m);

/* Whether the point is tissue (inside an outer ring, outside its holes). */
bool demo_model_in_tissue(const demo_model *m, double x, double y);

/* The x of every tissue edge crossing the horizontal line at y, sorted;
 * xs must hold m->n_edges values. Spans [xs[2i], xs[2i+1]) are tissue. */
int demo_model_crossings(const demo_model *m, double y, double *xs);

/* The nuclei of grid cell (col, row) into out (DEMO_CELL_MAX slots);
 * returns how many (0 outside the grid or outside tissue). */
int demo_cell_nuclei(const demo_model *m, int64_t col, int64_t row, demo_nucleus *out);

/* Coverage of the point by the nucleus, 0..1, anti-aliased over one pixel:
 * > 0.5 exactly when the point is inside the polygon. */
double demo_nucleus_coverage(const demo_nucleus *n, double x, double y);

/* Signed area of the nucleus polygon (positive), level-0 pixels. */
double demo_nucleus_area(const demo_nucleus *n);

/* Hashes and smooth value noise in [0, 1) (lattice spacing 1). */
uint64_t demo_hash(uint64_t seed, int64_t a, int64_t b);
double demo_vnoise(uint64_t seed, double x, double y);

#endif
