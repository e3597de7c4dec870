/*
 * test_image_color.c - colour deconvolution and colour measures
 * (src/image/color.c).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>
#include <math.h>

#include "image/color.h"

/* An opaque OpenSlide pixel. */
static uint32_t rgb(unsigned r, unsigned g, unsigned b) {
    return 0xff000000u | (r << 16) | (g << 8) | b;
}

static void assert_near(double got, double want, double tol) {
    if (fabs(got - want) > tol) fail_msg("got %.6f, want %.6f (tol %g)", got, want, tol);
}

/* The H and E rows are the published vectors divided by their lengths
 * (by hand: |(0.65, 0.70, 0.29)| = sqrt(0.9966) = 0.99830, so H =
 * (0.65111, 0.70119, 0.29049); |(0.07, 0.99, 0.11)| = sqrt(0.9971) =
 * 0.99855, so E = (0.07010, 0.99144, 0.11016)); every row has unit length
 * and the residual is orthogonal to both. */
static void test_color_he_vectors_are_normalised(void **state) {
    (void)state;
    color_stains s;
    color_stains_he(&s);
    const double h[3] = {0.65111, 0.70119, 0.29049}, e[3] = {0.07010, 0.99144, 0.11016};
    for (int k = 0; k < 3; k++) {
        assert_near(s.vec[0][k], h[k], 1e-4);
        assert_near(s.vec[1][k], e[k], 1e-4);
    }
    for (int i = 0; i < 3; i++) {
        double len = 0;
        for (int k = 0; k < 3; k++) len += (double)s.vec[i][k] * s.vec[i][k];
        assert_near(len, 1.0, 1e-6);
    }
    for (int i = 0; i < 2; i++) {
        double dot = 0;
        for (int k = 0; k < 3; k++) dot += (double)s.vec[i][k] * s.vec[2][k];
        assert_near(dot, 0.0, 1e-6);
    }
}

/* inv really is the inverse: vec x inv = identity. */
static void test_color_inverse_times_vectors_is_identity(void **state) {
    (void)state;
    color_stains s;
    color_stains_he(&s);
    for (int i = 0; i < 3; i++) {
        for (int j = 0; j < 3; j++) {
            double v = 0;
            for (int k = 0; k < 3; k++) v += (double)s.vec[i][k] * s.inv[k][j];
            assert_near(v, i == j ? 1.0 : 0.0, 1e-5);
        }
    }
}

/* A synthetic pure-hematoxylin pixel I = 255 * 10^(-c * H) (rounded to 8
 * bits) deconvolves to (c, ~0). Rounding moves each OD by at most
 * 0.5 / (I ln 10) ~ 0.002 here, hence the tolerance. */
static void test_color_pure_hematoxylin_pixel_deconvolves_to_c_and_zero(void **state) {
    (void)state;
    color_stains s;
    color_stains_he(&s);
    const double cs[3] = {0.2, 0.5, 0.9};
    for (int t = 0; t < 3; t++) {
        unsigned ch[3];
        for (int k = 0; k < 3; k++) ch[k] = (unsigned)lround(255.0 * pow(10.0, -cs[t] * s.vec[0][k]));
        uint32_t px = rgb(ch[0], ch[1], ch[2]);
        float hem, eos;
        color_deconvolve(&s, &px, 1, &hem, &eos);
        assert_near(hem, cs[t], 0.01);
        assert_near(eos, 0.0, 0.01);
    }
}

/* White has OD 0 in every channel, so both concentrations are exactly 0;
 * an alpha-0 pixel (even with black colour bits) reads as white. */
static void test_color_white_and_alpha0_deconvolve_to_zero(void **state) {
    (void)state;
    color_stains s;
    color_stains_he(&s);
    const uint32_t px[3] = {rgb(255, 255, 255), 0x00000000u, 0x00123456u};
    float hem[3], eos[3];
    color_deconvolve(&s, px, 3, hem, eos);
    for (int i = 0; i < 3; i++) {
        assert_true(hem[i] == 0.0f);
        assert_true(eos[i] == 0.0f);
    }
}

/* Either output may be NULL; the other is still filled, with the same
 * values as when both are asked for. */
static void test_color_deconvolve_accepts_null_outputs(void **state) {
    (void)state;
    color_stains s;
    color_stains_he(&s);
    const uint32_t px[2] = {rgb(120, 60, 200), rgb(250, 180, 210)};
    float h2[2], e2[2], h1[2], e1[2];
    color_deconvolve(&s, px, 2, h2, e2);
    color_deconvolve(&s, px, 2, h1, NULL);
    color_deconvolve(&s, px, 2, NULL, e1);
    color_deconvolve(&s, px, 2, NULL, NULL);
    for (int i = 0; i < 2; i++) {
        assert_true(h1[i] == h2[i]);
        assert_true(e1[i] == e2[i]);
    }
}

/* One pixel's stain 2 (color_stain2) is, bit for bit, what the whole-image
 * deconvolution gives (1,003 pixels), for H&E and H-DAB, with alpha-0
 * pixels among them; stain 1 is color_stain_at's with stain 1's tables,
 * whether the call asks for one stain or both. */
