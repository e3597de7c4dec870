/*
 * test_image_stain.c - stain vectors estimated from pixels (src/image/stain.c),
 * against images made from known vectors.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <math.h>
#include <stdlib.h>

#include "image/stain.h"

static void assert_near(double got, double want, double tol) {
    if (fabs(got - want) > tol) fail_msg("got %.6f, want %.6f (tol %g)", got, want, tol);
}

/* A pixel of concentrations c1, c2 of unit vectors v1, v2 (Beer-Lambert,
 * rounded to 8 bits as a scanner would). */
static uint32_t mix(const double v1[3], const double v2[3], double c1, double c2) {
    unsigned ch[3];
    for (int k = 0; k < 3; k++) {
        double i = 255 * pow(10, -(c1 * v1[k] + c2 * v2[k]));
        ch[k] = (unsigned)lround(i < 0 ? 0 : i > 255 ? 255 : i);
    }
    return 0xff000000u | (ch[0] << 16) | (ch[1] << 8) | ch[2];
}

static void normalise(double v[3]) {
    double l = sqrt(v[0] * v[0] + v[1] * v[1] + v[2] * v[2]);
    for (int k = 0; k < 3; k++) v[k] /= l;
}

/* n pixels: a third pure stain 1, a third pure stain 2, a third mixed,
 * concentrations 0.1..1.0, plus some glass (which must be ignored). */
static uint32_t *make_image(const double v1[3], const double v2[3], size_t n, double share2) {
    uint32_t *px = malloc(n * sizeof(uint32_t));
    srand(7);
    for (size_t i = 0; i < n; i++) {
        double u = rand() / (double)RAND_MAX, c = 0.1 + 0.9 * rand() / (double)RAND_MAX;
        if (i % 10 == 0) px[i] = 0xfff0f0f0u; /* glass */
        else if (u < (1 - share2) / 2) px[i] = mix(v1, v2, c, 0);
        else if (u < 1 - share2) px[i] = mix(v1, v2, c, c * rand() / (double)RAND_MAX);
        else px[i] = mix(v1, v2, 0, c);
    }
    return px;
}

static void estimate(const uint32_t *px, size_t n, stain_kind kind, stain_estimate *e,
                     color_stains *s) {
    stain_sampler sm;
    stain_sampler_init(&sm, 50000);
    stain_sampler_add(&sm, px, NULL, n);
    stain_estimate_from(&sm, kind, e, s);
    stain_sampler_free(&sm);
}

/* Jacobi on a matrix with known eigen-decomposition Q diag(5, 2, 0.5) Q^T. */
static void test_stain_eigen_matches_known_decomposition(void **state) {
    (void)state;
    double q[3][3] = {{2, 1, 2}, {-2, 2, 1}, {1, 2, -2}}; /* orthogonal / 3 */
    double d[3] = {5, 2, 0.5}, a[3][3] = {{0}};
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 3; j++)
            for (int k = 0; k < 3; k++) a[i][j] += q[i][k] / 3 * d[k] * q[j][k] / 3;
    double val[3], vec[3][3];
    stain_eigen_sym3(a, val, vec);
    for (int i = 0; i < 3; i++) {
        assert_near(val[i], d[i], 1e-9);
        double dot = 0;
        for (int k = 0; k < 3; k++) dot += vec[k][i] * q[k][i] / 3;
        assert_near(fabs(dot), 1, 1e-9);
    }
}

/* Vectors 10-15 degrees away from Ruifrok-Johnston are found within 3
 * degrees, hematoxylin first, and the slide is called H&E. */
