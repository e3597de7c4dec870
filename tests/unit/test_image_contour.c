/*
 * test_image_contour.c - crack-boundary tracing, Douglas-Peucker and the
 * shoelace area (src/image/contour.c).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "image/contour.h"
#include "image/label.h"
#include "util/util.h"

enum { RW = 20, RH = 17 };

static uint64_t rnd_next(uint64_t *s) {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static void from_picture(uint8_t *m, const char *pic) {
    for (size_t i = 0; pic[i]; i++) m[i] = pic[i] == '1';
}

/* The ring's vertices equal the literal list (x0, y0, x1, y1, ...). */
static void assert_ring(const contour_ring *r, const double *xy, size_t n) {
    if (r->n != n) fail_msg("ring has %zu vertices, want %zu", r->n, n);
    for (size_t i = 0; i < n; i++)
        if (r->pts[i].x != xy[2 * i] || r->pts[i].y != xy[2 * i + 1])
            fail_msg("vertex %zu: (%g,%g), want (%g,%g)", i, r->pts[i].x, r->pts[i].y, xy[2 * i],
                     xy[2 * i + 1]);
}

/* ---- contour_trace_label ------------------------------------------------ */

/* Pixel (2,1) alone is the unit square with corners (2,1) (3,1) (3,2)
 * (2,2), clockwise on screen (y down), area 1. */
static void test_contour_trace_label_single_pixel_is_unit_square(void **state) {
    (void)state;
    int32_t lab[12] = {0};
    lab[1 * 4 + 2] = 5;
    contour_ring r;
    assert_int_equal(contour_trace_label(lab, 4, 3, 5, 2, 1, &r), TS_OK);
    const double want[] = {2, 1, 3, 1, 3, 2, 2, 2};
    assert_ring(&r, want, 4);
    assert_true(contour_area(r.pts, r.n) == 1.0);
    assert_int_equal(r.parent, -1);
    contour_ring_free(&r);
}

/* The L of pixels (0,0), (0,1), (1,1), by hand: right along the top of
 * (0,0) to (1,0), down to (1,1), right to (2,1), down to (2,2), left to
 * (0,2) (the corner (1,2) is collinear and dropped), up to the start.
 * Shoelace: 0 + 1 - 1 + 2 + 4 + 0 = 6, area 3 = pixel count. */
static void test_contour_trace_label_l_shape_drops_collinear_vertices(void **state) {
    (void)state;
    const int32_t lab[9] = {1, 0, 0, 1, 1, 0, 0, 0, 0};
    contour_ring r;
    assert_int_equal(contour_trace_label(lab, 3, 3, 1, 0, 0, &r), TS_OK);
    const double want[] = {0, 0, 1, 0, 1, 1, 2, 1, 2, 2, 0, 2};
    assert_ring(&r, want, 6);
    assert_true(contour_area(r.pts, r.n) == 3.0);
    contour_ring_free(&r);
}

/* 4-connectivity: (1,1) only touches (0,0) at a corner, so it is another
 * component and the trace of (0,0) is its unit square alone. A ring with
 * a hole is traced without it (area includes the hole). A start pixel
 * with the label on its left or above, or without the label, is refused. */
static void test_contour_trace_label_diagonal_excluded_hole_ignored_bad_start(void **state) {
    (void)state;
    const int32_t diag[4] = {1, 0, 0, 1};
    contour_ring r;
    assert_int_equal(contour_trace_label(diag, 2, 2, 1, 0, 0, &r), TS_OK);
    const double want[] = {0, 0, 1, 0, 1, 1, 0, 1};
    assert_ring(&r, want, 4);
    contour_ring_free(&r);
    const int32_t frame[9] = {2, 2, 2, 2, 0, 2, 2, 2, 2};
    assert_int_equal(contour_trace_label(frame, 3, 3, 2, 0, 0, &r), TS_OK);
    const double want_frame[] = {0, 0, 3, 0, 3, 3, 0, 3};
    assert_ring(&r, want_frame, 4);
    contour_ring_free(&r);
    assert_int_equal(contour_trace_label(frame, 3, 3, 2, 1, 0, &r), TS_ERR);
    assert_int_equal(contour_trace_label(frame, 3, 3, 2, 0, 1, &r), TS_ERR);
    assert_int_equal(contour_trace_label(frame, 3, 3, 2, 1, 1, &r), TS_ERR);
    assert_int_equal(contour_trace_label(frame, 3, 3, 2, 3, 0, &r), TS_ERR);
    assert_int_equal(contour_trace_label(NULL, 3, 3, 2, 0, 0, &r), TS_ERR);
}

