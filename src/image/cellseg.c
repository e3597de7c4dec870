/*
 * cellseg.c - one window's nuclei and cells (see cellseg.h).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "image/cellseg.h"
#include "image/cellseg_measure.h"
#include "image/color.h"
#include "image/concave.h"
#include "image/edt.h"
#include "image/filter.h"
#include "image/label.h"
#include "image/maskblock.h"
#include "image/morph.h"
#include "image/watershed.h"
#include "util/util.h"

#define REFINE_SIGMA 1.0f     /* pixels: enough to calm chromatin texture */
#define REFINE_FRACTION 0.5f  /* the outline sits at half the nucleus's peak */
#define TIGHT_FRACTION 0.75f /* seeds: above this share of the local peak, necks are narrow */
#define LARGE_FACTOR 1.6      /* an object this many times the median area is split again... */
#define LARGE_RATIO 1.12f     /* ...with this weaker seed ratio */
#define LARGE_MIN_OBJECTS 8   /* a median needs a few objects */
#define LARGE_SOLIDITY 0.85   /* ...when less solid than this (a convex nucleus is not split) */
#define CONCAVE_SOLIDITY 0.85 /* pieces of a concavity cut at least this solid, or no cut */

typedef cellseg_region region;

struct cellseg_ws {
    size_t cap; /* pixels */
    image_scratch arrays; /* the one block of the per-pixel arrays below (cellseg_ws_new) */
    float *hraw, *h, *dist, *hfine;
    float od[256]; /* OD per 8-bit intensity: eosin is computed where measured */
    float eosin[3][256]; /* color_stain_tables' of the window's stains, for measure */
    float *peak; /* per label: the highest value of hfine */
    uint8_t *mask;
    int32_t *nuclei, *cells;
    region *nreg, *creg;
    size_t reg_cap;
    cellseg_cell *out;
    size_t out_n, out_cap;
    color_stains he; /* the default when the parameters name no stains */
    float *work;     /* per-pixel scratch (w * h): the stain before smoothing, then the split's */
    /* The next three are views of arrays idle while they are in use
     * (cellseg_ws_new), so that a worker's first window touches 12.7 MB
     * less fresh memory. */
    float *local;    /* the local maximum of h (tight_mask only): work's memory */
    uint8_t *tight;  /* nuclei at half their local peak: where seeds are sought */
    uint8_t *big;    /* nuclei mask pixels no seed reached (label_leftovers only): tight's memory */
    int32_t *seeds;  /* their components (label_leftovers only): cells' memory */
    /* Occupancy, per row and block of OCC_W columns (nbx blocks a row):
     * whether the nuclei mask (occ) or the cells' flood mask (occ_cells)
     * has a pixel there. Every nucleus label lies within the mask and
     * every cell within its flood's mask, so the per-label passes visit
     * the occupied blocks only instead of reading 5.6 MB of labels for
     * a few per cent of them. */
    uint8_t *occ, *occ_cells;
    size_t occ_cap;
    int nbx;
    /* The watershed's and the background filter's temporary arrays, kept
     * across windows: a worker thread's glibc arena hands large freed
     * blocks back to the kernel, so per-call allocations were page-faulted
     * afresh in every window (scratch.h). Two: the filter needs both. */
    image_scratch scratch[2];
};

#define OCC_W CELLSEG_OCC_W

/* The per-pixel arrays of a workspace, in one block (the part of n
 * bytes each: five float and two label arrays 4, two masks 1, each rounded
 * up to 64 bytes). */
#define WS_ARRAY_BYTES 30u
#define WS_ARRAYS 9u

/* Carves the next part of n * each bytes (rounded up to 64) off *at. */
static void *ws_carve(char **at, size_t n, size_t each) {
    void *p = *at;
    *at += (n * each + 63) / 64 * 64;
    return p;
}

/* The per-pixel arrays share one block, taken from an image_scratch so
 * that it is aligned to 2 MB and marked for transparent huge pages
 * (advice only: without them it is ordinary memory). The window's
 * passes touch some 42 MB of them per worker; in 4 KB pages the first
 * window alone took ~14,000 page faults, each an exit to the hypervisor
 * on a paravirtualised machine (~12% of the CPU time of a 38-window run:
 * a cost once per worker, which huge pages cut to a few dozen faults).
 * Even so, zeroing fresh memory costs the first window ~1 ms per MB here,
 * so three arrays whose lives do not overlap another's share its memory:
 * local (tight_mask) lives in work, which holds the stain before smoothing
 * until nucleus_mask has made hfine and the smoothed distances only from
 * label_nuclei's blur on; big (label_leftovers) in tight, read for the
 * last time by watershed_maxima before; seeds (label_leftovers) in cells,
 * written whole by grow_cells after. */
