/*
 * concave.c - see concave.h.
 */
#include "image/concave.h"

#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "image/contour.h"
#include "image/label.h"
#include "image/morph.h"
#include "util/util.h"

#define MAX_NOTCHES 32 /* the deepest notches of one outline considered */
#define MAX_TRIES 8    /* candidate cuts tried per piece, best ratio first */
#define CUT_HALF_WIDTH 0.75 /* pixels: a cut 1.5 px wide leaves no 4-connected passage */
#define INSIDE_SHARE 0.9    /* of the cut's inner samples that must lie in the piece */

#define BOTTOM 8          /* vertices kept per notch bottom */
#define BOTTOM_SLACK 0.5  /* pixels: vertices this close to the deepest are its bottom too */

/* A notch: its depth and the vertices of its bottom (a digitised notch is
 * often flat-bottomed; the cut takes the closest pair of bottoms). */
typedef struct notch {
    pt2 bottom[BOTTOM];
    int nb;
    double depth;
} notch;

typedef struct cut {
    pt2 a, b;
    double ratio;
} cut;

/* Scratch for one object's box. */
typedef struct box {
    int32_t *loc;  /* local labels of the object's pieces, 0 outside */
    int32_t *comp; /* components after a tentative cut */
    uint8_t *m;
    int w, h;
} box;

static int cmp_pt(const void *a, const void *b) {
    const pt2 *p = a, *q = b;
    if (p->x != q->x) return (p->x > q->x) - (p->x < q->x);
    return (p->y > q->y) - (p->y < q->y);
}

static double cross(pt2 o, pt2 a, pt2 b) {
    return (a.x - o.x) * (b.y - o.y) - (a.y - o.y) * (b.x - o.x);
}

/* The convex hull of pts (Andrew's monotone chain) into hull (room for
 * 2n + 1 points), counter-clockwise in a y-up frame, without collinear
 * points; returns its vertex count. */
static size_t convex_hull(const pt2 *pts, size_t n, pt2 *hull) {
    size_t k = 0;
    pt2 *s = ts_malloc(n * sizeof(pt2));
    memcpy(s, pts, n * sizeof(pt2));
    qsort(s, n, sizeof(pt2), cmp_pt);
    for (size_t i = 0; i < n; i++) {
        while (k >= 2 && cross(hull[k - 2], hull[k - 1], s[i]) <= 0) k--;
        hull[k++] = s[i];
    }
    for (size_t i = n - 1, t = k + 1; i-- > 0;) {
        while (k >= t && cross(hull[k - 2], hull[k - 1], s[i]) <= 0) k--;
        hull[k++] = s[i];
    }
    free(s);
    return k > 1 ? k - 1 : k; /* the first point closes the chain */
}

/* The area of the convex hull of the ring's vertices. */
static double hull_area(const contour_ring *ring) {
    pt2 *hull = ts_malloc((2 * ring->n + 1) * sizeof(pt2));
    size_t k = convex_hull(ring->pts, ring->n, hull);
    double a = k >= 3 ? fabs(contour_area(hull, k)) : 0;
    free(hull);
    return a;
}

/* Marks in on_hull[] the ring's vertices that are corners of its convex
 * hull (a vertex is a hull corner when its coordinates are). */
static void hull_corners(const contour_ring *ring, uint8_t *on_hull) {
    pt2 *hull = ts_malloc((2 * ring->n + 1) * sizeof(pt2));
    size_t k = convex_hull(ring->pts, ring->n, hull);
    qsort(hull, k, sizeof(pt2), cmp_pt);
    for (size_t i = 0; i < ring->n; i++)
        on_hull[i] = bsearch(&ring->pts[i], hull, k, sizeof(pt2), cmp_pt) != NULL;
    free(hull);
}

/* The deepest vertex of each stretch of the outline between two hull
 * corners (a notch), when at least min_depth from the hull edge that
 * spans it. Returns how many (at most MAX_NOTCHES, the deepest kept). */