static void test_stain_macenko_recovers_known_he_vectors(void **state) {
    (void)state;
    double h[3] = {0.55, 0.75, 0.40}, e[3] = {0.15, 0.95, 0.25};
    normalise(h);
    normalise(e);
    uint32_t *px = make_image(h, e, 60000, 0.5);
    stain_estimate est;
    color_stains s;
    estimate(px, 60000, STAIN_AUTO, &est, &s);
    assert_true(est.estimated);
    assert_int_equal(est.kind, STAIN_HE);
    if (stain_angle_deg(est.v1, h) > 3 || stain_angle_deg(est.v2, e) > 3)
        fail_msg("H off by %.2f deg, E off by %.2f deg", stain_angle_deg(est.v1, h),
                 stain_angle_deg(est.v2, e));
    for (int k = 0; k < 3; k++) assert_near(s.vec[0][k], est.v1[k], 1e-6);
    free(px);
}

/* Hematoxylin and DAB: recognised as H-DAB under "auto". */
static void test_stain_auto_recognises_hdab(void **state) {
    (void)state;
    double h[3] = {0.65, 0.70, 0.29}, d[3] = {0.30, 0.55, 0.78};
    normalise(h);
    normalise(d);
    uint32_t *px = make_image(h, d, 60000, 0.4);
    stain_estimate est;
    color_stains s;
    estimate(px, 60000, STAIN_AUTO, &est, &s);
    assert_true(est.estimated);
    assert_int_equal(est.kind, STAIN_HDAB);
    assert_true(stain_angle_deg(est.v1, h) < 3);
    assert_true(stain_angle_deg(est.v2, d) < 3);
    free(px);
}

/* One stain only: nothing to separate, so Ruifrok-Johnston with a reason. */
static void test_stain_single_stain_falls_back(void **state) {
    (void)state;
    double h[3] = {0.65, 0.70, 0.29}, e[3] = {0.07, 0.99, 0.11};
    normalise(h);
    uint32_t *px = make_image(h, e, 20000, 0.0);
    for (size_t i = 0; i < 20000; i++)
        if (i % 10) px[i] = mix(h, e, 0.2 + 0.8 * (double)(i % 97) / 97, 0);
    stain_estimate est;
    color_stains s, ref;
    estimate(px, 20000, STAIN_HE, &est, &s);
    assert_false(est.estimated);
    assert_true(est.reason[0] != '\0');
    color_stains_he(&ref);
    for (int k = 0; k < 3; k++) assert_near(s.vec[0][k], ref.vec[0][k], 1e-6);
    free(px);
}

/* Glass only: too few stained pixels. */
static void test_stain_blank_falls_back(void **state) {
    (void)state;
    uint32_t px[1000];
    for (int i = 0; i < 1000; i++) px[i] = 0xfff2f2f2u;
    stain_estimate est;
    color_stains s;
    estimate(px, 1000, STAIN_HDAB, &est, &s);
    assert_false(est.estimated);
    assert_int_equal(est.kind, STAIN_HDAB);
    assert_int_equal(est.pixels, 0);
}

/* Explicit vectors: normalised, residual orthogonal; dependent ones refused. */
static void test_color_stains_from_checks_vectors(void **state) {
    (void)state;
    color_stains s;
    double a[3] = {2, 2, 1}, b[3] = {0, 3, 4}, c[3] = {4, 4, 2}, neg[3] = {-0.1, 1, 1};
    assert_int_equal(color_stains_from(&s, a, b, NULL), 0);
    assert_near(s.vec[0][0], 2.0 / 3, 1e-6);
    assert_near(s.vec[1][2], 0.8, 1e-6);
    double dot = 0;
    for (int k = 0; k < 3; k++) dot += (double)s.vec[0][k] * s.vec[2][k];
    assert_near(dot, 0, 1e-6);
    assert_int_not_equal(color_stains_from(&s, a, c, NULL), 0);
    assert_int_not_equal(color_stains_from(&s, a, neg, NULL), 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stain_eigen_matches_known_decomposition),
        cmocka_unit_test(test_stain_macenko_recovers_known_he_vectors),
        cmocka_unit_test(test_stain_auto_recognises_hdab),
        cmocka_unit_test(test_stain_single_stain_falls_back),
        cmocka_unit_test(test_stain_blank_falls_back),
        cmocka_unit_test(test_color_stains_from_checks_vectors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
