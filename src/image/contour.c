/*
 * contour.c - see contour.h.
 *
 * Crack following: the tracer walks from pixel corner to pixel corner
 * along pixel edges, keeping the region on its right (x right, y down, so
 * outer rings come out with positive signed area). At each corner it looks
 * at the two pixels ahead, on the left (L) and on the right (R):
 *   4-connected region: R outside -> turn right; L inside -> turn left;
 *                       otherwise straight;
 *   8-connected region: L inside -> turn left; R inside -> straight;
 *                       otherwise turn right.
 * The two rules differ only at a corner where two region pixels touch
 * diagonally: a 4-connected region turns away (the ring touches itself at
 * that corner), an 8-connected one goes through. Foreground rings use the
 * 4-connected rule and holes (8-connected background) the 8-connected one,
 * so the outline of a hole is the same closed curve whether it is seen
 * from the foreground or from the hole. Vertices are recorded only where
 * the direction changes, so collinear vertices never appear.
 */
#include "image/contour.h"

#include <math.h>
#include <stdlib.h>

#include "image/label.h"
#include "util/util.h"

enum { CT_E, CT_S, CT_W, CT_N }; /* turning right is +1 (mod 4) */
static const int CT_DX[4] = {1, 0, -1, 0};
static const int CT_DY[4] = {0, 1, 0, -1};
/* Offsets from a corner (vx, vy) of the pixels ahead-right and ahead-left
 * when heading in each direction. */
static const int CT_RX[4] = {0, -1, -1, 0}, CT_RY[4] = {0, 0, -1, -1};
static const int CT_LX[4] = {0, 0, -1, -1}, CT_LY[4] = {-1, 0, 0, -1};

/* The region being traced: pixels of labels equal to label. */
typedef struct ct_region {
    const int32_t *labels;
    int w, h;
    int32_t label;
    int conn; /* 4 or 8 */
} ct_region;

static int ct_inside(const ct_region *r, int x, int y) {
    return x >= 0 && y >= 0 && x < r->w && y < r->h && r->labels[(size_t)y * r->w + x] == r->label;
}

/* Appends a vertex, doubling the buffer when full (amortised O(1); one
 * allocation per ring, not per pixel). */
static void ct_push(contour_ring *ring, size_t *cap, int x, int y) {
    if (ring->n == *cap) {
        *cap = *cap ? 2 * *cap : 16;
        ring->pts = ts_realloc(ring->pts, *cap * sizeof(pt2));
    }
    ring->pts[ring->n++] = (pt2){(double)x, (double)y};
}

/* Direction to leave corner (x, y) by, having arrived heading d. */
static int ct_turn(const ct_region *r, int x, int y, int d) {
    int right = ct_inside(r, x + CT_RX[d], y + CT_RY[d]);
    int left = ct_inside(r, x + CT_LX[d], y + CT_LY[d]);
    if (r->conn == 4) {
        if (!right) return (d + 1) % 4;
        return left ? (d + 3) % 4 : d;
    }
    if (left) return (d + 3) % 4;
    return right ? d : (d + 1) % 4;
}

/* A field sampled at the pixel centres whose zero crossings place the
 * outline between them (contour_trace_field); sign is +1 while tracing a
 * foreground ring and -1 while tracing a hole, whose region is background. */
typedef struct ct_field {
    const float *g;
    int sign;
} ct_field;

/* Outer boundary of the component whose first raster pixel is (sx, sy):
 * starts at that pixel's top-left corner heading east (its top edge is a
 * boundary and its left neighbour is outside, so that corner is a turn)
 * and stops on coming back to it about to head east again; that directed
 * edge is on the boundary exactly once. With a field, every corner is
 * recorded (ct_place needs each unit edge), not only the turns. */
static void ct_trace(const ct_region *r, int sx, int sy, const ct_field *fld,
                     contour_ring *ring) {
    size_t cap = 0;
    ring->pts = NULL;
    ring->n = 0;
    ring->parent = -1;
    int x = sx, y = sy, d = CT_E;
    ct_push(ring, &cap, x, y);
    for (;;) {
        x += CT_DX[d];
        y += CT_DY[d];
        int nd = ct_turn(r, x, y, d);
        if (x == sx && y == sy && nd == CT_E) break;
        if (nd != d || fld) ct_push(ring, &cap, x, y);
        d = nd;
    }
}

/* Cost is proportional to the component's perimeter; the rest of the
 * image is never read. The start pixel is checked as far as is cheap:
 * its left and upper neighbours must not carry the label. */
