/*
 * test_image_filter.c - Gaussian blur, octagonal min/max filters and
 * background subtraction (src/image/filter.c).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "image/filter.h"
#include "util/util.h"

/* Deterministic pseudo-random numbers (xorshift64), state passed along so
 * that tests stay independent of each other. */
static uint64_t rnd_next(uint64_t *s) {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static float rnd_float(uint64_t *s) {
    return (float)(rnd_next(s) >> 40) / (float)(1 << 24);
}

static void assert_near(double got, double want, double tol) {
    if (fabs(got - want) > tol) fail_msg("got %.7f, want %.7f (tol %g)", got, want, tol);
}

/* Fills img from a picture of '0'..'9' characters (digit = value). */
static void from_picture(float *img, const char *pic) {
    for (size_t i = 0; pic[i]; i++) img[i] = (float)(pic[i] - '0');
}

static void assert_picture(const float *img, const char *pic) {
    for (size_t i = 0; pic[i]; i++)
        if (img[i] != (float)(pic[i] - '0'))
            fail_msg("pixel %zu: got %g, want %c", i, (double)img[i], pic[i]);
}

static void test_filter_rejects_bad_arguments(void **state) {
    (void)state;
    float img[4] = {0};
    assert_int_equal(filter_gaussian(img, 0, 2, 1), TS_ERR);
    assert_int_equal(filter_gaussian(img, 2, 0, 1), TS_ERR);
    assert_int_equal(filter_gaussian(img, 2, 2, -1), TS_ERR);
    assert_int_equal(filter_gaussian(img, 2, 2, NAN), TS_ERR);
    assert_int_equal(filter_gaussian(NULL, 2, 2, 1), TS_ERR);
    assert_int_equal(filter_min(img, 2, 2, -0.5f), TS_ERR);
    assert_int_equal(filter_max(img, -1, 2, 1), TS_ERR);
    assert_int_equal(filter_background_subtract(img, 2, 2, NAN), TS_ERR);
}

/* sigma 0 and radius < 1 leave the image bit-identical. */
static void test_filter_zero_sigma_and_radius_leave_image_unchanged(void **state) {
    (void)state;
    uint64_t s = 7;
    float img[35], orig[35];
    for (int i = 0; i < 35; i++) img[i] = orig[i] = rnd_float(&s);
    assert_int_equal(filter_gaussian(img, 7, 5, 0), TS_OK);
    assert_int_equal(filter_min(img, 7, 5, 0), TS_OK);
    assert_int_equal(filter_max(img, 7, 5, 0.9f), TS_OK);
    assert_memory_equal(img, orig, sizeof(img));
}

/* sigma 0.5: radius ceil(1.5) = 2, weights exp(-i^2 / 0.5) = 1, e^-2,
 * e^-8 normalised by 1 + 2e^-2 + 2e^-8 = 1.271341, i.e. k = 0.7865707,
 * 0.1064508, 0.0002639. A 5x1 impulse gives the kernel back; on a 3x1
 * row (1, 0, 0) the replicated left edge counts the 1 three more times:
 * out[0] = k0 + k1 + k2 = 0.8932854, out[1] = k1 + k2 = 0.1067146 (left
 * neighbour 1, and x-2 clamps to x=0), out[2] = k2 (x-2 = 0). A single
 * row stays the same vertically (replicated rows, weights summing to 1). */
static void test_filter_gaussian_hand_computed_kernel_and_edges(void **state) {
    (void)state;
    float impulse[5] = {0, 0, 1, 0, 0};
    assert_int_equal(filter_gaussian(impulse, 5, 1, 0.5f), TS_OK);
    const double k[3] = {0.7865707, 0.1064508, 0.0002639};
    const double want5[5] = {k[2], k[1], k[0], k[1], k[2]};
    for (int i = 0; i < 5; i++) assert_near(impulse[i], want5[i], 1e-6);
    float edge[3] = {1, 0, 0};
    assert_int_equal(filter_gaussian(edge, 3, 1, 0.5f), TS_OK);
    assert_near(edge[0], 0.8932854, 1e-6);
    assert_near(edge[1], 0.1067146, 1e-6);
    assert_near(edge[2], 0.0002639, 1e-6);
}

/* Replicated borders mean a constant image stays constant right up to its
 * edges, whatever sigma (also a kernel far wider than the image). */
static void test_filter_gaussian_keeps_constant_image_constant(void **state) {
    (void)state;
    const float sigmas[3] = {0.7f, 2.0f, 40.0f};
    for (int t = 0; t < 3; t++) {
        float img[6 * 4];
        for (int i = 0; i < 24; i++) img[i] = 0.25f;
        assert_int_equal(filter_gaussian(img, 6, 4, sigmas[t]), TS_OK);
        for (int i = 0; i < 24; i++) assert_near(img[i], 0.25, 1e-6);
    }
}

/* Brute force: the full 2-D sum over the (2r+1)^2 window with weights
 * g(i) g(j) (same normalised 1-D kernel) and clamped coordinates. */
static void test_filter_gaussian_matches_brute_force_on_random_images(void **state) {
    (void)state;
    uint64_t s = 12345;
    enum { W = 13, H = 9 };
    const float sigmas[3] = {0.6f, 1.3f, 3.0f};
    for (int t = 0; t < 3; t++) {
        float img[W * H], orig[W * H];
        for (int i = 0; i < W * H; i++) img[i] = orig[i] = rnd_float(&s);
        assert_int_equal(filter_gaussian(img, W, H, sigmas[t]), TS_OK);
        int r = (int)ceil(3.0 * sigmas[t]);
        double g[16], sum = 0;
        for (int i = -r; i <= r; i++) sum += exp(-(double)i * i / (2.0 * sigmas[t] * sigmas[t]));
        for (int i = 0; i <= r; i++) g[i] = exp(-(double)i * i / (2.0 * sigmas[t] * sigmas[t])) / sum;
        for (int y = 0; y < H; y++) {
            for (int x = 0; x < W; x++) {
                double want = 0;
                for (int j = -r; j <= r; j++) {
                    for (int i = -r; i <= r; i++) {
                        int xx = x + i < 0 ? 0 : (x + i >= W ? W - 1 : x + i);
                        int yy = y + j < 0 ? 0 : (y + j >= H ? H - 1 : y + j);
                        want += g[abs(i)] * g[abs(j)] * orig[yy * W + xx];
                    }
                }
                assert_near(img[y * W + x], want, 1e-5);
            }
        }
    }
}

/* The plain separable blur, for reference: every row blurred into a
 * whole intermediate image (edge pixels replicated), then every column of
 * it, with the same float kernel and the same order of operations as the
 * header's filter (k[0] * centre, then k[i] * (before + after) added for
 * i = 1..r). */
static void plain_gaussian(float *img, int w, int h, float sigma) {
    int r = (int)ceil(3.0 * (double)sigma);
    float *k = malloc(sizeof(float) * (size_t)(r + 1)), *tmp = malloc(sizeof(float) * (size_t)w * h);
    double sum = 0, tv = 2.0 * (double)sigma * sigma;
    for (int i = 0; i <= r; i++) sum += (i == 0 ? 1 : 2) * exp(-(double)i * i / tv);
    for (int i = 0; i <= r; i++) k[i] = (float)(exp(-(double)i * i / tv) / sum);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            const float *row = img + (size_t)y * w;
            float v = k[0] * row[x];
            for (int i = 1; i <= r; i++) {
                int a = x - i < 0 ? 0 : x - i, b = x + i >= w ? w - 1 : x + i;
                v += k[i] * (row[a] + row[b]);
            }
            tmp[(size_t)y * w + x] = v;
        }
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            float v = k[0] * tmp[(size_t)y * w + x];
            for (int i = 1; i <= r; i++) {
                int a = y - i < 0 ? 0 : y - i, b = y + i >= h ? h - 1 : y + i;
                v += k[i] * (tmp[(size_t)a * w + x] + tmp[(size_t)b * w + x]);
            }
            img[(size_t)y * w + x] = v;
        }
    free(k);
    free(tmp);
}

