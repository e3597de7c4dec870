/*
 * contour.h - region outlines as polygons, and their simplification.
 *
 * Outlines follow pixel edges ("crack" boundaries): vertices sit on pixel
 * corners, so pixel (x, y) is the unit square [x, x+1] x [y, y+1] and the
 * polygon's area equals the region's pixel count. Collinear vertices are
 * dropped. Rings are closed implicitly (the last vertex is not repeated).
 * Outer rings have positive signed area in image coordinates
 * (sum x_i y_{i+1} - x_{i+1} y_i > 0, x right, y down); holes negative.
 */
#ifndef TESSERA_IMAGE_CONTOUR_H
#define TESSERA_IMAGE_CONTOUR_H

#include <stddef.h>
#include <stdint.h>

typedef struct pt2 {
    double x, y;
} pt2;

typedef struct contour_ring {
    pt2 *pts;
    size_t n;
    int parent; /* for a hole: index of its outer ring in the set; -1 for an outer ring */
} contour_ring;

typedef struct contour_set {
    contour_ring *rings;
    size_t n;
} contour_set;

/* The outer boundary of one region of a label image: the 4-connected
 * component of pixels == label that contains the pixel (sx, sy), which must
 * be the first pixel of that component in raster order. Holes are ignored.
 * Only pixels along the component's boundary are examined, so the cost is
 * proportional to its perimeter, not to w x h. TS_ERR (and *ring left
 * untouched) when (sx, sy) is outside the image, does not carry label, or
 * has a left or upper neighbour carrying label (so cannot be the first
 * pixel). Fills *ring, parent -1 (free with contour_ring_free). TS_OK or
 * TS_ERR. */
int contour_trace_label(const int32_t *labels, int w, int h, int32_t label, int sx, int sy,
                        contour_ring *ring);

/* Every boundary of a binary mask: one outer ring per 4-connected
 * foreground component and one ring per hole (8-connected background
 * component enclosed by it), holes pointing at their outer ring. Rings are
 * simple (they may touch themselves at a vertex only). TS_OK or TS_ERR. */
int contour_trace_mask(const uint8_t *mask, int w, int h, contour_set *out);

/* The rings of contour_trace_mask (same rings, same order, same holes and
 * parents), each placed off the pixel grid where field - sampled at the
 * pixel centres (x + 0.5, y + 0.5), positive in the region - crosses zero:
 * one vertex per pixel edge of the crack outline, on the segment between
 * the centres of the two pixels that edge separates, by linear
 * interpolation (the vertices of marching squares, with the mask deciding
 * which of them join). Why: a mask made on a coarse grid (a tissue mask at
 * 8 µm/px) has a staircase outline up to half a pixel off the boundary the
 * field saw; the crossing is where that boundary is. The field is clamped
 * to the mask's side on each pixel, so a pixel the mask counts in and the
 * field does not (a filled hole, a closing) moves the crossing to that
 * pixel's centre, and equal disagreements give the pixel edge's midpoint;
 * a crossing stays 0.02 px off either centre, so rings never meet.
 * Edges on the image border keep their corners: a mask filling the image
 * outlines the whole image. Consecutive points never repeat. TS_OK or
 * TS_ERR (bad arguments, or field NULL). */
int contour_trace_field(const uint8_t *mask, const float *field, int w, int h, contour_set *out);

/* Douglas-Peucker simplification of a closed ring in place: keeps vertices
 * so that no dropped vertex is farther than tol from the kept outline.
 * Never reduces a ring below 3 vertices (rings of 3 or fewer are left as
 * they are). Returns the new vertex count. */
size_t contour_simplify(pt2 *pts, size_t n, double tol);

/* Signed area (positive for outer rings as defined above). */
double contour_area(const pt2 *pts, size_t n);

void contour_ring_free(contour_ring *ring);
void contour_set_free(contour_set *set);

#endif
