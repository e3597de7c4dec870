/*
 * test_image_evaluate.c - segmentation scoring (src/image/evaluate*.c):
 * hand-computed cases with the numbers derived in comments, a comparison
 * with a slow all-pairs, per-pixel reference on random polygons, GeoJSON
 * input forms and bad input.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "image/evaluate.h"
#include "testlib.h"
#include "util/util.h"

/* ---- helpers ------------------------------------------------------------------ */

/* |got - want| within 1e-12, printing both otherwise. */
static int near(double got, double want) {
    if (fabs(got - want) <= 1e-12) return 1;
    fprintf(stderr, "got %.17g, want %.17g\n", got, want);
    return 0;
}

/* Appends the axis-aligned rectangle [x0, x1] x [y0, y1] as one object
 * (an unclosed ring). */
static void add_rect(eval_polys *p, double x0, double y0, double x1, double y1) {
    double xy[8] = {x0, y0, x1, y0, x1, y1, x0, y1};
    size_t len = 4;
    char err[TS_ERRLEN];
    assert_int_equal(eval_polys_add(p, xy, &len, 1, err, sizeof(err)), TS_OK);
}

/* Scores at IoU 0.5; the call itself must succeed. */
static eval_instance_result score(const eval_polys *t, const eval_polys *p) {
    eval_instance_result r;
    char err[TS_ERRLEN];
    assert_int_equal(eval_instances(t, p, 0.5, &r, err, sizeof(err)), TS_OK);
    return r;
}

typedef struct fx {
    char dir[64];
} fx;

static int setup(void **state) {
    fx *f = calloc(1, sizeof(*f));
    if (f == NULL) return -1;
    strcpy(f->dir, "/tmp/tessera-eval-XXXXXX");
    if (mkdtemp(f->dir) == NULL) return -1;
    *state = f;
    return 0;
}

static int teardown(void **state) {
    fx *f = *state;
    test_rm_rf(f->dir);
    free(f);
    return 0;
}

/* Writes text to <dir>/name and returns the path in buf. */
static const char *write_file(const fx *f, const char *name, const char *text, char *buf, size_t n) {
    snprintf(buf, n, "%s/%s", f->dir, name);
    FILE *fp = fopen(buf, "w");
    assert_non_null(fp);
    fputs(text, fp);
    fclose(fp);
    return buf;
}

/* ---- hand-computed instance cases ----------------------------------------------- */

static void test_offset_5px_is_not_a_match(void **state) {
    (void)state;
    eval_polys t, p;
    eval_polys_init(&t), eval_polys_init(&p);
    add_rect(&t, 0, 0, 10, 10);
    add_rect(&p, 5, 0, 15, 10);
    eval_instance_result r = score(&t, &p);
    /* |G| = |P| = 100; G ∩ P = [5,10]x[0,10] = 50 pixels; union = 150;
     * IoU = 50/150 = 1/3, not > 0.5: TP 0, FP 1, FN 1, F1 = 0/(0+1+1) = 0. */
    assert_int_equal(r.tp, 0);
    assert_int_equal(r.fp, 1);
    assert_int_equal(r.fn, 1);
    assert_true(near(r.f1, 0));
    assert_true(near(r.pq, 0));
    /* AJI: the pred is G's best partner anyway: C = 50, U = 150 -> 1/3. */
    assert_true(near(r.aji_c, 50));
    assert_true(near(r.aji_u, 150));
    assert_true(near(r.aji, 1.0 / 3.0));
    eval_polys_free(&t), eval_polys_free(&p);
}

static void test_offset_2px_is_a_match(void **state) {
    (void)state;
    eval_polys t, p;
    eval_polys_init(&t), eval_polys_init(&p);
    add_rect(&t, 0, 0, 10, 10);
    add_rect(&p, 2, 0, 12, 10);
    eval_instance_result r = score(&t, &p);
    /* G ∩ P = [2,10]x[0,10] = 80, union = 100 + 100 - 80 = 120, IoU = 2/3.
     * TP 1: precision = recall = F1 = 1; SQ = 2/3; RQ = 1/(1+0+0) = 1;
     * PQ = (2/3)/1 = 2/3; AJI = 80/120 = 2/3. */
    assert_int_equal(r.tp, 1);
    assert_int_equal(r.fp, 0);
    assert_int_equal(r.fn, 0);
    assert_true(near(r.precision, 1));
    assert_true(near(r.recall, 1));
    assert_true(near(r.f1, 1));
    assert_true(near(r.sq, 2.0 / 3.0));
    assert_true(near(r.rq, 1));
    assert_true(near(r.pq, 2.0 / 3.0));
    assert_true(near(r.aji, 2.0 / 3.0));
    eval_polys_free(&t), eval_polys_free(&p);
}

/* Touching truths: two boxes sharing an edge, a third 1 px from the
 * second (within EVAL_TOUCH_DIST), a fourth 5 px from everything, a fifth
 * inside a sixth's hole-free outline overlapping it. The prediction finds
 * the lone box and one of the touching pair, so recall on touching truths
 * is 1 of 5. */
