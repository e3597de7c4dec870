/*
 * test_slide_render.c - drawing slide regions at any size
 * (src/image/slide_render.c): area averaging from the chosen level, white
 * where the slide has nothing, premultiplied edges composited over white,
 * and the same picture when the read is split to bound memory.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "image/slide_render.h"
#include "image/tiff_write.h"
#include "util/util.h"
#include "testlib.h"

#define SIDE 256
#define TILE 64

typedef struct fixture {
    char dir[256];
    char path[300];
    slide *s;
} fixture;

/* Left half red, right half blue, at level 0 (256 x 256) and level 1
 * (128 x 128): uniform tiles, so JPEG keeps the colours nearly exact. */
static void write_halves(const char *path) {
    char err[TS_ERRLEN];
    tiffw_options o = {.tile_size = TILE, .jpeg_quality = 95, .mpp = 0.5};
    tiffw *t = NULL;
    const uint8_t red[3] = {200, 40, 40}, blue[3] = {40, 40, 200};
    assert_int_equal(tiffw_open(path, &o, &t, err, sizeof(err)), TS_OK);
    for (int level = 0; level < 2; level++) {
        int side = SIDE >> level, n = side / TILE;
        assert_int_equal(tiffw_begin_level(t, (uint32_t)side, (uint32_t)side, 1 << level, err,
                                           sizeof(err)), TS_OK);
        for (int ty = 0; ty < n; ty++)
            for (int tx = 0; tx < n; tx++)
                assert_int_equal(tiffw_write_uniform_tile(t, (uint32_t)tx, (uint32_t)ty,
                                                          tx < n / 2 ? red : blue, err,
                                                          sizeof(err)), TS_OK);
    }
    assert_int_equal(tiffw_close(t, err, sizeof(err)), TS_OK);
}