static int find_notches(const contour_ring *ring, float min_depth, notch *out) {
    size_t n = ring->n;
    uint8_t *on_hull = ts_malloc(n);
    hull_corners(ring, on_hull);
    size_t start = 0;
    while (start < n && !on_hull[start]) start++;
    int count = 0;
    for (size_t done = 0, a = start; start < n && done < n;) {
        size_t b = (a + 1) % n, steps = 1;
        while (!on_hull[b]) b = (b + 1) % n, steps++;
        pt2 pa = ring->pts[a], pb = ring->pts[b];
        double len = hypot(pb.x - pa.x, pb.y - pa.y);
        notch best = {.depth = 0};
        for (size_t i = (a + 1) % n; i != b && len > 0; i = (i + 1) % n) {
            double d = fabs(cross(pa, pb, ring->pts[i])) / len;
            if (d > best.depth) best.depth = d;
        }
        for (size_t i = (a + 1) % n; i != b && len > 0 && best.nb < BOTTOM; i = (i + 1) % n)
            if (fabs(cross(pa, pb, ring->pts[i])) / len >= best.depth - BOTTOM_SLACK)
                best.bottom[best.nb++] = ring->pts[i];
        if (best.depth >= min_depth) {
            if (count < MAX_NOTCHES) {
                out[count++] = best;
            } else { /* replace the shallowest */
                int lo = 0;
                for (int k = 1; k < count; k++) lo = out[k].depth < out[lo].depth ? k : lo;
                if (best.depth > out[lo].depth) out[lo] = best;
            }
        }
        done += steps;
        a = b;
    }
    free(on_hull);
    return count;
}

static bool in_piece(const box *bx, int32_t l, double x, double y) {
    int ix = (int)floor(x), iy = (int)floor(y);
    return ix >= 0 && iy >= 0 && ix < bx->w && iy < bx->h && bx->loc[(size_t)iy * bx->w + ix] == l;
}

/* Whether the segment a-b (pixel corners) runs inside piece l: nearly all
 * samples of its inner 70% fall in the piece's pixels. */
static bool runs_inside(const box *bx, int32_t l, pt2 a, pt2 b) {
    double len = hypot(b.x - a.x, b.y - a.y);
    int k = (int)ceil(len * 4) + 1, in = 0, all = 0;
    for (int s = 0; s <= k; s++) {
        double t = 0.15 + 0.7 * s / k;
        all++;
        in += in_piece(bx, l, a.x + t * (b.x - a.x), a.y + t * (b.y - a.y));
    }
    return in >= INSIDE_SHARE * all;
}

static int cmp_cut(const void *a, const void *b) {
    double x = ((const cut *)a)->ratio, y = ((const cut *)b)->ratio;
    return (x < y) - (x > y);
}

/* Tries to cut piece l along a-b: pixels within CUT_HALF_WIDTH of the
 * segment are removed, the rest labelled 4-connected; the two largest
 * parts must each have min_area pixels. Then every pixel of the piece
 * goes to l or to nl by its side of the line. Returns whether it cut. */
static bool try_cut(box *bx, int32_t l, int32_t nl, pt2 a, pt2 b, float min_area) {
    size_t n = (size_t)bx->w * (size_t)bx->h;
    double dx = b.x - a.x, dy = b.y - a.y, len2 = dx * dx + dy * dy;
    for (size_t i = 0; i < n; i++) {
        bx->m[i] = 0;
        if (bx->loc[i] != l) continue;
        double px = (double)(i % bx->w) + 0.5 - a.x, py = (double)(i / bx->w) + 0.5 - a.y;
        double t = (px * dx + py * dy) / len2, d = fabs(px * dy - py * dx) / sqrt(len2);
        bx->m[i] = !(t >= -0.1 && t <= 1.1 && d <= CUT_HALF_WIDTH);
    }
    int k = label_components(bx->m, bx->w, bx->h, 4, bx->comp);
    if (k < 2) return false;
    double *area = ts_calloc((size_t)k + 1, sizeof(double));
    double *side = ts_calloc((size_t)k + 1, sizeof(double));
    for (size_t i = 0; i < n; i++) {
        int32_t c = bx->comp[i];
        if (c <= 0) continue;
        area[c] += 1;
        side[c] += ((double)(i % bx->w) + 0.5 - a.x) * dy - ((double)(i / bx->w) + 0.5 - a.y) * dx;
    }
    int c1 = 0, c2 = 0;
    for (int c = 1; c <= k; c++) {
        if (c1 == 0 || area[c] > area[c1]) c2 = c1, c1 = c;
        else if (c2 == 0 || area[c] > area[c2]) c2 = c;
    }
    bool ok = area[c2] >= min_area && (side[c1] > 0) != (side[c2] > 0);
    free(area);
    free(side);
    if (!ok) return false;
    for (size_t i = 0; i < n; i++) {
        if (bx->loc[i] != l) continue;
        double s = ((double)(i % bx->w) + 0.5 - a.x) * dy - ((double)(i / bx->w) + 0.5 - a.y) * dx;
        if (s < 0) bx->loc[i] = nl;
    }
    return true;
}