static void test_touching_truths_and_their_recall(void **state) {
    (void)state;
    eval_polys t, p;
    eval_polys_init(&t), eval_polys_init(&p);
    add_rect(&t, 0, 0, 10, 10);   /* 0: shares x = 10 with 1 */
    add_rect(&t, 10, 0, 20, 10);  /* 1 */
    add_rect(&t, 21, 0, 30, 10);  /* 2: 1 px from 1 */
    add_rect(&t, 40, 0, 50, 10);  /* 3: alone (10 px from 2) */
    add_rect(&t, 60, 0, 70, 10);  /* 4: overlaps 5 */
    add_rect(&t, 65, 5, 75, 15);  /* 5 */
    unsigned char touch[6];
    assert_int_equal(eval_touching(&t, EVAL_TOUCH_DIST, touch), 5);
    assert_int_equal(touch[3], 0);
    assert_int_equal(touch[0] && touch[1] && touch[2] && touch[4] && touch[5], 1);
    add_rect(&p, 40, 0, 50, 10);
    add_rect(&p, 0, 0, 10, 10);
    eval_instance_result r = score(&t, &p);
    assert_int_equal(r.touching, 5);
    assert_int_equal(r.touching_tp, 1);
    assert_true(near(r.recall_touching, 0.2));
    eval_polys_free(&t), eval_polys_free(&p);
}

static void test_identical_sets_score_one(void **state) {
    (void)state;
    eval_polys t, p;
    eval_polys_init(&t), eval_polys_init(&p);
    for (int i = 0; i < 5; i++) {
        add_rect(&t, 20 * i, 0, 20 * i + 8 + i, 9);
        add_rect(&p, 20 * i, 0, 20 * i + 8 + i, 9);
    }
    eval_instance_result r = score(&t, &p);
    /* Every object matches itself with IoU 1: TP 5, FP = FN = 0, so
     * F1 = 10/10 = 1, SQ = 5/5 = 1, PQ = 5/5 = 1, AJI = sum|G| / sum|G| = 1. */
    assert_int_equal(r.tp, 5);
    assert_int_equal(r.fp + r.fn, 0);
    assert_true(near(r.f1, 1));
    assert_true(near(r.sq, 1));
    assert_true(near(r.pq, 1));
    assert_true(near(r.aji, 1));
    /* Areas: 8x9 + 9x9 + 10x9 + 11x9 + 12x9 = 9 x 50 = 450. */
    assert_true(near(r.truth_area, 450));
    assert_true(near(r.pred_area, 450));
    eval_polys_free(&t), eval_polys_free(&p);
}

static void test_empty_prediction_scores_zero(void **state) {
    (void)state;
    eval_polys t, p;
    eval_polys_init(&t), eval_polys_init(&p);
    add_rect(&t, 0, 0, 10, 10);
    add_rect(&t, 30, 30, 40, 40);
    eval_instance_result r = score(&t, &p);
    /* TP 0, FP 0, FN 2: F1 = 0/(0+0+2) = 0; precision 0/0 reported as 0;
     * recall 0/2 = 0; PQ = 0/(0+0+1) = 0; AJI = 0 / (100 + 100) = 0. */
    assert_int_equal(r.tp, 0);
    assert_int_equal(r.fp, 0);
    assert_int_equal(r.fn, 2);
    assert_true(near(r.f1, 0));
    assert_true(near(r.precision, 0));
    assert_true(near(r.recall, 0));
    assert_true(near(r.pq, 0));
    assert_true(near(r.aji_u, 200));
    assert_true(near(r.aji, 0));
    eval_polys_free(&t), eval_polys_free(&p);
}

static void test_one_truth_split_into_two_predictions(void **state) {
    (void)state;
    eval_polys t, p;
    eval_polys_init(&t), eval_polys_init(&p);
    add_rect(&t, 0, 0, 10, 10);
    add_rect(&p, 0, 0, 6, 10);
    add_rect(&p, 6, 0, 10, 10);
    eval_instance_result r = score(&t, &p);
    /* P0 = 60 px inside G: IoU 60/100 = 0.6 (match); P1 = 40 px: IoU 0.4.
     * TP 1, FP 1, FN 0: precision 1/2, recall 1, F1 = 2/(2+1) = 2/3;
     * SQ = 0.6; RQ = 1/(1 + 1/2) = 2/3; PQ = 0.6/1.5 = 0.4.
     * AJI: G's best is P0: C = 60, U = 100; P1 unused: U += 40 -> 60/140 = 3/7. */
    assert_int_equal(r.tp, 1);
    assert_int_equal(r.fp, 1);
    assert_int_equal(r.fn, 0);
    assert_true(near(r.precision, 0.5));
    assert_true(near(r.recall, 1));
    assert_true(near(r.f1, 2.0 / 3.0));
    assert_true(near(r.sq, 0.6));
    assert_true(near(r.rq, 2.0 / 3.0));
    assert_true(near(r.pq, 0.4));
    assert_true(near(r.aji, 3.0 / 7.0));
    eval_polys_free(&t), eval_polys_free(&p);

    /* Halves: IoU exactly 0.5 each, which is not > 0.5: no match. AJI picks
     * the lower index on the tie: C = 50, U = 100 + 50 (the other half). */
    eval_polys_init(&t), eval_polys_init(&p);
    add_rect(&t, 0, 0, 10, 10);
    add_rect(&p, 0, 0, 5, 10);
    add_rect(&p, 5, 0, 10, 10);
    r = score(&t, &p);
    assert_int_equal(r.tp, 0);
    assert_int_equal(r.fp, 2);
    assert_int_equal(r.fn, 1);
    assert_true(near(r.aji, 50.0 / 150.0));
    eval_polys_free(&t), eval_polys_free(&p);
}

