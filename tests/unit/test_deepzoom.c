/*
 * test_deepzoom.c - the Deep Zoom geometry (src/image/deepzoom.c): level
 * counts and sizes, tile counts, tile rectangles with their overlap at the
 * edges, the level-0 region and slide level behind a tile, and all of it
 * against a straightforward reference on random image sizes.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "image/deepzoom.h"
#include "util/util.h"

static deepzoom make(int64_t w, int64_t h) {
    deepzoom dz;
    char err[TS_ERRLEN];
    assert_int_equal(deepzoom_init(&dz, w, h, DEEPZOOM_TILE_SIZE, DEEPZOOM_OVERLAP, err,
                                   sizeof(err)), TS_OK);
    return dz;
}

static void assert_level(const deepzoom *dz, int level, int64_t w, int64_t h) {
    int64_t lw = -1, lh = -1;
    assert_true(deepzoom_level_size(dz, level, &lw, &lh));
    assert_int_equal(lw, w);
    assert_int_equal(lh, h);
}

static void assert_tile(const deepzoom *dz, int level, int64_t col, int64_t row, int64_t x,
                        int64_t y, int64_t w, int64_t h) {
    deepzoom_rect r;
    assert_true(deepzoom_tile_rect(dz, level, col, row, &r));
    assert_int_equal(r.x, x);
    assert_int_equal(r.y, y);
    assert_int_equal(r.w, w);
    assert_int_equal(r.h, h);
}

static void test_level_counts_and_sizes(void **state) {
    (void)state;
    deepzoom dz = make(1, 1);
    assert_int_equal(dz.max_level, 0);
    assert_int_equal(deepzoom_levels(&dz), 1);
    assert_level(&dz, 0, 1, 1);

    dz = make(255, 255);
    assert_int_equal(dz.max_level, 8);
    assert_level(&dz, 8, 255, 255);
    assert_level(&dz, 7, 128, 128);
    assert_level(&dz, 1, 2, 2);
    assert_level(&dz, 0, 1, 1);

    dz = make(256, 256);
    assert_int_equal(dz.max_level, 8);
    assert_level(&dz, 7, 128, 128);
    assert_int_equal(make(257, 1).max_level, 9);
    assert_int_equal(make(2, 1).max_level, 1);

    dz = make(4096, 3072);
    assert_int_equal(dz.max_level, 12);
    assert_int_equal(deepzoom_levels(&dz), 13);
    assert_level(&dz, 12, 4096, 3072);
    assert_level(&dz, 11, 2048, 1536);
    assert_level(&dz, 8, 256, 192);
    assert_level(&dz, 1, 2, 2);
    assert_level(&dz, 0, 1, 1);

    dz = make(100000, 80000);
    assert_int_equal(dz.max_level, 17);
    assert_level(&dz, 17, 100000, 80000);
    assert_level(&dz, 16, 50000, 40000);
    assert_level(&dz, 10, 782, 625); /* ceil(100000/128), ceil(80000/128) */
    assert_level(&dz, 1, 2, 2);
    assert_level(&dz, 0, 1, 1);

    int64_t w, h;
    assert_false(deepzoom_level_size(&dz, 18, &w, &h));
    assert_false(deepzoom_level_size(&dz, -1, &w, &h));
}

static void test_init_refuses_nonsense(void **state) {
    (void)state;
    deepzoom dz;
    char err[TS_ERRLEN] = "";
    assert_int_equal(deepzoom_init(&dz, 0, 10, 254, 1, err, sizeof(err)), TS_ERR);
    assert_non_null(strstr(err, "0 x 10"));
    assert_int_equal(deepzoom_init(&dz, 10, 10, 254, 254, err, sizeof(err)), TS_ERR);
    assert_int_equal(deepzoom_init(&dz, 10, 10, 0, 0, err, sizeof(err)), TS_ERR);
    assert_int_equal(deepzoom_init(&dz, 10, 10, 254, -1, err, sizeof(err)), TS_ERR);
}

static void test_tile_counts(void **state) {
    (void)state;
    deepzoom dz = make(4096, 3072);
    int64_t cols, rows;
    assert_true(deepzoom_level_tiles(&dz, 12, &cols, &rows));
    assert_int_equal(cols, 17); /* 16 * 254 = 4064 < 4096 */
    assert_int_equal(rows, 13); /* 12 * 254 = 3048 < 3072 */
    assert_true(deepzoom_level_tiles(&dz, 8, &cols, &rows));
    assert_int_equal(cols, 2); /* 256 wide: one pixel more than a tile and its overlap */
    assert_int_equal(rows, 1);
    assert_true(deepzoom_level_tiles(&dz, 0, &cols, &rows));
    assert_int_equal(cols, 1);
    assert_int_equal(rows, 1);
    assert_false(deepzoom_level_tiles(&dz, 13, &cols, &rows));
    dz = make(254, 254);
    assert_true(deepzoom_level_tiles(&dz, dz.max_level, &cols, &rows));
    assert_int_equal(cols, 1);
    assert_int_equal(rows, 1);
}