/* The blur (a ring of horizontally blurred rows, in place or into another
 * image) equals the plain whole-image separable blur bit for bit, on
 * random images taller and shorter than the kernel, narrower than a
 * block of the blocked passes (32 columns) and up to 200 wide (blocks and
 * a rest). */
static void test_filter_gaussian_equals_plain_separable_blur(void **state) {
    (void)state;
    uint64_t s = 777;
    const float sigmas[4] = {0.4f, 1.0f, 1.7f, 3.0f};
    for (int t = 0; t < 48; t++) {
        int w = 1 + (int)(rnd_next(&s) % (t < 24 ? 40 : 200)), h = 1 + (int)(rnd_next(&s) % 40);
        float sigma = sigmas[t % 4];
        size_t n = (size_t)w * h;
        float *a = malloc(n * sizeof(float)), *b = malloc(n * sizeof(float)), *c = malloc(n * sizeof(float));
        for (size_t i = 0; i < n; i++) a[i] = b[i] = rnd_float(&s) * 3 - 1;
        assert_int_equal(filter_gaussian_copy(a, c, w, h, sigma), TS_OK);
        assert_int_equal(filter_gaussian(a, w, h, sigma), TS_OK);
        plain_gaussian(b, w, h, sigma);
        assert_memory_equal(a, b, n * sizeof(float));
        assert_memory_equal(c, b, n * sizeof(float));
        free(a);
        free(b);
        free(c);
    }
}