/* Brute force for the outer ring's area: the component's pixels plus the
 * pixels it encloses, i.e. everything an 8-connected walk from outside the
 * image (a one-pixel frame around it) cannot reach without crossing the
 * component. */
static long brute_filled_area(const int32_t *lab, int w, int h, int32_t label) {
    int pw = w + 2, ph = h + 2, top = 0;
    uint8_t *seen = calloc((size_t)pw * ph, 1);
    int *stack = malloc(sizeof(int) * pw * ph);
    seen[0] = 1;
    stack[top++] = 0;
    long reached = 0;
    while (top > 0) {
        int p = stack[--top], x = p % pw, y = p / pw;
        if (x >= 1 && y >= 1 && x <= w && y <= h) reached++;
        for (int dy = -1; dy <= 1; dy++)
            for (int dx = -1; dx <= 1; dx++) {
                int nx = x + dx, ny = y + dy;
                if (nx < 0 || ny < 0 || nx >= pw || ny >= ph || seen[ny * pw + nx]) continue;
                int inside = nx >= 1 && ny >= 1 && nx <= w && ny <= h;
                if (inside && lab[(ny - 1) * w + nx - 1] == label) continue;
                seen[ny * pw + nx] = 1;
                stack[top++] = ny * pw + nx;
            }
    }
    free(seen);
    free(stack);
    return (long)w * h - reached;
}

/* Every ring edge is axis-parallel with integer corners, and no two
 * consecutive edges are parallel (collinear vertices were dropped). */
static void assert_crack_ring(const contour_ring *r) {
    assert_true(r->n >= 4);
    for (size_t i = 0; i < r->n; i++) {
        pt2 a = r->pts[i], b = r->pts[(i + 1) % r->n], c = r->pts[(i + 2) % r->n];
        assert_true(a.x == floor(a.x) && a.y == floor(a.y));
        assert_true((a.x == b.x) != (a.y == b.y));
        assert_true((a.x == b.x) != (b.x == c.x));
    }
}

/* On random label images (4-connected components of random masks): each
 * component's ring is a crack ring whose area is its filled area. */
static void test_contour_trace_label_area_matches_filled_pixel_count(void **state) {
    (void)state;
    uint64_t s = 31;
    uint8_t m[RW * RH];
    int32_t lab[RW * RH];
    for (int trial = 0; trial < 20; trial++) {
        for (int i = 0; i < RW * RH; i++) m[i] = (int)(rnd_next(&s) % 100) < 30 + 2 * trial;
        int n = label_components(m, RW, RH, 4, lab);
        int32_t next = 1;
        for (int p = 0; p < RW * RH && next <= n; p++) {
            if (lab[p] != next) continue;
            contour_ring r;
            assert_int_equal(contour_trace_label(lab, RW, RH, next, p % RW, p / RW, &r), TS_OK);
            assert_crack_ring(&r);
            assert_true(contour_area(r.pts, r.n) == (double)brute_filled_area(lab, RW, RH, next));
            contour_ring_free(&r);
            next++;
        }
    }
}

/* ---- contour_trace_mask -------------------------------------------------- */

/* A 4x4 frame around a 2x2 hole: outer ring (0,0) (4,0) (4,4) (0,4),
 * area 16; the hole is traced from (1,1) as (1,1) (3,1) (3,3) (1,3) and
 * reversed to (1,3) (3,3) (3,1) (1,1), area -4, parent ring 0. 16 - 4 =
 * 12 = the frame's pixels. */
static void test_contour_trace_mask_frame_with_hole(void **state) {
    (void)state;
    uint8_t m[16];
    from_picture(m, "1111"
                    "1001"
                    "1001"
                    "1111");
    contour_set set;
    assert_int_equal(contour_trace_mask(m, 4, 4, &set), TS_OK);
    assert_int_equal(set.n, 2);
    const double outer[] = {0, 0, 4, 0, 4, 4, 0, 4}, hole[] = {1, 3, 3, 3, 3, 1, 1, 1};
    assert_ring(&set.rings[0], outer, 4);
    assert_int_equal(set.rings[0].parent, -1);
    assert_ring(&set.rings[1], hole, 4);
    assert_int_equal(set.rings[1].parent, 0);
    assert_true(contour_area(set.rings[1].pts, set.rings[1].n) == -4.0);
    contour_set_free(&set);
}