cellseg_ws *cellseg_ws_new(int max_w, int max_h) {
    cellseg_ws *ws = ts_calloc(1, sizeof(*ws));
    size_t n = (size_t)max_w * (size_t)max_h;
    ws->cap = n;
    char *at = image_scratch_take(&ws->arrays, n * WS_ARRAY_BYTES + WS_ARRAYS * 64);
    ws->hraw = ws_carve(&at, n, sizeof(float));
    ws->h = ws_carve(&at, n, sizeof(float));
    ws->dist = ws_carve(&at, n, sizeof(float));
    ws->hfine = ws_carve(&at, n, sizeof(float));
    ws->work = ws_carve(&at, n, sizeof(float));
    ws->local = ws->work;
    ws->nuclei = ws_carve(&at, n, sizeof(int32_t));
    ws->cells = ws_carve(&at, n, sizeof(int32_t));
    ws->seeds = ws->cells;
    ws->mask = ws_carve(&at, n, 1);
    ws->tight = ws_carve(&at, n, 1);
    ws->big = ws->tight;
    color_od_lut(ws->od);
    color_stains_he(&ws->he);
    return ws;
}

/* Frees the outlines handed out by the previous call. */
static void clear_output(cellseg_ws *ws) {
    for (size_t i = 0; i < ws->out_n; i++) {
        contour_ring_free(&ws->out[i].nucleus);
        contour_ring_free(&ws->out[i].cell);
    }
    ws->out_n = 0;
}

void cellseg_ws_free(cellseg_ws *ws) {
    if (ws == NULL) return;
    clear_output(ws);
    image_scratch_release(&ws->arrays);
    free(ws->peak);
    free(ws->nreg);
    free(ws->creg);
    free(ws->out);
    free(ws->occ);
    free(ws->occ_cells);
    image_scratch_release(&ws->scratch[0]);
    image_scratch_release(&ws->scratch[1]);
    free(ws);
}

/* Makes room for labels 0..n in the region tables. */
static void reserve_regions(cellseg_ws *ws, size_t n) {
    if (n + 1 <= ws->reg_cap) return;
    ws->reg_cap = (n + 1) * 2;
    free(ws->nreg);
    free(ws->creg);
    free(ws->peak);
    ws->nreg = ts_malloc(ws->reg_cap * sizeof(region));
    ws->creg = ts_malloc(ws->reg_cap * sizeof(region));
    ws->peak = ts_malloc(ws->reg_cap * sizeof(float));
}

/* Whether labels[i .. i+8) are all 0 (background, most of a window):
 * the per-label loops skip such blocks with one vectorised test. */
static inline bool zero_block(const int32_t *labels, size_t i) {
    int32_t any = 0;
    for (int k = 0; k < 8; k++) any |= labels[i + (size_t)k];
    return any == 0;
}

/* The end of occupied block b of a row (w columns). */
static inline int occ_end(int b, int w) {
    return (b + 1) * OCC_W < w ? (b + 1) * OCC_W : w;
}

/* Hematoxylin OD into hraw (eosin only where measure needs it), then
 * background removed and smoothed into h. Returns the stain with the
 * background removed, before smoothing (in ws->work, or hraw itself when
 * there is no background to remove), from which hfine is made once the
 * mask is known.
 * With for_mask, h is needed exactly only where it exceeds the
 * threshold: when the background is removed (the stain is then >= 0) and
 * the threshold is positive, filter_gaussian_above gives h there and, at
 * other pixels, h or 0, both at most the threshold. Why that changes no
 * output: h is read by the mask (h > threshold: the same bits), by the
 * local maximum of tight_mask and by refine_nuclei's peaks. Both take a
 * maximum of h over pixels including one of the mask; where it is above
 * the threshold it is exact (values at most the threshold cannot be the
 * maximum), and where it is not, the cut max(fraction * maximum,
 * threshold) they compare with is the threshold whatever the values
 * (0 <= maximum <= threshold, fraction < 1), as before. */
static const float *hematoxylin(cellseg_ws *ws, const uint32_t *rgb, int w, int h,
                                const cellseg_params *p, bool for_mask) {
    size_t n = (size_t)w * (size_t)h;
    color_deconvolve(p->stains ? p->stains : &ws->he, rgb, n, ws->hraw, NULL);
    const float *flat = ws->hraw;
    if (p->background_radius > 0) {
        filter_background_subtract_coarse_with(ws->scratch, ws->hraw, ws->work, w, h, p->background_radius);
        flat = ws->work;
    }
    if (for_mask && p->background_radius > 0 && p->threshold > 0)
        filter_gaussian_above(flat, ws->h, w, h, p->sigma, p->threshold);
    else
        filter_gaussian_copy(flat, ws->h, w, h, p->sigma);
    return flat;
}

