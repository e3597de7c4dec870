/*
 * concave.h - splitting touching objects at pairs of concavities of their
 * outline (a shape cue the distance transform does not see).
 *
 * Two nuclei that touch end to end, or a small one on the flank of a large
 * one, make a neck that is hardly narrower than the nuclei themselves: the
 * distance transform has no saddle deep enough to seed both. Their union
 * still has two notches, one each side of the neck, where the outline
 * leaves its convex hull; a single nucleus, convex or bent like a kidney,
 * has at most one. An object is cut along the segment joining the deepest
 * points of two notches when
 *
 *   - both notches are at least min_depth deep (pixel staircase and
 *     ragged outlines make shallower ones everywhere),
 *   - the notches are deep for the cut: (depth_a + depth_b) / length of
 *     the cut >= min_ratio (two discs overlapping by 5-20% of their radii
 *     give 0.7-2.2; a kidney's notch against its convex back, ~0.3),
 *   - the cut runs inside the object, and both pieces have min_area pixels,
 *
 * taking the pair with the largest ratio, then again on each piece (a
 * cluster of n nuclei needs n - 1 cuts).
 */
#ifndef TESSERA_IMAGE_CONCAVE_H
#define TESSERA_IMAGE_CONCAVE_H

#include <stdint.h>

typedef struct concave_params {
    float min_depth;  /* pixels: shallowest notch that counts */
    float min_solidity; /* every piece of a cut object at least this solid, or no cut */
    float smooth;     /* pixels: radius of the opening applied before notches are sought */
    float min_ratio;  /* (depth_a + depth_b) / cut length of a cut made */
    float min_area;   /* pixels: the smallest piece a cut may leave */
    int max_cuts;     /* per object */
} concave_params;

/* Cuts every object (labels 1..*count of the w x h label image) of at
 * least 2 * min_area pixels at its concavities as above. Each object is
 * worked on in its own bounding box (cost proportional to its pixels); the
 * pieces of a cut object take labels after *count (its old label is then
 * unused) and *count grows. Objects need not be connected: each
 * 4-connected part is examined on its own. TS_OK, or TS_ERR on bad
 * arguments. */
int concave_split(int32_t *labels, int w, int h, int *count, const concave_params *p);

/* The solidity (area over the area of its convex hull) of the 4-connected
 * region of label whose raster-first pixel is (sx, sy): 1 for a convex
 * region, less the deeper its notches. 1 when the outline cannot be traced. */
double concave_solidity(const int32_t *labels, int w, int h, int32_t label, int sx, int sy);

#endif
