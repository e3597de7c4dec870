/*
 * cells_survey.c - see cells_survey.h.
 *
 * The windows are read once and kept (SURVEY_WINDOWS x SURVEY_SIDE^2
 * pixels, 25 MB at most): the stains must be known before the hematoxylin
 * the threshold is chosen on can be computed.
 */
#include "jobs/cells_survey.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "image/filter.h"
#include "image/resample.h"
#include "image/threshold.h"
#include "util/util.h"

#define HIST_BINS 1000
#define HIST_MIN -0.2          /* OD of the first bin: background subtraction leaves some below 0 */
#define HIST_MAX 1.8           /* OD of the last bin */
#define TISSUE_BLUR_PX 4.0f    /* the OD is smoothed before telling tissue from glass */
#define MIN_TISSUE_SHARE 0.05  /* a window with less tissue is not kept */

typedef struct window {
    uint32_t *rgb;
    uint8_t *tissue;
    int x0, y0, w, h; /* analysis pixels */
} window;

/* Reads the analysis-pixel rectangle into rgb (resampled from the level
 * read when the level's scale is not the analysis scale). */
static int read_rect(const survey_grid *g, int x0, int y0, int w, int h, uint32_t *rgb,
                     char *err, size_t errlen) {
    int sw = (int)lround(w * g->factor), sh = (int)lround(h * g->factor);
    sw = sw < 1 ? 1 : sw;
    sh = sh < 1 ? 1 : sh;
    bool same = sw == w && sh == h;
    uint32_t *src = same ? rgb : ts_malloc((size_t)sw * (size_t)sh * sizeof(uint32_t));
    int rc = slide_read(g->s, g->level, (int64_t)llround(x0 * g->downsample),
                        (int64_t)llround(y0 * g->downsample), sw, sh, src, err, errlen);
    if (rc == TS_OK && !same) resample_rgb(src, sw, sh, rgb, w, h);
    if (!same) free(src);
    return rc;
}

/* Marks tissue pixels: inside the mask (if any) and darker than glass
 * once smoothed. Returns how many. */
static size_t mark_tissue(window *win, survey_tissue_fn tissue, void *arg) {
    size_t n = (size_t)win->w * (size_t)win->h, on = 0;
    float *f = ts_malloc(n * sizeof(float));
    color_od_length(win->rgb, n, f);
    filter_gaussian(f, win->w, win->h, TISSUE_BLUR_PX);
    for (int y = 0; y < win->h; y++)
        for (int x = 0; x < win->w; x++) {
            size_t i = (size_t)y * (size_t)win->w + (size_t)x;
            bool t = f[i] > SURVEY_TISSUE_OD &&
                     (tissue == NULL || tissue(arg, win->x0 + x + 0.5, win->y0 + y + 0.5));
            win->tissue[i] = t;
            on += t;
        }
    free(f);
    return on;
}

/* Reads up to SURVEY_WINDOWS windows with tissue, centred on tiles at an
 * even stride over the slide. Returns the count, or -1 on a read error. */
static int read_windows(const survey_grid *g, survey_tissue_fn tissue, survey_tile_fn tile_ok,
                        void *arg, window *wins, uint64_t *tissue_px, char *err, size_t errlen) {
    size_t tiles = (size_t)g->nx * (size_t)g->ny;
    size_t stride = tiles / SURVEY_MAX_TRIES + 1;
    int n = 0;
    *tissue_px = 0;
    for (size_t k = 0; k < SURVEY_MAX_TRIES && n < SURVEY_WINDOWS; k++) {
        /* k-th probe: stride steps, shifted by k/tiles rounds so that every
         * tile is eventually probed on small slides. */
        size_t t = (k * stride + (k * stride) / tiles) % tiles;
        if (k > 0 && k * stride >= tiles * 2) break;
        int tx = (int)(t % (size_t)g->nx), ty = (int)(t / (size_t)g->nx);
        if (tile_ok && !tile_ok(arg, tx, ty)) continue;
        window *win = &wins[n];
        int cx = tx * g->tile + g->tile / 2, cy = ty * g->tile + g->tile / 2;
        win->w = (int)(g->aw < SURVEY_SIDE ? g->aw : SURVEY_SIDE);
        win->h = (int)(g->ah < SURVEY_SIDE ? g->ah : SURVEY_SIDE);
        win->x0 = cx - win->w / 2, win->y0 = cy - win->h / 2;
        if (win->x0 + win->w > g->aw) win->x0 = (int)(g->aw - win->w);
        if (win->y0 + win->h > g->ah) win->y0 = (int)(g->ah - win->h);
        win->x0 = win->x0 < 0 ? 0 : win->x0;
        win->y0 = win->y0 < 0 ? 0 : win->y0;
        if (read_rect(g, win->x0, win->y0, win->w, win->h, win->rgb, err, errlen) != TS_OK) return -1;
        size_t on = mark_tissue(win, tissue, arg);
        if ((double)on < MIN_TISSUE_SHARE * win->w * win->h) continue;
        *tissue_px += on;
        n++;
        if (tiles == 1) break;
    }
    return n;
}