const float *cellseg_hematoxylin(cellseg_ws *ws, const uint32_t *rgb, int w, int h,
                                 const cellseg_params *p) {
    if (w < 1 || h < 1 || (size_t)w * (size_t)h > ws->cap) return NULL;
    hematoxylin(ws, rgb, w, h, p, false);
    return ws->h;
}

/* The foreground of the nuclei: stain, background removed, smoothed,
 * thresholded, holes filled; and the lightly smoothed stain hfine for the
 * tight mask and the refinement, which read it only inside the mask (the
 * nuclei never leave it), so it is made only there (filter_gaussian_masked:
 * the mask is a few per cent of a window; the same floats). */
static void nucleus_mask(cellseg_ws *ws, const uint32_t *rgb, int w, int h,
                         const cellseg_params *p) {
    size_t n = (size_t)w * (size_t)h;
    const float *flat = hematoxylin(ws, rgb, w, h, p, true);
    uint8_t *mask = ws->mask; /* locals: a byte store could alias ws->mask itself */
    const float *hs = ws->h;
    const float threshold = p->threshold;
    for (size_t i = 0; i < n; i++) mask[i] = hs[i] > threshold;
    morph_fill_holes(ws->mask, w, h, (long)p->max_area);
    cellseg_occupancy(ws->mask, w, h, ws->nbx, ws->occ);
    if (p->refine || p->split)
        filter_gaussian_masked(flat, ws->hfine, ws->mask, w, h, p->sigma < REFINE_SIGMA ? p->sigma : REFINE_SIGMA);
}

/* The solidity of label l, whose bounding box is b (x0, y0, x1, y1). */
static double object_solidity(const int32_t *labels, int w, int h, int32_t l, const int b[4]) {
    for (int y = b[1]; y <= b[3]; y++)
        for (int x = b[0]; x <= b[2]; x++)
            if (labels[(size_t)y * (size_t)w + (size_t)x] == l)
                return concave_solidity(labels, w, h, l, x, y);
    return 1;
}

/* Splits every label whose area (ws->nreg[].area, filled in) exceeds
 * limit, each in its own bounding box: seeds at the maxima of ws->dist
 * rising more than log(ratio) within the object, flooded over -dist; the
 * pieces get labels after *count (an object with a single seed keeps its
 * label). Working in each object's box rather than over the whole window
 * keeps the cost to the objects' own pixels. Returns how many objects were
 * over the limit, -1 on error. */
static int split_labels(cellseg_ws *ws, int w, int h, int *count, double limit, float ratio,
                        double max_solidity) {
    int labels = *count, flagged = 0;
    int (*box)[4] = ts_malloc(((size_t)labels + 1) * sizeof(*box));
    for (int l = 0; l <= labels; l++) box[l][0] = w, box[l][1] = h, box[l][2] = box[l][3] = -1;
    for (int y = 0; y < h; y++)
        for (int b = 0; b < ws->nbx; b++) {
            if (!ws->occ[(size_t)y * (size_t)ws->nbx + (size_t)b]) continue; /* no nucleus there */
            for (int x = b * OCC_W, end = occ_end(b, w); x < end; x++) {
                size_t i = (size_t)y * (size_t)w + (size_t)x;
                if (x + 8 <= end && zero_block(ws->nuclei, i)) {
                    x += 7; /* background, most of a window */
                    continue;
                }
                int32_t l = ws->nuclei[i];
                if (l <= 0 || ws->nreg[l].area <= limit) continue;
                if (box[l][2] < 0) flagged++;
                if (x < box[l][0]) box[l][0] = x;
                if (y < box[l][1]) box[l][1] = y;
                if (x > box[l][2]) box[l][2] = x;
                if (y > box[l][3]) box[l][3] = y;
            }
        }
    size_t cap = 0;
    for (int l = 1; l <= labels; l++)
        if (box[l][2] >= 0) {
            size_t a = (size_t)(box[l][2] - box[l][0] + 1) * (size_t)(box[l][3] - box[l][1] + 1);
            cap = a > cap ? a : cap;
        }
    float *d = ts_malloc((cap + 1) * sizeof(float)), *work = ts_malloc((cap + 1) * sizeof(float));
    uint8_t *m = ts_malloc(cap + 1);
    int32_t *seeds = ts_malloc((cap + 1) * sizeof(int32_t));
    int rc = flagged;
    for (int l = 1; l <= labels && rc >= 0; l++) {
        if (box[l][2] < 0) continue;
        int x0 = box[l][0], y0 = box[l][1], bw = box[l][2] - x0 + 1, bh = box[l][3] - y0 + 1;
        for (int y = 0; y < bh; y++)
            for (int x = 0; x < bw; x++) {
                size_t i = (size_t)(y + y0) * (size_t)w + (size_t)(x + x0), j = (size_t)y * (size_t)bw + (size_t)x;
                m[j] = ws->nuclei[i] == l;
                d[j] = ws->dist[i];
                work[j] = -d[j];
            }
        if (max_solidity < 1 && object_solidity(ws->nuclei, w, h, l, box[l]) > max_solidity) continue;
        int k = watershed_maxima_with(&ws->scratch[0], d, m, bw, bh, logf(ratio), seeds);
        if (k < 0 || (k > 1 && watershed_flood_with(&ws->scratch[0], work, m, bw, bh, seeds) != TS_OK)) {
            rc = -1;
            break;
        }
        if (k <= 1) continue;
        for (int y = 0; y < bh; y++)
            for (int x = 0; x < bw; x++) {
                size_t i = (size_t)(y + y0) * (size_t)w + (size_t)(x + x0), j = (size_t)y * (size_t)bw + (size_t)x;
                if (m[j] && seeds[j] > 0) ws->nuclei[i] = *count + seeds[j];
            }
        *count += k;
    }
    free(box);
    free(d);
    free(work);
    free(m);
    free(seeds);
    return rc;
}

