/*
 * test_image_morph.c - binary morphology, connected components, the
 * Euclidean distance transform and Otsu's threshold (src/image/morph.c,
 * label.c, edt.c, threshold.c).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "image/edt.h"
#include "image/label.h"
#include "image/morph.h"
#include "image/threshold.h"
#include "util/util.h"

enum { RW = 20, RH = 17 }; /* size of the random masks */

/* xorshift64 with the state passed along (tests stay independent). */
static uint64_t rnd_next(uint64_t *s) {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

/* Random mask with roughly the given percentage of foreground; the
 * foreground value varies (1..255) to check that any non-zero counts. */
static void rnd_mask(uint64_t *s, uint8_t *m, int n, int percent) {
    for (int i = 0; i < n; i++)
        m[i] = (int)(rnd_next(s) % 100) < percent ? (uint8_t)(1 + rnd_next(s) % 255) : 0;
}

/* Mask from a picture of '0' / '1' characters. */
static void from_picture(uint8_t *m, const char *pic) {
    for (size_t i = 0; pic[i]; i++) m[i] = pic[i] == '1';
}

static void assert_picture(const uint8_t *m, const char *pic) {
    for (size_t i = 0; pic[i]; i++)
        if (m[i] != (uint8_t)(pic[i] - '0')) fail_msg("pixel %zu: got %d, want %c", i, m[i], pic[i]);
}

/* ---- threshold --------------------------------------------------------- */

/* {0, 0, 5, 255, 5} -> bins 0:2, 5:2, 255:1; a second call adds on. */
static void test_threshold_histogram_counts_and_accumulates(void **state) {
    (void)state;
    uint64_t hist[256] = {0};
    const uint8_t v[5] = {0, 0, 5, 255, 5};
    threshold_histogram(v, 5, hist);
    assert_int_equal(hist[0], 2);
    assert_int_equal(hist[5], 2);
    assert_int_equal(hist[255], 1);
    threshold_histogram(v, 2, hist);
    assert_int_equal(hist[0], 4);
    uint64_t total = 0;
    for (int i = 0; i < 256; i++) total += hist[i];
    assert_int_equal(total, 7);
}

/* Values {0, 1, 5, 5}: t = 0 splits {0} | {1,5,5}: w0 w1 (mu0 - mu1)^2 =
 * 1 * 3 * (11/3)^2 = 40.3; t = 1..4 split {0,1} | {5,5}: 2 * 2 * 4.5^2 =
 * 81, the maximum, tied over 1..4, so the smallest, 1, wins. Two equal
 * spikes at 10 and 20 tie over 10..19 and give 10. */
static void test_threshold_otsu_hand_computed_and_smallest_tie(void **state) {
    (void)state;
    uint64_t h1[256] = {0};
    h1[0] = 1;
    h1[1] = 1;
    h1[5] = 2;
    assert_int_equal(threshold_otsu(h1), 1);
    uint64_t h2[256] = {0};
    h2[10] = 5;
    h2[20] = 5;
    assert_int_equal(threshold_otsu(h2), 10);
}

/* Empty -> 0; a single value (even 255, outside 0..254) -> that value. */
static void test_threshold_otsu_empty_and_single_valued(void **state) {
    (void)state;
    uint64_t h[256] = {0};
    assert_int_equal(threshold_otsu(h), 0);
    h[7] = 10;
    assert_int_equal(threshold_otsu(h), 7);
    h[7] = 0;
    h[255] = 3;
    assert_int_equal(threshold_otsu(h), 255);
}

/* Brute force over random histograms: no t gives a larger between-class
 * variance than the returned one, computed independently as
 * w0 w1 (mu0 - mu1)^2 / N^2. */
static void test_threshold_otsu_maximises_variance_on_random_histograms(void **state) {
    (void)state;
    uint64_t s = 77;
    for (int trial = 0; trial < 50; trial++) {
        uint64_t h[256] = {0};
        for (int i = 0; i < 400; i++) h[(rnd_next(&s) % 97 + rnd_next(&s) % 160) % 256]++;
        int t = threshold_otsu(h);
        double best = -1, at_t = -1;
        for (int c = 0; c < 255; c++) {
            double w0 = 0, w1 = 0, s0 = 0, s1 = 0;
            for (int v = 0; v < 256; v++) {
                if (v <= c) {
                    w0 += (double)h[v];
                    s0 += (double)h[v] * v;
                } else {
                    w1 += (double)h[v];
                    s1 += (double)h[v] * v;
                }
            }
            double var = (w0 > 0 && w1 > 0) ? w0 * w1 * pow(s0 / w0 - s1 / w1, 2) / 160000.0 : 0;
            if (var > best) best = var;
            if (c == t) at_t = var;
        }
        assert_true(at_t >= best * (1 - 1e-9));
    }
}

/* ---- label ------------------------------------------------------------- */

/* By hand, 4-connected: {(0,0),(1,0)} first -> 1; the right column with
 * (3,2) starts at (4,0) -> 2; (2,1) alone -> 3; (0,2) -> 4. 8-connected:
 * (1,0)-(2,1)-(3,2) are diagonal neighbours, so the first three merge into
 * 1, and (0,2) is 2. */
static void test_label_hand_computed_4_and_8_connectivity(void **state) {
    (void)state;
    uint8_t m[15];
    from_picture(m, "11001"
                    "00101"
                    "10011");
    int32_t l[15];
    const int32_t want4[15] = {1, 1, 0, 0, 2, 0, 0, 3, 0, 2, 4, 0, 0, 2, 2};
    const int32_t want8[15] = {1, 1, 0, 0, 1, 0, 0, 1, 0, 1, 2, 0, 0, 1, 1};
    assert_int_equal(label_components(m, 5, 3, 4, l), 4);
    assert_memory_equal(l, want4, sizeof(want4));
    assert_int_equal(label_components(m, 5, 3, 8, l), 2);
    assert_memory_equal(l, want8, sizeof(want8));
}

/* Components that only meet further down: the comb below opens three
 * provisional labels in its first row that all merge in the last row.
 * In the second picture the U's left arm opens provisional label 3 at
 * (0,1), after the right column's 2 at (4,0); it merges into the U's 1 at
 * (1,2), so the final labels must be U = 1 and the column = 2. */
static void test_label_late_merges_keep_raster_numbering(void **state) {
    (void)state;
    uint8_t m[15];
    int32_t l[15];
    from_picture(m, "10101"
                    "10101"
                    "11111");
    assert_int_equal(label_components(m, 5, 3, 4, l), 1);
    for (int i = 0; i < 15; i++) assert_int_equal(l[i], m[i]);
    from_picture(m, "00101"
                    "10101"
                    "11100");
    const int32_t want[15] = {0, 0, 1, 0, 2, 1, 0, 1, 0, 2, 1, 1, 1, 0, 0};
    assert_int_equal(label_components(m, 5, 3, 4, l), 2);
    assert_memory_equal(l, want, sizeof(want));
}

/* Brute-force reference: flood fill from each unlabelled foreground
 * pixel in raster order, which numbers components exactly as promised. */
static int brute_label(const uint8_t *m, int w, int h, int conn, int32_t *l) {
    int n = 0, *stack = malloc(sizeof(int) * w * h);
    memset(l, 0, sizeof(int32_t) * w * h);
    for (int p = 0; p < w * h; p++) {
        if (!m[p] || l[p]) continue;
        int top = 0;
        l[p] = ++n;
        stack[top++] = p;
        while (top > 0) {
            int q = stack[--top], x = q % w, y = q / w;
            for (int dy = -1; dy <= 1; dy++) {
                for (int dx = -1; dx <= 1; dx++) {
                    if ((dx == 0 && dy == 0) || (conn == 4 && dx != 0 && dy != 0)) continue;
                    int nx = x + dx, ny = y + dy;
                    if (nx < 0 || ny < 0 || nx >= w || ny >= h) continue;
                    int r = ny * w + nx;
                    if (m[r] && !l[r]) {
                        l[r] = n;
                        stack[top++] = r;
                    }
                }
            }
        }
    }
    free(stack);
    return n;
}

static void test_label_matches_flood_fill_on_random_masks(void **state) {
    (void)state;
    uint64_t s = 4242;
    uint8_t m[RW * RH];
    int32_t got[RW * RH], want[RW * RH];
    for (int trial = 0; trial < 60; trial++) {
        rnd_mask(&s, m, RW * RH, 20 + trial % 60);
        for (int conn = 4; conn <= 8; conn += 4) {
            int n = brute_label(m, RW, RH, conn, want);
            assert_int_equal(label_components(m, RW, RH, conn, got), n);
            assert_memory_equal(got, want, sizeof(got));
        }
    }
}

static void test_label_rejects_bad_arguments(void **state) {
    (void)state;
    uint8_t m[4] = {1, 0, 0, 1};
    int32_t l[4];
    assert_int_equal(label_components(m, 2, 2, 6, l), -1);
    assert_int_equal(label_components(m, 0, 2, 4, l), -1);
    assert_int_equal(label_components(NULL, 2, 2, 4, l), -1);
    assert_int_equal(label_components(m, 2, 2, 4, NULL), -1);
}

/* ---- edt --------------------------------------------------------------- */

/* By hand: a row 1 1 0 1 1 is 2, 1, 0, 1, 2 pixels from its zero, i.e.
 * 4 1 0 1 4 squared; a 3x3 with its only zero at (0,0) gives x^2 + y^2;
 * no zero at all gives EDT_FAR (the outside is not background). */
static void test_edt_hand_computed_rows_and_corner(void **state) {
    (void)state;
    const uint8_t row[5] = {1, 1, 0, 1, 1};
    float out[9];
    assert_int_equal(edt_squared(row, 5, 1, out), TS_OK);
    const float want_row[5] = {4, 1, 0, 1, 4};
    assert_memory_equal(out, want_row, sizeof(want_row));
    const uint8_t corner[9] = {0, 1, 1, 1, 1, 1, 1, 1, 1};
    assert_int_equal(edt_squared(corner, 3, 3, out), TS_OK);
    const float want_corner[9] = {0, 1, 4, 1, 2, 5, 4, 5, 8};
    assert_memory_equal(out, want_corner, sizeof(want_corner));
    const uint8_t full[9] = {1, 1, 1, 1, 1, 1, 1, 1, 1};
    assert_int_equal(edt_squared(full, 3, 3, out), TS_OK);
    for (int i = 0; i < 9; i++) assert_true(out[i] == EDT_FAR);
}

/* Brute force over all pixel pairs; also thin and one-pixel images. */
static void test_edt_matches_brute_force_on_random_masks(void **state) {
    (void)state;
    uint64_t s = 2024;
    const int shapes[4][2] = {{RW, RH}, {1, 23}, {23, 1}, {3, 40}};
    const int density[5] = {3, 30, 70, 95, 100};
    uint8_t m[RW * RH * 2];
    float got[RW * RH * 2];
    for (int si = 0; si < 4; si++) {
        int w = shapes[si][0], h = shapes[si][1];
        for (int trial = 0; trial < 25; trial++) {
            rnd_mask(&s, m, w * h, density[trial % 5]);
            if (trial % 5 == 4) m[(trial * 7) % (w * h)] = 0; /* a single zero */
            assert_int_equal(edt_squared(m, w, h, got), TS_OK);
            for (int p = 0; p < w * h; p++) {
                float best = EDT_FAR;
                for (int q = 0; q < w * h; q++) {
                    if (m[q]) continue;
                    float dx = (float)(p % w - q % w), dy = (float)(p / w - q / w);
                    if (dx * dx + dy * dy < best) best = dx * dx + dy * dy;
                }
                if (got[p] != best) fail_msg("%dx%d pixel %d: %g != %g", w, h, p, got[p], best);
            }
        }
    }
}


/* edt_squared_within(m, limit) against the whole transform full: exact up
 * to the limit, above it beyond (got: scratch of w * h). */
static void assert_within_agrees(const uint8_t *m, int w, int h, float limit, const float *full,
                                 float *got) {
    assert_int_equal(edt_squared_within(m, w, h, limit, got), TS_OK);
    for (int p = 0; p < w * h; p++) {
        if (full[p] <= limit && got[p] != full[p])
            fail_msg("limit %g pixel %d: %g != %g", limit, p, got[p], full[p]);
        if (full[p] > limit && !(got[p] > limit))
            fail_msg("limit %g pixel %d: %g not above (exact %g)", limit, p, got[p], full[p]);
    }
}

/* The bounded transform: exact wherever the distance is within the limit
 * (including exactly on it), above the limit everywhere else; random masks
 * of every density, limits from 0 to beyond the image. */
static void test_edt_within_is_exact_up_to_the_limit(void **state) {
    (void)state;
    uint64_t s = 77;
    enum { W = 31, H = 23 };
    const int density[5] = {3, 30, 70, 95, 100};
    const float limits[6] = {0, 1, 2, 8, 25.5f, 5000};
    uint8_t m[W * H];
    float full[W * H], got[W * H];
    for (int trial = 0; trial < 30; trial++) {
        rnd_mask(&s, m, W * H, density[trial % 5]);
        if (trial % 5 == 4) m[(trial * 13) % (W * H)] = 0;
        assert_int_equal(edt_squared(m, W, H, full), TS_OK);
        for (int li = 0; li < 6; li++) {
            float limit = limits[li];
            assert_within_agrees(m, W, H, limit, full, got);
        }
    }
    assert_int_equal(edt_squared_within(m, W, H, -1, got), TS_ERR);
}

/* The same on wide rows with few background pixels (1 in 200 to 1 in 20,
 * some rows with none within reach), where the bounded transform skips
 * what no site can reach: still exact up to the limit, above it beyond. */
static void test_edt_within_is_exact_on_sparse_wide_rows(void **state) {
    (void)state;
    uint64_t s = 4711;
    enum { W = 157, H = 41 };
    const float limits[4] = {1, 9, 100, 101.5f};
    static uint8_t m[W * H];
    static float full[W * H], got[W * H];
    for (int trial = 0; trial < 12; trial++) {
        int one_in = trial % 3 == 0 ? 200 : trial % 3 == 1 ? 60 : 20;
        for (int p = 0; p < W * H; p++) m[p] = rnd_next(&s) % (uint64_t)one_in != 0;
        assert_int_equal(edt_squared(m, W, H, full), TS_OK);
        for (int li = 0; li < 4; li++) {
            float limit = limits[li];
            assert_within_agrees(m, W, H, limit, full, got);
        }
    }
}

/* edt_squared against brute force on masks wider than the 64-column
 * blocks the sweeps and row runs pass over: sparse blobs (a nuclei mask)
 * at every position relative to the blocks, widths not multiples of 64,
 * one blob touching the image's edges, and a mask with a single zero. */
static void test_edt_matches_brute_force_on_wide_sparse_masks(void **state) {
    (void)state;
    uint64_t s = 515;
    const int shapes[4][2] = {{150, 30}, {64, 20}, {193, 12}, {130, 25}};
    for (int t = 0; t < 8; t++) {
        int w = shapes[t % 4][0], h = shapes[t % 4][1];
        size_t n = (size_t)w * h;
        uint8_t *m = calloc(n, 1);
        float *got = malloc(n * sizeof(float));
        int blobs = t == 7 ? 0 : 1 + (int)(rnd_next(&s) % 6);
        for (int b = 0; b < blobs; b++) {
            int cx = (int)(rnd_next(&s) % (uint64_t)w), cy = (int)(rnd_next(&s) % (uint64_t)h);
            int r = 1 + (int)(rnd_next(&s) % 8);
            if (b == 0 && t % 2) cx = 0, cy = h - 1;
            for (int y = 0; y < h; y++)
                for (int x = 0; x < w; x++)
                    if ((x - cx) * (x - cx) + (y - cy) * (y - cy) <= r * r && rnd_next(&s) % 10) m[y * w + x] = 1;
        }
        if (t == 7) { /* all set but one pixel */
            memset(m, 1, n);
            m[n / 3] = 0;
        }
        assert_int_equal(edt_squared(m, w, h, got), TS_OK);
        for (size_t p = 0; p < n; p++) {
            float best = EDT_FAR;
            for (size_t q = 0; q < n && m[p]; q++) {
                if (m[q]) continue;
                float dx = (float)((int)(p % w) - (int)(q % w)), dy = (float)((int)(p / w) - (int)(q / w));
                if (dx * dx + dy * dy < best) best = dx * dx + dy * dy;
            }
            if (!m[p]) best = 0;
            if (got[p] != best) fail_msg("%dx%d pixel %zu: %g != %g", w, h, p, got[p], best);
        }
        free(m);
        free(got);
    }
}

static void test_edt_rejects_bad_arguments(void **state) {
    (void)state;
    uint8_t m[1] = {0};
    float out[1];
    assert_int_equal(edt_squared(m, 0, 1, out), TS_ERR);
    assert_int_equal(edt_squared(NULL, 1, 1, out), TS_ERR);
    assert_int_equal(edt_squared(m, 1, 1, NULL), TS_ERR);
}

/* ---- morphology -------------------------------------------------------- */

/* By hand: r = 2 around one pixel takes x^2 + y^2 <= 4, the 13-pixel
 * diamond ((1,1) at sqrt 2 is in, (2,1) at sqrt 5 is out); r = 1.5 takes
 * x^2 + y^2 <= 2.25, the 3x3 square. */
static void test_morph_dilate_single_pixel_gives_disk(void **state) {
    (void)state;
    uint8_t m[25];
    from_picture(m, "00000"
                    "00000"
                    "00100"
                    "00000"
                    "00000");
    assert_int_equal(morph_dilate(m, 5, 5, 2.0f), TS_OK);
    assert_picture(m, "00100"
                      "01110"
                      "11111"
                      "01110"
                      "00100");
    from_picture(m, "00000"
                    "00000"
                    "00100"
                    "00000"
                    "00000");
    assert_int_equal(morph_dilate(m, 5, 5, 1.5f), TS_OK);
    assert_picture(m, "00000"
                      "01110"
                      "01110"
                      "01110"
                      "00000");
}

/* By hand, r = 1 (the cross): a zero at the centre of ones grows into a
 * cross; a zero on the left edge grows a half cross; the image border
 * itself eats nothing (outside counts as foreground). Output is 0/1 even
 * for foreground values like 255. */
static void test_morph_erode_hand_computed_and_border_is_foreground(void **state) {
    (void)state;
    uint8_t m[25];
    memset(m, 255, sizeof(m));
    m[12] = 0; /* (2,2) */
    m[10] = 0; /* (0,2) */
    assert_int_equal(morph_erode(m, 5, 5, 1.0f), TS_OK);
    assert_picture(m, "11111"
                      "01011"
                      "00001"
                      "01011"
                      "11111");
}

/* Brute force: dilation = some foreground q with |p - q|^2 <= r^2;
 * erosion = p foreground and no background q in the image with
 * |p - q|^2 <= r^2. */
static void test_morph_dilate_erode_match_brute_force_disks(void **state) {
    (void)state;
    uint64_t s = 31337;
    const float radii[7] = {0, 1, 1.5f, 2.3f, 3, 4.5f, 30};
    uint8_t m[RW * RH], d[RW * RH], e[RW * RH];
    for (int trial = 0; trial < 21; trial++) {
        float r = radii[trial % 7];
        rnd_mask(&s, m, RW * RH, trial < 7 ? 5 : (trial < 14 ? 50 : 90));
        memcpy(d, m, sizeof(m));
        memcpy(e, m, sizeof(m));
        assert_int_equal(morph_dilate(d, RW, RH, r), TS_OK);
        assert_int_equal(morph_erode(e, RW, RH, r), TS_OK);
        for (int p = 0; p < RW * RH; p++) {
            int near_fg = 0, near_bg = 0;
            for (int q = 0; q < RW * RH; q++) {
                int dx = p % RW - q % RW, dy = p / RW - q / RW;
                if ((double)(dx * dx + dy * dy) > (double)r * r) continue;
                if (m[q]) near_fg = 1;
                else near_bg = 1;
            }
            assert_int_equal(d[p], near_fg);
            assert_int_equal(e[p], m[p] != 0 && !near_bg);
        }
    }
}

/* By hand, r = 1: opening a 5x5 square erodes it to 3x3 and dilates that
 * by the cross back to the square without its four corners; a lone pixel
 * disappears. Closing two 2x3 blocks one column apart: the dilation fills
 * the gap column in rows 1-3 and spreads to x = 0 and 6 there and to rows
 * 0 and 4 above the blocks; the erosion then removes whatever touches
 * background in rows 0 / 4, leaving the gap filled only in the middle row
 * (its top and bottom gap pixels see the empty rows 0 and 4). The middle
 * row also reaches both image edges: outside counts as foreground for the
 * erosion, so nothing there is eaten back. */
static void test_morph_open_and_close_hand_computed(void **state) {
    (void)state;
    uint8_t m[63];
    from_picture(m, "000000000"
                    "011111000"
                    "011111000"
                    "011111001"
                    "011111000"
                    "011111000"
                    "000000000");
    assert_int_equal(morph_open(m, 9, 7, 1.0f), TS_OK);
    assert_picture(m, "000000000"
                      "001110000"
                      "011111000"
                      "011111000"
                      "011111000"
                      "001110000"
                      "000000000");
    uint8_t c[35];
    from_picture(c, "0000000"
                    "0110110"
                    "0110110"
                    "0110110"
                    "0000000");
    assert_int_equal(morph_close(c, 7, 5, 1.0f), TS_OK);
    assert_picture(c, "0000000"
                      "0110110"
                      "1111111"
                      "0110110"
                      "0000000");
}

/* By hand: a two-pixel hole at (2,1)-(3,1), a one-pixel hole at (1,4)
 * that touches the border background only diagonally (background is
 * 4-connected, so it is still a hole), and a notch open to the right
 * border at (5,3) that is never filled. max_area 1 fills only the small
 * hole, 2 both, -1 any size. */
static void test_morph_fill_holes_respects_area_and_border(void **state) {
    (void)state;
    const char *pic = "111111"
                      "110011"
                      "111111"
                      "111110"
                      "101111"
                      "011111";
    uint8_t m[36];
    from_picture(m, pic);
    assert_int_equal(morph_fill_holes(m, 6, 6, 1), TS_OK);
    assert_picture(m, "111111"
                      "110011"
                      "111111"
                      "111110"
                      "111111"
                      "011111");
    from_picture(m, pic);
    assert_int_equal(morph_fill_holes(m, 6, 6, 2), TS_OK);
    assert_picture(m, "111111"
                      "111111"
                      "111111"
                      "111110"
                      "111111"
                      "011111");
    from_picture(m, pic);
    assert_int_equal(morph_fill_holes(m, 6, 6, -1), TS_OK);
    assert_picture(m, "111111"
                      "111111"
                      "111111"
                      "111110"
                      "111111"
                      "011111");
}

/* By hand: a diagonal pair is one 8-connected component of 2 pixels and
 * survives min_area 2; the lone pixel (area 1) goes; the 3-pixel L stays.
 * With min_area 3 only the L remains. */
static void test_morph_remove_small_uses_8_connectivity(void **state) {
    (void)state;
    const char *pic = "10000"
                      "01001"
                      "00000"
                      "11000"
                      "10000";
    uint8_t m[25];
    from_picture(m, pic);
    assert_int_equal(morph_remove_small(m, 5, 5, 2), TS_OK);
    assert_picture(m, "10000"
                      "01000"
                      "00000"
                      "11000"
                      "10000");
    from_picture(m, pic);
    assert_int_equal(morph_remove_small(m, 5, 5, 3), TS_OK);
    assert_picture(m, "00000"
                      "00000"
                      "00000"
                      "11000"
                      "10000");
}

/* Brute force on random masks: fill_holes(-1) fills exactly the 4-connected
 * background components not touching the border (via the flood-fill
 * reference), fill_holes(max) those of them of at most max pixels, and
 * remove_small keeps exactly the 8-components >= min. Sparse and dense
 * masks too, whose long runs take the eight-bytes-at-a-time scan; set
 * bytes other than 1, many or a single one. */
static void test_morph_fill_and_remove_match_flood_fill_on_random_masks(void **state) {
    (void)state;
    uint64_t s = 99;
    uint8_t m[RW * RH], inv[RW * RH], got[RW * RH];
    int32_t l[RW * RH];
    for (int trial = 0; trial < 60; trial++) {
        rnd_mask(&s, m, RW * RH, trial < 40 ? 40 + trial : (trial % 2 ? 3 : 97));
        /* rnd_mask's set bytes are 1 to 255; in two trials of three all
         * are 1 but a single 2 anywhere (on dense masks most often inside
         * eight set bytes): it comes out as 1 like the others */
        if (trial % 3 != 0) {
            for (int i = 0; i < RW * RH; i++) m[i] = m[i] != 0;
            for (int i = (int)(rnd_next(&s) % (RW * RH)); i < RW * RH; i++)
                if (m[i]) {
                    m[i] = 2;
                    break;
                }
        }
        for (int i = 0; i < RW * RH; i++) inv[i] = m[i] == 0;
        int n = brute_label(inv, RW, RH, 4, l);
        uint8_t *border = calloc((size_t)n + 1, 1);
        for (int p = 0; p < RW * RH; p++)
            if (p % RW == 0 || p % RW == RW - 1 || p / RW == 0 || p / RW == RH - 1) border[l[p]] = 1;
        memcpy(got, m, sizeof(m));
        assert_int_equal(morph_fill_holes(got, RW, RH, -1), TS_OK);
        for (int p = 0; p < RW * RH; p++) assert_int_equal(got[p], m[p] != 0 || !border[l[p]]);
        long *hole = calloc((size_t)n + 1, sizeof(long)), max_area = trial % 5;
        for (int p = 0; p < RW * RH; p++) hole[l[p]] += inv[p];
        memcpy(got, m, sizeof(m));
        assert_int_equal(morph_fill_holes(got, RW, RH, max_area), TS_OK);
        for (int p = 0; p < RW * RH; p++)
            assert_int_equal(got[p], m[p] != 0 || (!border[l[p]] && hole[l[p]] <= max_area));
        free(hole);
        free(border);
        n = brute_label(m, RW, RH, 8, l);
        long *area = calloc((size_t)n + 1, sizeof(long));
        for (int p = 0; p < RW * RH; p++) area[l[p]]++;
        memcpy(got, m, sizeof(m));
        assert_int_equal(morph_remove_small(got, RW, RH, 4), TS_OK);
        for (int p = 0; p < RW * RH; p++) assert_int_equal(got[p], l[p] > 0 && area[l[p]] >= 4);
        free(area);
    }
}

static void test_morph_rejects_bad_arguments(void **state) {
    (void)state;
    uint8_t m[4] = {0};
    assert_int_equal(morph_dilate(m, 2, 2, -1), TS_ERR);
    assert_int_equal(morph_erode(m, 2, 2, NAN), TS_ERR);
    assert_int_equal(morph_open(m, 0, 2, 1), TS_ERR);
    assert_int_equal(morph_close(NULL, 2, 2, 1), TS_ERR);
    assert_int_equal(morph_fill_holes(m, 2, -2, 1), TS_ERR);
    assert_int_equal(morph_remove_small(NULL, 2, 2, 1), TS_ERR);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_threshold_histogram_counts_and_accumulates),
        cmocka_unit_test(test_threshold_otsu_hand_computed_and_smallest_tie),
        cmocka_unit_test(test_threshold_otsu_empty_and_single_valued),
        cmocka_unit_test(test_threshold_otsu_maximises_variance_on_random_histograms),
        cmocka_unit_test(test_label_hand_computed_4_and_8_connectivity),
        cmocka_unit_test(test_label_late_merges_keep_raster_numbering),
        cmocka_unit_test(test_label_matches_flood_fill_on_random_masks),
        cmocka_unit_test(test_label_rejects_bad_arguments),
        cmocka_unit_test(test_edt_hand_computed_rows_and_corner),
        cmocka_unit_test(test_edt_matches_brute_force_on_random_masks),
        cmocka_unit_test(test_edt_within_is_exact_up_to_the_limit),
        cmocka_unit_test(test_edt_within_is_exact_on_sparse_wide_rows),
        cmocka_unit_test(test_edt_matches_brute_force_on_wide_sparse_masks),
        cmocka_unit_test(test_edt_rejects_bad_arguments),
        cmocka_unit_test(test_morph_dilate_single_pixel_gives_disk),
        cmocka_unit_test(test_morph_erode_hand_computed_and_border_is_foreground),
        cmocka_unit_test(test_morph_dilate_erode_match_brute_force_disks),
        cmocka_unit_test(test_morph_open_and_close_hand_computed),
        cmocka_unit_test(test_morph_fill_holes_respects_area_and_border),
        cmocka_unit_test(test_morph_remove_small_uses_8_connectivity),
        cmocka_unit_test(test_morph_fill_and_remove_match_flood_fill_on_random_masks),
        cmocka_unit_test(test_morph_rejects_bad_arguments),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