/* The blur computed only where a mask is set equals the whole blur
 * there bit for bit: random images narrower and shorter than the kernel
 * and up to 220 wide (strips at the left edge, inside, at the right edge,
 * narrower than a strip), masks from empty through sparse to full; the
 * source is left alone. Only where the mask is set is dst checked
 * (elsewhere it is unspecified). */
static void test_filter_gaussian_masked_equals_whole_blur_on_mask(void **state) {
    (void)state;
    uint64_t s = 4242;
    const float sigmas[4] = {0.4f, 1.0f, 1.7f, 3.0f};
    const unsigned density[5] = {0, 3, 20, 60, 100}; /* per cent of pixels set */
    for (int t = 0; t < 60; t++) {
        int w = 1 + (int)(rnd_next(&s) % 220), h = 1 + (int)(rnd_next(&s) % 30);
        float sigma = sigmas[t % 4];
        size_t n = (size_t)w * h;
        float *src = malloc(n * sizeof(float)), *keep = malloc(n * sizeof(float)),
              *whole = malloc(n * sizeof(float)), *part = malloc(n * sizeof(float));
        uint8_t *mask = malloc(n);
        for (size_t i = 0; i < n; i++) {
            src[i] = keep[i] = rnd_float(&s) * 3 - 1;
            mask[i] = rnd_next(&s) % 100 < density[t % 5];
            part[i] = NAN;
        }
        assert_int_equal(filter_gaussian_copy(src, whole, w, h, sigma), TS_OK);
        assert_int_equal(filter_gaussian_masked(src, part, mask, w, h, sigma), TS_OK);
        assert_memory_equal(src, keep, n * sizeof(float));
        for (size_t i = 0; i < n; i++)
            if (mask[i] && memcmp(&part[i], &whole[i], sizeof(float)) != 0)
                fail_msg("w %d h %d sigma %g: pixel %zu got %a, want %a", w, h, (double)sigma, i,
                         (double)part[i], (double)whole[i]);
        free(src);
        free(keep);
        free(whole);
        free(part);
        free(mask);
    }
    float img[4] = {0}, out[4];
    uint8_t m[4] = {1, 1, 1, 1};
    assert_int_equal(filter_gaussian_masked(img, img, m, 2, 2, 1), TS_ERR); /* in place */
    assert_int_equal(filter_gaussian_masked(img, out, NULL, 2, 2, 1), TS_ERR);
}