/* Fills ws->nreg[1..*count].area. */
static void label_areas(cellseg_ws *ws, int w, int h, int count) {
    reserve_regions(ws, (size_t)count);
    memset(ws->nreg, 0, ((size_t)count + 1) * sizeof(region));
    region *reg = ws->nreg;
    for (int y = 0; y < h; y++) {
        const int32_t *row = ws->nuclei + (size_t)y * (size_t)w;
        for (int b = 0; b < ws->nbx; b++) {
            if (!ws->occ[(size_t)y * (size_t)ws->nbx + (size_t)b]) continue; /* no nucleus there */
            for (int x = b * OCC_W, end = occ_end(b, w); x < end; x++) {
                if (x + 8 <= end && zero_block(row, (size_t)x)) {
                    x += 7;
                    continue;
                }
                int32_t l = row[x];
                if (l <= 0) continue;
                /* a run of one label counted in a register and added once:
                 * areas are whole numbers, exact in double in any order */
                int k = 1;
                while (x + k < end && row[x + k] == l) k++;
                reg[l].area += k;
                x += k - 1;
            }
        }
    }
}

/* Labels with more than max_area pixels: split again with weaker seeds
 * (ratios falling towards 1), new labels appended after *count. An object
 * that cannot be split is kept whole: a large nucleus is still a nucleus. */
static int split_oversized(cellseg_ws *ws, int w, int h, int *count, const cellseg_params *p) {
    static const float weaker[] = {0.5f, 0.25f, 0.1f}; /* fractions of log(seed_ratio) */
    for (size_t k = 0; k < sizeof(weaker) / sizeof(weaker[0]); k++) {
        label_areas(ws, w, h, *count);
        int big = split_labels(ws, w, h, count, p->max_area, expf(weaker[k] * logf(p->seed_ratio)), 2.0);
        if (big < 0) return TS_ERR;
        if (big == 0) return TS_OK;
    }
    return TS_OK;
}

/* The tight mask: detected pixels whose lightly smoothed stain (hfine)
 * reaches TIGHT_FRACTION of the peak of the smoothed stain (h) within
 * peak_radius. Smoothing by sigma, which detection needs, fills the necks
 * between touching nuclei; at a large share of their local peak the necks
 * are as narrow as on the slide. The peak is taken on the smoothed stain
 * so that chromatin texture and nucleoli (sharp, dark spots) do not raise
 * it and cut one textured nucleus into pieces; a pale nucleus beside a
 * dark one keeps its own peak when their centres are further apart than
 * peak_radius. */