/* Background pixels (1,1) and (2,2) touch diagonally: one 8-connected
 * hole. Traced as a region from (1,1) (8-connected rule goes through the
 * shared corner): (1,1) (2,1) (2,2) (3,2) (3,3) (2,3) (2,2) (1,2), which
 * touches itself at (2,2); reversed for the hole. Area -2, outer 16,
 * total 14 = pixel count. Diagonal foreground pixels, by contrast, are
 * two 4-components and get two rings. */
static void test_contour_trace_mask_diagonal_hole_is_one_ring_touching_itself(void **state) {
    (void)state;
    uint8_t m[16];
    from_picture(m, "1111"
                    "1011"
                    "1101"
                    "1111");
    contour_set set;
    assert_int_equal(contour_trace_mask(m, 4, 4, &set), TS_OK);
    assert_int_equal(set.n, 2);
    const double hole[] = {1, 2, 2, 2, 2, 3, 3, 3, 3, 2, 2, 2, 2, 1, 1, 1};
    assert_ring(&set.rings[1], hole, 8);
    assert_int_equal(set.rings[1].parent, 0);
    assert_true(contour_area(set.rings[1].pts, set.rings[1].n) == -2.0);
    contour_set_free(&set);
    uint8_t d[4] = {1, 0, 0, 1};
    assert_int_equal(contour_trace_mask(d, 2, 2, &set), TS_OK);
    assert_int_equal(set.n, 2);
    const double r0[] = {0, 0, 1, 0, 1, 1, 0, 1}, r1[] = {1, 1, 2, 1, 2, 2, 1, 2};
    assert_ring(&set.rings[0], r0, 4);
    assert_ring(&set.rings[1], r1, 4);
    assert_int_equal(set.rings[1].parent, -1);
    contour_set_free(&set);
}

/* An island inside a hole: rings in raster order of first pixel: the
 * outer frame (0, area 25), the hole (1, parent 0, area -9: the island
 * does not count for the hole's own outline), the island (2, its own
 * outer ring, parent -1, area 1). 25 - 9 + 1 = 17 pixels. */
static void test_contour_trace_mask_island_in_hole_is_outer_ring(void **state) {
    (void)state;
    uint8_t m[25];
    from_picture(m, "11111"
                    "10001"
                    "10101"
                    "10001"
                    "11111");
    contour_set set;
    assert_int_equal(contour_trace_mask(m, 5, 5, &set), TS_OK);
    assert_int_equal(set.n, 3);
    const int parents[3] = {-1, 0, -1};
    const double areas[3] = {25, -9, 1};
    for (int i = 0; i < 3; i++) {
        assert_int_equal(set.rings[i].parent, parents[i]);
        assert_true(contour_area(set.rings[i].pts, set.rings[i].n) == areas[i]);
    }
    contour_set_free(&set);
}

/* Random masks: the signed areas of all rings add up to the foreground
 * pixel count; outer rings are positive, holes negative and point at an
 * earlier outer ring; every ring is a crack ring; an empty mask has no
 * rings and a full one a single w x h rectangle. */
static void test_contour_trace_mask_area_equals_pixel_count_on_random_masks(void **state) {
    (void)state;
    uint64_t s = 1234;
    uint8_t m[RW * RH];
    for (int trial = 0; trial < 60; trial++) {
        long count = 0;
        for (int i = 0; i < RW * RH; i++) {
            m[i] = (int)(rnd_next(&s) % 100) < trial * 100 / 59;
            count += m[i];
        }
        contour_set set;
        assert_int_equal(contour_trace_mask(m, RW, RH, &set), TS_OK);
        double total = 0;
        for (size_t i = 0; i < set.n; i++) {
            const contour_ring *r = &set.rings[i];
            double a = contour_area(r->pts, r->n);
            assert_crack_ring(r);
            if (r->parent < 0) {
                assert_true(a > 0);
            } else {
                assert_true(a < 0);
                assert_true((size_t)r->parent < i);
                assert_int_equal(set.rings[r->parent].parent, -1);
            }
            total += a;
        }
        assert_true(total == (double)count);
        if (count == 0) assert_int_equal(set.n, 0);
        if (count == RW * RH) {
            const double full[] = {0, 0, RW, 0, RW, RH, 0, RH};
            assert_int_equal(set.n, 1);
            assert_ring(&set.rings[0], full, 4);
        }
        contour_set_free(&set);
    }
}