/* filter_gaussian_above against filter_gaussian_copy: bit for bit wherever
 * the whole blur is above floor, and that or 0 elsewhere; on non-negative
 * images that are mostly flat background (0 to 0.05) with sparse bumps
 * (up to 1), of every size from narrower than the kernel to several
 * strips wide, floors from below the background to above every value,
 * and with a floor of 0 (only exact zeros may be skipped). */
static void test_filter_gaussian_above_equals_whole_blur_above_floor(void **state) {
    (void)state;
    uint64_t s = 777;
    const float sigmas[4] = {0.4f, 1.0f, 1.7f, 3.0f}, floors[5] = {0.0f, 0.02f, 0.1f, 0.3f, 2.0f};
    const unsigned density[4] = {0, 1, 5, 40}; /* per mille of bump centres */
    size_t skipped = 0;
    for (int t = 0; t < 80; t++) {
        int w = 1 + (int)(rnd_next(&s) % 300), h = 1 + (int)(rnd_next(&s) % 60);
        float sigma = sigmas[t % 4], floor_ = floors[t % 5];
        size_t n = (size_t)w * h;
        float *src = malloc(n * sizeof(float)), *keep = malloc(n * sizeof(float)),
              *whole = malloc(n * sizeof(float)), *part = malloc(n * sizeof(float));
        for (size_t i = 0; i < n; i++) src[i] = (t % 7 == 0) ? 0.0f : rnd_float(&s) * 0.05f;
        for (size_t i = 0; i < n; i++)
            if (rnd_next(&s) % 1000 < density[t % 4]) {
                int x = (int)(i % (size_t)w), y = (int)(i / (size_t)w), rad = 1 + (int)(rnd_next(&s) % 6);
                for (int yy = y - rad; yy <= y + rad; yy++)
                    for (int xx = x - rad; xx <= x + rad; xx++)
                        if (xx >= 0 && xx < w && yy >= 0 && yy < h)
                            src[(size_t)yy * w + xx] = rnd_float(&s);
            }
        for (size_t i = 0; i < n; i++) {
            keep[i] = src[i];
            part[i] = NAN;
        }
        assert_int_equal(filter_gaussian_copy(src, whole, w, h, sigma), TS_OK);
        assert_int_equal(filter_gaussian_above(src, part, w, h, sigma, floor_), TS_OK);
        assert_memory_equal(src, keep, n * sizeof(float));
        for (size_t i = 0; i < n; i++) {
            if (memcmp(&part[i], &whole[i], sizeof(float)) == 0) continue;
            if (whole[i] > floor_ || part[i] != 0 || signbit(part[i]))
                fail_msg("w %d h %d sigma %g floor %g: pixel %zu got %a, want %a", w, h, (double)sigma,
                         (double)floor_, i, (double)part[i], (double)whole[i]);
            skipped++;
        }
        free(src);
        free(keep);
        free(whole);
        free(part);
    }
    assert_true(skipped > 0); /* the skipping itself was exercised */
    float img[4] = {0}, out[4];
    assert_int_equal(filter_gaussian_above(img, img, 2, 2, 1, 0.1f), TS_ERR); /* in place */
    assert_int_equal(filter_gaussian_above(img, out, 2, 2, 1, NAN), TS_ERR);
    assert_int_equal(filter_gaussian_above(img, NULL, 2, 2, 1, 0.1f), TS_ERR);
}

/* The coarse background subtraction from one image into another leaves
 * the source alone and gives what it gives in place, also below the
 * coarse path's minimum size and radius (the exact filter then). */