static void test_color_stain2_equals_deconvolve(void **state) {
    (void)state;
    enum { N = 1003 };
    static uint32_t px[N];
    static float e[N], h[N], e2[N], h2[N];
    float od[256], t0[3][256];
    color_od_lut(od);
    uint32_t seed = 5;
    for (int i = 0; i < N; i++) {
        seed = seed * 1103515245u + 12345u;
        px[i] = (i % 37 == 0 ? 0u : 0xFF000000u) | (seed >> 8);
    }
    color_stains st[2];
    color_stains_he(&st[0]);
    color_stains_hdab(&st[1]);
    for (int k = 0; k < 2; k++) {
        color_stain_tables(&st[k], od, 0, t0);
        color_deconvolve(&st[k], px, N, NULL, e);
        color_deconvolve(&st[k], px, N, h, NULL);
        color_deconvolve(&st[k], px, N, h2, e2);
        for (int i = 0; i < N; i++) {
            float one = color_stain2(&st[k], od, px[i]), first = color_stain_at((const float(*)[256])t0, px[i]);
            assert_memory_equal(&one, &e[i], sizeof(float));
            assert_memory_equal(&one, &e2[i], sizeof(float));
            assert_memory_equal(&first, &h[i], sizeof(float));
            assert_memory_equal(&first, &h2[i], sizeof(float));
        }
    }
}

/* color_stain_at is, bit for bit, color_stain2 (and so color_deconvolve)
 * for both stains, H&E and H-DAB, over every 8-bit colour, opaque, and
 * with alpha 0 (white whatever the channels) for a sample of them. */
static void test_color_stain_at_equals_stain2_everywhere(void **state) {
    (void)state;
    float od[256], t[2][3][256];
    color_od_lut(od);
    color_stains st[2];
    color_stains_he(&st[0]);
    color_stains_hdab(&st[1]);
    for (int k = 0; k < 2; k++) {
        color_stain_tables(&st[k], od, 1, t[1]);
        color_stain_tables(&st[k], od, 0, t[0]);
        for (uint32_t c = 0; c < (1u << 24); c++) {
            uint32_t px = 0xFF000000u | c;
            float a = color_stain_at(t[1], px), b = color_stain2(&st[k], od, px);
            if (memcmp(&a, &b, sizeof(a)) != 0) fail_msg("stains %d colour %06x: %a != %a", k, c, (double)a, (double)b);
            if (c % 4099 == 0) {
                float h1, e1, h0 = color_stain_at(t[0], c), e0 = color_stain_at(t[1], c);
                color_deconvolve(&st[k], &c, 1, &h1, &e1); /* alpha 0 */
                assert_memory_equal(&h0, &h1, sizeof(float));
                assert_memory_equal(&e0, &e1, sizeof(float));
            }
        }
    }
}

/* By hand: (255,0,0) -> 255*255/255 = 255; (200,100,50) -> 150*255/200 =
 * 191.25 -> 191 (truncated); grey (128,128,128) -> 0; black -> 0 (no
 * division by zero); alpha 0 -> white -> 0. */
static void test_color_saturation_hand_values(void **state) {
    (void)state;
    const uint32_t px[5] = {rgb(255, 0, 0), rgb(200, 100, 50), rgb(128, 128, 128), rgb(0, 0, 0),
                            0x00ff0000u};
    const uint8_t want[5] = {255, 191, 0, 0, 0};
    uint8_t out[5];
    color_saturation(px, 5, out);
    assert_memory_equal(out, want, sizeof(want));
}

/* By hand: white 255; red 0.299*255 = 76.245 -> 76; green 0.587*255 =
 * 149.685 -> 150; blue 0.114*255 = 29.07 -> 29; (10,20,30) -> 2.99 +
 * 11.74 + 3.42 = 18.15 -> 18; alpha 0 -> 255. */
static void test_color_grey_hand_values(void **state) {
    (void)state;
    const uint32_t px[6] = {rgb(255, 255, 255), rgb(255, 0, 0), rgb(0, 255, 0),
                            rgb(0, 0, 255),     rgb(10, 20, 30), 0x00000000u};
    const uint8_t want[6] = {255, 76, 150, 29, 18, 255};
    uint8_t out[6];
    color_grey(px, 6, out);
    assert_memory_equal(out, want, sizeof(want));
}

/* By hand: white 0; alpha 0 -> 0; (255,255,0): blue OD = -log10(1/255)
 * (I clamped to 1) = 2.40654, mean 0.80218; black: 2.40654. */
static void test_color_od_mean_hand_values(void **state) {
    (void)state;
    assert_true(color_od_mean(rgb(255, 255, 255)) == 0.0f);
    assert_true(color_od_mean(0x00000000u) == 0.0f);
    assert_near(color_od_mean(rgb(255, 255, 0)), 0.80218, 1e-5);
    assert_near(color_od_mean(rgb(0, 0, 0)), 2.40654, 1e-5);
}

/* |OD|: 0 for white and for transparent pixels; sqrt(3) x the channel OD
 * for a neutral grey (25: OD log10(255/25) = 1.00860 per channel). */
static void test_color_od_length_hand_values(void **state) {
    (void)state;
    uint32_t px[3] = {rgb(255, 255, 255), 0x00000000u, rgb(25, 25, 25)};
    float out[3];
    color_od_length(px, 3, out);
    assert_near(out[0], 0, 1e-6);
    assert_near(out[1], 0, 1e-6);
    assert_near(out[2], sqrt(3.0) * 1.00860, 1e-4);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_color_od_length_hand_values),
        cmocka_unit_test(test_color_he_vectors_are_normalised),
        cmocka_unit_test(test_color_inverse_times_vectors_is_identity),
        cmocka_unit_test(test_color_pure_hematoxylin_pixel_deconvolves_to_c_and_zero),
        cmocka_unit_test(test_color_white_and_alpha0_deconvolve_to_zero),
        cmocka_unit_test(test_color_deconvolve_accepts_null_outputs),
        cmocka_unit_test(test_color_stain2_equals_deconvolve),
        cmocka_unit_test(test_color_stain_at_equals_stain2_everywhere),
        cmocka_unit_test(test_color_saturation_hand_values),
        cmocka_unit_test(test_color_grey_hand_values),
        cmocka_unit_test(test_color_od_mean_hand_values),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