/* ---- contour_trace_field ------------------------------------------------- */

/* By hand: one pixel (1,1) of a 3x3 mask. With field +1 there and -1
 * around, each crossing is halfway between the centres: the diamond
 * (1.5,1) (2,1.5) (1.5,2) (1,1.5), area 0.5, in the crack ring's order.
 * With +3 against -1 the crossings lie 3/4 of the way out: half-diagonal
 * 0.75, area 2 * 0.75^2 = 1.125. A 1x1 image is its unit square. */
static void test_contour_trace_field_single_pixel_diamond(void **state) {
    (void)state;
    uint8_t m[9] = {0, 0, 0, 0, 1, 0, 0, 0, 0};
    float g[9];
    for (int i = 0; i < 9; i++) g[i] = m[i] ? 1.0f : -1.0f;
    contour_set set;
    assert_int_equal(contour_trace_field(m, g, 3, 3, &set), TS_OK);
    assert_int_equal(set.n, 1);
    const double diamond[] = {1.5, 1, 2, 1.5, 1.5, 2, 1, 1.5};
    assert_ring(&set.rings[0], diamond, 4);
    assert_true(contour_area(set.rings[0].pts, set.rings[0].n) == 0.5);
    contour_set_free(&set);
    g[4] = 3.0f;
    assert_int_equal(contour_trace_field(m, g, 3, 3, &set), TS_OK);
    const double wide[] = {1.5, 0.75, 2.25, 1.5, 1.5, 2.25, 0.75, 1.5};
    assert_ring(&set.rings[0], wide, 4);
    assert_true(fabs(contour_area(set.rings[0].pts, set.rings[0].n) - 1.125) < 1e-12);
    contour_set_free(&set);
    /* A one-pixel image: every edge on the border, so its own square,
     * whatever the field says (here NaN). */
    uint8_t one = 1;
    float nan_field = NAN;
    assert_int_equal(contour_trace_field(&one, &nan_field, 1, 1, &set), TS_OK);
    const double unit[] = {0, 0, 1, 0, 1, 1, 0, 1};
    assert_int_equal(set.n, 1);
    assert_ring(&set.rings[0], unit, 4);
    contour_set_free(&set);
}

/* A linear field g = c - X - a Y at the pixel centres (X, Y) = (x + 0.5,
 * y + 0.5), masked where g > 0: linear interpolation is exact for it, so
 * every vertex off the image border lies on the line X + a Y = c, whatever
 * the slope, except one held 0.02 px off a centre the line passes nearer;
 * vertices on the border are pixel corners. The mask filling
 * the image gives its rectangle, as contour_trace_mask does. */
static void test_contour_trace_field_linear_field_is_exact(void **state) {
    (void)state;
    const double slopes[] = {0, 0.3, -0.7, 1.9};
    for (size_t k = 0; k < sizeof(slopes) / sizeof(slopes[0]); k++) {
        double a = slopes[k], c = 9.37;
        uint8_t m[RW * RH];
        float g[RW * RH];
        for (int y = 0; y < RH; y++)
            for (int x = 0; x < RW; x++) {
                double v = c - (x + 0.5) - a * (y + 0.5);
                g[y * RW + x] = (float)v;
                m[y * RW + x] = g[y * RW + x] > 0;
            }
        contour_set set;
        assert_int_equal(contour_trace_field(m, g, RW, RH, &set), TS_OK);
        assert_true(set.n >= 1);
        for (size_t i = 0; i < set.n; i++)
            for (size_t j = 0; j < set.rings[i].n; j++) {
                pt2 p = set.rings[i].pts[j];
                bool border = p.x == 0 || p.y == 0 || p.x == RW || p.y == RH;
                if (border) {
                    assert_true(p.x == floor(p.x) && p.y == floor(p.y));
                } else {
                    /* a crossing within 0.02 px of a centre is held 0.02 off it */
                    double ox = fabs(p.x - floor(p.x) - 0.5), oy = fabs(p.y - floor(p.y) - 0.5);
                    bool held = fabs(ox - 0.02) < 1e-9 || fabs(oy - 0.02) < 1e-9;
                    if (!held && fabs(c - p.x - a * p.y) >= 1e-5) fail_msg("slope %g: (%g, %g) off the line by %g", a, p.x, p.y, c - p.x - a * p.y);
                }
            }
        contour_set_free(&set);
    }
    uint8_t full[RW * RH];
    float g[RW * RH];
    memset(full, 1, sizeof(full));
    for (int i = 0; i < RW * RH; i++) g[i] = (float)(i % 7) - 3.0f;
    contour_set set;
    assert_int_equal(contour_trace_field(full, g, RW, RH, &set), TS_OK);
    const double rect[] = {0, 0, RW, 0, RW, RH, 0, RH};
    assert_int_equal(set.n, 1);
    contour_ring r = set.rings[0];
    r.n = contour_simplify(r.pts, r.n, 1e-9);
    assert_ring(&r, rect, 4);
    set.rings[0] = r;
    contour_set_free(&set);
}