static void test_pixel_centre_rule(void **state) {
    (void)state;
    eval_polys p;
    eval_polys_init(&p);
    /* [0.6, 3.4]^2: centres 1.5 and 2.5 inside, 0.5 and 3.5 outside: 2x2 = 4. */
    add_rect(&p, 0.6, 0.6, 3.4, 3.4);
    assert_int_equal(eval_object_area(&p, 0), 4);
    /* [0.5, 2.5]^2: centre 0.5 on the left/bottom edge counts, 2.5 on the
     * right/top edge does not: columns 0, 1 x rows 0, 1 = 4. */
    add_rect(&p, 0.5, 0.5, 2.5, 2.5);
    assert_int_equal(eval_object_area(&p, 1), 4);
    /* Sub-pixel square with no centre inside: area 0. */
    add_rect(&p, 0.1, 0.1, 0.4, 0.4);
    assert_int_equal(eval_object_area(&p, 2), 0);
    /* Right triangle (0,0),(10,0),(0,10): on row y the centre line
     * y + 0.5 meets the hypotenuse at x = 9.5 - y, so the span is
     * [0, 9.5 - y) and column x is inside iff x + 0.5 < 9.5 - y, i.e.
     * x = 0 .. 8 - y: 9 - y columns (the centre exactly on the hypotenuse is
     * on a right edge: outside). Sum over y = 0..9 of (9 - y) = 45. */
    double tri[6] = {0, 0, 10, 0, 0, 10};
    size_t len = 3;
    char err[TS_ERRLEN];
    assert_int_equal(eval_polys_add(&p, tri, &len, 1, err, sizeof(err)), TS_OK);
    assert_int_equal(eval_object_area(&p, 3), 45);
    eval_polys_free(&p);
}

/* A ring flat on one row crosses no pixel centre line: it covers nothing,
 * and rasterising it must not index the (never allocated) crossings buffer.
 * Found by tests/fuzz/fuzz_geojson (clang's UBSan: NULL + 0; gcc's does not
 * check that, the fuzz corpus keeps the reproducer). */
static void test_flat_ring_covers_nothing(void **state) {
    (void)state;
    eval_polys p;
    eval_polys_init(&p);
    double flat[6] = {0, 1, 0, 1, 1, 1};
    size_t len = 3;
    char err[TS_ERRLEN];
    assert_int_equal(eval_polys_add(&p, flat, &len, 1, err, sizeof(err)), TS_OK);
    assert_int_equal(eval_object_area(&p, 0), 0);
    eval_instance_result r;
    assert_int_equal(eval_instances(&p, &p, 0.5, &r, err, sizeof(err)), TS_OK);
    assert_int_equal(r.tp, 0);
    assert_int_equal(r.pred_empty, 1);
    eval_polys_free(&p);
}

/* A polygon whose only ring is empty ("coordinates": [[]]) reaches
 * eval_polys_add with xy == NULL: it is an object with no rings, and no
 * pointer arithmetic is done on NULL (fuzz_geojson, clang's UBSan; the
 * reproducer is in tests/fuzz/corpus/geojson/crash-empty-ring-null-xy). */
static void test_empty_ring_without_points(void **state) {
    (void)state;
    eval_polys p;
    eval_polys_init(&p);
    size_t len = 0;
    char err[TS_ERRLEN];
    assert_int_equal(eval_polys_add(&p, NULL, &len, 1, err, sizeof(err)), TS_OK);
    assert_int_equal(eval_object_area(&p, 0), 0);
    eval_polys_free(&p);
}

static void test_hole_is_excluded(void **state) {
    (void)state;
    eval_polys t, p;
    eval_polys_init(&t), eval_polys_init(&p);
    /* Outline [0,10]^2 (closed ring, 5 vertices) with hole [3,7]^2 (unclosed). */
    double xy[] = {0, 0, 10, 0, 10, 10, 0, 10, 0, 0, 3, 3, 7, 3, 7, 7, 3, 7};
    size_t len[2] = {5, 4};
    char err[TS_ERRLEN];
    assert_int_equal(eval_polys_add(&t, xy, len, 2, err, sizeof(err)), TS_OK);
    /* The closing repeat is dropped: 4 + 4 vertices stored, 2 rings. */
    assert_int_equal(t.n_points, 8);
    assert_int_equal(t.n_rings, 2);
    /* 10x10 - 4x4 = 84. */
    assert_int_equal(eval_object_area(&t, 0), 84);
    add_rect(&p, 0, 0, 10, 10);
    eval_instance_result r = score(&t, &p);
    /* IoU = 84/100 = 0.84: a match; PQ = SQ = 0.84. */
    assert_int_equal(r.tp, 1);
    assert_true(near(r.pq, 0.84));
    eval_polys_free(&t), eval_polys_free(&p);
}

