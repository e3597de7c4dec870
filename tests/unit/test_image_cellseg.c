/*
 * test_image_cellseg.c - one window's nuclei (src/image/cellseg.c) on
 * drawn images whose nuclei are known: touching nuclei of different sizes
 * are split, a single elongated nucleus is not, an object larger than
 * max_area is split rather than dropped, one much larger than the
 * window's typical nucleus and not convex is split with weaker seeds, and
 * nuclei touching with a neck too wide for the distance transform are cut
 * at the notches of their outline.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <math.h>
#include <stdlib.h>

#include "image/cellseg.h"

#define W 160
#define H 160

typedef struct disc {
    double x, y, a, b; /* centre, semi-axes (pixels) */
} disc;

/* Stroma-pink background with hematoxylin-blue ellipses (Beer-Lambert with
 * the Ruifrok-Johnston vectors), edges anti-aliased over one pixel. */
static uint32_t *draw(const disc *d, int n) {
    uint32_t *px = malloc((size_t)W * H * sizeof(uint32_t));
    const double vh[3] = {0.651, 0.701, 0.290}, ve[3] = {0.070, 0.991, 0.110};
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            double cov = 0;
            for (int i = 0; i < n; i++) {
                double u = (x + 0.5 - d[i].x) / d[i].a, v = (y + 0.5 - d[i].y) / d[i].b;
                double r = sqrt(u * u + v * v), edge = (1 - r) * fmin(d[i].a, d[i].b);
                double c = edge + 0.5;
                c = c < 0 ? 0 : c > 1 ? 1 : c;
                if (c > cov) cov = c;
            }
            unsigned ch[3];
            for (int k = 0; k < 3; k++)
                ch[k] = (unsigned)lround(255 * pow(10, -(0.5 * cov * vh[k] + 0.15 * ve[k])));
            px[y * W + x] = 0xff000000u | (ch[0] << 16) | (ch[1] << 8) | ch[2];
        }
    return px;
}

static cellseg_params params(void) {
    return (cellseg_params){.background_radius = 16, .sigma = 3, .threshold = 0.1f,
                            .min_area = 40, .max_area = 1600, .split = true, .refine = true,
                            .expansion = 0, .seed_ratio = 1.3f, .peak_radius = 6, .simplify = 0.5f};
}

static size_t segment(const disc *d, int n, const cellseg_params *p) {
    uint32_t *px = draw(d, n);
    cellseg_ws *ws = cellseg_ws_new(W, H);
    cellseg_cell *cells;
    size_t count = 0;
    assert_int_equal(cellseg_window(ws, px, W, H, p, 0, 0, W, H, NULL, NULL, &cells, &count), 0);
    cellseg_ws_free(ws);
    free(px);
    return count;
}

/* Two nuclei of radius 6 and 9 touching with a sliver of overlap. (At
 * this smoothing, sigma 3, a radius-5 nucleus against a radius-9 one is
 * not split: its smoothed peak is under 3/4 of its neighbour's.) */
static void test_cellseg_splits_touching_pair_of_different_sizes(void **state) {
    (void)state;
    disc d[] = {{60, 80, 9, 9}, {60 + 9 + 6 - 0.5, 80, 6, 6}};
    cellseg_params p = params();
    assert_int_equal(segment(d, 2, &p), 2);
}

/* Three nuclei of radius 7 in a row and a fourth beside them. */
static void test_cellseg_splits_cluster_of_four(void **state) {
    (void)state;
    disc d[] = {{50, 80, 7, 7}, {63.5, 80, 7, 7}, {77, 80, 7, 7}, {63.5, 93.5, 7, 7}};
    cellseg_params p = params();
    assert_int_equal(segment(d, 4, &p), 4);
}

/* One elongated nucleus (12 x 6) is one nucleus. */
static void test_cellseg_keeps_elongated_nucleus_whole(void **state) {
    (void)state;
    disc d[] = {{80, 80, 12, 6}};
    cellseg_params p = params();
    assert_int_equal(segment(d, 1, &p), 1);
}