/* Random masks and fields of any sign: the same rings as
 * contour_trace_mask (count, parents), outer rings positive and holes
 * negative, no two consecutive vertices equal, every vertex within half a
 * pixel (and a bit: the diagonal of a dual cell) of the crack ring's
 * outline; where mask and field agree (field +-1) each ring's area is
 * within a quarter pixel per vertex of the crack ring's. */
static void test_contour_trace_field_same_topology_as_mask(void **state) {
    (void)state;
    uint64_t s = 99;
    uint8_t m[RW * RH];
    float g[RW * RH];
    for (int trial = 0; trial < 60; trial++) {
        bool agree = trial % 2 == 0;
        for (int i = 0; i < RW * RH; i++) {
            m[i] = (int)(rnd_next(&s) % 100) < trial * 100 / 59;
            g[i] = agree ? (m[i] ? 1.0f : -1.0f) : (float)((int)(rnd_next(&s) % 2001) - 1000) / 100;
        }
        contour_set crack, placed;
        assert_int_equal(contour_trace_mask(m, RW, RH, &crack), TS_OK);
        assert_int_equal(contour_trace_field(m, g, RW, RH, &placed), TS_OK);
        assert_int_equal(placed.n, crack.n);
        for (size_t i = 0; i < placed.n; i++) {
            const contour_ring *r = &placed.rings[i];
            assert_int_equal(r->parent, crack.rings[i].parent);
            double a = contour_area(r->pts, r->n), ca = contour_area(crack.rings[i].pts, crack.rings[i].n);
            assert_true(r->parent < 0 ? a > 0 : a < 0);
            if (agree) assert_true(fabs(a - ca) <= 0.25 * r->n);
            for (size_t j = 0; j < r->n; j++) {
                pt2 p = r->pts[j], q = r->pts[(j + 1) % r->n];
                assert_false(p.x == q.x && p.y == q.y);
            }
        }
        contour_set_free(&crack);
        contour_set_free(&placed);
    }
    assert_int_equal(contour_trace_field(m, NULL, RW, RH, NULL), TS_ERR);
}

/* ---- simplify and area --------------------------------------------------- */

/* Shoelace by hand: the 2x3 rectangle clockwise on screen (y down) has
 * area +6, its reverse -6; fewer than 3 vertices have area 0. */
static void test_contour_area_sign_convention(void **state) {
    (void)state;
    const pt2 cw[4] = {{0, 0}, {2, 0}, {2, 3}, {0, 3}}, ccw[4] = {{0, 0}, {0, 3}, {2, 3}, {2, 0}};
    assert_true(contour_area(cw, 4) == 6.0);
    assert_true(contour_area(ccw, 4) == -6.0);
    assert_true(contour_area(cw, 2) == 0.0);
}

/* By hand: in (0,0) (1,0) (2,0) (2,2) (0,2) the anchors are (0,0) (the
 * smallest) and (2,2) (the farthest from it); (2,0) and (0,2) lie sqrt 2
 * from the diagonal and stay, (1,0) is on the edge (0,0)-(2,0) and goes.
 * A 10x1 rectangle with tol 5 would lose both other corners but is kept
 * at 3 vertices; rings of 3 are untouched. */
static void test_contour_simplify_hand_computed_and_never_below_three(void **state) {
    (void)state;
    pt2 sq[5] = {{0, 0}, {1, 0}, {2, 0}, {2, 2}, {0, 2}};
    assert_int_equal(contour_simplify(sq, 5, 0.1), 4);
    const pt2 want[4] = {{0, 0}, {2, 0}, {2, 2}, {0, 2}};
    assert_memory_equal(sq, want, sizeof(want));
    pt2 thin[4] = {{0, 0}, {10, 0}, {10, 1}, {0, 1}};
    assert_int_equal(contour_simplify(thin, 4, 5), 3);
    const pt2 want_thin[3] = {{0, 0}, {10, 0}, {10, 1}};
    assert_memory_equal(thin, want_thin, sizeof(want_thin));
    pt2 tri[3] = {{0, 0}, {1, 0}, {0, 1}};
    assert_int_equal(contour_simplify(tri, 3, 100), 3);
}

