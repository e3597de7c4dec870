/*
 * demo_model.c - see demo_model.h: tissue regions, the edge index, the
 * nucleus grid and the noise functions of the synthetic slide.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "image/demo_model.h"
#include "util/util.h"

#define TAU 6.283185307179586

/* Salts keep the random streams of different purposes independent. */
enum {
    SALT_LAYOUT = 0x11,
    SALT_REGION = 0x22,
    SALT_HOLE = 0x33,
    SALT_CELL = 0x44,
    SALT_DENSITY = 0x55,
};

/* splitmix64's finaliser: a strong 64-bit mix. */
static inline uint64_t mix64(uint64_t z) {
    z += 0x9e3779b97f4a7c15ull;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

uint64_t demo_hash(uint64_t seed, int64_t a, int64_t b) {
    return mix64(seed ^ mix64((uint64_t)a * 0x9e3779b97f4a7c15ull ^
                              mix64((uint64_t)b + 0x632be59bd9b4e019ull)));
}

/* A random stream: uniform doubles in [0, 1). */
typedef struct rng {
    uint64_t s;
} rng;

static double rnd(rng *r) {
    r->s += 0x9e3779b97f4a7c15ull;
    return (double)(mix64(r->s) >> 11) * (1.0 / 9007199254740992.0);
}

static double rnd_in(rng *r, double lo, double hi) { return lo + (hi - lo) * rnd(r); }

/* One lattice value in [0, 1): a single mix, as value noise calls it often. */
static inline double lattice(uint64_t seed, int64_t ix, int64_t iy) {
    uint64_t h = mix64((uint64_t)ix * 0x9e3779b97f4a7c15ull +
                       (uint64_t)iy * 0xc2b2ae3d27d4eb4full + seed);
    return (double)(h >> 11) * (1.0 / 9007199254740992.0);
}

/* Bilinear value noise with smoothstep weights. */
double demo_vnoise(uint64_t seed, double x, double y) {
    double fx = floor(x), fy = floor(y);
    int64_t ix = (int64_t)fx, iy = (int64_t)fy;
    double tx = x - fx, ty = y - fy;
    tx = tx * tx * (3 - 2 * tx);
    ty = ty * ty * (3 - 2 * ty);
    double a = lattice(seed, ix, iy), b = lattice(seed, ix + 1, iy);
    double c = lattice(seed, ix, iy + 1), d = lattice(seed, ix + 1, iy + 1);
    double top = a + (b - a) * tx, bottom = c + (d - c) * tx;
    return top + (bottom - top) * ty;
}

/* A star-shaped closed curve r(t) = 1 + sum a_k cos(k t + p_k), k = k0..k0+n-1,
 * with the amplitudes summing to `total` so that r stays in [1-total, 1+total]. */
typedef struct harmonics {
    int k0, n;
    double a[6], p[6];
} harmonics;

static void harmonics_draw(rng *r, harmonics *h, int k0, int n, double total) {
    double sum = 0;
    h->k0 = k0;
    h->n = n;
    for (int i = 0; i < n; i++) {
        h->a[i] = rnd_in(r, 0.2, 1.0) / pow(i + 1, 0.7);
        h->p[i] = rnd_in(r, 0, TAU);
        sum += h->a[i];
    }
    for (int i = 0; i < n; i++) h->a[i] *= total / sum;
}

static double harmonics_eval(const harmonics *h, double t) {
    double v = 1;
    for (int i = 0; i < h->n; i++) v += h->a[i] * cos((h->k0 + i) * t + h->p[i]);
    return v;
}

/* A ring of n vertices at uniform angles: centre + (rx, ry) * r(t) * (cos t, sin t);
 * counter-clockwise (positive area) unless `hole`. */
static void star_ring(contour_ring *ring, int n, double cx, double cy, double rx, double ry,
                      const harmonics *h, bool hole) {
    ring->pts = ts_malloc((size_t)n * sizeof(pt2));
    ring->n = (size_t)n;
    ring->parent = hole ? 0 : -1;
    for (int i = 0; i < n; i++) {
        double t = TAU * i / n;
        double f = harmonics_eval(h, t);
        int j = hole ? (n - i) % n : i;
        ring->pts[j].x = cx + rx * f * cos(t);
        ring->pts[j].y = cy + ry * f * sin(t);
    }
}

/* Distance from p to segment ab. */
static double seg_dist(double px, double py, double ax, double ay, double bx, double by) {
    double ex = bx - ax, ey = by - ay, l2 = ex * ex + ey * ey;
    double t = l2 > 0 ? ((px - ax) * ex + (py - ay) * ey) / l2 : 0;
    t = t < 0 ? 0 : t > 1 ? 1 : t;
    double dx = ax + t * ex - px, dy = ay + t * ey - py;
    return sqrt(dx * dx + dy * dy);
}

/* Smallest distance from p to the ring's edges. */
static double ring_dist(const contour_ring *r, double px, double py) {
    double best = INFINITY;
    for (size_t i = 0; i < r->n; i++) {
        const pt2 *a = &r->pts[i], *b = &r->pts[(i + 1) % r->n];
        double d = seg_dist(px, py, a->x, a->y, b->x, b->y);
        if (d < best) best = d;
    }
    return best;
}

/* Places up to 3 holes (vessels, fat) well inside the region's outer ring
 * and apart from each other; some regions get none. */
static void region_holes(demo_region *g, rng *r, double cx, double cy, double rx, double ry) {
    int want = rnd(r) < 0.4 ? 0 : 1 + (int)(rnd(r) * 3);
    double rmin = fmin(rx, ry);
    double hc[DEMO_MAX_HOLES][3];
    for (int attempt = 0; attempt < 40 && g->n_rings - 1 < want; attempt++) {
        double hr = rmin * rnd_in(r, 0.05, 0.13), asp = rnd_in(r, 1.0, 1.4);
        double t = rnd_in(r, 0, TAU), rho = sqrt(rnd(r)) * 0.6;
        double hx = cx + rx * rho * cos(t), hy = cy + ry * rho * sin(t);
        harmonics h;
        harmonics_draw(r, &h, 2, 3, 0.15);
        double ext = hr * asp * 1.15;
        bool ok = ring_dist(&g->rings[0], hx, hy) > ext + 0.06 * rmin;
        for (int i = 0; ok && i < g->n_rings - 1; i++)
            ok = hypot(hx - hc[i][0], hy - hc[i][1]) > ext + hc[i][2] + 0.04 * rmin;
        if (!ok) continue;
        hc[g->n_rings - 1][0] = hx, hc[g->n_rings - 1][1] = hy, hc[g->n_rings - 1][2] = ext;
        star_ring(&g->rings[g->n_rings], DEMO_HOLE_VERTS, hx, hy, hr * asp, hr, &h, true);
        g->n_rings++;
    }
}

/* Lays out 2..5 regions on a grid of cells (one region per cell, a cell
 * left empty when 5 are laid on 6), each an irregular star filling about
 * 40% of its cell, so tissue covers roughly 30-45% of the slide. */
static void make_regions(demo_model *m) {
    rng r = {demo_hash(m->o.seed, SALT_LAYOUT, 0)};
    int n = 2 + (int)(rnd(&r) * 4);
    int cols = n == 2 ? 2 : n == 3 ? 3 : n == 4 ? 2 : 3, rows = n <= 3 ? 1 : 2;
    if (m->o.height > m->o.width) {
        int t = cols;
        cols = rows, rows = t;
    }
    int skip = n == 5 ? (int)(rnd(&r) * 6) : -1;
    double cw = (double)m->o.width / cols, ch = (double)m->o.height / rows;
    for (int c = 0, placed = 0; c < cols * rows && placed < n; c++) {
        if (c == skip) continue;
        rng rr = {demo_hash(m->o.seed, SALT_REGION, c)};
        double cx = (c % cols + 0.5 + rnd_in(&rr, -0.03, 0.03)) * cw;
        double cy = (c / cols + 0.5 + rnd_in(&rr, -0.03, 0.03)) * ch;
        double rx = 0.36 * cw, ry = 0.36 * ch;
        harmonics h;
        harmonics_draw(&rr, &h, 2, 5, rnd_in(&rr, 0.12, 0.25));
        demo_region *g = &m->regions[placed++];
        star_ring(&g->rings[0], DEMO_REGION_VERTS, cx, cy, rx, ry, &h, false);
        g->n_rings = 1;
        region_holes(g, &rr, cx, cy, rx, ry);
        g->minx = g->miny = INFINITY, g->maxx = g->maxy = -INFINITY;
        for (size_t i = 0; i < g->rings[0].n; i++) {
            const pt2 *p = &g->rings[0].pts[i];
            g->minx = fmin(g->minx, p->x), g->maxx = fmax(g->maxx, p->x);
            g->miny = fmin(g->miny, p->y), g->maxy = fmax(g->maxy, p->y);
        }
        m->n_regions = placed;
    }
}

/* Collects every ring edge and indexes them by horizontal band. */
static void make_edge_index(demo_model *m) {
    size_t n = 0;
    for (int i = 0; i < m->n_regions; i++)
        for (int j = 0; j < m->regions[i].n_rings; j++) n += m->regions[i].rings[j].n;
    m->edges = ts_malloc(n * sizeof(demo_edge));
    for (int i = 0; i < m->n_regions; i++)
        for (int j = 0; j < m->regions[i].n_rings; j++) {
            const contour_ring *ring = &m->regions[i].rings[j];
            for (size_t k = 0; k < ring->n; k++) {
                const pt2 *a = &ring->pts[k], *b = &ring->pts[(k + 1) % ring->n];
                m->edges[m->n_edges++] = (demo_edge){a->x, a->y, b->x, b->y};
            }
        }
    m->band_h = fmax(32.0, m->cell);
    m->n_bands = (int)ceil((double)m->o.height / m->band_h) + 1;
    m->band_start = ts_calloc((size_t)m->n_bands + 1, sizeof(uint32_t));
    for (int pass = 0; pass < 2; pass++) {
        uint32_t *fill = pass ? ts_calloc((size_t)m->n_bands, sizeof(uint32_t)) : NULL;
        for (size_t e = 0; e < m->n_edges; e++) {
            const demo_edge *d = &m->edges[e];
            int b0 = (int)floor(fmin(d->y0, d->y1) / m->band_h);
            int b1 = (int)floor(fmax(d->y0, d->y1) / m->band_h);
            b0 = b0 < 0 ? 0 : b0, b1 = b1 >= m->n_bands ? m->n_bands - 1 : b1;
            for (int b = b0; b <= b1; b++) {
                if (pass == 0) m->band_start[b + 1]++;
                else m->band_edges[m->band_start[b] + fill[b]++] = (uint32_t)e;
            }
        }
        if (pass == 0) {
            for (int b = 0; b < m->n_bands; b++) m->band_start[b + 1] += m->band_start[b];
            m->band_edges = ts_malloc((size_t)m->band_start[m->n_bands] * sizeof(uint32_t) + 4);
        }
        free(fill);
    }
}

/* The band holding y, clamped to the index. */
static int band_of(const demo_model *m, double y) {
    int b = (int)floor(y / m->band_h);
    return b < 0 ? 0 : b >= m->n_bands ? m->n_bands - 1 : b;
}

/* Optical density -> transmitted grey level, 255 * 10^-od. */
static void make_lut(demo_model *m) {
    for (int i = 0; i < DEMO_LUT_SIZE; i++)
        m->lut[i] = (float)(255.0 * pow(10.0, -(i + 0.5) / DEMO_LUT_SCALE));
}

/* v turned by deg degrees about axis a (Rodrigues), kept positive and of
 * unit length. */
static void turn(double v[3], const double a[3], double deg) {
    double t = deg * TAU / 360, c = cos(t), s = sin(t);
    double d = v[0] * a[0] + v[1] * a[1] + v[2] * a[2];
    double x[3] = {a[1] * v[2] - a[2] * v[1], a[2] * v[0] - a[0] * v[2], a[0] * v[1] - a[1] * v[0]};
    double len = 0;
    for (int k = 0; k < 3; k++) {
        v[k] = v[k] * c + x[k] * s + a[k] * d * (1 - c);
        v[k] = v[k] < 0.01 ? 0.01 : v[k];
        len += v[k] * v[k];
    }
    for (int k = 0; k < 3; k++) v[k] /= sqrt(len);
}

/* Ruifrok-Johnston H&E or H-DAB, each vector turned by up to hue_deg
 * about a random axis: another lab's or scanner's colours. */
static void make_stains(demo_model *m) {
    static const double h[3] = {0.65, 0.70, 0.29}, e[3] = {0.07, 0.99, 0.11},
                        d[3] = {0.27, 0.57, 0.78};
    const double *second = m->o.stain == DEMO_STAIN_HDAB ? d : e;
    double lh = sqrt(h[0] * h[0] + h[1] * h[1] + h[2] * h[2]);
    double l2 = sqrt(second[0] * second[0] + second[1] * second[1] + second[2] * second[2]);
    for (int k = 0; k < 3; k++) m->v1[k] = h[k] / lh, m->v2[k] = second[k] / l2;
    if (m->o.hue_deg <= 0) return;
    rng r = {demo_hash(m->o.seed, SALT_LAYOUT, 2)};
    for (int i = 0; i < 2; i++) {
        double a[3] = {rnd_in(&r, -1, 1), rnd_in(&r, -1, 1), rnd_in(&r, -1, 1)};
        double la = sqrt(a[0] * a[0] + a[1] * a[1] + a[2] * a[2]);
        for (int k = 0; k < 3; k++) a[k] /= la;
        turn(i == 0 ? m->v1 : m->v2, a, m->o.hue_deg * rnd_in(&r, 0.5, 1.0));
    }
}

void demo_model_init(demo_model *m, const demo_options *o) {
    memset(m, 0, sizeof(*m));
    m->o = *o;
    m->px_per_um = 1.0 / o->mpp;
    m->gap = fmax(1.0 * m->px_per_um, 2.0);
    /* The largest nucleus reaches 9.6 um from its centre (radius 6 um,
     * aspect 2, irregularity); a cell holds it with the gap to spare. */
    m->cell = fmax(24.0 * m->px_per_um, 2 * 1.6 * o->rmax_um * m->px_per_um + m->gap + 2);
    m->cell_cols = (int64_t)ceil((double)o->width / m->cell);
    m->cell_rows = (int64_t)ceil((double)o->height / m->cell);
    rng r = {demo_hash(o->seed, SALT_LAYOUT, 1)};
    for (int i = 0; i < 2; i++) {
        double a = rnd_in(&r, 0, TAU);
        m->fib[i][0] = cos(a), m->fib[i][1] = sin(a);
    }
    make_regions(m);
    make_edge_index(m);
    make_lut(m);
    make_stains(m);
    m->ramp = fmax(1.0, 2 * o->blur_um * m->px_per_um);
}

void demo_model_free(demo_model *m) {
    for (int i = 0; i < m->n_regions; i++)
        for (int j = 0; j < m->regions[i].n_rings; j++) free(m->regions[i].rings[j].pts);
    free(m->edges);
    free(m->band_start);
    free(m->band_edges);
    memset(m, 0, sizeof(*m));
}

/* Even-odd: crossings of the ray from x to the left. */
bool demo_model_in_tissue(const demo_model *m, double x, double y) {
    int b = band_of(m, y);
    bool inside = false;
    for (uint32_t i = m->band_start[b]; i < m->band_start[b + 1]; i++) {
        const demo_edge *e = &m->edges[m->band_edges[i]];
        if ((e->y0 <= y) == (e->y1 <= y)) continue;
        double xc = e->x0 + (y - e->y0) * (e->x1 - e->x0) / (e->y1 - e->y0);
        if (xc < x) inside = !inside;
    }
    return inside;
}

int demo_model_crossings(const demo_model *m, double y, double *xs) {
    int b = band_of(m, y), n = 0;
    for (uint32_t i = m->band_start[b]; i < m->band_start[b + 1]; i++) {
        const demo_edge *e = &m->edges[m->band_edges[i]];
        if ((e->y0 <= y) == (e->y1 <= y)) continue;
        double xc = e->x0 + (y - e->y0) * (e->x1 - e->x0) / (e->y1 - e->y0);
        int j = n++;
        while (j > 0 && xs[j - 1] > xc) xs[j] = xs[j - 1], j--;
        xs[j] = xc;
    }
    return n;
}

/* Whether the disc (x, y, r) lies in tissue, clear of every edge. */
static bool disc_in_tissue(const demo_model *m, double x, double y, double r) {
    if (!demo_model_in_tissue(m, x, y)) return false;
    int b0 = band_of(m, y - r), b1 = band_of(m, y + r);
    for (int b = b0; b <= b1; b++)
        for (uint32_t i = m->band_start[b]; i < m->band_start[b + 1]; i++) {
            const demo_edge *e = &m->edges[m->band_edges[i]];
            if (fmin(e->x0, e->x1) > x + r || fmax(e->x0, e->x1) < x - r ||
                fmin(e->y0, e->y1) > y + r || fmax(e->y0, e->y1) < y - r)
                continue;
            if (seg_dist(x, y, e->x0, e->y0, e->x1, e->y1) <= r) return false;
        }
    return true;
}


/* ---- nuclei ---- */

/* A nucleus's shape before placement: an ellipse with a slightly
 * irregular outline (harmonics 3..5). */
typedef struct nuc_shape {
    double a, b, ori;
    harmonics h;
} nuc_shape;

/* Equivalent radius rmin..rmax um (skewed to small), aspect 1..asp_max. */
static void nuc_draw_shape(rng *r, double px_per_um, double rmin, double rmax, double asp_max,
                           nuc_shape *s) {
    double req = (rmin + (rmax - rmin) * pow(rnd(r), 1.3)) * px_per_um;
    double asp = 1 + (asp_max - 1) * pow(rnd(r), 1.5);
    s->a = req * sqrt(asp);
    s->b = req / sqrt(asp);
    s->ori = rnd_in(r, 0, TAU);
    harmonics_draw(r, &s->h, 3, 3, rnd_in(r, 0.03, 0.10));
}

/* Recomputes the bounding box and the inverse edge lengths. */
static void nuc_finish(demo_nucleus *n) {
    n->minx = n->miny = INFINITY, n->maxx = n->maxy = -INFINITY;
    for (int j = 0; j < DEMO_NUC_VERTS; j++) {
        const pt2 *a = &n->v[j], *b = &n->v[(j + 1) % DEMO_NUC_VERTS];
        n->minx = fmin(n->minx, a->x), n->maxx = fmax(n->maxx, a->x);
        n->miny = fmin(n->miny, a->y), n->maxy = fmax(n->maxy, a->y);
        double l = hypot(b->x - a->x, b->y - a->y);
        n->inv_len[j] = l > 0 ? 1 / l : 0;
    }
}

/* The polygon of shape s, scaled, centred at (cx, cy). */
static void nuc_build(demo_nucleus *n, const nuc_shape *s, double scale, double cx, double cy) {
    n->cx = cx, n->cy = cy;
    for (int j = 0; j < DEMO_NUC_VERTS; j++) {
        double t = TAU * j / DEMO_NUC_VERTS, dt = t - s->ori;
        double ca = cos(dt) / s->a, sb = sin(dt) / s->b;
        double r = scale * harmonics_eval(&s->h, t) / sqrt(ca * ca + sb * sb);
        n->v[j].x = cx + r * cos(t);
        n->v[j].y = cy + r * sin(t);
    }
    nuc_finish(n);
}

static void nuc_translate(demo_nucleus *n, double dx, double dy) {
    n->cx += dx, n->cy += dy;
    for (int j = 0; j < DEMO_NUC_VERTS; j++) n->v[j].x += dx, n->v[j].y += dy;
    n->minx += dx, n->maxx += dx, n->miny += dy, n->maxy += dy;
}

/* Largest distance from the centre to a vertex. */
static double nuc_reach(const demo_nucleus *n) {
    double best = 0;
    for (int j = 0; j < DEMO_NUC_VERTS; j++)
        best = fmax(best, hypot(n->v[j].x - n->cx, n->v[j].y - n->cy));
    return best;
}

double demo_nucleus_coverage(const demo_nucleus *n, double x, double y) {
    double t = atan2(y - n->cy, x - n->cx);
    if (t < 0) t += TAU;
    int j = (int)(t * (DEMO_NUC_VERTS / TAU));
    if (j >= DEMO_NUC_VERTS) j = DEMO_NUC_VERTS - 1;
    const pt2 *a = &n->v[j], *b = &n->v[(j + 1) % DEMO_NUC_VERTS];
    double cross = (b->x - a->x) * (y - a->y) - (b->y - a->y) * (x - a->x);
    double c = 0.5 + cross * n->inv_len[j] / n->ramp;
    return c < 0 ? 0 : c > 1 ? 1 : c;
}

double demo_nucleus_area(const demo_nucleus *n) {
    double s = 0;
    for (int j = 0; j < DEMO_NUC_VERTS; j++) {
        const pt2 *a = &n->v[j], *b = &n->v[(j + 1) % DEMO_NUC_VERTS];
        s += a->x * b->y - b->x * a->y;
    }
    return s / 2;
}

/* Whether two nuclei overlap (a vertex of one inside the other). */
static bool nuc_overlap(const demo_nucleus *p, const demo_nucleus *q) {
    if (p->maxx < q->minx || q->maxx < p->minx || p->maxy < q->miny || q->maxy < p->miny)
        return false;
    for (int j = 0; j < DEMO_NUC_VERTS; j++)
        if (demo_nucleus_coverage(q, p->v[j].x, p->v[j].y) > 0.5 ||
            demo_nucleus_coverage(p, q->v[j].x, q->v[j].y) > 0.5)
            return true;
    return false;
}

static bool overlaps_any(const demo_nucleus *n, const demo_nucleus *placed, int count) {
    for (int i = 0; i < count; i++)
        if (nuc_overlap(n, &placed[i])) return true;
    return false;
}

/* Puts nucleus `out[k]` (shape s) along direction ang from the first, at
 * 97% of the smallest distance where it touches none of out[0..k-1]: the
 * cluster touches with a sliver of overlap (well under 5% of an area). */
static void place_member(demo_nucleus *out, int k, const nuc_shape *s, double scale, double ang) {
    double c = cos(ang), sn = sin(ang), lo = 0, hi = 0;
    for (int i = 0; i < k; i++) hi += 2 * nuc_reach(&out[i]);
    nuc_build(&out[k], s, scale, 0, 0);
    hi += 2 * nuc_reach(&out[k]);
    for (int it = 0; it < 24; it++) {
        double mid = (lo + hi) / 2;
        nuc_build(&out[k], s, scale, out[0].cx + mid * c, out[0].cy + mid * sn);
        if (overlaps_any(&out[k], out, k)) lo = mid;
        else hi = mid;
    }
    nuc_build(&out[k], s, scale, out[0].cx + 0.97 * hi * c, out[0].cy + 0.97 * hi * sn);
}

/* Bounding box of nuclei out[0..n-1]. */
static void group_bbox(const demo_nucleus *out, int n, double bb[4]) {
    bb[0] = bb[1] = INFINITY, bb[2] = bb[3] = -INFINITY;
    for (int i = 0; i < n; i++) {
        bb[0] = fmin(bb[0], out[i].minx), bb[1] = fmin(bb[1], out[i].miny);
        bb[2] = fmax(bb[2], out[i].maxx), bb[3] = fmax(bb[3], out[i].maxy);
    }
}

/* A touching cluster of `count` small nuclei around the first, shrunk
 * until it fits a cell (half-size `avail`). Returns count, or 0. */
static int make_cluster(const demo_model *m, rng *r, int count, double avail,
                        demo_nucleus *out) {
    nuc_shape s[DEMO_CELL_MAX];
    double ang[DEMO_CELL_MAX], a0 = rnd_in(r, 0, TAU);
    for (int i = 0; i < count; i++) {
        nuc_draw_shape(r, m->px_per_um, m->o.rmin_um,
                       m->o.rmin_um + 0.57 * (m->o.rmax_um - m->o.rmin_um), 1.5, &s[i]);
        ang[i] = a0 + TAU * (i - 1) / (count - 1) + rnd_in(r, -0.3, 0.3);
    }
    for (double scale = 1.0; scale > 0.5; scale *= 0.85) {
        nuc_build(&out[0], &s[0], scale, 0, 0);
        for (int i = 1; i < count; i++) place_member(out, i, &s[i], scale, ang[i]);
        double bb[4];
        group_bbox(out, count, bb);
        if (bb[2] - bb[0] <= 2 * avail && bb[3] - bb[1] <= 2 * avail) return count;
    }
    return 0;
}

/* Whether the cell's centre is near a region (cheap rejection). */
static bool near_region(const demo_model *m, double x, double y) {
    for (int i = 0; i < m->n_regions; i++) {
        const demo_region *g = &m->regions[i];
        if (x >= g->minx - m->cell && x <= g->maxx + m->cell && y >= g->miny - m->cell &&
            y <= g->maxy + m->cell)
            return true;
    }
    return false;
}

/* Occupancy probability of a cell: smooth sparse/dense areas (scales of
 * 350 and 120 um, from about 0.1 to nearly 1) times the density option. */
static double cell_probability(const demo_model *m, double x, double y) {
    double xu = x / m->px_per_um, yu = y / m->px_per_um;
    double f = 0.65 * demo_vnoise(m->o.seed ^ (SALT_DENSITY * 0x1000193ull), xu / 350, yu / 350) +
               0.35 * demo_vnoise(m->o.seed ^ (SALT_DENSITY * 0x2000193ull), xu / 120, yu / 120);
    f = (f - 0.5) * 1.8 + 0.5; /* value noise hugs 0.5: stretch it to [0, 1] */
    f = f < 0 ? 0 : f > 1 ? 1 : f;
    double p = m->o.density * (0.1 + 1.0 * pow(f, 1.5));
    return p > 0.97 ? 0.97 : p;
}

/* Moves the group to a random place inside the cell shrunk by half the gap
 * and checks that every member lies in tissue, clear of its edges. */
static bool place_group(const demo_model *m, rng *r, int64_t col, int64_t row,
                        demo_nucleus *out, int count) {
    double bb[4], C = m->cell, g = m->gap / 2;
    group_bbox(out, count, bb);
    double lox = col * C + g - bb[0], hix = (col + 1) * C - g - bb[2];
    double loy = row * C + g - bb[1], hiy = (row + 1) * C - g - bb[3];
    double ux = rnd(r), uy = rnd(r);
    if (lox > hix || loy > hiy) return false;
    double dx = lox + (hix - lox) * ux, dy = loy + (hiy - loy) * uy;
    for (int i = 0; i < count; i++) nuc_translate(&out[i], dx, dy);
    for (int i = 0; i < count; i++)
        if (!disc_in_tissue(m, out[i].cx, out[i].cy, nuc_reach(&out[i]) + 1.5)) return false;
    return true;
}

int demo_cell_nuclei(const demo_model *m, int64_t col, int64_t row, demo_nucleus *out) {
    if (col < 0 || row < 0 || col >= m->cell_cols || row >= m->cell_rows) return 0;
    double cx = (col + 0.5) * m->cell, cy = (row + 0.5) * m->cell;
    if (!near_region(m, cx, cy)) return 0;
    rng r = {demo_hash(m->o.seed ^ SALT_CELL, col, row)};
    if (rnd(&r) >= cell_probability(m, cx, cy)) return 0;
    int count = 1;
    if (rnd(&r) < m->o.touching) count = 2 + (int)(rnd(&r) * 3);
    double avail = m->cell / 2 - m->gap / 2;
    if (count == 1) {
        nuc_shape s;
        nuc_draw_shape(&r, m->px_per_um, m->o.rmin_um, m->o.rmax_um, 2.0, &s);
        nuc_build(&out[0], &s, 1.0, 0, 0);
    } else {
        count = make_cluster(m, &r, count, avail, out);
        if (count == 0) return 0;
    }
    for (int i = 0; i < count; i++) {
        /* Hematoxylin (optical density before chromatin texture): small
         * nuclei dark (lymphocyte-like), large ones pale (vesicular), each
         * varied by +-15%: from about 0.2 to 0.7. */
        double req = sqrt(demo_nucleus_area(&out[i]) / M_PI) / m->px_per_um;
        double t = (req - m->o.rmin_um) / (m->o.rmax_um - m->o.rmin_um);
        t = t < 0 ? 0 : t > 1 ? 1 : t;
        out[i].conc = (0.6 - 0.35 * t) * (0.85 + 0.3 * rnd(&r)) * m->o.strength;
        out[i].eosin = 0.06 + 0.08 * rnd(&r);
        /* H-DAB: about 40% of nuclei are DAB-positive (brown). */
        if (m->o.stain == DEMO_STAIN_HDAB)
            out[i].eosin = rnd(&r) < 0.4 ? 0.2 + 0.5 * rnd(&r) : 0.02 * rnd(&r);
        out[i].cluster = count;
        out[i].ramp = m->ramp;
    }
    return place_group(m, &r, col, row, out, count) ? count : 0;
}