/* Objects over max_area are split, not dropped: a pair of radius-12
 * nuclei (about 450 px each) with max_area 300 gives two nuclei, and a
 * single one over max_area is kept. */
static void test_cellseg_oversized_split_not_dropped(void **state) {
    (void)state;
    disc pair[] = {{60, 80, 12, 12}, {60 + 24 - 0.5, 80, 12, 12}};
    cellseg_params p = params();
    p.max_area = 300;
    assert_int_equal(segment(pair, 2, &p), 2);
    disc one[] = {{80, 80, 14, 14}};
    assert_int_equal(segment(one, 1, &p), 1);
}

/* Nine single nuclei of radius 6 (the window's typical size) and d[9..]. */
static size_t segment_among_singles(const disc *extra, int n_extra, const cellseg_params *p) {
    disc d[16];
    int n = 0;
    for (int j = 0; j < 3; j++)
        for (int i = 0; i < 3; i++) d[n++] = (disc){25 + 45 * i, 20 + 25 * j, 6, 6};
    for (int i = 0; i < n_extra; i++) d[n++] = extra[i];
    return segment(d, n, p);
}

/* An L of seven radius-6 nuclei overlapping by a quarter of their radii
 * (wide necks: one object to seed_ratio alone; not convex) is split when
 * the window's other nuclei show that it is several times their size; an
 * elongated nucleus twice their area is not (it is convex). */
static void test_cellseg_splits_object_larger_than_typical(void **state) {
    (void)state;
    disc ell7[] = {{60, 110, 6, 6}, {69, 110, 6, 6}, {78, 110, 6, 6}, {87, 110, 6, 6},
                   {60, 119, 6, 6}, {60, 128, 6, 6}, {60, 137, 6, 6}};
    cellseg_params p = params();
    assert_int_equal(segment(ell7, 7, &p), 1); /* alone: no typical size to compare with */
    assert_int_equal(segment_among_singles(ell7, 7, &p), 9 + 7);
    disc ell[] = {{80, 125, 11, 6}};
    assert_int_equal(segment_among_singles(ell, 1, &p), 9 + 1);
}

/* The concavity cut: a pair of radius-6 nuclei overlapping by 15% of their
 * summed radii (a neck too wide for seed_ratio, the pair nearly convex) is
 * cut at its two notches; a single nucleus, round, elongated or bent, is
 * not; nor is a pair when the cut is off. */
static void test_cellseg_cuts_touching_pair_at_notches(void **state) {
    (void)state;
    cellseg_params p = params();
    disc pair[] = {{70, 80, 6, 6}, {70 + 10.2, 80, 6, 6}};
    assert_int_equal(segment(pair, 2, &p), 1);
    p.concave_depth = 1;
    p.concave_smooth = 1;
    p.concave_ratio = 0.5f;
    assert_int_equal(segment(pair, 2, &p), 2);
    disc end_to_end[] = {{60, 80, 12, 6}, {60 + 21, 80, 10, 5}};
    assert_int_equal(segment(end_to_end, 2, &p), 2);
    disc round[] = {{80, 80, 9, 9}}, elongated[] = {{80, 80, 14, 6}};
    assert_int_equal(segment(round, 1, &p), 1);
    assert_int_equal(segment(elongated, 1, &p), 1);
    assert_int_equal(segment(round, 0, &p), 0); /* an empty window */
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cellseg_splits_touching_pair_of_different_sizes),
        cmocka_unit_test(test_cellseg_splits_cluster_of_four),
        cmocka_unit_test(test_cellseg_keeps_elongated_nucleus_whole),
        cmocka_unit_test(test_cellseg_oversized_split_not_dropped),
        cmocka_unit_test(test_cellseg_splits_object_larger_than_typical),
        cmocka_unit_test(test_cellseg_cuts_touching_pair_at_notches),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
