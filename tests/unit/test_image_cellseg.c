/*
 * test_image_cellseg.c - one window's nuclei (src/image/cellseg.c) on
 * drawn images whose nuclei are known: touching nuclei of different sizes
 * are split, a single elongated nucleus is not, an object larger than
 * max_area is split rather than dropped, and one much larger than the
 * window's typical nucleus is split with weaker seeds.
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
static size_t segment_among_singles(const disc *extra, int n_extra) {
    disc d[16];
    int n = 0;
    for (int j = 0; j < 3; j++)
        for (int i = 0; i < 3; i++) d[n++] = (disc){25 + 45 * i, 20 + 25 * j, 6, 6};
    for (int i = 0; i < n_extra; i++) d[n++] = extra[i];
    cellseg_params p = params();
    return segment(d, n, &p);
}

/* A pair of radius-6 nuclei overlapping by a quarter of their radii (a
 * wide neck: one object to seed_ratio alone) is split when the window's
 * other nuclei show that it is twice their size; an elongated nucleus of
 * the same area is not. */
static void test_cellseg_splits_object_twice_the_typical_size(void **state) {
    (void)state;
    disc pair[] = {{70, 120, 6, 6}, {70 + 9, 120, 6, 6}};
    cellseg_params p = params();
    assert_int_equal(segment(pair, 2, &p), 1); /* alone: no typical size to compare with */
    assert_int_equal(segment_among_singles(pair, 2), 9 + 2);
    disc ell[] = {{80, 125, 11, 6}};
    assert_int_equal(segment_among_singles(ell, 1), 9 + 1);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cellseg_splits_touching_pair_of_different_sizes),
        cmocka_unit_test(test_cellseg_splits_cluster_of_four),
        cmocka_unit_test(test_cellseg_keeps_elongated_nucleus_whole),
        cmocka_unit_test(test_cellseg_oversized_split_not_dropped),
        cmocka_unit_test(test_cellseg_splits_object_twice_the_typical_size),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