/* ---- GeoJSON input -------------------------------------------------------------- */

static void test_geojson_forms(void **state) {
    fx *f = *state;
    char path[128], err[TS_ERRLEN];
    eval_polys p;
    /* Feature 0: a cell: geometry 20x20, nucleus 4x5, ring unclosed.
     * Feature 1: MultiPolygon of [0,4]^2 and [10,14]x[0,4], closed: 16 + 16.
     * Feature 2: Polygon with a hole: 10x10 - 2x2 = 96. Extra z is ignored. */
    const char *text =
        "{\"type\":\"FeatureCollection\",\"features\":["
        "{\"type\":\"Feature\",\"geometry\":{\"type\":\"Polygon\",\"coordinates\":"
        "[[[0,0],[20,0],[20,20],[0,20]]]},\"nucleusGeometry\":{\"type\":\"Polygon\","
        "\"coordinates\":[[[5,5],[9,5],[9,10],[5,10]]]},\"properties\":{\"objectType\":\"cell\"}},"
        "{\"type\":\"Feature\",\"geometry\":{\"type\":\"MultiPolygon\",\"coordinates\":"
        "[[[[0,0],[4,0],[4,4],[0,4],[0,0]]],[[[10,0],[14,0],[14,4],[10,4],[10,0]]]]},"
        "\"properties\":{\"objectType\":\"annotation\"}},"
        "{\"type\":\"Feature\",\"geometry\":{\"type\":\"Polygon\",\"coordinates\":"
        "[[[0,0,1],[10,0,1],[10,10,1],[0,10,1],[0,0,1]],[[4,4],[6,4],[6,6],[4,6]]]},"
        "\"properties\":{}}]}";
    write_file(f, "a.geojson", text, path, sizeof(path));
    assert_int_equal(eval_load_geojson(path, EVAL_GEOM_NUCLEUS, &p, err, sizeof(err)), TS_OK);
    assert_int_equal(p.n, 3);
    assert_int_equal(eval_object_area(&p, 0), 20);
    assert_int_equal(eval_object_area(&p, 1), 32);
    assert_int_equal(eval_object_area(&p, 2), 96);
    assert_true(p.bbox[1].x0 == 0 && p.bbox[1].x1 == 14 && p.bbox[1].y1 == 4);
    eval_polys_free(&p);
    assert_int_equal(eval_load_geojson(path, EVAL_GEOM_OUTLINE, &p, err, sizeof(err)), TS_OK);
    assert_int_equal(eval_object_area(&p, 0), 400);
    eval_polys_free(&p);

    /* A bare array of Features and a single Feature are accepted too. */
    write_file(f, "b.geojson",
               "[{\"type\":\"Feature\",\"geometry\":{\"type\":\"Polygon\",\"coordinates\":"
               "[[[0,0],[3,0],[3,3],[0,3]]]}}]",
               path, sizeof(path));
    assert_int_equal(eval_load_geojson(path, EVAL_GEOM_NUCLEUS, &p, err, sizeof(err)), TS_OK);
    assert_int_equal(p.n, 1);
    assert_int_equal(eval_object_area(&p, 0), 9);
    eval_polys_free(&p);
    write_file(f, "c.geojson",
               "{\"type\":\"Feature\",\"geometry\":{\"type\":\"Polygon\",\"coordinates\":[]}}",
               path, sizeof(path));
    assert_int_equal(eval_load_geojson(path, EVAL_GEOM_NUCLEUS, &p, err, sizeof(err)), TS_OK);
    assert_int_equal(p.n, 1);
    assert_int_equal(eval_object_area(&p, 0), 0);
    eval_polys_free(&p);
}

static void test_multipolygon_matching(void **state) {
    (void)state;
    eval_polys t, p;
    eval_polys_init(&t), eval_polys_init(&p);
    double xy[] = {0, 0, 4, 0, 4, 4, 0, 4, 10, 0, 14, 0, 14, 4, 10, 4};
    size_t len[2] = {4, 4};
    char err[TS_ERRLEN];
    assert_int_equal(eval_polys_add(&t, xy, len, 2, err, sizeof(err)), TS_OK);
    add_rect(&p, 0, 0, 4, 4);
    eval_instance_result r = score(&t, &p);
    /* |G| = 16 + 16 = 32, P = the first part (16): IoU = 16/32 = 0.5, not a
     * match; AJI = 16/32 = 0.5. */
    assert_int_equal(r.tp, 0);
    assert_true(near(r.aji, 0.5));
    add_rect(&p, 10, 0, 14, 4.9); /* rows 0..4: 4x5 = 20 px, 16 shared */
    r = score(&t, &p);
    /* AJI: best for G is P0 (IoU 16/32 = 0.5) vs P1 (16/36 = 0.444): P0;
     * C = 16, U = 32 + P1's 20 = 52 -> 16/52. */
    assert_true(near(r.aji, 16.0 / 52.0));
    eval_polys_free(&t), eval_polys_free(&p);
}