int contour_trace_label(const int32_t *labels, int w, int h, int32_t label, int sx, int sy,
                        contour_ring *ring) {
    if (labels == NULL || ring == NULL || w < 1 || h < 1) return TS_ERR;
    ct_region r = {labels, w, h, label, 4};
    if (!ct_inside(&r, sx, sy) || ct_inside(&r, sx - 1, sy) || ct_inside(&r, sx, sy - 1))
        return TS_ERR;
    ct_trace(&r, sx, sy, NULL, ring);
    return TS_OK;
}

/* Reverses a ring in place (a hole traced as its own region has positive
 * area; the header wants holes negative). */
static void ct_reverse(contour_ring *ring) {
    for (size_t i = 0, j = ring->n - 1; i < j; i++, j--) {
        pt2 t = ring->pts[i];
        ring->pts[i] = ring->pts[j];
        ring->pts[j] = t;
    }
}

/* The direction of the unit edge from a to b. */
static int ct_dir(pt2 a, pt2 b) {
    if (b.x > a.x) return CT_E;
    if (b.x < a.x) return CT_W;
    return b.y > a.y ? CT_S : CT_N;
}

/* Appends p unless it repeats the last point (border runs give corners twice). */
static void ct_push_pt(contour_ring *ring, pt2 p) {
    if (ring->n > 0 && ring->pts[ring->n - 1].x == p.x && ring->pts[ring->n - 1].y == p.y)
        return;
    ring->pts[ring->n++] = p;
}

/* Replaces a ring of every corner (ct_trace with a field) by one point per
 * unit edge: where the field crosses zero between the centre of the
 * region's pixel on the edge's right and the centre of the other pixel on
 * its left - the vertices of marching squares, joined in the order the
 * crack tracer found, so the topology is the mask's. The field is clamped
 * to the mask's side on each pixel (a pixel the mask counts as region but
 * the field does not puts the crossing at its centre), and kept CT_T_MIN
 * away from either centre, so that no vertex of one ring meets another's
 * and a one-pixel region keeps an area (the segments of marching squares
 * never cross for any crossing strictly between the centres), and an edge on the
 * image border keeps its corners, so that a region filling the image is the
 * image's rectangle. */
#define CT_T_MIN 0.02 /* keeps a crossing off the pixel centres (see ct_place) */

static void ct_place(const ct_field *f, int w, int h, contour_ring *ring) {
    size_t n = ring->n;
    pt2 *corners = ring->pts;
    ring->pts = ts_malloc(2 * n * sizeof(pt2));
    ring->n = 0;
    for (size_t i = 0; i < n; i++) {
        pt2 a = corners[i], b = corners[(i + 1) % n];
        int d = ct_dir(a, b), x = (int)a.x, y = (int)a.y;
        int rx = x + CT_RX[d], ry = y + CT_RY[d], lx = x + CT_LX[d], ly = y + CT_LY[d];
        if (lx < 0 || ly < 0 || lx >= w || ly >= h) {
            ct_push_pt(ring, a);
            ct_push_pt(ring, b);
            continue;
        }
        double in = f->sign * f->g[(size_t)ry * w + rx], out = f->sign * f->g[(size_t)ly * w + lx];
        double p = in > 0 ? in : 0, q = out < 0 ? -out : 0;
        double t = p + q > 0 ? p / (p + q) : 0.5;
        t = t < CT_T_MIN ? CT_T_MIN : t > 1 - CT_T_MIN ? 1 - CT_T_MIN : t;
        ct_push_pt(ring, (pt2){rx + 0.5 + t * (lx - rx), ry + 0.5 + t * (ly - ry)});
    }
    while (ring->n > 1 && ring->pts[0].x == ring->pts[ring->n - 1].x &&
           ring->pts[0].y == ring->pts[ring->n - 1].y)
        ring->n--;
    free(corners);
}

/* Room for one more ring in the set (capacity doubles). */
static contour_ring *ct_set_add(contour_set *set, size_t *cap) {
    if (set->n == *cap) {
        *cap = *cap ? 2 * *cap : 16;
        set->rings = ts_realloc(set->rings, *cap * sizeof(contour_ring));
    }
    return &set->rings[set->n++];
}

/* Scratch for contour_trace_mask: the 4-connected foreground labels, the
 * 8-connected background labels and per-label bookkeeping. */
typedef struct ct_mask_scratch {
    int32_t *fg, *bg;
    uint8_t *bg_border; /* nb + 1: background label touches the image border */
    int32_t *ring_of_fg; /* nf + 1: index in the set of each component's outer ring */
} ct_mask_scratch;

