/*
 * test_image_concave.c - cutting objects at pairs of notches
 * (src/image/concave.c) on drawn label images: touching discs are cut
 * into their discs, a single disc, a kidney (one notch) and a cut that
 * would leave a too-small or a ragged piece are not; the solidity of
 * known shapes.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "image/concave.h"
#include "util/util.h"

#define W 120
#define H 100

typedef struct disc {
    double x, y, r;
} disc;

/* Label image with every pixel whose centre is inside one of the discs
 * set to label, minus the pixels inside any of the bites. */
static void draw(int32_t *lab, const disc *d, int n, const disc *bite, int nbite, int32_t label) {
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            double px = x + 0.5, py = y + 0.5;
            int in = 0;
            for (int i = 0; i < n; i++) in |= hypot(px - d[i].x, py - d[i].y) <= d[i].r;
            for (int i = 0; i < nbite; i++) in &= hypot(px - bite[i].x, py - bite[i].y) > bite[i].r;
            if (in) lab[y * W + x] = label;
        }
}

static concave_params params(void) {
    return (concave_params){.min_depth = 1, .smooth = 1, .min_ratio = 0.5f, .min_area = 40,
                            .max_cuts = 8, .min_solidity = 0.85f};
}

/* The distinct non-zero labels and the pixel count of each (up to 8). */
static int pieces(const int32_t *lab, int32_t *ids, int *areas) {
    int n = 0;
    for (int i = 0; i < W * H; i++) {
        if (lab[i] == 0) continue;
        int k = 0;
        while (k < n && ids[k] != lab[i]) k++;
        if (k == n) {
            assert_true(n < 8);
            ids[n] = lab[i];
            areas[n++] = 0;
        }
        areas[k]++;
    }
    return n;
}

/* Two discs of radius 8 whose centres are 0.85 x 16 apart: cut into two
 * pieces of about a disc each, new labels after count; a lone disc in the
 * same image keeps its label and pixels. */
static void test_concave_cuts_touching_discs(void **state) {
    (void)state;
    int32_t *lab = calloc(W * H, sizeof(int32_t));
    disc pair[] = {{30, 50, 8}, {30 + 0.85 * 16, 50, 8}}, lone[] = {{90, 50, 9}};
    draw(lab, pair, 2, NULL, 0, 1);
    draw(lab, lone, 1, NULL, 0, 2);
    int count = 2;
    concave_params p = params();
    assert_int_equal(concave_split(lab, W, H, &count, &p), TS_OK);
    int32_t ids[8];
    int areas[8];
    assert_int_equal(pieces(lab, ids, areas), 3);
    assert_int_equal(count, 4);
    int lone_area = 0;
    for (int k = 0; k < 3; k++) {
        assert_int_not_equal(ids[k], 1); /* the pair's old label is unused */
        if (ids[k] == 2) {
            lone_area = areas[k];
        } else {
            assert_true(ids[k] > 2 && ids[k] <= 4);
            assert_true(fabs(areas[k] - M_PI * 64) < 0.2 * M_PI * 64);
        }
    }
    assert_true(fabs(lone_area - M_PI * 81) < 10);
    free(lab);
}

/* Three discs in a row, each touching the next: two cuts, three pieces. */
static void test_concave_cuts_row_of_three(void **state) {
    (void)state;
    int32_t *lab = calloc(W * H, sizeof(int32_t));
    disc row[] = {{25, 50, 8}, {25 + 14, 50, 8}, {25 + 28, 50, 8}};
    draw(lab, row, 3, NULL, 0, 1);
    int count = 1;
    concave_params p = params();
    assert_int_equal(concave_split(lab, W, H, &count, &p), TS_OK);
    int32_t ids[8];
    int areas[8];
    assert_int_equal(pieces(lab, ids, areas), 3);
    free(lab);
}

/* A disc, an ellipse and a kidney (a disc with a bite out of one side:
 * one notch, nothing facing it) are left alone. */
static void test_concave_keeps_single_nuclei(void **state) {
    (void)state;
    int32_t *lab = calloc(W * H, sizeof(int32_t)), *before = malloc(W * H * sizeof(int32_t));
    disc one[] = {{25, 50, 12}}, kidney[] = {{75, 50, 12}}, bite[] = {{75, 50 + 15, 7}};
    draw(lab, one, 1, NULL, 0, 1);
    draw(lab, kidney, 1, bite, 1, 2);
    memcpy(before, lab, W * H * sizeof(int32_t));
    int count = 2;
    concave_params p = params();
    assert_int_equal(concave_split(lab, W, H, &count, &p), TS_OK);
    assert_int_equal(count, 2);
    assert_memory_equal(lab, before, W * H * sizeof(int32_t));
    free(lab);
    free(before);
}