/* ---- Dice ------------------------------------------------------------------------ */

static void test_dice_of_rectangles(void **state) {
    (void)state;
    eval_polys a, b;
    eval_polys_init(&a), eval_polys_init(&b);
    add_rect(&a, 0, 0, 100, 50);
    add_rect(&b, 50, 0, 150, 50);
    eval_region_result r;
    char err[TS_ERRLEN];
    assert_int_equal(eval_dice(&a, &b, 0, &r, err, sizeof(err)), TS_OK);
    /* |A| = |B| = 100x50 = 5000; A ∩ B = [50,100]x[0,50] = 2500;
     * Dice = 2 x 2500 / 10000 = 0.5; Jaccard = 2500 / 7500 = 1/3. */
    assert_int_equal(r.cell, 1);
    assert_true(near(r.truth_area, 5000));
    assert_true(near(r.pred_area, 5000));
    assert_true(near(r.inter_area, 2500));
    assert_true(near(r.dice, 0.5));
    assert_true(near(r.jaccard, 1.0 / 3.0));
    /* On a coarse grid: extent 150 px, at most 16 cells -> k = ceil(150/16)
     * = 10 px cells; the edges lie on multiples of 10, so the same areas. */
    assert_int_equal(eval_dice(&a, &b, 16, &r, err, sizeof(err)), TS_OK);
    assert_int_equal(r.cell, 10);
    assert_int_equal(r.grid_w, 15);
    assert_int_equal(r.grid_h, 5);
    assert_true(near(r.inter_area, 2500));
    assert_true(near(r.dice, 0.5));
    /* Overlapping features of one set count once: A gains [0,100]x[0,50]
     * again and [0,20]x[50,60] (200 px): |A| = 5200, A ∩ B unchanged:
     * Dice = 5000 / 10200. */
    add_rect(&a, 0, 0, 100, 50);
    add_rect(&a, 0, 50, 20, 60);
    assert_int_equal(eval_dice(&a, &b, 0, &r, err, sizeof(err)), TS_OK);
    assert_true(near(r.truth_area, 5200));
    assert_true(near(r.dice, 5000.0 / 10200.0));
    eval_polys_free(&a), eval_polys_free(&b);
}

static void test_dice_with_hole_and_empty(void **state) {
    (void)state;
    eval_polys a, b;
    eval_polys_init(&a), eval_polys_init(&b);
    double xy[] = {0, 0, 100, 0, 100, 100, 0, 100, 25, 25, 75, 25, 75, 75, 25, 75};
    size_t len[2] = {4, 4};
    char err[TS_ERRLEN];
    eval_region_result r;
    assert_int_equal(eval_dice(&a, &b, 0, &r, err, sizeof(err)), TS_OK);
    assert_true(near(r.dice, 0)); /* nothing at all: 0/0 -> 0 */
    assert_int_equal(eval_polys_add(&a, xy, len, 2, err, sizeof(err)), TS_OK);
    add_rect(&b, 0, 0, 100, 100);
    assert_int_equal(eval_dice(&a, &b, 0, &r, err, sizeof(err)), TS_OK);
    /* |A| = 10000 - 2500 = 7500, |B| = 10000, A ∩ B = 7500:
     * Dice = 15000 / 17500 = 6/7. */
    assert_true(near(r.truth_area, 7500));
    assert_true(near(r.dice, 6.0 / 7.0));
    assert_int_equal(eval_dice(&a, &b, 8, &r, err, sizeof(err)), TS_ERR);
    assert_string_equal(err, "grid size must be 16 .. 65536 cells, not 8");
    eval_polys_free(&a), eval_polys_free(&b);
}

/* ---- a large regular case ------------------------------------------------------- */

static void test_many_nuclei_shifted_by_one_pixel(void **state) {
    (void)state;
    eval_polys t, p;
    eval_polys_init(&t), eval_polys_init(&p);
    for (int i = 0; i < 200; i++)
        for (int j = 0; j < 200; j++) {
            add_rect(&t, 10 * i, 10 * j, 10 * i + 8, 10 * j + 8);
            add_rect(&p, 10 * i + 1, 10 * j, 10 * i + 9, 10 * j + 8);
        }
    eval_instance_result r = score(&t, &p);
    /* 40,000 pairs, each 8x8 squares shifted by 1: inter 7x8 = 56, union
     * 64 + 64 - 56 = 72, IoU 7/9; neighbours 2 px apart never overlap.
     * TP 40000, F1 = 1, PQ = SQ = 7/9, AJI = 40000x56 / 40000x72 = 7/9. */
    assert_int_equal(r.tp, 40000);
    assert_int_equal(r.fp + r.fn, 0);
    assert_true(fabs(r.pq - 7.0 / 9.0) < 1e-9);
    assert_true(near(r.aji, 7.0 / 9.0));
    assert_true(r.pairs < 4 * 40000); /* the grid, not all 1.6e9 pairs */
    eval_polys_free(&t), eval_polys_free(&p);
}

