/*
 * cellseg.h - nucleus and cell segmentation of one image window, the
 * QuPath watershed cell-detection family (DESIGN §5):
 *
 *   hematoxylin OD (colour deconvolution with the slide's stain vectors)
 *   -> background subtraction (opening of radius background_radius)
 *   -> Gaussian (sigma) -> threshold -> holes filled
 *   -> split (optional): the tight mask (stain at 3/4 of the smoothed
 *      stain's peak within peak_radius: necks as narrow as on the slide,
 *      textured nuclei whole), its distance
 *      transform d, seeds at the maxima of
 *      log(1 + d) rising more than log(seed_ratio) above their saddles
 *      (a neck must be narrower than the nuclei on both sides by that
 *      ratio, whatever their size), watershed; objects larger than
 *      1.6 x typical_area (the slide's median nucleus, or the window's)
 *      split again with the weaker ratio 1.12 (touching nuclei whose neck
 *      is wide) when they are not convex (solidity under 0.85: a large
 *      round nucleus has no neck to find, only noise to cut at); objects
 *      still larger than max_area are split again with ever weaker seeds,
 *      never dropped
 *   -> outlines refined (optional): each nucleus keeps the pixels where
 *      its lightly smoothed stain reaches half of the peak of its
 *      smoothed stain (a nucleolus's sharp peak would cut it down)
 *   -> split at concavities (optional, concave_depth > 0, with split):
 *      an outline (opened by concave_smooth) with two notches facing each
 *      other across a short neck is cut there (concave.h), when every
 *      piece is then nearly convex (solidity 0.85): touching nuclei end to
 *      end, or a small one on a large one's flank
 *   -> area filter [min_area, max_area]
 *   -> cells: nuclei grown by at most `expansion` pixels, each pixel going to
 *      its nearest nucleus (a watershed on the distance to the nuclei)
 *   -> outlines and measurements.
 *
 * All lengths here are in the window's pixels; the caller converts from µm.
 * Windows overlap: the caller passes the window's core, and only cells whose
 * nucleus centroid lies in the core (and that `keep` accepts) are returned,
 * so a cell on a seam belongs to exactly one window.
 */
#ifndef TESSERA_IMAGE_CELLSEG_H
#define TESSERA_IMAGE_CELLSEG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "image/color.h"
#include "image/contour.h"

typedef struct cellseg_params {
    const color_stains *stains; /* NULL = Ruifrok-Johnston H&E */
    float background_radius; /* 0 = no background subtraction */
    float sigma;
    float threshold;         /* hematoxylin OD after background subtraction */
    float min_area, max_area; /* nucleus area in pixels */
    bool split;
    bool refine;             /* move outlines to half the nucleus's peak stain */
    float expansion;         /* pixels; 0 = cells are their nuclei */
    float seed_ratio;        /* > 1: (1 + peak distance) / (1 + saddle distance) of a seed */
    float typical_area;      /* pixels: the slide's median nucleus (before refinement); 0 = the
                                window's own median */
    float peak_radius;       /* pixels: the neighbourhood whose peak stain shapes the tight mask */
    float concave_depth;     /* pixels: notches this deep may cut a nucleus (concave.h); 0 = off */
    float concave_ratio;     /* (depth_a + depth_b) / cut length of a concavity cut */
    float concave_smooth;    /* pixels: opening radius before notches are sought */
    float simplify;          /* outline tolerance in pixels */
} cellseg_params;

typedef struct cellseg_cell {
    contour_ring nucleus, cell; /* window pixel coordinates */
    double cx, cy;              /* nucleus centroid, window pixels */
    double nucleus_area, cell_area; /* pixels */
    double nucleus_perimeter;   /* pixels, of the simplified outline */
    double nucleus_h, nucleus_e, cell_h, cell_e; /* mean stain OD */
} cellseg_cell;

/* Whether the cell whose nucleus centroid is (cx, cy) in window pixels is
 * wanted (e.g. inside the tissue mask). */
typedef bool (*cellseg_keep_fn)(void *arg, double cx, double cy);

typedef struct cellseg_ws cellseg_ws;

/* A workspace for windows of up to max_w x max_h pixels, reused between
 * calls (one per thread). */
cellseg_ws *cellseg_ws_new(int max_w, int max_h);
void cellseg_ws_free(cellseg_ws *ws);

/* Segments the w x h window rgb (0xAARRGGBB) and returns the cells owned
 * by the core [cx0, cx1) x [cy0, cy1) in *cells (n of them), valid until the
 * next call with the same workspace. keep may be NULL. TS_OK / TS_ERR. */
int cellseg_window(cellseg_ws *ws, const uint32_t *rgb, int w, int h, const cellseg_params *p,
                   int cx0, int cy0, int cx1, int cy1, cellseg_keep_fn keep, void *keep_arg,
                   cellseg_cell **cells, size_t *n);

/* The first steps alone: the window's hematoxylin OD after background
 * subtraction and smoothing (what the threshold is applied to), into the
 * workspace; returns it (w * h floats, valid until the next call). For
 * choosing a slide's threshold from sampled windows. */
const float *cellseg_hematoxylin(cellseg_ws *ws, const uint32_t *rgb, int w, int h,
                                 const cellseg_params *p);

#endif
