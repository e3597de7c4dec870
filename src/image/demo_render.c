/*
 * demo_render.c - see demo_render.h.
 *
 * Colour is Beer-Lambert with the Ruifrok-Johnston H&E vectors (DESIGN §9):
 * RGB = 255 * 10^-(cH * vH + cE * vE) per channel, through a lookup table.
 * Per output row: a first pass classifies every sub-sample (background,
 * tissue, nucleus coverage) by scanline crossings and the nucleus grid; a
 * second pass evaluates the textures once per output pixel and averages
 * the sub-samples' colours. Textures finer than the level's pixels are
 * faded to their mean, so coarse levels are averages, not aliasing.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "image/demo_render.h"
#include "util/util.h"

#define MAX_K 4


/* One row of the nucleus grid, for the columns of the current tile. */
typedef struct cellrow {
    int64_t row; /* -1 when empty */
    uint8_t *count;
    demo_nucleus *nuc; /* DEMO_CELL_MAX per column */
} cellrow;

/* What one sub-sample hit. */
typedef struct subsample {
    const demo_nucleus *nuc; /* covering nucleus, or NULL */
    float cov;               /* its coverage */
    uint8_t tissue;
} subsample;

struct demo_scratch {
    double *xs;  /* crossings of one scanline */
    int tile_size;
    cellrow *win; /* window of grid rows, indexed by row % win_cap */
    int win_cap;
    int64_t col0; /* first grid column of the tile */
    int ncols, ncols_cap;
    subsample *subs; /* tile_size * MAX_K^2 */
};

demo_scratch *demo_scratch_new(const demo_model *m, int tile_size) {
    demo_scratch *s = ts_calloc(1, sizeof(*s));
    s->xs = ts_malloc((m->n_edges + 1) * sizeof(double));
    s->tile_size = tile_size;
    s->subs = ts_malloc((size_t)tile_size * MAX_K * MAX_K * sizeof(subsample));
    return s;
}

static void free_window(demo_scratch *s) {
    for (int i = 0; i < s->win_cap; i++) {
        free(s->win[i].count);
        free(s->win[i].nuc);
    }
    free(s->win);
    s->win = NULL;
    s->win_cap = 0;
    s->ncols_cap = 0;
}

void demo_scratch_free(demo_scratch *s) {
    if (s == NULL) return;
    free_window(s);
    free(s->xs);
    free(s->subs);
    free(s);
}

/* Sizes the window for a tile spanning grid columns [col0, col0+ncols)
 * with `rows` grid rows alive at once, and empties it. */
static void window_reset(demo_scratch *s, int64_t col0, int ncols, int rows) {
    if (rows > s->win_cap || ncols > s->ncols_cap) {
        int cap = rows > s->win_cap ? rows : s->win_cap;
        int cols = ncols > s->ncols_cap ? ncols : s->ncols_cap;
        free_window(s);
        s->win = ts_calloc((size_t)cap, sizeof(cellrow));
        for (int i = 0; i < cap; i++) {
            s->win[i].count = ts_malloc((size_t)cols);
            s->win[i].nuc = ts_malloc((size_t)cols * DEMO_CELL_MAX * sizeof(demo_nucleus));
        }
        s->win_cap = cap;
        s->ncols_cap = cols;
    }
    for (int i = 0; i < s->win_cap; i++) s->win[i].row = -1;
    s->col0 = col0;
    s->ncols = ncols;
}

/* The grid row `row` for the tile's columns, generated on first use. */
static const cellrow *window_row(const demo_model *m, demo_scratch *s, int64_t row) {
    cellrow *r = &s->win[row % s->win_cap];
    if (r->row != row) {
        r->row = row;
        for (int c = 0; c < s->ncols; c++)
            r->count[c] = (uint8_t)demo_cell_nuclei(m, s->col0 + c, row,
                                                    &r->nuc[(size_t)c * DEMO_CELL_MAX]);
    }
    return r;
}

/* The nucleus covering (x, y) most, if any (coverage into *cov). */
static const demo_nucleus *nucleus_at(const demo_model *m, demo_scratch *s, const cellrow *r,
                                      double x, double y, float *cov) {
    int64_t c = (int64_t)(x / m->cell) - s->col0;
    if (c < 0 || c >= s->ncols) return NULL;
    const demo_nucleus *best = NULL;
    double bc = 0;
    for (int i = 0; i < r->count[c]; i++) {
        const demo_nucleus *n = &r->nuc[(size_t)c * DEMO_CELL_MAX + i];
        if (x < n->minx - n->ramp || x > n->maxx + n->ramp || y < n->miny - n->ramp ||
            y > n->maxy + n->ramp)
            continue;
        double v = demo_nucleus_coverage(n, x, y);
        if (v > bc) bc = v, best = n;
    }
    *cov = (float)bc;
    return best;
}

