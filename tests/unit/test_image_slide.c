/*
 * test_image_slide.c - slide access through OpenSlide (src/image/slide.c)
 * and the submission check on image paths: formats, levels, microns per
 * pixel from TIFF tags, data roots, and the bad images a user may send.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <tiffio.h>
#include <unistd.h>

#include <openslide/openslide.h>

#include "image/demo.h"
#include "image/slide.h"
#include "image/tiff_write.h"
#include "util/util.h"
#include "testlib.h"

typedef struct fixture {
    char dir[256];  /* the data root */
    char outside[256];
} fixture;

static int setup(void **state) {
    fixture *f = calloc(1, sizeof(*f));
    snprintf(f->dir, sizeof(f->dir), "/tmp/tessera-slide-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->outside, sizeof(f->outside), "/tmp/tessera-outside-XXXXXX");
    assert_non_null(mkdtemp(f->outside));
    *state = f;
    return 0;
}

static int teardown(void **state) {
    fixture *f = *state;
    test_rm_rf(f->dir);
    test_rm_rf(f->outside);
    free(f);
    return 0;
}

/* Writes a two-level tiled TIFF of w x h at mpp with noisy tiles (so the
 * file is large enough to truncate meaningfully). */
static void write_tiff(const char *path, int w, int h, double mpp) {
    char err[TS_ERRLEN];
    tiffw_options o = {.tile_size = 64, .jpeg_quality = 90, .mpp = mpp};
    tiffw *t = NULL;
    assert_int_equal(tiffw_open(path, &o, &t, err, sizeof(err)), TS_OK);
    uint8_t *rgb = malloc(64 * 64 * 3);
    uint32_t seed = 7;
    for (int level = 0; level < 2; level++) {
        int lw = level ? (w + 1) / 2 : w, lh = level ? (h + 1) / 2 : h;
        assert_int_equal(tiffw_begin_level(t, (uint32_t)lw, (uint32_t)lh, level ? 2 : 1, err, sizeof(err)), TS_OK);
        for (int ty = 0; ty < (lh + 63) / 64; ty++)
            for (int tx = 0; tx < (lw + 63) / 64; tx++) {
                for (int i = 0; i < 64 * 64 * 3; i++) {
                    seed = seed * 1103515245u + 12345u;
                    rgb[i] = (uint8_t)(120 + (seed >> 16) % 100);
                }
                assert_int_equal(tiffw_write_tile(t, (uint32_t)tx, (uint32_t)ty, rgb, err, sizeof(err)), TS_OK);
            }
    }
    free(rgb);
    assert_int_equal(tiffw_close(t, err, sizeof(err)), TS_OK);
}

static void test_slide_open_reads_levels_and_mpp_from_tiff_resolution(void **state) {
    fixture *f = *state;
    char path[512], err[TS_ERRLEN];
    snprintf(path, sizeof(path), "%s/a.tiff", f->dir);
    write_tiff(path, 300, 200, 0.5);
    slide *s = NULL;
    assert_int_equal(slide_open(path, &s, err, sizeof(err)), TS_OK);
    const slide_info *info = slide_get_info(s);
    assert_int_equal(info->w, 300);
    assert_int_equal(info->h, 200);
    assert_int_equal(info->levels, 2);
    assert_string_equal(info->vendor, "generic-tiff");
    assert_string_equal(info->mpp_source, "tiff.XResolution");
    assert_true(info->mpp_x > 0.4999 && info->mpp_x < 0.5001);
    assert_int_equal(slide_get_level(s, 1)->w, 150);
    assert_null(slide_get_level(s, 2));
    assert_int_equal(slide_best_level(s, 1), 0);
    assert_int_equal(slide_best_level(s, 1.9), 0);
    assert_int_equal(slide_best_level(s, 2), 1);
    assert_int_equal(slide_best_level(s, 16), 1);
    uint32_t *buf = malloc(40 * 30 * 4);
    assert_int_equal(slide_read(s, 1, 100, 50, 40, 30, buf, err, sizeof(err)), TS_OK);
    assert_int_equal(buf[0] >> 24, 0xFF); /* inside: opaque */
    assert_int_equal(slide_read(s, 0, 290, 190, 40, 30, buf, err, sizeof(err)), TS_OK);
    assert_int_equal(buf[39 * 1 + 29 * 40] >> 24, 0); /* beyond the edge: transparent */
    free(buf);
    slide_close(s);
}

static void expect_open_error(const char *path, const char *needle) {
    char err[TS_ERRLEN] = "";
    slide *s = NULL;
    assert_int_equal(slide_open(path, &s, err, sizeof(err)), TS_ERR);
    assert_null(s);
    if (strstr(err, needle) == NULL) fail_msg("error \"%s\" lacks \"%s\"", err, needle);
}

static void test_slide_open_refuses_bad_images_with_reasons(void **state) {
    fixture *f = *state;
    char path[512];
    snprintf(path, sizeof(path), "%s/missing.svs", f->dir);
    expect_open_error(path, "no such file");
    snprintf(path, sizeof(path), "%s/text.svs", f->dir);
    FILE *fp = fopen(path, "w");
    fputs("this is not a slide\n", fp);
    fclose(fp);
    expect_open_error(path, "not a slide format");
    snprintf(path, sizeof(path), "%s/one.tiff", f->dir);
    write_tiff(path, 1, 1, 0.5);
    expect_open_error(path, "1 x 1 pixels");
    expect_open_error(f->dir, "not a regular file");
}

static void test_slide_check_path_enforces_the_data_roots(void **state) {
    fixture *f = *state;
    char path[512], link[512], err[TS_ERRLEN], roots[600];
    snprintf(path, sizeof(path), "%s/ok.tiff", f->dir);
    write_tiff(path, 128, 128, 0.25);
    snprintf(roots, sizeof(roots), "/nonexistent:%s", f->dir);
    assert_int_equal(slide_check_path(path, roots, err, sizeof(err)), TS_OK);
    /* The same slide outside the roots, and reached through a symlink. */
    char outside[512];
    snprintf(outside, sizeof(outside), "%s/x.tiff", f->outside);
    write_tiff(outside, 128, 128, 0.25);
    assert_int_equal(slide_check_path(outside, f->dir, err, sizeof(err)), TS_ERR);
    assert_non_null(strstr(err, "not found in the data roots"));
    snprintf(link, sizeof(link), "%s/link.tiff", f->dir);
    assert_int_equal(symlink(outside, link), 0);
    assert_int_equal(slide_check_path(link, f->dir, err, sizeof(err)), TS_ERR);
    assert_non_null(strstr(err, "not found in the data roots"));
    snprintf(link, sizeof(link), "%s/../%s/x.tiff", f->dir, strrchr(f->outside, '/') + 1);
    assert_int_equal(slide_check_path(link, f->dir, err, sizeof(err)), TS_ERR);
    assert_non_null(strstr(err, "not found in the data roots"));
    assert_int_equal(slide_check_path("ok.tiff", f->dir, err, sizeof(err)), TS_ERR);
    assert_non_null(strstr(err, "absolute"));
    /* A root that is a prefix of another directory's name is not a parent. */
    snprintf(roots, sizeof(roots), "%s", f->dir);
    roots[strlen(roots) - 1] = '\0';
    assert_int_equal(slide_check_path(path, roots, err, sizeof(err)), TS_ERR);
}

/* Issue 12, defect 11: outside the roots a file that exists and one that
 * does not get the same words, so submissions cannot probe the machine;
 * inside the roots a missing file is called missing. */
static void test_outside_the_roots_existing_and_missing_read_the_same(void **state) {
    fixture *f = *state;
    char exists[512], missing[512], err_exists[TS_ERRLEN], err_missing[TS_ERRLEN];
    char err[TS_ERRLEN], real[PATH_MAX];
    snprintf(exists, sizeof(exists), "%s/x.tiff", f->outside);
    write_tiff(exists, 128, 128, 0.25);
    snprintf(missing, sizeof(missing), "%s/nothing-here.tiff", f->outside);
    assert_int_equal(slide_check_path(exists, f->dir, err_exists, sizeof(err_exists)), TS_ERR);
    assert_int_equal(slide_check_path(missing, f->dir, err_missing, sizeof(err_missing)), TS_ERR);
    assert_string_equal(err_exists, err_missing);
    assert_non_null(strstr(err_exists, "not found in the data roots"));
    /* The same through ".." from inside a root, and for a missing directory. */
    snprintf(missing, sizeof(missing), "%s/../%s/no/such/dir.tiff", f->dir,
             strrchr(f->outside, '/') + 1);
    assert_int_equal(slide_resolve_path(missing, f->dir, real, err, sizeof(err)), TS_ERR);
    assert_string_equal(err, err_exists);
    assert_int_equal(slide_check_path("/etc/passwd", f->dir, err, sizeof(err)), TS_ERR);
    assert_string_equal(err, err_exists);
    /* Inside the root: the reason. */
    snprintf(missing, sizeof(missing), "%s/typo.tiff", f->dir);
    assert_int_equal(slide_check_path(missing, f->dir, err, sizeof(err)), TS_ERR);
    assert_string_equal(err, "no such file");
}

/* Defect 11 through a symlink (found by tests/fuzz/fuzz_path): a link in a
 * root to a missing place outside answered "no such file", a link to an
 * existing one "not found in the data roots", so anyone who can make a link
 * in a root could probe the machine. A link that does not resolve is not
 * "missing inside the roots": both get the one answer. */
static void test_dangling_link_out_of_the_roots_reads_as_outside(void **state) {
    fixture *f = *state;
    char target[512], link[512], err_exists[TS_ERRLEN], err_missing[TS_ERRLEN];
    snprintf(target, sizeof(target), "%s/there.tiff", f->outside);
    write_tiff(target, 128, 128, 0.25);
    snprintf(link, sizeof(link), "%s/to-existing.tiff", f->dir);
    assert_int_equal(symlink(target, link), 0);
    assert_int_equal(slide_check_path(link, f->dir, err_exists, sizeof(err_exists)), TS_ERR);
    snprintf(target, sizeof(target), "%s/not-there.tiff", f->outside);
    snprintf(link, sizeof(link), "%s/to-missing.tiff", f->dir);
    assert_int_equal(symlink(target, link), 0);
    assert_int_equal(slide_check_path(link, f->dir, err_missing, sizeof(err_missing)), TS_ERR);
    assert_string_equal(err_missing, err_exists);
    /* And a link to a missing directory outside, with more below it. */
    snprintf(target, sizeof(target), "%s/no-dir", f->outside);
    snprintf(link, sizeof(link), "%s/to-missing-dir", f->dir);
    assert_int_equal(symlink(target, link), 0);
    strcat(link, "/x.tiff");
    assert_int_equal(slide_check_path(link, f->dir, err_missing, sizeof(err_missing)), TS_ERR);
    assert_string_equal(err_missing, err_exists);
}

/* Issue 12, defect 1: a FIFO (or any special file) with a slide's name
 * must never reach OpenSlide, which would block in open() for good. Each
 * call here returns at once or the test hangs. */
static void test_special_files_never_reach_openslide(void **state) {
    fixture *f = *state;
    char fifo[512], dir[512], link[512], err[TS_ERRLEN], real[PATH_MAX];
    slide *s = NULL;
    snprintf(fifo, sizeof(fifo), "%s/fifo.tiff", f->dir);
    assert_int_equal(mkfifo(fifo, 0644), 0);
    snprintf(dir, sizeof(dir), "%s/folder.tiff", f->dir);
    assert_int_equal(mkdir(dir, 0755), 0);
    snprintf(link, sizeof(link), "%s/null.svs", f->dir);
    assert_int_equal(symlink("/dev/null", link), 0);
    assert_int_equal(slide_open(fifo, &s, err, sizeof(err)), TS_ERR);
    assert_string_equal(err, "not a regular file (a FIFO)");
    assert_int_equal(slide_check_path(fifo, f->dir, err, sizeof(err)), TS_ERR);
    assert_string_equal(err, "not a regular file (a FIFO)");
    assert_int_equal(slide_check_file(fifo, f->dir, real, err, sizeof(err)), TS_ERR);
    assert_string_equal(err, "not a regular file (a FIFO)");
    assert_int_equal(slide_check_path(dir, f->dir, err, sizeof(err)), TS_ERR);
    assert_string_equal(err, "not a regular file (a directory)");
    /* /dev/null is outside the root; opened directly it is a device. */
    assert_int_equal(slide_check_path(link, f->dir, err, sizeof(err)), TS_ERR);
    assert_non_null(strstr(err, "not found in the data roots"));
    assert_int_equal(slide_open(link, &s, err, sizeof(err)), TS_ERR);
    assert_string_equal(err, "not a regular file (a device)");
    assert_null(s);
    /* A regular file still opens, and keeps working after its name is
     * replaced: OpenSlide reads the file that was checked. */
    char path[512], moved[512];
    snprintf(path, sizeof(path), "%s/ok.tiff", f->dir);
    write_tiff(path, 256, 256, 0.5);
    assert_int_equal(slide_open_checked(path, f->dir, &s, err, sizeof(err)), TS_OK);
    snprintf(moved, sizeof(moved), "%s/moved.tiff", f->dir);
    assert_int_equal(rename(path, moved), 0);
    assert_int_equal(mkfifo(path, 0644), 0);
    uint32_t *buf = malloc(64 * 64 * sizeof(uint32_t));
    assert_int_equal(slide_read(s, 0, 0, 0, 64, 64, buf, err, sizeof(err)), TS_OK);
    free(buf);
    slide_close(s);
}

static void test_slide_check_path_refuses_a_truncated_tiff(void **state) {
    fixture *f = *state;
    char path[512], err[TS_ERRLEN];
    snprintf(path, sizeof(path), "%s/cut.tiff", f->dir);
    write_tiff(path, 512, 512, 0.5);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(truncate(path, st.st_size / 2), 0);
    assert_int_equal(slide_check_path(path, f->dir, err, sizeof(err)), TS_ERR);
    assert_true(strlen(err) > 0);
}

/* Zeroes the compressed bytes of level 0's tile number `tile`. */
static void corrupt_tile(const char *path, int tile) {
    TIFF *t = TIFFOpen(path, "r");
    assert_non_null(t);
    uint64_t *offsets = NULL, *counts = NULL;
    assert_int_equal(TIFFGetField(t, TIFFTAG_TILEOFFSETS, &offsets), 1);
    assert_int_equal(TIFFGetField(t, TIFFTAG_TILEBYTECOUNTS, &counts), 1);
    uint64_t off = offsets[tile], len = counts[tile];
    TIFFClose(t);
    int fd = open(path, O_WRONLY);
    assert_true(fd >= 0);
    char *zeros = calloc(1, len);
    assert_int_equal(pwrite(fd, zeros, len, (off_t)off), (ssize_t)len);
    free(zeros);
    close(fd);
}

static void test_slide_read_reports_a_corrupt_tile(void **state) {
    fixture *f = *state;
    char path[512], err[TS_ERRLEN] = "";
    snprintf(path, sizeof(path), "%s/corrupt.tiff", f->dir);
    write_tiff(path, 256, 256, 0.5);
    corrupt_tile(path, 5); /* tile (1, 1) of level 0 */
    slide *s = NULL;
    assert_int_equal(slide_open(path, &s, err, sizeof(err)), TS_OK);
    uint32_t *buf = malloc(64 * 64 * 4);
    assert_int_equal(slide_read(s, 0, 0, 0, 64, 64, buf, err, sizeof(err)), TS_OK);
    assert_int_equal(slide_read(s, 0, 64, 64, 64, 64, buf, err, sizeof(err)), TS_ERR);
    assert_non_null(strstr(err, "cannot decode"));
    free(buf);
    slide_close(s);
}

/* Reads the window through slide_read (into a buffer full of garbage) and
 * through OpenSlide alone and says whether every pixel is the same. */
static bool same_as_openslide(slide *s, openslide_t *o, int level, int64_t x, int64_t y, int w,
                              int h) {
    char err[TS_ERRLEN];
    uint32_t *a = malloc((size_t)w * h * 4), *b = malloc((size_t)w * h * 4);
    memset(a, 0xA5, (size_t)w * h * 4); /* whatever the read does not write shows */
    assert_int_equal(slide_read(s, level, x, y, w, h, a, err, sizeof(err)), TS_OK);
    openslide_read_region(o, b, x, y, level, w, h);
    assert_null(openslide_get_error(o));
    bool same = memcmp(a, b, (size_t)w * h * 4) == 0;
    if (!same) fprintf(stderr, "differs: level %d (%lld, %lld) %d x %d\n", level, (long long)x, (long long)y, w, h);
    free(a);
    free(b);
    return same;
}

/* Compares slide_read with OpenSlide over 240 windows of a w x h demo
 * slide: inside, across tile seams, across the slide's edges and corners
 * (transparent there), with negative origins, on every level. */
static void compare_on_demo(const char *path, int w0, int h0) {
    char err[TS_ERRLEN];
    demo_options o;
    demo_options_default(&o);
    o.width = w0;
    o.height = h0;
    o.tile_size = 128;
    o.threads = 1;
    assert_int_equal(demo_slide_write(path, &o, NULL, err, sizeof(err)), TS_OK);
    slide *s = NULL;
    assert_int_equal(slide_open(path, &s, err, sizeof(err)), TS_OK);
    openslide_t *os = openslide_open(path);
    assert_non_null(os);
    const slide_info *in = slide_get_info(s);
    assert_true(in->levels >= 3);
    for (int level = 0; level < in->levels; level++) assert_true(slide_level_direct(s, level));
    uint32_t seed = 11;
    for (int k = 0; k < 240; k++) {
        int level = k % in->levels;
        const slide_level *l = slide_get_level(s, level);
        seed = seed * 1103515245u + 12345u;
        int w = 1 + (int)((seed >> 8) % 300);
        seed = seed * 1103515245u + 12345u;
        int h = 1 + (int)((seed >> 8) % 300);
        seed = seed * 1103515245u + 12345u;
        int64_t lx = (int64_t)((seed >> 8) % (uint32_t)(l->w + 200)) - 100 - (k % 5 == 0 ? w : 0);
        seed = seed * 1103515245u + 12345u;
        int64_t ly = (int64_t)((seed >> 8) % (uint32_t)(l->h + 200)) - 100 - (k % 7 == 0 ? h : 0);
        /* whole level pixels, then level-0 pixels that may fall between */
        int64_t x = (int64_t)llround((double)lx * l->downsample), y = (int64_t)llround((double)ly * l->downsample);
        if (k % 2) x = (int64_t)ceil((double)lx * l->downsample), y = (int64_t)ceil((double)ly * l->downsample) + 1;
        assert_true(same_as_openslide(s, os, level, x, y, w, h));
    }
    assert_true(same_as_openslide(s, os, 0, -5000, -5000, 64, 64)); /* wholly outside */
    assert_true(same_as_openslide(s, os, 0, 0, 0, (int)in->w, (int)in->h)); /* all of it */
    openslide_close(os);
    slide_close(s);
}

/* The direct read of JPEG-tiled TIFF levels (tiffjpeg.h) gives exactly
 * OpenSlide's pixels, on a slide whose downsamples are whole (2, 4, ...:
 * every level is read directly) and on one whose odd size makes them
 * fractional (level-0 positions between a level's pixels then go through
 * OpenSlide, the others do not). */
static void test_direct_read_gives_openslides_pixels(void **state) {
    fixture *f = *state;
    char path[512];
    snprintf(path, sizeof(path), "%s/even.tiff", f->dir);
    compare_on_demo(path, 1536, 1024);
    snprintf(path, sizeof(path), "%s/odd.tiff", f->dir);
    compare_on_demo(path, 1501, 1103);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_slide_open_reads_levels_and_mpp_from_tiff_resolution, setup, teardown),
        cmocka_unit_test_setup_teardown(test_slide_open_refuses_bad_images_with_reasons, setup, teardown),
        cmocka_unit_test_setup_teardown(test_slide_check_path_enforces_the_data_roots, setup, teardown),
        cmocka_unit_test_setup_teardown(test_outside_the_roots_existing_and_missing_read_the_same, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dangling_link_out_of_the_roots_reads_as_outside, setup, teardown),
        cmocka_unit_test_setup_teardown(test_special_files_never_reach_openslide, setup, teardown),
        cmocka_unit_test_setup_teardown(test_slide_check_path_refuses_a_truncated_tiff, setup, teardown),
        cmocka_unit_test_setup_teardown(test_slide_read_reports_a_corrupt_tile, setup, teardown),
        cmocka_unit_test_setup_teardown(test_direct_read_gives_openslides_pixels, setup, teardown),
    };
    return cmocka_run_group_tests_name("image_slide", tests, NULL, NULL);
}
