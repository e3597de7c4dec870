/*
 * test_jpegio.c - JPEG encoding in memory (src/image/jpegio.c): a known
 * picture encoded, then decoded with libjpeg itself, comes back with the
 * same size and nearly the same pixels; bad arguments are refused.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jpeglib.h>

#include "image/jpegio.h"
#include "util/util.h"

/* Decodes a JPEG in memory to RGB bytes with libjpeg (default error
 * handling: a broken file ends the test program, which fails it). */
static uint8_t *decode(const unsigned char *data, size_t len, int *w, int *h) {
    struct jpeg_decompress_struct c;
    struct jpeg_error_mgr e;
    c.err = jpeg_std_error(&e);
    jpeg_create_decompress(&c);
    jpeg_mem_src(&c, data, (unsigned long)len);
    assert_int_equal(jpeg_read_header(&c, TRUE), JPEG_HEADER_OK);
    c.out_color_space = JCS_RGB;
    jpeg_start_decompress(&c);
    *w = (int)c.output_width;
    *h = (int)c.output_height;
    assert_int_equal(c.output_components, 3);
    uint8_t *rgb = malloc((size_t)*w * (size_t)*h * 3);
    while (c.output_scanline < c.output_height) {
        JSAMPROW row = rgb + (size_t)c.output_scanline * (size_t)*w * 3;
        jpeg_read_scanlines(&c, &row, 1);
    }
    jpeg_finish_decompress(&c);
    jpeg_destroy_decompress(&c);
    return rgb;
}

/* A smooth gradient, red across, green down, blue constant: JPEG keeps such
 * pictures closely. */
static uint32_t *gradient(int w, int h) {
    uint32_t *px = malloc((size_t)w * (size_t)h * sizeof(uint32_t));
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            uint32_t r = (uint32_t)(x * 255 / (w - 1)), g = (uint32_t)(y * 255 / (h - 1));
            px[(size_t)y * (size_t)w + (size_t)x] = 0xFF000000u | r << 16 | g << 8 | 96u;
        }
    return px;
}

static void check_roundtrip(int w, int h, int quality, double max_mean_error, int max_error) {
    char err[TS_ERRLEN];
    uint32_t *px = gradient(w, h);
    unsigned char *jpeg = NULL;
    size_t len = 0;
    assert_int_equal(jpegio_encode(px, w, h, quality, &jpeg, &len, err, sizeof(err)), TS_OK);
    assert_non_null(jpeg);
    assert_true(len > 100);
    assert_int_equal(jpeg[0], 0xFF); /* SOI ... EOI */
    assert_int_equal(jpeg[1], 0xD8);
    assert_int_equal(jpeg[len - 2], 0xFF);
    assert_int_equal(jpeg[len - 1], 0xD9);
    int dw, dh;
    uint8_t *rgb = decode(jpeg, len, &dw, &dh);
    assert_int_equal(dw, w);
    assert_int_equal(dh, h);
    double sum = 0;
    int worst = 0;
    for (int i = 0; i < w * h; i++) {
        uint32_t p = px[i];
        int want[3] = {(int)(p >> 16 & 0xFF), (int)(p >> 8 & 0xFF), (int)(p & 0xFF)};
        for (int k = 0; k < 3; k++) {
            int d = abs(rgb[3 * i + k] - want[k]);
            sum += d;
            if (d > worst) worst = d;
        }
    }
    double mean = sum / (3.0 * w * h);
    printf("# %d x %d q%d: %zu bytes, mean error %.2f, max %d\n", w, h, quality, len, mean, worst);
    assert_true(mean <= max_mean_error);
    assert_true(worst <= max_error);
    free(rgb);
    free(jpeg);
    free(px);
}

static void test_gradient_roundtrips_within_tolerance(void **state) {
    (void)state;
    check_roundtrip(256, 256, 80, 2.0, 16);
    check_roundtrip(301, 199, 80, 2.0, 16); /* not a multiple of the 16 x 16 MCU */
    check_roundtrip(33, 25, 95, 1.5, 10);   /* an edge tile */
}

static void test_one_pixel_and_quality_changes_size(void **state) {
    (void)state;
    char err[TS_ERRLEN];
    uint32_t one = 0xFF102030u;
    unsigned char *jpeg = NULL;
    size_t len = 0;
    assert_int_equal(jpegio_encode(&one, 1, 1, 80, &jpeg, &len, err, sizeof(err)), TS_OK);
    int w, h;
    uint8_t *rgb = decode(jpeg, len, &w, &h);
    assert_int_equal(w, 1);
    assert_int_equal(h, 1);
    assert_true(abs(rgb[0] - 0x10) <= 4 && abs(rgb[1] - 0x20) <= 4 && abs(rgb[2] - 0x30) <= 4);
    free(rgb);
    free(jpeg);
    /* Noise costs more bytes at a higher quality. */
    uint32_t *noise = malloc(128 * 128 * sizeof(uint32_t));
    uint32_t seed = 1;
    for (int i = 0; i < 128 * 128; i++) {
        seed = seed * 1103515245u + 12345u;
        noise[i] = 0xFF000000u | (seed >> 8);
    }
    size_t low, high;
    assert_int_equal(jpegio_encode(noise, 128, 128, 30, &jpeg, &low, err, sizeof(err)), TS_OK);
    free(jpeg);
    assert_int_equal(jpegio_encode(noise, 128, 128, 95, &jpeg, &high, err, sizeof(err)), TS_OK);
    free(jpeg);
    assert_true(high > low);
    free(noise);
}

static void test_bad_arguments_are_refused(void **state) {
    (void)state;
    char err[TS_ERRLEN] = "";
    uint32_t px[4] = {0};
    unsigned char *jpeg = (unsigned char *)"x";
    size_t len = 7;
    assert_int_equal(jpegio_encode(px, 0, 2, 80, &jpeg, &len, err, sizeof(err)), TS_ERR);
    assert_null(jpeg);
    assert_int_equal(len, 0);
    assert_non_null(strstr(err, "0 x 2"));
    assert_int_equal(jpegio_encode(px, 2, 2, 0, &jpeg, &len, err, sizeof(err)), TS_ERR);
    assert_non_null(strstr(err, "quality"));
    assert_int_equal(jpegio_encode(px, 2, 2, 101, &jpeg, &len, err, sizeof(err)), TS_ERR);
    assert_int_equal(jpegio_encode(px, 70000, 1, 80, &jpeg, &len, err, sizeof(err)), TS_ERR);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gradient_roundtrips_within_tolerance),
        cmocka_unit_test(test_one_pixel_and_quality_changes_size),
        cmocka_unit_test(test_bad_arguments_are_refused),
    };
    return cmocka_run_group_tests_name("jpegio", tests, NULL, NULL);
}