/* Weight of a texture of wavelength lambda (level-0 pixels) at downsample
 * ds: 1 when it spans 4+ output pixels, 0 at one pixel or less. */
static double band_weight(double lambda, double ds) {
    double w = (lambda / ds - 1) / 3;
    return w < 0 ? 0 : w > 1 ? 1 : w;
}

/* Stroma concentrations at (x, y): wavy eosin fibres in two directions,
 * loose and dense areas, a light hematoxylin haze. */
static void stroma_conc(const demo_model *m, double x, double y, double ds, double *ch,
                        double *ce) {
    uint64_t sd = m->o.seed * 0x9e3779b97f4a7c15ull;
    double xu = x / m->px_per_um, yu = y / m->px_per_um;
    double low = demo_vnoise(sd ^ 0xa1, xu / 90, yu / 90);
    double fibre = 0.3, w = band_weight(3.5 * m->px_per_um, ds);
    if (w > 0) {
        double warp = 12 * demo_vnoise(sd ^ 0xa2, xu / 60, yu / 60), f = 0;
        for (int i = 0; i < 2; i++) {
            double u = xu * m->fib[i][0] + yu * m->fib[i][1];
            double v = -xu * m->fib[i][1] + yu * m->fib[i][0] + warp;
            double n = demo_vnoise(sd ^ (0xb0 + (uint64_t)i), u / 40, v / 3.5);
            double ridge = 1 - fabs(2 * n - 1);
            f += (i == 0 ? 0.65 : 0.35) * ridge * ridge * ridge;
        }
        fibre = 0.3 + w * (f - 0.3);
    }
    *ce = (0.10 + 0.32 * fibre) * (0.65 + 0.5 * low);
    if (m->o.stain == DEMO_STAIN_HDAB) *ce *= 0.12; /* no eosin: a trace of DAB background */
    double haze = 0.5, wh = band_weight(15 * m->px_per_um, ds);
    if (wh > 0) haze = 0.5 + wh * (demo_vnoise(sd ^ 0xa3, xu / 15, yu / 15) - 0.5);
    *ch = 0.035 + 0.04 * haze;
}

/* Chromatin texture: a factor around 1 at a 1 um scale. */
static double chromatin(const demo_model *m, double x, double y, double ds) {
    double w = band_weight(1.0 * m->px_per_um, ds);
    if (w <= 0) return 1;
    double n = demo_vnoise(m->o.seed * 0xc2b2ae3d27d4eb4full ^ 0xc1, x / m->px_per_um,
                           y / m->px_per_um);
    return 1 + w * 0.4 * (n - 0.5);
}

/* Transmitted grey level of optical density od. */
static inline double transmit(const demo_model *m, double od) {
    int i = (int)(od * DEMO_LUT_SCALE);
    return m->lut[i < 0 ? 0 : i >= DEMO_LUT_SIZE ? DEMO_LUT_SIZE - 1 : i];
}

/* Pass 1 for one output row: classifies its w * k * k sub-samples;
 * returns how many are tissue. */
static int classify_row(const demo_model *m, demo_scratch *s, double ds, int k, int64_t x0,
                        int64_t y, int w) {
    double step = ds / k;
    int tissue = 0, kk = k * k;
    for (int j = 0; j < k; j++) {
        double ys = y * ds + (j + 0.5) * step;
        int n = demo_model_crossings(m, ys, s->xs), p = 0;
        bool inside = false;
        const cellrow *r = window_row(m, s, (int64_t)(ys / m->cell));
        for (int X = 0; X < w; X++)
            for (int i = 0; i < k; i++) {
                double xs = (x0 + X) * ds + (i + 0.5) * step;
                while (p < n && s->xs[p] < xs) inside = !inside, p++;
                subsample *sub = &s->subs[X * kk + j * k + i];
                sub->tissue = inside;
                sub->nuc = NULL;
                sub->cov = 0;
                if (!inside) continue;
                tissue++;
                sub->nuc = nucleus_at(m, s, r, xs, ys, &sub->cov);
            }
    }
    return tissue;
}

/* Three roughly Gaussian values of sd m->o.noise for the pixel at
 * (x, y): sums of four uniforms from a hash (Irwin-Hall, sd 1 after
 * scaling), one per channel. */