/* The stains: the user's, or estimated from the windows' tissue. The
 * windows are at the analysis resolution: estimating from coarser pixels
 * (1 or 2 µm/px, where nuclei blur into their surroundings and the
 * angular extremes are no longer pure stain) lowered F1 on the H-DAB
 * development slides (bench/accuracy.sh's seeds 11-18, 31-42). */
static void choose_stains(const survey_grid *g, window *wins, int n, stain_kind kind,
                          const double given[3][3], int n_given, survey_result *out) {
    if (n_given >= 2 && color_stains_from(&out->stains, given[0], given[1],
                                          n_given == 3 ? given[2] : NULL) == TS_OK) {
        out->stain_given = true;
        out->stain.estimated = false;
        out->stain.kind = kind != STAIN_AUTO ? kind : given[1][2] > given[1][1] ? STAIN_HDAB : STAIN_HE;
        for (int k = 0; k < 3; k++) {
            out->stain.v1[k] = out->stains.vec[0][k];
            out->stain.v2[k] = out->stains.vec[1][k];
        }
        ts_strlcpy(out->stain.reason, "given in params.stain_vectors", sizeof(out->stain.reason));
        return;
    }
    out->stain_level = g->level;
    out->stain_mpp = g->mpp;
    stain_sampler sm;
    stain_sampler_init(&sm, 200000);
    for (int i = 0; i < n; i++)
        stain_sampler_add(&sm, wins[i].rgb, wins[i].tissue, (size_t)wins[i].w * wins[i].h);
    stain_estimate_from(&sm, kind, &out->stain, &out->stains);
    stain_sampler_free(&sm);
}

/* The threshold from the smoothed, background-subtracted hematoxylin of
 * the windows' tissue pixels: its background level and spread
 * (threshold_background) and Otsu's level (see cells_survey.h). */