/* Flags every background label that reaches the image border: those are
 * not holes. */
static void ct_mark_border(const int32_t *bg, int w, int h, uint8_t *flag) {
    for (int x = 0; x < w; x++) flag[bg[x]] = flag[bg[(size_t)(h - 1) * w + x]] = 1;
    for (int y = 0; y < h; y++) flag[bg[(size_t)y * w]] = flag[bg[(size_t)y * w + w - 1]] = 1;
}

/* One raster scan meets each component at its first pixel: a new
 * foreground label opens an outer ring, a new enclosed background label a
 * hole. The pixel above a hole's first pixel is foreground (a background
 * pixel there would belong to the hole and come earlier) and belongs to
 * the enclosing component: islands inside the hole lie strictly below the
 * hole's top row. That component's first pixel is earlier still, so its
 * ring is already in the set when the hole is met. */
static void ct_trace_all(const uint8_t *mask, const float *field, int w, int h, ct_mask_scratch *s,
                         contour_set *out) {
    ct_field fg_field = {field, 1}, bg_field = {field, -1};
    size_t cap = 0;
    int32_t seen_fg = 0, seen_bg = 0;
    for (int y = 0; y < h; y++) {
        for (int x = 0; x < w; x++) {
            size_t i = (size_t)y * w + x;
            if (mask[i] && s->fg[i] == seen_fg + 1) {
                seen_fg++;
                s->ring_of_fg[seen_fg] = (int32_t)out->n;
                ct_region r = {s->fg, w, h, seen_fg, 4};
                contour_ring *ring = ct_set_add(out, &cap);
                ct_trace(&r, x, y, field ? &fg_field : NULL, ring);
                if (field) ct_place(&fg_field, w, h, ring);
            } else if (!mask[i] && s->bg[i] == seen_bg + 1) {
                seen_bg++;
                if (s->bg_border[seen_bg]) continue;
                int parent = s->ring_of_fg[s->fg[i - w]];
                ct_region r = {s->bg, w, h, seen_bg, 8};
                contour_ring *ring = ct_set_add(out, &cap);
                ct_trace(&r, x, y, field ? &bg_field : NULL, ring);
                if (field) ct_place(&bg_field, w, h, ring);
                ct_reverse(ring);
                ring->parent = parent;
            }
        }
    }
}

/* Both tracers: crack vertices at the turns, or (with a field) one point
 * per unit edge placed by ct_place. */
static int ct_trace_mask(const uint8_t *mask, const float *field, int w, int h, contour_set *out) {
    if (mask == NULL || out == NULL || w < 1 || h < 1) return TS_ERR;
    if ((int64_t)w * h >= INT32_MAX) return TS_ERR;
    out->rings = NULL;
    out->n = 0;
    size_t n = (size_t)w * h;
    char *block = ts_malloc(n * (2 * sizeof(int32_t) + 1));
    ct_mask_scratch s = {.fg = (int32_t *)block};
    s.bg = s.fg + n;
    uint8_t *inv = (uint8_t *)(s.bg + n);
    for (size_t i = 0; i < n; i++) inv[i] = mask[i] == 0;
    int nf = label_components(mask, w, h, 4, s.fg);
    int nb = label_components(inv, w, h, 8, s.bg);
    s.bg_border = ts_calloc((size_t)nb + 1, 1);
    s.ring_of_fg = ts_malloc(((size_t)nf + 1) * sizeof(int32_t));
    ct_mark_border(s.bg, w, h, s.bg_border);
    ct_trace_all(mask, field, w, h, &s, out);
    free(s.bg_border);
    free(s.ring_of_fg);
    free(block);
    return TS_OK;
}

int contour_trace_mask(const uint8_t *mask, int w, int h, contour_set *out) {
    return ct_trace_mask(mask, NULL, w, h, out);
}

int contour_trace_field(const uint8_t *mask, const float *field, int w, int h, contour_set *out) {
    if (field == NULL) return TS_ERR;
    return ct_trace_mask(mask, field, w, h, out);
}

/* Distance from p to the segment a-b (to the nearer end beyond it), so
 * that "within tol of the kept outline" holds for the outline itself, not
 * for the infinite lines through its edges. */