static void gauss3(const demo_model *m, double x, double y, double out[3]) {
    uint64_t a = demo_hash(m->o.seed ^ 0x6a55, (int64_t)(x * 4), (int64_t)(y * 4));
    uint64_t b = demo_hash(m->o.seed ^ 0x6a56, (int64_t)(x * 4), (int64_t)(y * 4));
    for (int c = 0; c < 3; c++) {
        double sum = (double)((a >> (16 * c)) & 0xffff) + (double)((b >> (16 * c)) & 0xffff) +
                     (double)((a >> (16 * c + 8)) & 0xff) * 256 + (double)((b >> 48) & 0xffff);
        out[c] = (sum / 65536.0 - 2.0) * 1.7320508 * m->o.noise;
    }
}

/* Pass 2: one output pixel from its sub-samples. */
static void shade_pixel(const demo_model *m, const subsample *subs, int kk, double ds, int k,
                        double x, double y, uint8_t *out) {
    double sum[3] = {0, 0, 0}, sh = 0, se = 0, chrom = 0;
    int n_tissue = 0;
    bool have_stroma = false, have_chrom = false;
    for (int i = 0; i < kk; i++) {
        const subsample *sub = &subs[i];
        if (!sub->tissue) {
            for (int c = 0; c < 3; c++) sum[c] += DEMO_BG;
            continue;
        }
        n_tissue++;
        if (!have_stroma) stroma_conc(m, x, y, ds, &sh, &se), have_stroma = true;
        double ch = sh, ce = se;
        if (sub->nuc != NULL) {
            if (!have_chrom) chrom = chromatin(m, x, y, ds), have_chrom = true;
            double c = sub->cov;
            ch = c * sub->nuc->conc * chrom + (1 - c) * sh;
            ce = c * sub->nuc->eosin + (1 - c) * se;
        }
        for (int c = 0; c < 3; c++) sum[c] += transmit(m, ch * m->v1[c] + ce * m->v2[c]);
    }
    uint64_t h = demo_hash(m->o.seed ^ 0x5eed, (int64_t)(x * 4), (int64_t)(y * 4));
    double amp = (double)n_tissue / kk / k;
    double extra[3] = {0, 0, 0};
    if (m->o.noise > 0) gauss3(m, x, y, extra);
    for (int c = 0; c < 3; c++) {
        double noise = (double)((int)((h >> (8 * c)) % 7) - 3) * amp + extra[c] * amp * k;
        double v = sum[c] / kk + noise + 0.5;
        out[c] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
    }
}

/* Whether the level-0 rectangle touches a region's bounding box. */
static bool touches_tissue(const demo_model *m, double x0, double y0, double x1, double y1) {
    for (int i = 0; i < m->n_regions; i++) {
        const demo_region *g = &m->regions[i];
        if (x1 >= g->minx && x0 <= g->maxx && y1 >= g->miny && y0 <= g->maxy) return true;
    }
    return false;
}

bool demo_render_tile(const demo_model *m, demo_scratch *s, int level, int64_t lw, int64_t lh,
                      int64_t tx, int64_t ty, uint8_t *rgb, int64_t *tissue_px) {
    int T = s->tile_size, k = level >= 2 ? MAX_K : 1 << level, kk = k * k;
    double ds = (double)((int64_t)1 << level);
    int64_t x0 = tx * T, y0 = ty * T;
    int w = (int)(lw - x0 < T ? lw - x0 : T), h = (int)(lh - y0 < T ? lh - y0 : T);
    memset(rgb, DEMO_BG, (size_t)T * T * 3);
    if (!touches_tissue(m, x0 * ds, y0 * ds, (x0 + w) * ds, (y0 + h) * ds)) return true;
    int64_t c0 = (int64_t)(x0 * ds / m->cell), c1 = (int64_t)((x0 + w) * ds / m->cell);
    window_reset(s, c0, (int)(c1 - c0 + 1), (int)ceil(ds / m->cell) + 2);
    int64_t tissue = 0;
    for (int Y = 0; Y < h; Y++) {
        int n = classify_row(m, s, ds, k, x0, y0 + Y, w);
        tissue += n;
        if (n == 0) continue;
        for (int X = 0; X < w; X++)
            shade_pixel(m, &s->subs[X * kk], kk, ds, k, (x0 + X + 0.5) * ds,
                        (y0 + Y + 0.5) * ds, &rgb[((size_t)Y * T + X) * 3]);
    }
    if (level == 0) *tissue_px += tissue;
    return tissue == 0;
}