static void test_tile_rects_with_overlap_and_edges(void **state) {
    (void)state;
    deepzoom dz = make(4096, 3072);
    assert_tile(&dz, 12, 0, 0, 0, 0, 255, 255);          /* overlap on the right/bottom only */
    assert_tile(&dz, 12, 1, 0, 253, 0, 256, 255);        /* overlap on both sides */
    assert_tile(&dz, 12, 1, 1, 253, 253, 256, 256);
    assert_tile(&dz, 12, 16, 12, 4063, 3047, 33, 25);    /* clipped at the image's edges */
    assert_tile(&dz, 12, 15, 0, 3809, 0, 256, 255);
    assert_tile(&dz, 0, 0, 0, 0, 0, 1, 1);
    assert_tile(&dz, 8, 0, 0, 0, 0, 255, 192);
    assert_tile(&dz, 8, 1, 0, 253, 0, 3, 192);
    deepzoom_rect r;
    assert_false(deepzoom_tile_rect(&dz, 12, 17, 0, &r));
    assert_false(deepzoom_tile_rect(&dz, 12, 0, 13, &r));
    assert_false(deepzoom_tile_rect(&dz, 12, -1, 0, &r));
    assert_false(deepzoom_tile_rect(&dz, 13, 0, 0, &r));
    assert_false(deepzoom_tile_rect(&dz, 0, 1, 0, &r));
}

static void test_best_level_from_a_level_table(void **state) {
    (void)state;
    const slide_level table[] = {
        {100000, 80000, 1}, {25000, 20000, 4}, {6250, 5000, 16.00032}, {1563, 1250, 63.99}};
    assert_int_equal(slide_pick_level(table, 4, 1), 0);
    assert_int_equal(slide_pick_level(table, 4, 2), 0);
    assert_int_equal(slide_pick_level(table, 4, 3.9999), 1); /* within the tolerance */
    assert_int_equal(slide_pick_level(table, 4, 4), 1);
    assert_int_equal(slide_pick_level(table, 4, 8), 1);
    assert_int_equal(slide_pick_level(table, 4, 16), 2);     /* 16.00032 counts as 16 */
    assert_int_equal(slide_pick_level(table, 4, 32), 2);
    assert_int_equal(slide_pick_level(table, 4, 64), 3);
    assert_int_equal(slide_pick_level(table, 4, 1e6), 3);
    assert_int_equal(slide_pick_level(table, 1, 1e6), 0);
    /* Out of order tables still give the most reduced level that fits. */
    const slide_level shuffled[] = {{100, 100, 1}, {13, 13, 8}, {50, 50, 2}, {25, 25, 4}};
    assert_int_equal(slide_pick_level(shuffled, 4, 5), 3);
    assert_int_equal(slide_pick_level(shuffled, 4, 100), 1);
}

static void test_plan_names_region_and_slide_level(void **state) {
    (void)state;
    deepzoom dz = make(4096, 3072);
    const slide_level levels[] = {{4096, 3072, 1}, {2048, 1536, 2}, {1024, 768, 4}, {512, 384, 8}};
    deepzoom_plan p;
    assert_true(deepzoom_plan_tile(&dz, 12, 0, 0, levels, 4, &p));
    assert_int_equal(p.slide_level, 0);
    assert_true(p.downsample == 1);
    assert_int_equal(p.region.x, 0);
    assert_int_equal(p.region.w, 255);
    assert_true(deepzoom_plan_tile(&dz, 10, 1, 1, levels, 4, &p));
    assert_int_equal(p.slide_level, 2);
    assert_true(p.downsample == 4);
    assert_int_equal(p.tile.w, 256);
    assert_int_equal(p.region.x, 253 * 4);
    assert_int_equal(p.region.y, 253 * 4);
    assert_int_equal(p.region.w, 256 * 4);
    assert_true(deepzoom_plan_tile(&dz, 0, 0, 0, levels, 4, &p));
    assert_int_equal(p.slide_level, 3);
    assert_int_equal(p.region.w, 4096);
    assert_int_equal(p.region.h, 3072);
    assert_int_equal(p.tile.w, 1);
    /* Level 9 of a 4095-wide image: the last pixel stands for 7, not 8. */
    dz = make(4095, 100);
    assert_true(deepzoom_plan_tile(&dz, 9, 2, 0, levels, 4, &p));
    assert_int_equal(p.tile.x, 507);
    assert_int_equal(p.tile.w, 512 - 507);
    assert_int_equal(p.region.x, 507 * 8);
    assert_int_equal(p.region.x + p.region.w, 4095);
    assert_int_equal(p.slide_level, 3);
    assert_false(deepzoom_plan_tile(&dz, 9, 3, 0, levels, 4, &p));
}