/* A small disc (radius 4, 50 px) on a large one's flank is cut off with
 * min_area 40, not with min_area 60 (the piece would be too small). */
static void test_concave_respects_min_area(void **state) {
    (void)state;
    int32_t *lab = calloc(W * H, sizeof(int32_t));
    disc d[] = {{50, 50, 12}, {50 + 0.9 * 16, 50, 4}};
    concave_params p = params();
    draw(lab, d, 2, NULL, 0, 1);
    int count = 1;
    assert_int_equal(concave_split(lab, W, H, &count, &p), TS_OK);
    assert_int_equal(count, 3);
    memset(lab, 0, W * H * sizeof(int32_t));
    draw(lab, d, 2, NULL, 0, 1);
    count = 1;
    p.min_area = 60;
    assert_int_equal(concave_split(lab, W, H, &count, &p), TS_OK);
    assert_int_equal(count, 1);
    free(lab);
}

/* A plus sign allowed one cut: any cut between its notches leaves a T or
 * an L beside a bar (solidity well under 0.85), so it stays whole unless
 * ragged pieces are allowed. (With more cuts it falls into its convex bars
 * and centre, which is what a clump of rectangles is.) */
static void test_concave_keeps_object_whose_pieces_are_ragged(void **state) {
    (void)state;
    int32_t *lab = calloc(W * H, sizeof(int32_t));
    for (int y = 30; y < 70; y++)
        for (int x = 40; x < 80; x++)
            if ((x >= 55 && x < 65) || (y >= 45 && y < 55)) lab[y * W + x] = 1;
    int count = 1;
    concave_params p = params();
    p.max_cuts = 1;
    assert_int_equal(concave_split(lab, W, H, &count, &p), TS_OK);
    assert_int_equal(count, 1);
    p.min_solidity = 0;
    assert_int_equal(concave_split(lab, W, H, &count, &p), TS_OK);
    assert_int_equal(count, 3);
    free(lab);
}

/* Solidity: a square is convex (1); an L of three 10 x 10 squares fills
 * 300 of its hull's 350 pixels. */
static void test_concave_solidity(void **state) {
    (void)state;
    int32_t *lab = calloc(W * H, sizeof(int32_t));
    for (int y = 10; y < 30; y++)
        for (int x = 10; x < 30; x++) lab[y * W + x] = 1;
    assert_true(fabs(concave_solidity(lab, W, H, 1, 10, 10) - 1) < 1e-9);
    for (int y = 50; y < 70; y++)
        for (int x = 50; x < 70; x++) lab[y * W + x] = (x < 60 || y >= 60) ? 2 : 0;
    assert_true(fabs(concave_solidity(lab, W, H, 2, 50, 50) - 300.0 / 350.0) < 1e-9);
    free(lab);
}

static void test_concave_bad_arguments(void **state) {
    (void)state;
    int32_t lab[4] = {0};
    int count = 0;
    concave_params p = params();
    assert_int_equal(concave_split(NULL, 2, 2, &count, &p), TS_ERR);
    assert_int_equal(concave_split(lab, 0, 2, &count, &p), TS_ERR);
    assert_int_equal(concave_split(lab, 2, 2, NULL, &p), TS_ERR);
    assert_int_equal(concave_split(lab, 2, 2, &count, NULL), TS_ERR);
    count = -1;
    assert_int_equal(concave_split(lab, 2, 2, &count, &p), TS_ERR);
    count = 0;
    assert_int_equal(concave_split(lab, 2, 2, &count, &p), TS_OK); /* nothing to cut */
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_concave_cuts_touching_discs),
        cmocka_unit_test(test_concave_cuts_row_of_three),
        cmocka_unit_test(test_concave_keeps_single_nuclei),
        cmocka_unit_test(test_concave_respects_min_area),
        cmocka_unit_test(test_concave_keeps_object_whose_pieces_are_ragged),
        cmocka_unit_test(test_concave_solidity),
        cmocka_unit_test(test_concave_bad_arguments),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