static void test_filter_background_subtract_coarse_copy_equals_in_place(void **state) {
    (void)state;
    uint64_t s = 99;
    const int sizes[3][2] = {{37, 29}, {3, 9}, {64, 5}};
    const float radii[3] = {9.0f, 2.5f, 6.0f};
    for (int t = 0; t < 3; t++) {
        int w = sizes[t][0], h = sizes[t][1];
        size_t n = (size_t)w * h;
        float *src = malloc(n * sizeof(float)), *keep = malloc(n * sizeof(float)),
              *dst = malloc(n * sizeof(float)), *inplace = malloc(n * sizeof(float));
        for (size_t i = 0; i < n; i++) src[i] = keep[i] = inplace[i] = rnd_float(&s);
        assert_int_equal(filter_background_subtract_coarse_copy(src, dst, w, h, radii[t]), TS_OK);
        assert_int_equal(filter_background_subtract_coarse(inplace, w, h, radii[t]), TS_OK);
        assert_memory_equal(src, keep, n * sizeof(float));
        assert_memory_equal(dst, inplace, n * sizeof(float));
        free(src);
        free(keep);
        free(dst);
        free(inplace);
    }
}

/* Radius 3: a+b = 3, 2a+b = floor(3 sqrt 2) = 4, so the element is
 * {|dx| <= 3, |dy| <= 3, |dx| + |dy| <= 4}: rows dy = +-3 keep |dx| <= 1,
 * dy = +-2 keep |dx| <= 2, dy = -1..1 keep |dx| <= 3. Eroding a single 0
 * in a 9x9 image of ones draws that octagon in zeros. */
static void test_filter_min_radius3_draws_octagon(void **state) {
    (void)state;
    float img[81];
    for (int i = 0; i < 81; i++) img[i] = 1;
    img[4 * 9 + 4] = 0;
    assert_int_equal(filter_min(img, 9, 9, 3.0f), TS_OK);
    assert_picture(img, "111111111"
                        "111000111"
                        "110000011"
                        "100000001"
                        "100000001"
                        "100000001"
                        "110000011"
                        "111000111"
                        "111111111");
}

/* Radius 1 is the 5-point cross (1 sqrt 2 < 2 rules out the diagonals),
 * here clipped at the top-left corner; radius 2 dilation of an impulse is
 * the diamond |dx| + |dy| <= 2 (the disk of radius 2: (1,1) is in, (2,1)
 * at sqrt 5 is out). */
static void test_filter_min_max_small_radii_are_cross_and_diamond(void **state) {
    (void)state;
    float img[25];
    from_picture(img, "05555"
                      "55555"
                      "55555"
                      "55555"
                      "55555");
    assert_int_equal(filter_min(img, 5, 5, 1.0f), TS_OK);
    assert_picture(img, "00555"
                        "05555"
                        "55555"
                        "55555"
                        "55555");
    from_picture(img, "00000"
                      "00000"
                      "00700"
                      "00000"
                      "00000");
    assert_int_equal(filter_max(img, 5, 5, 2.0f), TS_OK);
    assert_picture(img, "00700"
                        "07770"
                        "77777"
                        "07770"
                        "00700");
}

/* Brute force min / max over the clipped octagon {|dx|, |dy| <= n,
 * |dx| + |dy| <= d}, n = floor(r), d = floor(r sqrt 2) kept within
 * [n, 2n], on random images of awkward shapes (thin, wider than tall and
 * the reverse) for radii from 0 to beyond the image. */