static void tight_mask(cellseg_ws *ws, int w, int h, const cellseg_params *p) {
    size_t n = (size_t)w * (size_t)h;
    /* The local maximum, needed (below) only on the mask: found there
     * alone, the same values as filter_max_square's over the window. */
    filter_max_square_masked(ws->h, ws->local, ws->mask, w, h, (int)lroundf(p->peak_radius));
    const float *restrict local = ws->local, *restrict hfine = ws->hfine;
    const uint8_t *restrict mask = ws->mask;
    uint8_t *restrict tight = ws->tight;
    const float threshold = p->threshold;
    for (size_t b = 0; b < n; b += 64) { /* a block of background is 0 at once */
        size_t end = b + 64 < n ? b + 64 : n;
        if (end - b == 64 && maskblock_empty(mask + b)) {
            memset(tight + b, 0, 64);
            continue;
        }
        for (size_t i = b; i < end; i++) {
            float cut = TIGHT_FRACTION * local[i];
            tight[i] = (uint8_t)((mask[i] != 0) & (hfine[i] >= (cut > threshold ? cut : threshold)));
        }
    }
    morph_fill_holes(ws->tight, w, h, (long)(p->max_area / 4));
}

static int cmp_float(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

/* The median area of the labels 1..count of at least min_area, from
 * ws->nreg (areas filled in); 0 when there are fewer than
 * LARGE_MIN_OBJECTS. */
static double median_area(const cellseg_ws *ws, int count, const cellseg_params *p) {
    float *areas = ts_malloc(((size_t)count + 1) * sizeof(float));
    size_t k = 0;
    for (int l = 1; l <= count; l++)
        if (ws->nreg[l].area >= p->min_area) areas[k++] = (float)ws->nreg[l].area;
    double m = 0;
    if (k >= LARGE_MIN_OBJECTS) {
        qsort(areas, k, sizeof(float), cmp_float);
        m = areas[k / 2];
    }
    free(areas);
    return m;
}

/* Objects much larger than the typical nucleus (LARGE_FACTOR x
 * p->typical_area, the slide's, or else the window's median) are most
 * often touching nuclei whose neck is too wide for seed_ratio: they are
 * split again with the weaker LARGE_RATIO (a single nucleus, convex, has
 * one maximum of its distance transform at any ratio). Relative to the
 * nuclei seen, so it holds whatever the nucleus size of the slide. */
static int split_large(cellseg_ws *ws, int w, int h, int *count, const cellseg_params *p) {
    label_areas(ws, w, h, *count);
    double typical = p->typical_area > 0 ? p->typical_area : median_area(ws, *count, p);
    if (typical <= 0) return TS_OK;
    return split_labels(ws, w, h, count, LARGE_FACTOR * typical, LARGE_RATIO, LARGE_SOLIDITY) < 0
               ? TS_ERR
               : TS_OK;
}

/* Detected components that no seed reached (no tight pixel in them) get a
 * label each, after *count: a faint nucleus is still a nucleus. */
static void label_leftovers(cellseg_ws *ws, int w, int h, int *count) {
    uint8_t any = 0;
    memset(ws->big, 0, (size_t)w * (size_t)h); /* outside the mask's blocks */
    for (int y = 0; y < h; y++) {
        size_t r = (size_t)y * (size_t)w;
        uint8_t *restrict big = ws->big + r;
        const uint8_t *restrict mask = ws->mask + r;
        const int32_t *restrict nuclei = ws->nuclei + r;
        for (int b = 0; b < ws->nbx; b++) {
            if (!ws->occ[(size_t)y * (size_t)ws->nbx + (size_t)b]) continue;
            for (int x = b * OCC_W, end = occ_end(b, w); x < end; x++) { /* & rather than &&: vectorises */
                uint8_t v = (uint8_t)((mask[x] != 0) & (nuclei[x] == 0));
                big[x] = v;
                any |= v;
            }
        }
    }
    if (any == 0) return;
    int extra = label_components(ws->big, w, h, 8, ws->seeds);
    if (extra <= 0) return;
    for (int y = 0; y < h; y++) { /* the components lie within the mask's blocks */
        size_t r = (size_t)y * (size_t)w;
        for (int b = 0; b < ws->nbx; b++) {
            if (!ws->occ[(size_t)y * (size_t)ws->nbx + (size_t)b]) continue;
            for (int x = b * OCC_W, end = occ_end(b, w); x < end; x++)
                if (ws->seeds[r + (size_t)x] > 0) ws->nuclei[r + (size_t)x] = *count + ws->seeds[r + (size_t)x];
        }
    }
    *count += extra;
}

/* Labels nuclei: touching ones are split at the saddles of the distance
 * transform of the tight mask when p->split. Returns the label count
 * (labels may have gaps after an oversized object was split: its old label
 * is unused). */
/* The distances from their squares inside the tight mask (0 elsewhere).
 * The transform is 0 already outside it (the distance of a background
 * pixel), so blocks of 64 with no tight pixel are left as they are: the
 * whole-window pass read and wrote 5.6 MB for a few per cent of it. */
static void root_distances(float *restrict dist, const uint8_t *restrict tight, size_t n) {
    for (size_t b = 0; b < n; b += 64) {
        size_t end = b + 64 < n ? b + 64 : n;
        if (end - b == 64 && maskblock_empty(tight + b)) continue;
        for (size_t i = b; i < end; i++) dist[i] = tight[i] ? sqrtf(dist[i]) : 0;
    }
}

static int label_nuclei(cellseg_ws *ws, int w, int h, const cellseg_params *p) {
    size_t n = (size_t)w * (size_t)h;
    if (!p->split) return label_components(ws->mask, w, h, 8, ws->nuclei);
    tight_mask(ws, w, h, p);
    edt_squared(ws->tight, w, h, ws->dist);
    root_distances(ws->dist, ws->tight, n);
    float *restrict dist = ws->dist;
    const uint8_t *restrict mask = ws->mask;
    /* Only pixels of the nuclei mask are ever looked at from here on (the
     * seeds within the tight mask, the floods within the mask, the splits
     * within nuclei): elsewhere dist and work are not even written. The
     * tight mask lies within the mask: a hole of it reaching outside the
     * mask would hold a hole of the mask of at most max_area / 4 pixels,
     * which the mask's own filling closed. A little smoothing keeps a
     * ragged outline from seeding twice: into work, inside the mask only. */
    filter_gaussian_masked(ws->dist, ws->work, mask, w, h, 1.0f);
    float *restrict work = ws->work; /* the flood's elevation, -dist, in the same pass */
    for (size_t b = 0; b < n; b += 64) {
        size_t end = b + 64 < n ? b + 64 : n;
        if (end - b == 64 && maskblock_empty(mask + b)) continue; /* most of a window: left as it is, never read */
        for (size_t i = b; i < end; i++) {
            if (!mask[i]) continue;
            float v = logf(1.0f + work[i]);
            dist[i] = v;
            work[i] = -v;
        }
    }
    int count = watershed_maxima_with(&ws->scratch[0], ws->dist, ws->tight, w, h, logf(p->seed_ratio), ws->nuclei);
    if (count < 0) return -1;
    if (watershed_flood_with(&ws->scratch[0], ws->work, ws->mask, w, h, ws->nuclei) != TS_OK) return -1;
    label_leftovers(ws, w, h, &count);
    if (split_large(ws, w, h, &count, p) != TS_OK) return -1;
    if (split_oversized(ws, w, h, &count, p) != TS_OK) return -1;
    return count;
}

/* Moves each nucleus's outline to where its stain (lightly smoothed)
 * falls to half of its peak: smoothing by sigma finds nuclei reliably but
 * spreads every outline outwards by about a sigma, which for small nuclei
 * doubles their area. The peak is taken on the stain smoothed by sigma: a
 * dark nucleolus or chromatin clump in the lightly smoothed stain would
 * put the cut above the rest of a pale nucleus and leave only a sliver of
 * it. Never below the detection threshold. */
static void refine_nuclei(cellseg_ws *ws, int w, int h, size_t count, const cellseg_params *p) {
    float *peak = ws->peak;
    const float threshold = p->threshold;
    for (size_t l = 0; l <= count; l++) peak[l] = 0;
    for (int y = 0; y < h; y++) {
        size_t r = (size_t)y * (size_t)w;
        const int32_t *nuclei = ws->nuclei + r;
        const float *hs = ws->h + r;
        for (int b = 0; b < ws->nbx; b++) {
            if (!ws->occ[(size_t)y * (size_t)ws->nbx + (size_t)b]) continue; /* no nucleus there */
            for (int x = b * OCC_W, end = occ_end(b, w); x < end;) {
                if (x + 8 <= end && zero_block(nuclei, (size_t)x)) {
                    x += 8;
                    continue;
                }
                int32_t l = nuclei[x];
                if (l <= 0) {
                    x++;
                    continue;
                }
                /* a run of one label: its peak in a register (a maximum is
                 * the same in any order), stored once */
                float m = peak[l];
                for (; x < end && nuclei[x] == l; x++) m = hs[x] > m ? hs[x] : m;
                peak[l] = m;
            }
        }
    }
    for (int y = 0; y < h; y++) {
        size_t r = (size_t)y * (size_t)w;
        int32_t *nuclei = ws->nuclei + r;
        const float *hfine = ws->hfine + r;
        for (int b = 0; b < ws->nbx; b++) {
            if (!ws->occ[(size_t)y * (size_t)ws->nbx + (size_t)b]) continue;
            for (int x = b * OCC_W, end = occ_end(b, w); x < end; x++) {
                if (x + 8 <= end && zero_block(nuclei, (size_t)x)) {
                    x += 7;
                    continue;
                }
                int32_t l = nuclei[x];
                if (l <= 0) continue;
                float cut = REFINE_FRACTION * peak[l];
                if (hfine[x] < (cut > threshold ? cut : threshold)) nuclei[x] = 0;
            }
        }
    }
}

/* Nuclei whose final outline has two notches facing each other across a
 * short neck are cut there (concave.h): touching nuclei end to end, or a
 * small one on a large one's flank, whose neck the distance transform
 * cannot tell from the nuclei's own width. After the refinement, whose
 * outlines are the ones reported and show the notches sharpest. */
static int split_concave(cellseg_ws *ws, int w, int h, int *count, const cellseg_params *p) {
    concave_params cp = {.min_depth = p->concave_depth, .min_ratio = p->concave_ratio,
                         .smooth = p->concave_smooth, .min_solidity = CONCAVE_SOLIDITY,
                         .min_area = p->min_area, .max_cuts = 8};
    if (concave_split(ws->nuclei, w, h, count, &cp) != TS_OK) return TS_ERR;
    reserve_regions(ws, (size_t)*count);
    return TS_OK;
}

/* Drops nuclei under min_area from the label image. Objects over max_area
 * were split as far as their shape allows (label_nuclei); what remains is
 * kept rather than losing a real (large or unsplittable) nucleus. Without
 * splitting, max_area still drops what is larger, as it always did. */
static void filter_nuclei(cellseg_ws *ws, int w, int h, size_t count, const cellseg_params *p) {
    region *r = ws->nreg;
    for (size_t l = 1; l <= count; l++)
        r[l].valid = r[l].area > 0 && r[l].area >= p->min_area && (p->split || r[l].area <= p->max_area);
    for (int y = 0; y < h; y++) {
        int32_t *nuclei = ws->nuclei + (size_t)y * (size_t)w;
        for (int b = 0; b < ws->nbx; b++) {
            if (!ws->occ[(size_t)y * (size_t)ws->nbx + (size_t)b]) continue; /* no nucleus there */
            for (int x = b * OCC_W, end = occ_end(b, w); x < end; x++) {
                if (x + 8 <= end && zero_block(nuclei, (size_t)x)) {
                    x += 7;
                    continue;
                }
                if (nuclei[x] > 0 && !r[nuclei[x]].valid) nuclei[x] = 0;
            }
        }
    }
}

/* Grows every nucleus by up to p->expansion pixels, each pixel to its
 * nearest nucleus, into ws->cells. */
static int grow_cells(cellseg_ws *ws, int w, int h, const cellseg_params *p) {
    size_t n = (size_t)w * (size_t)h;
    if (p->expansion <= 0) {
        memcpy(ws->cells, ws->nuclei, n * sizeof(int32_t));
        memcpy(ws->occ_cells, ws->occ, (size_t)ws->nbx * (size_t)h);
        return TS_OK;
    }
    uint8_t *restrict mask = ws->mask;
    const float *restrict dist = ws->dist;
    /* the background of the nuclei: all of it outside the nuclei mask's
     * blocks (no nucleus there), the nuclei's own blocks looked at */
    memset(mask, 1, n);
    for (int y = 0; y < h; y++) {
        size_t r = (size_t)y * (size_t)w;
        const int32_t *restrict nuclei = ws->nuclei + r;
        uint8_t *restrict m = mask + r;
        for (int b = 0; b < ws->nbx; b++) {
            if (!ws->occ[(size_t)y * (size_t)ws->nbx + (size_t)b]) continue;
            for (int x = b * OCC_W, end = occ_end(b, w); x < end; x++) m[x] = nuclei[x] == 0;
        }
    }
    float r2 = p->expansion * p->expansion;
    edt_squared_within(mask, w, h, r2, ws->dist); /* only distances up to r2 are used */
    for (size_t i = 0; i < n; i++) mask[i] = dist[i] <= r2;
    cellseg_occupancy(mask, w, h, ws->nbx, ws->occ_cells); /* the cells lie within the flood's mask */
    /* Squared distances are whole numbers: the bucket-queue flood. */
    return watershed_flood_levels_with(&ws->scratch[0], ws->dist, (int)r2 + 1, ws->mask, w, h, ws->occ_cells, ws->nuclei,
                                       ws->cells);
}

static double ring_perimeter(const contour_ring *r) {
    double len = 0;
    for (size_t i = 0; i < r->n; i++) {
        const pt2 *a = &r->pts[i], *b = &r->pts[(i + 1) % r->n];
        len += hypot(b->x - a->x, b->y - a->y);
    }
    return len;
}

/* Appends the cell of nucleus label l with its outlines. */
static int emit_cell(cellseg_ws *ws, int w, int h, int32_t l, const cellseg_params *p) {
    const region *nr = &ws->nreg[l], *cr = &ws->creg[l];
    if (ws->out_n == ws->out_cap) {
        ws->out_cap = ws->out_cap ? ws->out_cap * 2 : 256;
        ws->out = ts_realloc(ws->out, ws->out_cap * sizeof(cellseg_cell));
    }
    cellseg_cell *c = &ws->out[ws->out_n];
    memset(c, 0, sizeof(*c));
    if (contour_trace_label(ws->nuclei, w, h, l, nr->first_x, nr->first_y, &c->nucleus) != TS_OK ||
        contour_trace_label(ws->cells, w, h, l, cr->first_x, cr->first_y, &c->cell) != TS_OK) {
        contour_ring_free(&c->nucleus);
        contour_ring_free(&c->cell);
        return TS_ERR;
    }
    c->nucleus.n = contour_simplify(c->nucleus.pts, c->nucleus.n, p->simplify);
    c->cell.n = contour_simplify(c->cell.pts, c->cell.n, p->simplify);
    c->cx = nr->sx / nr->area;
    c->cy = nr->sy / nr->area;
    c->nucleus_area = nr->area;
    c->cell_area = cr->area;
    c->nucleus_perimeter = ring_perimeter(&c->nucleus);
    c->nucleus_h = nr->sh / nr->area;
    c->nucleus_e = nr->se / nr->area;
    c->cell_h = cr->sh / cr->area;
    c->cell_e = cr->se / cr->area;
    ws->out_n++;
    return TS_OK;
}

int cellseg_window(cellseg_ws *ws, const uint32_t *rgb, int w, int h, const cellseg_params *p,
                   int cx0, int cy0, int cx1, int cy1, cellseg_keep_fn keep, void *keep_arg,
                   cellseg_cell **cells, size_t *n) {
    clear_output(ws);
    *cells = NULL;
    *n = 0;
    if (w < 1 || h < 1 || (size_t)w * (size_t)h > ws->cap) return TS_ERR;
    ws->nbx = (w + OCC_W - 1) / OCC_W;
    if ((size_t)ws->nbx * (size_t)h > ws->occ_cap) {
        ws->occ_cap = (size_t)ws->nbx * (size_t)h;
        free(ws->occ);
        free(ws->occ_cells);
        ws->occ = ts_malloc(ws->occ_cap);
        ws->occ_cells = ts_malloc(ws->occ_cap);
    }
    nucleus_mask(ws, rgb, w, h, p);
    int count = label_nuclei(ws, w, h, p);
    if (count < 0) return TS_ERR;
    reserve_regions(ws, (size_t)count);
    if (p->refine) refine_nuclei(ws, w, h, (size_t)count, p);
    if (p->split && p->concave_depth > 0 && split_concave(ws, w, h, &count, p) != TS_OK) return TS_ERR;
    color_stain_tables(p->stains ? p->stains : &ws->he, ws->od, 1, ws->eosin);
    /* the nuclei's areas and centroids now (filter_nuclei needs them),
     * their stains with the cells' (the same pixel reads) */
    cellseg_measure_shape(ws->nuclei, w, h, ws->occ, ws->nbx, ws->nreg, (size_t)count);
    filter_nuclei(ws, w, h, (size_t)count, p);
    if (grow_cells(ws, w, h, p) != TS_OK) return TS_ERR;
    cellseg_measure_cells(ws->cells, ws->nuclei, ws->hraw, rgb, ws->eosin, w, h, ws->occ_cells, ws->nbx, ws->creg,
                          ws->nreg, (size_t)count);
    for (int32_t l = 1; l <= count; l++) {
        const region *r = &ws->nreg[l];
        if (!r->valid || ws->creg[l].area == 0) continue;
        double cx = r->sx / r->area, cy = r->sy / r->area;
        if (cx < cx0 || cx >= cx1 || cy < cy0 || cy >= cy1) continue;
        if (keep && !keep(keep_arg, cx, cy)) continue;
        if (emit_cell(ws, w, h, l, p) != TS_OK) return TS_ERR;
    }
    *cells = ws->out;
    *n = ws->out_n;
    return TS_OK;
}