static int setup(void **state) {
    fixture *f = calloc(1, sizeof(*f));
    char err[TS_ERRLEN];
    snprintf(f->dir, sizeof(f->dir), "/tmp/tessera-render-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->path, sizeof(f->path), "%s/halves.tiff", f->dir);
    write_halves(f->path);
    assert_int_equal(slide_open(f->path, &f->s, err, sizeof(err)), TS_OK);
    assert_int_equal(slide_get_info(f->s)->levels, 2);
    *state = f;
    return 0;
}

static int teardown(void **state) {
    fixture *f = *state;
    slide_close(f->s);
    test_rm_rf(f->dir);
    free(f);
    return 0;
}

static void assert_colour(uint32_t p, int r, int g, int b, int tol) {
    int pr = (int)(p >> 16 & 0xFF), pg = (int)(p >> 8 & 0xFF), pb = (int)(p & 0xFF);
    if (abs(pr - r) > tol || abs(pg - g) > tol || abs(pb - b) > tol || (p >> 24) != 0xFF)
        fail_msg("pixel %08x is not (%d, %d, %d) within %d", p, r, g, b, tol);
}

static void test_whole_slide_reduced_from_either_level(void **state) {
    fixture *f = *state;
    char err[TS_ERRLEN];
    uint32_t out[32 * 32];
    for (int level = 0; level < 2; level++) {
        assert_int_equal(slide_render(f->s, level, 0, 0, SIDE, SIDE, out, 32, 32, err,
                                      sizeof(err)), TS_OK);
        assert_colour(out[0], 200, 40, 40, 6);
        assert_colour(out[15], 200, 40, 40, 6);
        assert_colour(out[16], 40, 40, 200, 6);
        assert_colour(out[32 * 32 - 1], 40, 40, 200, 6);
    }
}

static void test_outside_the_slide_is_white(void **state) {
    fixture *f = *state;
    char err[TS_ERRLEN];
    uint32_t out[64 * 16];
    /* 128 level-0 pixels, the left half beyond the slide's left edge. */
    assert_int_equal(slide_render(f->s, 0, -64, 0, 128, 32, out, 64, 16, err, sizeof(err)),
                     TS_OK);
    for (int y = 0; y < 16; y++) {
        assert_int_equal(out[y * 64 + 0], 0xFFFFFFFFu);
        assert_int_equal(out[y * 64 + 31], 0xFFFFFFFFu);
        assert_colour(out[y * 64 + 32], 200, 40, 40, 6);
        assert_colour(out[y * 64 + 63], 200, 40, 40, 6);
    }
    /* Wholly outside: all white. */
    assert_int_equal(slide_render(f->s, 0, SIDE + 10, 0, 50, 50, out, 8, 8, err, sizeof(err)),
                     TS_OK);
    for (int i = 0; i < 64; i++) assert_int_equal(out[i], 0xFFFFFFFFu);
}

static void test_premultiplied_pixels_go_over_white(void **state) {
    (void)state;
    assert_int_equal(slide_render_over_white(0x00000000u), 0xFFFFFFFFu);
    assert_int_equal(slide_render_over_white(0xFF123456u), 0xFF123456u);
    /* Half-covered black: grey; half-covered red (premultiplied 0x80 red). */
    assert_int_equal(slide_render_over_white(0x80000000u), 0xFF7F7F7Fu);
    assert_int_equal(slide_render_over_white(0x80800000u), 0xFFFF7F7Fu);
}

static void test_split_reads_draw_the_same_picture(void **state) {
    fixture *f = *state;
    char err[TS_ERRLEN];
    enum { W = 40, H = 30 };
    uint32_t whole[W * H], parts[W * H], one, one_parts;
    assert_int_equal(slide_render(f->s, 0, 0, 0, SIDE, SIDE, whole, W, H, err, sizeof(err)),
                     TS_OK);
    /* At most 300 pixels per read: the 256 x 256 region in hundreds of parts. */
    assert_int_equal(slide_render_bounded(f->s, 0, 0, 0, SIDE, SIDE, parts, W, H, 300, err,
                                          sizeof(err)), TS_OK);
    int differ = 0;
    for (int i = 0; i < W * H; i++) {
        uint32_t a = whole[i], b = parts[i];
        for (int shift = 0; shift <= 16; shift += 8)
            if (abs((int)(a >> shift & 0xFF) - (int)(b >> shift & 0xFF)) > 2) {
                differ++;
                break;
            }
    }
    /* Only the column on the red/blue border may round differently. */
    assert_true(differ <= H);
    /* One output pixel from a read that is too large: drawn 2 x 2 and
     * averaged, down to reads within the bound. */
    assert_int_equal(slide_render(f->s, 0, 0, 0, SIDE, SIDE, &one, 1, 1, err, sizeof(err)), TS_OK);
    assert_int_equal(slide_render_bounded(f->s, 0, 0, 0, SIDE, SIDE, &one_parts, 1, 1, 100, err,
                                          sizeof(err)), TS_OK);
    assert_colour(one_parts, (int)(one >> 16 & 0xFF), (int)(one >> 8 & 0xFF), (int)(one & 0xFF),
                  3);
    assert_colour(one, 120, 40, 120, 6);
}

static void test_bad_arguments_are_refused(void **state) {
    fixture *f = *state;
    char err[TS_ERRLEN] = "";
    uint32_t out[4];
    assert_int_equal(slide_render(f->s, 2, 0, 0, 10, 10, out, 2, 2, err, sizeof(err)), TS_ERR);
    assert_non_null(strstr(err, "level 2"));
    assert_int_equal(slide_render(f->s, 0, 0, 0, 0, 10, out, 2, 2, err, sizeof(err)), TS_ERR);
    assert_int_equal(slide_render(f->s, 0, 0, 0, 10, 10, out, 0, 2, err, sizeof(err)), TS_ERR);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_whole_slide_reduced_from_either_level, setup, teardown),
        cmocka_unit_test_setup_teardown(test_outside_the_slide_is_white, setup, teardown),
        cmocka_unit_test(test_premultiplied_pixels_go_over_white),
        cmocka_unit_test_setup_teardown(test_split_reads_draw_the_same_picture, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_arguments_are_refused, setup, teardown),
    };
    return cmocka_run_group_tests_name("slide_render", tests, NULL, NULL);
}