static void test_filter_min_max_match_brute_force_octagon(void **state) {
    (void)state;
    uint64_t s = 99;
    const int shapes[5][2] = {{20, 17}, {1, 9}, {9, 1}, {3, 30}, {31, 4}};
    const float radii[9] = {0.5f, 1, 1.5f, 2.2f, 3, 4.7f, 6, 9.5f, 50};
    for (int si = 0; si < 5; si++) {
        int w = shapes[si][0], h = shapes[si][1];
        float *orig = malloc(sizeof(float) * w * h), *mn = malloc(sizeof(float) * w * h),
              *mx = malloc(sizeof(float) * w * h);
        for (int ri = 0; ri < 9; ri++) {
            for (int i = 0; i < w * h; i++) mn[i] = mx[i] = orig[i] = rnd_float(&s);
            assert_int_equal(filter_min(mn, w, h, radii[ri]), TS_OK);
            assert_int_equal(filter_max(mx, w, h, radii[ri]), TS_OK);
            int n = (int)floorf(radii[ri]), d = (int)floor(radii[ri] * sqrt(2.0));
            d = d > 2 * n ? 2 * n : (d < n ? n : d);
            for (int y = 0; y < h; y++) {
                for (int x = 0; x < w; x++) {
                    float lo = INFINITY, hi = -INFINITY;
                    for (int yy = 0; yy < h; yy++) {
                        for (int xx = 0; xx < w; xx++) {
                            int dx = abs(xx - x), dy = abs(yy - y);
                            if (dx > n || dy > n || dx + dy > d) continue;
                            lo = fminf(lo, orig[yy * w + xx]);
                            hi = fmaxf(hi, orig[yy * w + xx]);
                        }
                    }
                    if (mn[y * w + x] != lo || mx[y * w + x] != hi)
                        fail_msg("%dx%d r=%g at (%d,%d): min %g/%g max %g/%g", w, h,
                                 (double)radii[ri], x, y, (double)mn[y * w + x], (double)lo,
                                 (double)mx[y * w + x], (double)hi);
                }
            }
        }
        free(orig);
        free(mn);
        free(mx);
    }
}

/* A flat background of 3 with a 3x3 bump of height 2 on it: radius 4
 * opens the bump away (it is narrower than the element), so the result is
 * the bump's own height, 2, on the bump and exactly 0 elsewhere. */
static void test_filter_background_subtract_keeps_small_bump_height(void **state) {
    (void)state;
    float img[9 * 8];
    from_picture(img, "333333333"
                      "333333333"
                      "333555333"
                      "333555333"
                      "333555333"
                      "333333333"
                      "333333333"
                      "333333333");
    assert_int_equal(filter_background_subtract(img, 9, 8, 4.0f), TS_OK);
    assert_picture(img, "000000000"
                        "000000000"
                        "000222000"
                        "000222000"
                        "000222000"
                        "000000000"
                        "000000000"
                        "000000000");
}

/* A slow ramp (0.01 per pixel) with a 2x2 spike of +1: the spike keeps
 * about its height and the ramp goes to ~0; on random images the result is
 * never negative. */
static void test_filter_background_subtract_flattens_ramp_and_is_nonnegative(void **state) {
    (void)state;
    enum { W = 40, H = 30 };
    float *img = malloc(sizeof(float) * W * H);
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) img[y * W + x] = 0.01f * (float)(x + y);
    for (int y = 14; y < 16; y++)
        for (int x = 20; x < 22; x++) img[y * W + x] += 1.0f;
    assert_int_equal(filter_background_subtract(img, W, H, 5.0f), TS_OK);
    for (int y = 0; y < H; y++) {
        for (int x = 0; x < W; x++) {
            int spike = y >= 14 && y < 16 && x >= 20 && x < 22;
            assert_near(img[y * W + x], spike ? 1.0 : 0.0, spike ? 0.05 : 0.12);
        }
    }
    uint64_t s = 5;
    for (int i = 0; i < W * H; i++) img[i] = rnd_float(&s) * 3 - 1;
    assert_int_equal(filter_background_subtract(img, W, H, 3.5f), TS_OK);
    for (int i = 0; i < W * H; i++) assert_true(img[i] >= 0);
    free(img);
}

/* The coarse background: never negative, a flat background with a bump
 * narrower than the radius gives the bump's height on it and 0 well away
 * from it, and on smooth images with small bumps it is within 0.05 of the
 * exact filter away from the bumps' rims. */