/* The outline whose notches are sought: piece l opened by p->smooth (a
 * ragged outline's thin spurs and the slits between them are not notches
 * between nuclei), traced from its raster-first pixel into *ring. False
 * when the opening leaves less than half of the piece. */
static bool smooth_outline(box *bx, int32_t l, const concave_params *p, contour_ring *ring) {
    size_t n = (size_t)bx->w * (size_t)bx->h, before = 0, after = 0;
    for (size_t i = 0; i < n; i++) {
        bx->m[i] = bx->loc[i] == l;
        before += bx->m[i];
    }
    if (p->smooth > 0) morph_open(bx->m, bx->w, bx->h, p->smooth);
    size_t first = n;
    for (size_t i = 0; i < n; i++) {
        bx->comp[i] = bx->m[i] ? 1 : 0;
        after += bx->m[i];
        if (bx->m[i] && first == n) first = i;
    }
    if (first == n || 2 * after < before) return false;
    return contour_trace_label(bx->comp, bx->w, bx->h, 1, (int)(first % (size_t)bx->w),
                               (int)(first / (size_t)bx->w), ring) == TS_OK;
}

/* The best cut of piece l that can be made, made: piece l keeps one side
 * and nl gets the other. Returns whether it cut. */
static bool cut_piece(box *bx, int32_t l, int32_t nl, const concave_params *p) {
    contour_ring ring = {0};
    if (!smooth_outline(bx, l, p, &ring)) {
        contour_ring_free(&ring);
        return false;
    }
    bool made = false;
    notch notches[MAX_NOTCHES];
    int k = ring.n >= 4 && contour_area(ring.pts, ring.n) >= 2 * p->min_area
                ? find_notches(&ring, p->min_depth, notches)
                : 0;
    cut cuts[MAX_NOTCHES * (MAX_NOTCHES - 1) / 2];
    int nc = 0;
    for (int i = 0; i < k; i++)
        for (int j = i + 1; j < k; j++) {
            cut c = {.ratio = 0};
            double len = INFINITY;
            for (int u = 0; u < notches[i].nb; u++)
                for (int v = 0; v < notches[j].nb; v++) {
                    pt2 a = notches[i].bottom[u], b = notches[j].bottom[v];
                    double d = hypot(a.x - b.x, a.y - b.y);
                    if (d < len) len = d, c.a = a, c.b = b;
                }
            if (len < 1) continue;
            c.ratio = (notches[i].depth + notches[j].depth) / len;
            if (c.ratio >= p->min_ratio) cuts[nc++] = c;
        }
    qsort(cuts, (size_t)nc, sizeof(cut), cmp_cut);
    for (int c = 0, tries = 0; c < nc && tries < MAX_TRIES && !made; c++) {
        pt2 a = cuts[c].a, b = cuts[c].b;
        if (!runs_inside(bx, l, a, b)) continue;
        tries++;
        made = try_cut(bx, l, nl, a, b, p->min_area);
    }
    contour_ring_free(&ring);
    return made;
}

double concave_solidity(const int32_t *labels, int w, int h, int32_t label, int sx, int sy) {
    contour_ring ring = {0};
    if (contour_trace_label(labels, w, h, label, sx, sy, &ring) != TS_OK) return 1;
    double hull = ring.n >= 3 ? hull_area(&ring) : 0;
    double s = hull > 0 ? contour_area(ring.pts, ring.n) / hull : 1;
    contour_ring_free(&ring);
    return s;
}

/* The solidity of piece l (its raster-first 4-connected part); 1 when it
 * has no pixel. */
