/*
 * test_image_threshold.c - tissue against glass on optical density
 * (threshold_glass_od in src/image/threshold.c) on pixel populations whose
 * answer is known: glass and H&E tissue, glass and faint IHC tissue, an
 * image that is all tissue, and the n-bin Otsu.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <math.h>
#include <stdlib.h>

#include "image/threshold.h"

/* n values: a share `glass` at glass_od (+- 0.004), the rest spread
 * uniformly over [lo, hi]. */
static float *population(size_t n, double glass, double glass_od, double lo, double hi) {
    float *v = malloc(n * sizeof(float));
    srand(11);
    for (size_t i = 0; i < n; i++) {
        double u = rand() / (double)RAND_MAX;
        v[i] = (float)(i < glass * n ? glass_od + 0.008 * (u - 0.5) : lo + (hi - lo) * u);
    }
    return v;
}

static size_t above(const float *v, size_t n, double t) {
    size_t k = 0;
    for (size_t i = 0; i < n; i++) k += v[i] > t;
    return k;
}

/* H&E: glass at 0.04, tissue from 0.15 to 0.8: every tissue pixel above,
 * every glass pixel below. */
static void test_threshold_glass_he(void **state) {
    (void)state;
    size_t n = 20000;
    float *v = population(n, 0.6, 0.04, 0.15, 0.8);
    threshold_glass c;
    threshold_glass_od(v, n, &c);
    assert_true(c.glass_found);
    assert_true(fabs(c.glass_od - 0.04) < 0.01);
    assert_true(c.threshold > 0.05 && c.threshold < 0.15);
    assert_int_equal(above(v, n, c.threshold), n - (size_t)(0.6 * n));
    free(v);
}

/* Faint counterstain: tissue only 0.02-0.05 above glass. Otsu between
 * glass and the faint tissue would do, but the half-way rule must not put
 * the threshold above the faint tissue. */
static void test_threshold_glass_faint_tissue(void **state) {
    (void)state;
    size_t n = 20000;
    float *v = population(n, 0.5, 0.04, 0.063, 0.09);
    threshold_glass c;
    threshold_glass_od(v, n, &c);
    assert_true(c.glass_found);
    assert_true(c.threshold >= c.glass_od + THRESHOLD_MIN_ABOVE_GLASS - 1e-9);
    assert_true(above(v, n, c.threshold) >= (size_t)(0.49 * n));
    assert_true(above(v, n, c.threshold) <= n / 2);
    free(v);
}

/* No glass at all (the palest pixel is |OD| 0.2): all of it is tissue,
 * although Otsu would split it in two. */
static void test_threshold_glass_all_tissue(void **state) {
    (void)state;
    size_t n = 20000;
    float *v = population(n, 0.0, 0.04, 0.2, 1.0);
    threshold_glass c;
    threshold_glass_od(v, n, &c);
    assert_false(c.glass_found);
    assert_true(c.otsu > 0.4);
    assert_int_equal(above(v, n, c.threshold), n);
    free(v);
}

/* Otsu over n bins: two clusters split between them. */
static void test_threshold_otsu_bins_splits_two_clusters(void **state) {
    (void)state;
    uint64_t hist[1000] = {0};
    for (int b = 100; b < 120; b++) hist[b] = 50;
    for (int b = 600; b < 640; b++) hist[b] = 10;
    int t = threshold_otsu_bins(hist, 1000);
    assert_true(t >= 119 && t < 600);
}

/* The background level: a Gaussian population (mode bin 200, sd 10 bins)
 * with a heavy tail of brighter foreground on its right is found at its
 * mode, its spread from the left side only, so the tail does not widen it. */
static void test_threshold_background_ignores_the_foreground_tail(void **state) {
    (void)state;
    uint64_t hist[1000] = {0};
    for (int b = 0; b < 1000; b++) {
        double z = (b - 200) / 10.0;
        hist[b] = (uint64_t)llround(100000 * exp(-0.5 * z * z));
        if (b > 200) hist[b] += 3000; /* foreground spread over everything brighter */
    }
    int mode;
    double spread;
    threshold_background(hist, 1000, &mode, &spread);
    assert_true(mode >= 199 && mode <= 201);
    assert_true(spread > 9 && spread < 11.5);
}

/* Degenerate histograms: empty gives mode 0, spread 1; a single bin gives
 * that bin and the minimum spread. */
static void test_threshold_background_degenerate(void **state) {
    (void)state;
    uint64_t hist[50] = {0};
    int mode = -1;
    double spread = 0;
    threshold_background(hist, 50, &mode, &spread);
    assert_int_equal(mode, 0);
    assert_true(spread == 1);
    hist[30] = 1000;
    threshold_background(hist, 50, &mode, &spread);
    assert_int_equal(mode, 30);
    assert_true(spread == 1);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_threshold_glass_he),
        cmocka_unit_test(test_threshold_glass_faint_tissue),
        cmocka_unit_test(test_threshold_glass_all_tissue),
        cmocka_unit_test(test_threshold_otsu_bins_splits_two_clusters),
        cmocka_unit_test(test_threshold_background_ignores_the_foreground_tail),
        cmocka_unit_test(test_threshold_background_degenerate),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