static double ct_seg_dist(pt2 p, pt2 a, pt2 b) {
    double dx = b.x - a.x, dy = b.y - a.y, len2 = dx * dx + dy * dy;
    double t = len2 > 0 ? ((p.x - a.x) * dx + (p.y - a.y) * dy) / len2 : 0;
    t = t < 0 ? 0 : (t > 1 ? 1 : t);
    double ex = a.x + t * dx - p.x, ey = a.y + t * dy - p.y;
    return sqrt(ex * ex + ey * ey);
}

/* Vertex strictly between i and j (going forward round the ring) farthest
 * from segment i-j; returns its index and its distance in *dist, or
 * (size_t)-1 when there is none. */
static size_t ct_farthest(const pt2 *pts, size_t n, size_t i, size_t j, double *dist) {
    size_t best = (size_t)-1;
    *dist = -1;
    for (size_t k = (i + 1) % n; k != j; k = (k + 1) % n) {
        double d = ct_seg_dist(pts[k], pts[i], pts[j]);
        if (d > *dist) {
            *dist = d;
            best = k;
        }
    }
    return best;
}

/* Douglas-Peucker on the chain i -> j (forward, wrapping), with an
 * explicit stack (a ring of thousands of vertices could recurse that
 * deep). stack has room for 2n index pairs: every pair pushed beyond the
 * first belongs to a newly kept vertex. */
static void ct_dp_chain(const pt2 *pts, size_t n, size_t i, size_t j, double tol, uint8_t *keep,
                        size_t *stack) {
    size_t top = 0;
    stack[top++] = i;
    stack[top++] = j;
    while (top > 0) {
        size_t b = stack[--top], a = stack[--top];
        double d;
        size_t k = ct_farthest(pts, n, a, b, &d);
        if (k == (size_t)-1 || !(d > tol)) continue;
        keep[k] = 1;
        stack[top++] = a;
        stack[top++] = k;
        stack[top++] = k;
        stack[top++] = b;
    }
}

/* Anchors: the lexicographically smallest vertex (a corner of the convex
 * hull, which any faithful outline keeps) and the vertex farthest from it;
 * each of the two chains between them is simplified on its own. When
 * everything fits within tol of the anchor segment, the vertex farthest
 * from it is kept too, so the ring never falls below 3 vertices. */
size_t contour_simplify(pt2 *pts, size_t n, double tol) {
    if (pts == NULL || n <= 3) return n;
    size_t a = 0, b = 0;
    for (size_t i = 1; i < n; i++)
        if (pts[i].x < pts[a].x || (pts[i].x == pts[a].x && pts[i].y < pts[a].y)) a = i;
    double far = -1;
    for (size_t i = 0; i < n; i++) {
        double d = hypot(pts[i].x - pts[a].x, pts[i].y - pts[a].y);
        if (d > far) {
            far = d;
            b = i;
        }
    }
    if (b == a) return 3; /* every vertex identical: any three will do */
    char *block = ts_calloc(n + 4 * n * sizeof(size_t) + 8 * sizeof(size_t), 1);
    size_t *stack = (size_t *)block;
    uint8_t *keep = (uint8_t *)(stack + 4 * n + 8);
    keep[a] = keep[b] = 1;
    ct_dp_chain(pts, n, a, b, tol, keep, stack);
    ct_dp_chain(pts, n, b, a, tol, keep, stack);
    size_t kept = 0;
    for (size_t i = 0; i < n; i++) kept += keep[i];
    if (kept < 3) {
        double d1, d2;
        size_t k1 = ct_farthest(pts, n, a, b, &d1), k2 = ct_farthest(pts, n, b, a, &d2);
        keep[(k2 == (size_t)-1 || (k1 != (size_t)-1 && d1 >= d2)) ? k1 : k2] = 1;
    }
    size_t m = 0;
    for (size_t i = 0; i < n; i++)
        if (keep[i]) pts[m++] = pts[i];
    free(block);
    return m;
}

/* Shoelace formula with the header's sign convention. */
double contour_area(const pt2 *pts, size_t n) {
    double s = 0;
    for (size_t i = 0; i < n; i++) {
        const pt2 *p = &pts[i], *q = &pts[(i + 1) % n];
        s += p->x * q->y - q->x * p->y;
    }
    return s / 2;
}

void contour_ring_free(contour_ring *ring) {
    if (ring == NULL) return;
    free(ring->pts);
    ring->pts = NULL;
    ring->n = 0;
}

void contour_set_free(contour_set *set) {
    if (set == NULL) return;
    for (size_t i = 0; i < set->n; i++) contour_ring_free(&set->rings[i]);
    free(set->rings);
    set->rings = NULL;
    set->n = 0;
}