static double solidity(box *bx, int32_t l) {
    size_t n = (size_t)bx->w * (size_t)bx->h;
    size_t first = 0;
    while (first < n && bx->loc[first] != l) first++;
    if (first == n) return 1;
    return concave_solidity(bx->loc, bx->w, bx->h, l, (int)(first % (size_t)bx->w),
                            (int)(first / (size_t)bx->w));
}

/* Cuts the object in bx (local label 1) as often as it allows; returns
 * the number of local labels used (1 = not cut). */
static int32_t cut_object(box *bx, const concave_params *p) {
    int32_t next = 2;
    int32_t queue[64];
    int qn = 0, cuts = 0;
    queue[qn++] = 1;
    while (qn > 0 && cuts < p->max_cuts) {
        int32_t l = queue[--qn];
        if (!cut_piece(bx, l, next, p)) continue;
        cuts++;
        if (qn + 2 <= (int)(sizeof(queue) / sizeof(queue[0]))) {
            queue[qn++] = l;
            queue[qn++] = next;
        }
        next++;
    }
    /* Cuts that leave a ragged piece were cutting a ragged outline, not
     * separating nuclei: the object stays whole. */
    for (int32_t l = 1; next > 2 && l < next; l++)
        if (solidity(bx, l) < p->min_solidity) return 1;
    return next - 1;
}

/* Whether the 8 labels from l on are all 0: one vectorised test. */
static inline bool concave_zero8(const int32_t *l) {
    int32_t any = 0;
    for (int k = 0; k < 8; k++) any |= l[k];
    return any == 0;
}

int concave_split(int32_t *labels, int w, int h, int *count, const concave_params *p) {
    if (labels == NULL || count == NULL || p == NULL || w < 1 || h < 1 || *count < 0)
        return TS_ERR;
    int n = *count;
    int (*bb)[4] = ts_malloc(((size_t)n + 1) * sizeof(*bb));
    double *area = ts_calloc((size_t)n + 1, sizeof(double));
    for (int l = 0; l <= n; l++) bb[l][0] = w, bb[l][1] = h, bb[l][2] = bb[l][3] = -1;
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            if (x + 8 <= w && concave_zero8(labels + (size_t)y * w + x)) {
                x += 7; /* background, most of a window */
                continue;
            }
            int32_t l = labels[(size_t)y * w + x];
            if (l <= 0 || l > n) continue;
            area[l] += 1;
            if (x < bb[l][0]) bb[l][0] = x;
            if (y < bb[l][1]) bb[l][1] = y;
            if (x > bb[l][2]) bb[l][2] = x;
            if (y > bb[l][3]) bb[l][3] = y;
        }
    box bx = {0};
    size_t cap = 0;
    for (int l = 1; l <= n; l++) {
        if (bb[l][2] < 0 || area[l] < 2 * p->min_area) continue;
        /* one pixel of padding: the hull and the tracer see the outline whole */
        int x0 = bb[l][0] - 1, y0 = bb[l][1] - 1;
        bx.w = bb[l][2] - x0 + 2;
        bx.h = bb[l][3] - y0 + 2;
        size_t need = (size_t)bx.w * (size_t)bx.h;
        if (need > cap) {
            cap = need;
            free(bx.loc);
            free(bx.comp);
            free(bx.m);
            bx.loc = ts_malloc(cap * sizeof(int32_t));
            bx.comp = ts_malloc(cap * sizeof(int32_t));
            bx.m = ts_malloc(cap);
        }
        for (int y = 0; y < bx.h; y++)
            for (int x = 0; x < bx.w; x++) {
                int gx = x + x0, gy = y + y0;
                bool in = gx >= 0 && gy >= 0 && gx < w && gy < h &&
                          labels[(size_t)gy * w + gx] == l;
                bx.loc[(size_t)y * bx.w + x] = in ? 1 : 0;
            }
        int32_t pieces = cut_object(&bx, p);
        if (pieces <= 1) continue;
        for (int y = 0; y < bx.h; y++)
            for (int x = 0; x < bx.w; x++) {
                int32_t v = bx.loc[(size_t)y * bx.w + x];
                if (v > 0) labels[(size_t)(y + y0) * w + (x + x0)] = *count + v;
            }
        *count += pieces;
    }
    free(bx.loc);
    free(bx.comp);
    free(bx.m);
    free(bb);
    free(area);
    return TS_OK;
}
