/*
 * cells_survey.h - what cell_segmentation decides once per slide before
 * its tiles run, so that every tile uses the same stains and the same
 * threshold and neighbouring tiles agree (issue 15):
 *
 *   stain vectors: estimated (image/stain.h, Macenko) from the tissue
 *     pixels of the windows, at the analysis resolution (coarser pixels
 *     mix nuclei with their surroundings and measured worse: see
 *     choose_stains), unless the user gave stain_vectors; Ruifrok–Johnston
 *     H&E or H-DAB when the estimate is refused;
 *   threshold "auto": from the hematoxylin OD (after the job's background
 *     subtraction and smoothing, i.e. the very signal the tiles threshold)
 *     of the analysis windows' tissue pixels: its background level (the
 *     histogram's mode: stroma, cytoplasm, crosstalk) b and that level's
 *     spread s (left half-width), and Otsu's level o; the threshold is
 *     the larger of b + SURVEY_OTSU_FACTOR (o - b) and
 *     b + SURVEY_NOISE_SPREADS s, kept within [SURVEY_MIN_THRESHOLD,
 *     SURVEY_MAX_THRESHOLD]. Measured from the background rather than
 *     from zero, so that pale, noisy slides whose stroma carries some
 *     hematoxylin are not thresholded inside their own background;
 *   the typical nucleus (split): the median area, before refinement, of
 *     the nuclei the windows give with those stains and that threshold
 *     (at least SURVEY_MIN_NUCLEI of them), so that every tile splits
 *     objects much larger than typical alike (cellseg.h).
 *
 * Windows: up to SURVEY_WINDOWS windows of SURVEY_SIDE analysis pixels,
 * centred on the job's tiles taken at an even stride, skipping tiles the
 * tissue mask (when given) rules out and windows with under 5% tissue. A
 * pixel is tissue when it is inside the upstream mask (when there is one)
 * and its OD, smoothed over a few microns, is above glass
 * (SURVEY_TISSUE_OD). The cost is bounded (a few megapixels), whatever
 * the slide's size.
 */
#ifndef TESSERA_JOBS_CELLS_SURVEY_H
#define TESSERA_JOBS_CELLS_SURVEY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "image/cellseg.h"
#include "image/slide.h"
#include "image/stain.h"

#define SURVEY_WINDOWS 24
#define SURVEY_SIDE 512
#define SURVEY_MAX_TRIES 96
#define SURVEY_TISSUE_OD 0.08f /* |OD| of glass is ~0.04 */
#define SURVEY_OTSU_FACTOR 0.5
#define SURVEY_NOISE_SPREADS 6.0
#define SURVEY_MIN_THRESHOLD 0.03
#define SURVEY_MAX_THRESHOLD 1.0
#define SURVEY_NO_TISSUE_THRESHOLD 0.1 /* no tissue sampled: the former fixed default */
#define SURVEY_MIN_NUCLEI 20 /* fewer give no typical nucleus area */

/* Where and how to read: the job's analysis grid. */
typedef struct survey_grid {
    slide *s;
    int level;
    double downsample, factor; /* level-0 px per analysis px; level px per analysis px */
    double mpp;                /* µm per analysis px */
    int64_t aw, ah;            /* analysis image */
    int tile, nx, ny;          /* the job's tiles */
} survey_grid;

/* Whether analysis pixel (x, y) may be tissue (the upstream mask), and
 * whether a tile has any; NULL when there is no mask. */
typedef bool (*survey_tissue_fn)(void *arg, double ax, double ay);
typedef bool (*survey_tile_fn)(void *arg, int tx, int ty);

typedef struct survey_result {
    stain_estimate stain;      /* what was estimated (or the fallback and why) */
    bool stain_given;          /* the user's stain_vectors were used */
    color_stains stains;       /* the matrix every tile uses */
    double threshold;          /* the threshold every tile uses */
    bool threshold_auto;
    double otsu;               /* Otsu's threshold before scaling and limits */
    double background;         /* the tissue's background hematoxylin (histogram mode) */
    double spread;             /* its left half-width (noise and crosstalk) */
    int windows;               /* windows that held tissue */
    double typical_area;       /* median nucleus area in analysis px (0: none) */
    size_t typical_nuclei;     /* nuclei it was taken over */
    int stain_level;           /* pyramid level the stains were estimated from */
    double stain_mpp;          /* and its resolution, µm per pixel */
    uint64_t tissue_pixels;    /* over those windows */
} survey_result;

/* Runs the survey. kind: the `stain` parameter; given: the user's vectors
 * (n_given 0 = none); threshold: the user's number (ignored when auto).
 * p: the job's cellseg parameters (stains are ignored; the estimate is
 * used). TS_OK, or TS_ERR with OpenSlide's message on a read error. */
int survey_run(const survey_grid *g, stain_kind kind, const double given[3][3], int n_given,
               bool threshold_auto, double threshold, const cellseg_params *p,
               survey_tissue_fn tissue, survey_tile_fn tile_has_tissue, void *arg,
               survey_result *out, char *err, size_t errlen);

#endif