static void test_filter_background_subtract_coarse_follows_exact(void **state) {
    (void)state;
    enum { W = 64, H = 48 };
    float *a = malloc(sizeof(float) * W * H), *b = malloc(sizeof(float) * W * H);
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            float v = 0.2f + 0.004f * (float)x + 0.003f * (float)y;
            int bump = (x - 30) * (x - 30) + (y - 20) * (y - 20) <= 9;
            a[y * W + x] = b[y * W + x] = v + (bump ? 0.5f : 0.0f);
        }
    assert_int_equal(filter_background_subtract(a, W, H, 10.0f), TS_OK);
    assert_int_equal(filter_background_subtract_coarse(b, W, H, 10.0f), TS_OK);
    assert_near(b[20 * W + 30], 0.5, 0.06);
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            assert_true(b[y * W + x] >= 0);
            int near = abs(x - 30) <= 5 && abs(y - 20) <= 5;
            if (!near) assert_near(b[y * W + x], a[y * W + x], 0.05);
        }
    uint64_t s = 9;
    for (int i = 0; i < W * H; i++) b[i] = rnd_float(&s) * 3 - 1;
    assert_int_equal(filter_background_subtract_coarse(b, W, H, 7.0f), TS_OK);
    for (int i = 0; i < W * H; i++) assert_true(b[i] >= 0);
    free(a);
    free(b);
}

/* The square max filter against a brute-force maximum over the square. */
static void test_filter_max_square_matches_brute_force(void **state) {
    (void)state;
    enum { W = 37, H = 23 };
    float img[W * H], ref[W * H];
    uint64_t s = 3;
    for (int i = 0; i < W * H; i++) img[i] = rnd_float(&s);
    for (int a = 0; a <= 5; a++) {
        for (int y = 0; y < H; y++)
            for (int x = 0; x < W; x++) {
                float m = -INFINITY;
                for (int v = y - a; v <= y + a; v++)
                    for (int u = x - a; u <= x + a; u++)
                        if (u >= 0 && v >= 0 && u < W && v < H && img[v * W + u] > m) m = img[v * W + u];
                ref[y * W + x] = m;
            }
        float out[W * H];
        memcpy(out, img, sizeof(out));
        assert_int_equal(filter_max_square(out, W, H, a), TS_OK);
        for (int i = 0; i < W * H; i++) assert_true(out[i] == ref[i]);
    }
}

/* filter_max_square_masked against filter_max_square on the mask, bit
 * for bit: random images narrower than a strip to several strips wide,
 * half-widths 0 to beyond the image, masks empty to full; src untouched. */
static void test_filter_max_square_masked_equals_whole_on_mask(void **state) {
    (void)state;
    uint64_t s = 99;
    const unsigned density[4] = {0, 2, 20, 100};
    for (int t = 0; t < 60; t++) {
        int w = 1 + (int)(rnd_next(&s) % 200), h = 1 + (int)(rnd_next(&s) % 40), a = (int)(rnd_next(&s) % 9);
        if (t % 10 == 0) a = w + h + 5;
        size_t n = (size_t)w * h;
        float *src = malloc(n * sizeof(float)), *keep = malloc(n * sizeof(float)),
              *whole = malloc(n * sizeof(float)), *part = malloc(n * sizeof(float));
        uint8_t *mask = malloc(n);
        for (size_t i = 0; i < n; i++) {
            src[i] = keep[i] = whole[i] = rnd_float(&s) * 2 - 1;
            mask[i] = rnd_next(&s) % 100 < density[t % 4];
            part[i] = NAN;
        }
        assert_int_equal(filter_max_square(whole, w, h, a), TS_OK);
        assert_int_equal(filter_max_square_masked(src, part, mask, w, h, a), TS_OK);
        assert_memory_equal(src, keep, n * sizeof(float));
        for (size_t i = 0; i < n; i++)
            if (mask[i] && memcmp(&part[i], &whole[i], sizeof(float)) != 0)
                fail_msg("w %d h %d a %d: pixel %zu got %a, want %a", w, h, a, i, (double)part[i],
                         (double)whole[i]);
        free(src);
        free(keep);
        free(whole);
        free(part);
        free(mask);
    }
    float img[4] = {0};
    uint8_t m[4] = {1, 1, 1, 1};
    assert_int_equal(filter_max_square_masked(img, img, m, 2, 2, 1), TS_ERR); /* in place */
    assert_int_equal(filter_max_square_masked(img, img + 0, NULL, 2, 2, 1), TS_ERR);
}