static void choose_threshold(window *wins, int n, const cellseg_params *p, survey_result *out) {
    uint64_t *hist = ts_calloc(HIST_BINS, sizeof(uint64_t));
    cellseg_params q = *p;
    q.stains = &out->stains;
    q.refine = false;
    cellseg_ws *ws = cellseg_ws_new(SURVEY_SIDE, SURVEY_SIDE);
    uint64_t total = 0;
    for (int i = 0; i < n; i++) {
        const float *h = cellseg_hematoxylin(ws, wins[i].rgb, wins[i].w, wins[i].h, &q);
        for (size_t k = 0; h && k < (size_t)wins[i].w * wins[i].h; k++) {
            if (!wins[i].tissue[k]) continue;
            int b = (int)((h[k] - HIST_MIN) / (HIST_MAX - HIST_MIN) * HIST_BINS);
            hist[b < 0 ? 0 : b >= HIST_BINS ? HIST_BINS - 1 : b]++;
            total++;
        }
    }
    cellseg_ws_free(ws);
    const double bin = (HIST_MAX - HIST_MIN) / HIST_BINS;
    int mode;
    double spread;
    threshold_background(hist, HIST_BINS, &mode, &spread);
    out->otsu = total ? HIST_MIN + (threshold_otsu_bins(hist, HIST_BINS) + 1) * bin : 0;
    out->background = HIST_MIN + (mode + 0.5) * bin;
    out->spread = spread * bin;
    /* Half-way from the tissue's own background to Otsu's level, and
     * clear of the background's noise and stain crosstalk: a threshold
     * measured from zero (Otsu x 0.5) sat inside the background on pale,
     * noisy slides where stroma carries hematoxylin OD of 0.05-0.07. */
    double half = out->background + SURVEY_OTSU_FACTOR * (out->otsu - out->background);
    double noise_floor = out->background + SURVEY_NOISE_SPREADS * out->spread;
    double t = !total ? SURVEY_NO_TISSUE_THRESHOLD : half > noise_floor ? half : noise_floor;
    out->threshold = t < SURVEY_MIN_THRESHOLD ? SURVEY_MIN_THRESHOLD
                     : t > SURVEY_MAX_THRESHOLD ? SURVEY_MAX_THRESHOLD : t;
    free(hist);
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* The slide's typical nucleus: the median area (before refinement) of the
 * nuclei found in the windows with the chosen stains and threshold, so
 * that every tile splits "larger than typical" objects alike. 0 when
 * splitting is off or too few nuclei were found. */
static void choose_typical_area(window *wins, int n, const cellseg_params *p, survey_result *out) {
    out->typical_area = 0;
    if (!p->split) return;
    cellseg_params q = *p;
    q.stains = &out->stains;
    q.threshold = (float)out->threshold;
    q.refine = false;
    q.expansion = 0;
    q.typical_area = 0;
    cellseg_ws *ws = cellseg_ws_new(SURVEY_SIDE, SURVEY_SIDE);
    size_t cap = 4096, k = 0;
    double *areas = ts_malloc(cap * sizeof(double));
    for (int i = 0; i < n; i++) {
        cellseg_cell *cells;
        size_t m = 0;
        if (cellseg_window(ws, wins[i].rgb, wins[i].w, wins[i].h, &q, 0, 0, wins[i].w, wins[i].h,
                           NULL, NULL, &cells, &m) != TS_OK)
            continue;
        for (size_t j = 0; j < m; j++) {
            if (k == cap) areas = ts_realloc(areas, (cap *= 2) * sizeof(double));
            areas[k++] = cells[j].nucleus_area;
        }
    }
    cellseg_ws_free(ws);
    if (k >= SURVEY_MIN_NUCLEI) {
        qsort(areas, k, sizeof(double), cmp_double);
        out->typical_area = areas[k / 2];
    }
    out->typical_nuclei = k;
    free(areas);
}

int survey_run(const survey_grid *g, stain_kind kind, const double given[3][3], int n_given,
               bool threshold_auto, double threshold, const cellseg_params *p,
               survey_tissue_fn tissue, survey_tile_fn tile_has_tissue, void *arg,
               survey_result *out, char *err, size_t errlen) {
    memset(out, 0, sizeof(*out));
    window *wins = ts_calloc(SURVEY_WINDOWS, sizeof(window));
    for (int i = 0; i < SURVEY_WINDOWS; i++) {
        wins[i].rgb = ts_malloc((size_t)SURVEY_SIDE * SURVEY_SIDE * sizeof(uint32_t));
        wins[i].tissue = ts_malloc((size_t)SURVEY_SIDE * SURVEY_SIDE);
    }
    int rc = TS_ERR;
    int n = read_windows(g, tissue, tile_has_tissue, arg, wins, &out->tissue_pixels, err, errlen);
    if (n < 0) goto cleanup;
    out->windows = n;
    choose_stains(g, wins, n, kind, given, n_given, out);
    out->threshold_auto = threshold_auto;
    if (threshold_auto)
        choose_threshold(wins, n, p, out);
    else
        out->threshold = threshold;
    choose_typical_area(wins, n, p, out);
    rc = TS_OK;
cleanup:
    for (int i = 0; i < SURVEY_WINDOWS; i++) {
        free(wins[i].rgb);
        free(wins[i].tissue);
    }
    free(wins);
    return rc;
}