/* ---- random polygons against a slow reference ------------------------------------ */

static uint64_t rng_next(uint64_t *s) {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static double rng_unit(uint64_t *s) {
    return (double)(rng_next(s) >> 11) * 0x1.0p-53;
}

/* Appends a random star-shaped ring around (cx, cy) of radius about r. */
static size_t star_ring(double *xy, double cx, double cy, double r, uint64_t *s) {
    size_t n = 5 + (size_t)(rng_unit(s) * 8);
    for (size_t i = 0; i < n; i++) {
        double a = (i + 0.6 * rng_unit(s)) * 2 * M_PI / (double)n, rr = r * (0.6 + 0.4 * rng_unit(s));
        xy[2 * i] = cx + rr * cos(a);
        xy[2 * i + 1] = cy + rr * sin(a);
    }
    return n;
}

/* One random object: a star, sometimes with a hole, sometimes with a second
 * part (MultiPolygon-like). */
static void add_random_object(eval_polys *p, double cx, double cy, double r, uint64_t *s) {
    double xy[2 * 13 * 3];
    size_t len[3], n = 0, off = 0;
    len[n] = star_ring(xy, cx, cy, r, s), off += len[n++];
    if (rng_unit(s) < 0.15) len[n] = star_ring(xy + 2 * off, cx, cy, 0.3 * r, s), off += len[n++];
    if (rng_unit(s) < 0.1) len[n] = star_ring(xy + 2 * off, cx + 2.5 * r, cy, 0.5 * r, s), n++;
    char err[TS_ERRLEN];
    assert_int_equal(eval_polys_add(p, xy, len, n, err, sizeof(err)), TS_OK);
}

/* The definition of coverage, written the slow way: parity of the
 * crossings at or left of the centre, over every ring. */
static int ref_inside(const eval_polys *p, size_t i, double xc, double yc) {
    int in = 0;
    for (size_t r = p->obj_ring[i]; r < p->obj_ring[i + 1]; r++) {
        size_t a = p->ring_pt[r], m = p->ring_pt[r + 1] - a;
        for (size_t k = 0; k < m; k++) {
            const double *u = p->xy + 2 * (a + k), *v = p->xy + 2 * (a + (k + 1) % m);
            if ((u[1] > yc) == (v[1] > yc)) continue;
            double x = u[0] + (yc - u[1]) * (v[0] - u[0]) / (v[1] - u[1]);
            if (x <= xc) in ^= 1;
        }
    }
    return in;
}

#define REF_SIZE 320 /* every random object lies inside [-40, 280)^2 */
#define REF_OFF 40

/* An object's full-canvas bitmap and the box of its set pixels (only to
 * skip blank canvas; every pixel is still decided by ref_inside). */
typedef struct ref_obj {
    unsigned char *bits;
    int64_t area;
    int x0, y0, x1, y1; /* set pixels lie in [x0, x1) x [y0, y1) */
} ref_obj;

static ref_obj ref_bitmap(const eval_polys *p, size_t i) {
    ref_obj o = {calloc(REF_SIZE * REF_SIZE, 1), 0, REF_SIZE, REF_SIZE, 0, 0};
    for (int y = 0; y < REF_SIZE; y++)
        for (int x = 0; x < REF_SIZE; x++) {
            if (!ref_inside(p, i, x - REF_OFF + 0.5, y - REF_OFF + 0.5)) continue;
            o.bits[y * REF_SIZE + x] = 1;
            o.area++;
            o.x0 = x < o.x0 ? x : o.x0, o.x1 = x + 1 > o.x1 ? x + 1 : o.x1;
            o.y0 = y < o.y0 ? y : o.y0, o.y1 = y + 1 > o.y1 ? y + 1 : o.y1;
        }
    return o;
}

static int64_t ref_inter(const ref_obj *a, const ref_obj *b) {
    int64_t n = 0;
    int x0 = a->x0 > b->x0 ? a->x0 : b->x0, x1 = a->x1 < b->x1 ? a->x1 : b->x1;
    int y0 = a->y0 > b->y0 ? a->y0 : b->y0, y1 = a->y1 < b->y1 ? a->y1 : b->y1;
    for (int y = y0; y < y1; y++)
        for (int x = x0; x < x1; x++) n += a->bits[y * REF_SIZE + x] & b->bits[y * REF_SIZE + x];
    return n;
}

typedef struct ref_result {
    size_t tp;
    double sum_iou, c, u;
} ref_result;

typedef struct ref_pair {
    size_t i, j;
    double iou;
} ref_pair;

/* Descending IoU, then truth index, then prediction index. */
static int ref_pair_cmp(const void *a, const void *b) {
    const ref_pair *x = a, *y = b;
    if (x->iou != y->iou) return x->iou < y->iou ? 1 : -1;
    if (x->i != y->i) return x->i < y->i ? -1 : 1;
    return (x->j > y->j) - (x->j < y->j);
}

/* All pairs over the per-pixel bitmaps: the pairs above thr matched
 * greedily by IoU (random objects of one set may overlap each other, so a
 * pair above 0.5 need not be unique), and AJI's C and U. */
static ref_result ref_score(const ref_obj *bt, size_t nt, const ref_obj *bp, size_t np, double thr) {
    unsigned char *used = calloc(np, 1), *mt = calloc(nt, 1), *mp = calloc(np, 1);
    ref_pair *pairs = calloc(nt * np, sizeof(ref_pair));
    size_t n_pairs = 0;
    ref_result r = {0};
    for (size_t i = 0; i < nt; i++) {
        double best = 0;
        int64_t best_inter = 0;
        size_t best_j = SIZE_MAX;
        for (size_t j = 0; j < np; j++) {
            int64_t inter = ref_inter(&bt[i], &bp[j]);
            if (inter == 0) continue;
            double iou = (double)inter / (double)(bt[i].area + bp[j].area - inter);
            if (iou > best) best = iou, best_j = j, best_inter = inter;
            if (iou > thr) pairs[n_pairs++] = (ref_pair){i, j, iou};
        }
        if (best_j == SIZE_MAX) {
            r.u += (double)bt[i].area;
        } else {
            r.c += (double)best_inter;
            r.u += (double)(bt[i].area + bp[best_j].area - best_inter);
            used[best_j] = 1;
        }
    }
    for (size_t j = 0; j < np; j++)
        if (!used[j]) r.u += (double)bp[j].area;
    qsort(pairs, n_pairs, sizeof(ref_pair), ref_pair_cmp);
    for (size_t k = 0; k < n_pairs; k++) {
        if (mt[pairs[k].i] || mp[pairs[k].j]) continue;
        mt[pairs[k].i] = mp[pairs[k].j] = 1;
        r.tp++;
        r.sum_iou += pairs[k].iou;
    }
    free(used), free(mt), free(mp), free(pairs);
    return r;
}

/* Compares eval_instances with the reference at several thresholds. */
static void check_against_reference(const eval_polys *t, const eval_polys *p) {
    ref_obj *bt = calloc(t->n, sizeof(ref_obj)), *bp = calloc(p->n, sizeof(ref_obj));
    for (size_t i = 0; i < t->n; i++) bt[i] = ref_bitmap(t, i);
    for (size_t j = 0; j < p->n; j++) bp[j] = ref_bitmap(p, j);
    for (size_t i = 0; i < t->n; i++) assert_int_equal(eval_object_area(t, i), bt[i].area);
    for (size_t j = 0; j < p->n; j++) assert_int_equal(eval_object_area(p, j), bp[j].area);
    const double thresholds[3] = {0.5, 0.7, 0.3};
    for (int k = 0; k < 3; k++) {
        ref_result ref = ref_score(bt, t->n, bp, p->n, thresholds[k]);
        eval_instance_result r;
        char err[TS_ERRLEN];
        assert_int_equal(eval_instances(t, p, thresholds[k], &r, err, sizeof(err)), TS_OK);
        assert_int_equal(r.tp, ref.tp);
        assert_int_equal(r.fp, p->n - ref.tp);
        assert_int_equal(r.fn, t->n - ref.tp);
        assert_true(fabs(r.pq - ref.sum_iou / (ref.tp + 0.5 * (r.fp + r.fn))) < 1e-12);
        assert_true(near(r.aji_c, ref.c));
        assert_true(near(r.aji_u, ref.u));
        assert_true(ref.tp > 5 && ref.tp < t->n); /* a non-trivial mix */
    }
    for (size_t i = 0; i < t->n; i++) free(bt[i].bits);
    for (size_t j = 0; j < p->n; j++) free(bp[j].bits);
    free(bt), free(bp);
}

static void test_random_polygons_match_reference(void **state) {
    (void)state;
    uint64_t s = 0x9e3779b97f4a7c15ull;
    eval_polys t, p;
    eval_polys_init(&t), eval_polys_init(&p);
    /* 200 truths (stars 3-10 px, some with holes or a second part, free to
     * overlap), 85% of them predicted a little moved and resized, plus 30
     * spurious predictions. */
    for (int i = 0; i < 200; i++) {
        double cx = 10 + 220 * rng_unit(&s), cy = 10 + 220 * rng_unit(&s), r = 3 + 7 * rng_unit(&s);
        add_random_object(&t, cx, cy, r, &s);
        if (rng_unit(&s) < 0.85)
            add_random_object(&p, cx + 3 * rng_unit(&s) - 1.5, cy + 3 * rng_unit(&s) - 1.5,
                              r * (0.9 + 0.2 * rng_unit(&s)), &s);
    }
    for (int i = 0; i < 30; i++)
        add_random_object(&p, 10 + 220 * rng_unit(&s), 10 + 220 * rng_unit(&s), 3 + 7 * rng_unit(&s), &s);
    check_against_reference(&t, &p);
    eval_polys_free(&t), eval_polys_free(&p);
}

/* ---- bad input ------------------------------------------------------------------- */

/* Loads text from a file and expects TS_ERR with a message starting
 * "<path>: <want>" (jansson's own words follow for bad JSON). */
static void expect_load_error(const fx *f, const char *text, const char *want) {
    char path[128], err[TS_ERRLEN], expected[TS_ERRLEN];
    eval_polys p;
    write_file(f, "bad.geojson", text, path, sizeof(path));
    assert_int_equal(eval_load_geojson(path, EVAL_GEOM_NUCLEUS, &p, err, sizeof(err)), TS_ERR);
    snprintf(expected, sizeof(expected), "%s: %s", path, want);
    if (strncmp(err, expected, strlen(expected)) != 0) fail_msg("\"%s\" does not start with \"%s\"", err, expected);
    eval_polys_free(&p);
}

static void test_bad_input_is_named(void **state) {
    fx *f = *state;
    char path[128], err[TS_ERRLEN], expected[TS_ERRLEN];
    eval_polys p;
    snprintf(path, sizeof(path), "%s/missing.geojson", f->dir);
    assert_int_equal(eval_load_geojson(path, EVAL_GEOM_NUCLEUS, &p, err, sizeof(err)), TS_ERR);
    snprintf(expected, sizeof(expected), "%s: cannot open: No such file or directory", path);
    assert_string_equal(err, expected);
    eval_polys_free(&p);

    expect_load_error(f, "{\"type\": \"FeatureCollection\",\n \"features\": [",
                      "invalid JSON at line 2 column 14: ");
    expect_load_error(f, "{\"type\": \"Point\", \"coordinates\": [1, 2]}",
                      "not GeoJSON (expected a FeatureCollection, a Feature or an array of Features)");
    expect_load_error(f,
                      "{\"type\":\"FeatureCollection\",\"features\":[{\"type\":\"Feature\",\"geometry\":"
                      "{\"type\":\"Polygon\",\"coordinates\":[[[0,0],[1,0],[1,1]]]}},"
                      "{\"type\":\"Feature\",\"properties\":{\"objectType\":\"detection\"}}]}",
                      "features[1]: no geometry");
    expect_load_error(f, "[{\"type\":\"Feature\",\"geometry\":null}]", "features[0]: no geometry");
    expect_load_error(f, "[{\"type\":\"Feature\",\"geometry\":{\"type\":\"Point\",\"coordinates\":[1,2]}}]",
                      "features[0]: geometry type \"Point\" is not supported (Polygon or MultiPolygon)");
    expect_load_error(f,
                      "[{\"type\":\"Feature\",\"geometry\":{\"type\":\"Polygon\",\"coordinates\":"
                      "[[[0,0],[1,\"a\"],[1,1]]]}}]",
                      "features[0]: position 1 of a ring is not [x, y] numbers");
    expect_load_error(f,
                      "[{\"type\":\"Feature\",\"geometry\":{\"type\":\"Polygon\",\"coordinates\":"
                      "[[[0,0],[1e12,0],[1,1]]]}}]",
                      "features[0]: coordinate 1e+12 is not finite or beyond +-1e+07 pixels");
    expect_load_error(f, "[{\"type\":\"Feature\",\"geometry\":{\"type\":\"Polygon\"}}]",
                      "features[0]: polygon coordinates are not an array of rings");

    eval_instance_result r;
    eval_polys_init(&p);
    assert_int_equal(eval_instances(&p, &p, 1.0, &r, err, sizeof(err)), TS_ERR);
    assert_string_equal(err, "IoU threshold must be greater than 0 and less than 1, not 1");
    assert_int_equal(eval_instances(&p, &p, NAN, &r, err, sizeof(err)), TS_ERR);
    /* Both empty: every ratio is 0/0, reported as 0. */
    assert_int_equal(eval_instances(&p, &p, 0.5, &r, err, sizeof(err)), TS_OK);
    assert_true(near(r.f1, 0) && near(r.aji, 0) && r.tp == 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_offset_5px_is_not_a_match),
        cmocka_unit_test(test_offset_2px_is_a_match),
        cmocka_unit_test(test_identical_sets_score_one),
        cmocka_unit_test(test_touching_truths_and_their_recall),
        cmocka_unit_test(test_empty_prediction_scores_zero),
        cmocka_unit_test(test_one_truth_split_into_two_predictions),
        cmocka_unit_test(test_pixel_centre_rule),
        cmocka_unit_test(test_flat_ring_covers_nothing),
        cmocka_unit_test(test_empty_ring_without_points),
        cmocka_unit_test(test_hole_is_excluded),
        cmocka_unit_test_setup_teardown(test_geojson_forms, setup, teardown),
        cmocka_unit_test(test_multipolygon_matching),
        cmocka_unit_test(test_dice_of_rectangles),
        cmocka_unit_test(test_dice_with_hole_and_empty),
        cmocka_unit_test(test_many_nuclei_shifted_by_one_pixel),
        cmocka_unit_test(test_random_polygons_match_reference),
        cmocka_unit_test_setup_teardown(test_bad_input_is_named, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