/* Distance from p to segment a-b (reference copy for the property test). */
static double seg_dist(pt2 p, pt2 a, pt2 b) {
    double dx = b.x - a.x, dy = b.y - a.y, l2 = dx * dx + dy * dy;
    double t = l2 > 0 ? ((p.x - a.x) * dx + (p.y - a.y) * dy) / l2 : 0;
    t = t < 0 ? 0 : (t > 1 ? 1 : t);
    return hypot(a.x + t * dx - p.x, a.y + t * dy - p.y);
}

/* On rings traced from random masks and several tolerances: the result
 * is a subsequence of the input of at least 3 vertices (or the input if
 * it had 3 or fewer), and every vertex of the input lies within tol of
 * the kept outline. */
static void test_contour_simplify_keeps_every_vertex_within_tol(void **state) {
    (void)state;
    uint64_t s = 4321;
    uint8_t m[RW * RH];
    const double tols[4] = {0, 0.5, 1.5, 4};
    for (int trial = 0; trial < 20; trial++) {
        for (int i = 0; i < RW * RH; i++) m[i] = rnd_next(&s) % 100 < 60;
        contour_set set;
        assert_int_equal(contour_trace_mask(m, RW, RH, &set), TS_OK);
        for (size_t ri = 0; ri < set.n; ri++) {
            const contour_ring *r = &set.rings[ri];
            double tol = tols[(trial + ri) % 4];
            pt2 *cp = malloc(sizeof(pt2) * r->n);
            memcpy(cp, r->pts, sizeof(pt2) * r->n);
            size_t k = contour_simplify(cp, r->n, tol);
            assert_true(k >= 3 && k <= r->n);
            if (tol == 0) assert_int_equal(k, r->n); /* crack rings have no collinear vertex */
            size_t j = 0;
            for (size_t i = 0; i < r->n && j < k; i++)
                if (r->pts[i].x == cp[j].x && r->pts[i].y == cp[j].y) j++;
            assert_int_equal(j, k); /* a subsequence */
            for (size_t i = 0; i < r->n; i++) {
                double best = INFINITY;
                for (size_t e = 0; e < k; e++) {
                    double d = seg_dist(r->pts[i], cp[e], cp[(e + 1) % k]);
                    if (d < best) best = d;
                }
                assert_true(best <= tol + 1e-9);
            }
            free(cp);
        }
        contour_set_free(&set);
    }
}

static void test_contour_trace_mask_rejects_bad_arguments(void **state) {
    (void)state;
    uint8_t m[4] = {0};
    contour_set set;
    assert_int_equal(contour_trace_mask(NULL, 2, 2, &set), TS_ERR);
    assert_int_equal(contour_trace_mask(m, 0, 2, &set), TS_ERR);
    assert_int_equal(contour_trace_mask(m, 2, 2, NULL), TS_ERR);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_contour_trace_label_single_pixel_is_unit_square),
        cmocka_unit_test(test_contour_trace_label_l_shape_drops_collinear_vertices),
        cmocka_unit_test(test_contour_trace_label_diagonal_excluded_hole_ignored_bad_start),
        cmocka_unit_test(test_contour_trace_label_area_matches_filled_pixel_count),
        cmocka_unit_test(test_contour_trace_mask_frame_with_hole),
        cmocka_unit_test(test_contour_trace_mask_diagonal_hole_is_one_ring_touching_itself),
        cmocka_unit_test(test_contour_trace_mask_island_in_hole_is_outer_ring),
        cmocka_unit_test(test_contour_trace_mask_area_equals_pixel_count_on_random_masks),
        cmocka_unit_test(test_contour_trace_field_single_pixel_diamond),
        cmocka_unit_test(test_contour_trace_field_linear_field_is_exact),
        cmocka_unit_test(test_contour_trace_field_same_topology_as_mask),
        cmocka_unit_test(test_contour_area_sign_convention),
        cmocka_unit_test(test_contour_simplify_hand_computed_and_never_below_three),
        cmocka_unit_test(test_contour_simplify_keeps_every_vertex_within_tol),
        cmocka_unit_test(test_contour_trace_mask_rejects_bad_arguments),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