/* The _with variants, one pair of scratches reused over random sizes and
 * radii (grown, then reused by smaller calls) and filled with garbage
 * between calls, give exactly the allocating calls' values; NULL
 * scratches are refused. */
static void test_filter_with_scratch_equals_allocating_calls(void **state) {
    (void)state;
    uint64_t s = 99;
    image_scratch sc[2] = {{0}, {0}};
    for (int t = 0; t < 120; t++) {
        int w = 1 + (int)(rnd_next(&s) % 90), h = 1 + (int)(rnd_next(&s) % 70);
        float radius = (float)(rnd_next(&s) % 200) / 10.0f;
        size_t n = (size_t)w * h;
        float *src = malloc(n * sizeof(float)), *a = malloc(n * sizeof(float)), *b = malloc(n * sizeof(float));
        for (size_t i = 0; i < n; i++) src[i] = rnd_float(&s) * 3 - 1;
        for (int k = 0; k < 2; k++)
            if (sc[k].cap) memset(sc[k].block, 0x7f, sc[k].cap);
        memcpy(a, src, n * sizeof(float));
        memcpy(b, src, n * sizeof(float));
        assert_int_equal(filter_min(a, w, h, radius), TS_OK);
        assert_int_equal(filter_min_with(&sc[1], b, w, h, radius), TS_OK);
        assert_memory_equal(a, b, n * sizeof(float));
        assert_int_equal(filter_max(a, w, h, radius), TS_OK);
        assert_int_equal(filter_max_with(&sc[0], b, w, h, radius), TS_OK);
        assert_memory_equal(a, b, n * sizeof(float));
        assert_int_equal(filter_background_subtract_coarse_copy(src, a, w, h, radius), TS_OK);
        assert_int_equal(filter_background_subtract_coarse_with(sc, src, b, w, h, radius), TS_OK);
        assert_memory_equal(a, b, n * sizeof(float));
        free(src);
        free(a);
        free(b);
    }
    float v = 1;
    assert_int_equal(filter_min_with(NULL, &v, 1, 1, 2), TS_ERR);
    assert_int_equal(filter_max_with(NULL, &v, 1, 1, 2), TS_ERR);
    assert_int_equal(filter_background_subtract_coarse_with(NULL, &v, &v, 1, 1, 2), TS_ERR);
    image_scratch_release(&sc[0]);
    image_scratch_release(&sc[1]);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_filter_with_scratch_equals_allocating_calls),
        cmocka_unit_test(test_filter_rejects_bad_arguments),
        cmocka_unit_test(test_filter_background_subtract_coarse_follows_exact),
        cmocka_unit_test(test_filter_max_square_matches_brute_force),
        cmocka_unit_test(test_filter_max_square_masked_equals_whole_on_mask),
        cmocka_unit_test(test_filter_zero_sigma_and_radius_leave_image_unchanged),
        cmocka_unit_test(test_filter_gaussian_hand_computed_kernel_and_edges),
        cmocka_unit_test(test_filter_gaussian_keeps_constant_image_constant),
        cmocka_unit_test(test_filter_gaussian_matches_brute_force_on_random_images),
        cmocka_unit_test(test_filter_gaussian_equals_plain_separable_blur),
        cmocka_unit_test(test_filter_gaussian_masked_equals_whole_blur_on_mask),
        cmocka_unit_test(test_filter_background_subtract_coarse_copy_equals_in_place),
        cmocka_unit_test(test_filter_gaussian_above_equals_whole_blur_above_floor),
        cmocka_unit_test(test_filter_min_radius3_draws_octagon),
        cmocka_unit_test(test_filter_min_max_small_radii_are_cross_and_diamond),
        cmocka_unit_test(test_filter_min_max_match_brute_force_octagon),
        cmocka_unit_test(test_filter_background_subtract_keeps_small_bump_height),
        cmocka_unit_test(test_filter_background_subtract_flattens_ramp_and_is_nonnegative),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