/* ---- the reference: the format's definitions, computed the slow way. */

static uint64_t rng_state = 88172645463325252ULL;
static uint64_t rnd(void) {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

/* Halving with rounding up, level by level (ceil(ceil(w/2)/2) = ceil(w/4)). */
static int64_t ref_level_side(int64_t side, int max_level, int level) {
    for (int i = level; i < max_level; i++) side = (side + 1) / 2;
    return side;
}

static int ref_max_level(int64_t w, int64_t h) {
    double m = (double)(w > h ? w : h);
    return (int)ceil(log2(m) - 1e-12);
}

static void check_against_reference(int64_t w, int64_t h, int t, int o) {
    deepzoom dz;
    char err[TS_ERRLEN];
    assert_int_equal(deepzoom_init(&dz, w, h, t, o, err, sizeof(err)), TS_OK);
    int L = ref_max_level(w, h);
    assert_int_equal(dz.max_level, L);
    for (int level = 0; level <= L; level++) {
        int64_t lw = ref_level_side(w, L, level), lh = ref_level_side(h, L, level);
        assert_level(&dz, level, lw, lh);
        int64_t cols, rows;
        assert_true(deepzoom_level_tiles(&dz, level, &cols, &rows));
        /* Tiles start every t pixels while the start is inside the level. */
        int64_t ref_cols = 0, ref_rows = 0;
        while (ref_cols * t < lw) ref_cols++;
        while (ref_rows * t < lh) ref_rows++;
        assert_int_equal(cols, ref_cols);
        assert_int_equal(rows, ref_rows);
        if (lw > 4000 && level != L) continue; /* large levels: sample the rest below */
        /* Without their overlap, tiles cover each pixel exactly once; with
         * it, o pixels more on each inner side. */
        int64_t covered = 0;
        for (int64_t c = 0; c < cols; c++) {
            deepzoom_rect r;
            assert_true(deepzoom_tile_rect(&dz, level, c, rows - 1, &r));
            int64_t core_x = c * t, core_end = core_x + t < lw ? core_x + t : lw;
            int64_t want_x = c > 0 ? core_x - o : core_x;
            int64_t want_end = core_end < lw ? (core_end + o < lw ? core_end + o : lw) : lw;
            assert_int_equal(r.x, want_x);
            assert_int_equal(r.x + r.w, want_end);
            covered += core_end - core_x;
            deepzoom_plan p;
            const slide_level one = {w, h, 1};
            assert_true(deepzoom_plan_tile(&dz, level, c, rows - 1, &one, 1, &p));
            double scale = ldexp(1.0, L - level);
            assert_true(p.downsample == scale);
            assert_int_equal(p.region.x, (int64_t)(r.x * scale));
            int64_t end = (int64_t)((r.x + r.w) * scale);
            assert_int_equal(p.region.x + p.region.w, end < w ? end : w);
            assert_true(p.region.w >= 1);
        }
        assert_int_equal(covered, lw);
        deepzoom_rect r;
        assert_false(deepzoom_tile_rect(&dz, level, cols, 0, &r));
        assert_false(deepzoom_tile_rect(&dz, level, 0, rows, &r));
    }
}

static void test_random_sizes_match_the_reference(void **state) {
    (void)state;
    for (int i = 0; i < 300; i++) {
        int64_t w = 1 + (int64_t)(rnd() % (i < 200 ? 5000 : 300000));
        int64_t h = 1 + (int64_t)(rnd() % (i < 200 ? 5000 : 300000));
        int t = i % 3 == 0 ? 254 : 1 + (int)(rnd() % 600);
        int o = i % 3 == 0 ? 1 : (int)(rnd() % (uint64_t)(t < 8 ? t : 8));
        check_against_reference(w, h, t, o);
    }
    /* Powers of two and their neighbours, where rounding goes wrong first. */
    for (int k = 0; k < 24; k++)
        for (int d = -1; d <= 1; d++) {
            int64_t side = ((int64_t)1 << k) + d;
            if (side >= 1) check_against_reference(side, 1 + side / 3, 254, 1);
        }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_level_counts_and_sizes),
        cmocka_unit_test(test_init_refuses_nonsense),
        cmocka_unit_test(test_tile_counts),
        cmocka_unit_test(test_tile_rects_with_overlap_and_edges),
        cmocka_unit_test(test_best_level_from_a_level_table),
        cmocka_unit_test(test_plan_names_region_and_slide_level),
        cmocka_unit_test(test_random_sizes_match_the_reference),
    };
    return cmocka_run_group_tests_name("deepzoom", tests, NULL, NULL);
}
