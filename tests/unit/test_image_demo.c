/*
 * test_image_demo.c - the synthetic slide (src/image/demo.c): OpenSlide
 * opens it with its levels and resolution, the ground truth parses and is
 * what is drawn (nuclei dark and blue where the polygons say, stroma pink,
 * background white), output is a pure function of (options, seed), and bad
 * options are refused before anything is written.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <dirent.h>
#include <jansson.h>
#include <math.h>
#include <openslide/openslide.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "image/demo.h"
#include "testlib.h"
#include "util/util.h"

#define W 2048
#define H 1536
#define MPP 0.5

typedef struct fixture {
    char dir[64];
    char tiff[128], tissue[128], nuclei[128];
    demo_report report;
    openslide_t *os;
    json_t *tissue_gt, *nuclei_gt;
} fixture;

static json_t *load(const char *path) {
    json_error_t jerr;
    json_t *doc = json_load_file(path, 0, &jerr);
    if (doc == NULL) fprintf(stderr, "%s: %s (line %d)\n", path, jerr.text, jerr.line);
    return doc;
}

/* One slide for the whole group: writing it is the expensive part. */
static int group_setup(void **state) {
    fixture *f = calloc(1, sizeof(*f));
    strcpy(f->dir, "/tmp/tessera-test-demo-XXXXXX");
    if (mkdtemp(f->dir) == NULL) return -1;
    snprintf(f->tiff, sizeof(f->tiff), "%s/slide.tiff", f->dir);
    snprintf(f->tissue, sizeof(f->tissue), "%s/slide.tissue.geojson", f->dir);
    snprintf(f->nuclei, sizeof(f->nuclei), "%s/slide.nuclei.geojson", f->dir);
    demo_options o;
    demo_options_default(&o);
    o.width = W, o.height = H, o.mpp = MPP, o.seed = 7, o.threads = 2;
    char err[TS_ERRLEN];
    if (demo_slide_write(f->tiff, &o, &f->report, err, sizeof(err)) != TS_OK) {
        fprintf(stderr, "demo_slide_write: %s\n", err);
        return -1;
    }
    f->os = openslide_open(f->tiff);
    f->tissue_gt = load(f->tissue);
    f->nuclei_gt = load(f->nuclei);
    *state = f;
    return f->os && f->tissue_gt && f->nuclei_gt ? 0 : -1;
}

static int group_teardown(void **state) {
    fixture *f = *state;
    if (f == NULL) return 0;
    if (f->os) openslide_close(f->os);
    json_decref(f->tissue_gt);
    json_decref(f->nuclei_gt);
    test_rm_rf(f->dir);
    free(f);
    return 0;
}

/* The pixel (x, y) of level 0 as R, G, B. */
static void pixel(openslide_t *os, int64_t x, int64_t y, int rgb[3]) {
    uint32_t p = 0;
    openslide_read_region(os, &p, x, y, 0, 1, 1);
    rgb[0] = (p >> 16) & 255, rgb[1] = (p >> 8) & 255, rgb[2] = p & 255;
}

/* Hematoxylin concentration of a pixel: least squares on the normalised
 * Ruifrok-Johnston H and E vectors. */
static double hematoxylin(const int rgb[3]) {
    static const double vh[3] = {0.651, 0.701, 0.290}, ve[3] = {0.070, 0.991, 0.110};
    double od[3], hh = 0, he = 0, ee = 0, ho = 0, eo = 0;
    for (int c = 0; c < 3; c++) {
        od[c] = -log10((rgb[c] + 1.0) / 256.0);
        hh += vh[c] * vh[c], he += vh[c] * ve[c], ee += ve[c] * ve[c];
        ho += vh[c] * od[c], eo += ve[c] * od[c];
    }
    return (ho * ee - eo * he) / (hh * ee - he * he);
}

/* Even-odd point-in-polygon over every ring of a GeoJSON Polygon. */
static bool in_polygon(json_t *geometry, double x, double y) {
    bool inside = false;
    json_t *rings = json_object_get(geometry, "coordinates"), *ring;
    size_t i;
    json_array_foreach(rings, i, ring) {
        size_t n = json_array_size(ring);
        for (size_t a = 0, b = n - 1; a < n; b = a++) {
            double xa = json_number_value(json_array_get(json_array_get(ring, a), 0));
            double ya = json_number_value(json_array_get(json_array_get(ring, a), 1));
            double xb = json_number_value(json_array_get(json_array_get(ring, b), 0));
            double yb = json_number_value(json_array_get(json_array_get(ring, b), 1));
            if ((ya <= y) != (yb <= y) && x > xa + (y - ya) * (xb - xa) / (yb - ya))
                inside = !inside;
        }
    }
    return inside;
}

/* Distance from (x, y) to the nearest edge of any ring of the geometry. */
static double edge_distance(json_t *geometry, double x, double y) {
    double best = INFINITY;
    json_t *rings = json_object_get(geometry, "coordinates"), *ring;
    size_t i;
    json_array_foreach(rings, i, ring) {
        for (size_t a = 0; a + 1 < json_array_size(ring); a++) {
            double xa = json_number_value(json_array_get(json_array_get(ring, a), 0));
            double ya = json_number_value(json_array_get(json_array_get(ring, a), 1));
            double xb = json_number_value(json_array_get(json_array_get(ring, a + 1), 0));
            double yb = json_number_value(json_array_get(json_array_get(ring, a + 1), 1));
            double ex = xb - xa, ey = yb - ya, l2 = ex * ex + ey * ey;
            double t = l2 > 0 ? ((x - xa) * ex + (y - ya) * ey) / l2 : 0;
            t = t < 0 ? 0 : t > 1 ? 1 : t;
            best = fmin(best, hypot(xa + t * ex - x, ya + t * ey - y));
        }
    }
    return best;
}

/* Mean of a nucleus's vertices (the closing one excluded). */
static void ring_centre(json_t *geometry, double *cx, double *cy) {
    json_t *ring = json_array_get(json_object_get(geometry, "coordinates"), 0);
    size_t n = json_array_size(ring) - 1;
    *cx = *cy = 0;
    for (size_t i = 0; i < n; i++) {
        *cx += json_number_value(json_array_get(json_array_get(ring, i), 0)) / n;
        *cy += json_number_value(json_array_get(json_array_get(ring, i), 1)) / n;
    }
}

static void test_demo_opens_in_openslide_with_levels_and_mpp(void **state) {
    fixture *f = *state;
    assert_string_equal(openslide_get_property_value(f->os, OPENSLIDE_PROPERTY_NAME_VENDOR),
                        "generic-tiff");
    int32_t levels = openslide_get_level_count(f->os);
    assert_true(levels > 1);
    assert_int_equal(levels, f->report.levels);
    assert_int_equal(levels, 3);
    for (int32_t l = 0; l < levels; l++) {
        int64_t w = 0, h = 0;
        openslide_get_level_dimensions(f->os, l, &w, &h);
        assert_int_equal(w, (W + (1 << l) - 1) >> l);
        assert_int_equal(h, (H + (1 << l) - 1) >> l);
        assert_true(fabs(openslide_get_level_downsample(f->os, l) - (1 << l)) < 1e-9);
    }
    const char *xres = openslide_get_property_value(f->os, "tiff.XResolution");
    const char *unit = openslide_get_property_value(f->os, "tiff.ResolutionUnit");
    assert_non_null(xres);
    assert_string_equal(unit, "centimeter");
    assert_true(fabs(10000.0 / atof(xres) - MPP) < 1e-6);
    assert_null(openslide_get_error(f->os));
}

static void test_demo_writes_exactly_three_files_named_after_the_slide(void **state) {
    fixture *f = *state;
    DIR *d = opendir(f->dir);
    assert_non_null(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.') continue;
        n++;
        assert_true(strcmp(e->d_name, "slide.tiff") == 0 ||
                    strcmp(e->d_name, "slide.tissue.geojson") == 0 ||
                    strcmp(e->d_name, "slide.nuclei.geojson") == 0);
    }
    closedir(d);
    assert_int_equal(n, 3);
}

static void test_demo_ground_truth_parses_with_expected_structure(void **state) {
    fixture *f = *state;
    json_t *tissue = json_object_get(f->tissue_gt, "features"), *feat;
    size_t i;
    assert_int_equal(json_array_size(tissue), f->report.tissue_regions);
    assert_in_range(json_array_size(tissue), 2, 5);
    json_array_foreach(tissue, i, feat) {
        json_t *g = json_object_get(feat, "geometry"), *p = json_object_get(feat, "properties");
        assert_string_equal(json_string_value(json_object_get(g, "type")), "Polygon");
        assert_string_equal(json_string_value(json_object_get(p, "objectType")), "annotation");
        assert_string_equal(json_string_value(json_object_get(
                                json_object_get(p, "classification"), "name")),
                            "Tissue");
        json_t *outer = json_array_get(json_object_get(g, "coordinates"), 0);
        assert_in_range(json_array_size(outer), 129, 257);
        assert_true(json_equal(json_array_get(outer, 0),
                               json_array_get(outer, json_array_size(outer) - 1)));
    }
    double frac = f->report.tissue_area_px / ((double)W * H);
    assert_true(frac > 0.2 && frac < 0.55);

    json_t *nuclei = json_object_get(f->nuclei_gt, "features");
    assert_true(f->report.nuclei > 0);
    assert_int_equal(json_array_size(nuclei), f->report.nuclei);
    json_array_foreach(nuclei, i, feat) {
        json_t *g = json_object_get(feat, "geometry"), *p = json_object_get(feat, "properties");
        assert_string_equal(json_string_value(json_object_get(p, "objectType")), "detection");
        json_t *ring = json_array_get(json_object_get(g, "coordinates"), 0);
        assert_in_range(json_array_size(ring), 25, 33);
        double cx, cy;
        ring_centre(g, &cx, &cy);
        assert_true(cx > 0 && cx < W && cy > 0 && cy < H);
    }
}

/* Samples a grid: background points (outside tissue, 8+ px from edges)
 * must be near white; stroma points (inside tissue, 30+ px from every
 * nucleus) pink with little hematoxylin; nucleus centres darker and with
 * much more hematoxylin. */
static void test_demo_pixels_match_ground_truth(void **state) {
    fixture *f = *state;
    json_t *tissue = json_object_get(f->tissue_gt, "features");
    json_t *nuclei = json_object_get(f->nuclei_gt, "features"), *feat;
    size_t n_nuc = json_array_size(nuclei), i;
    double *cx = calloc(n_nuc, sizeof(double)), *cy = calloc(n_nuc, sizeof(double));
    double nuc_h = 0, nuc_grey = 0;
    int rgb[3];
    json_array_foreach(nuclei, i, feat) {
        ring_centre(json_object_get(feat, "geometry"), &cx[i], &cy[i]);
        pixel(f->os, (int64_t)cx[i], (int64_t)cy[i], rgb);
        nuc_h += hematoxylin(rgb) / n_nuc;
        nuc_grey += (rgb[0] + rgb[1] + rgb[2]) / 3.0 / n_nuc;
        assert_true(rgb[2] > rgb[0]); /* blue-purple */
    }
    int n_bg = 0, n_stroma = 0;
    double stroma_h = 0, stroma_grey = 0, stroma_h_max = 0;
    for (int y = 8; y < H; y += 37)
        for (int x = 8; x < W; x += 37) {
            double px = x + 0.5, py = y + 0.5, dmin = INFINITY;
            bool in = false;
            json_array_foreach(tissue, i, feat) {
                json_t *g = json_object_get(feat, "geometry");
                in = in || in_polygon(g, px, py);
                dmin = fmin(dmin, edge_distance(g, px, py));
            }
            if (dmin < 8) continue;
            pixel(f->os, x, y, rgb);
            if (!in) {
                n_bg++;
                for (int c = 0; c < 3; c++) assert_in_range(rgb[c], 236, 248);
                continue;
            }
            bool near = false;
            for (size_t k = 0; k < n_nuc && !near; k++) near = hypot(cx[k] - px, cy[k] - py) < 30;
            if (near) continue;
            n_stroma++;
            double h = hematoxylin(rgb);
            stroma_h += h, stroma_grey += (rgb[0] + rgb[1] + rgb[2]) / 3.0;
            stroma_h_max = fmax(stroma_h_max, h);
            assert_true(rgb[1] < 232); /* not background */
            assert_true(rgb[0] > rgb[1] && rgb[2] > rgb[1]); /* pink: green absorbed */
        }
    assert_true(n_bg > 100 && n_stroma > 100);
    stroma_h /= n_stroma, stroma_grey /= n_stroma;
    assert_true(nuc_h > stroma_h + 0.25);
    assert_true(nuc_h > 2 * stroma_h_max);
    assert_true(nuc_grey < stroma_grey - 40);
    free(cx);
    free(cy);
}

/* For nuclei alone in their cell: pixels whose centre is inside the
 * polygon (1.5+ px from its edge) have hematoxylin, those outside it (1.5
 * to 4 px away) have not, so the ground truth is the drawn shape. */
static void test_demo_nucleus_polygons_are_the_drawn_shapes(void **state) {
    fixture *f = *state;
    json_t *nuclei = json_object_get(f->nuclei_gt, "features"), *feat;
    size_t i;
    int checked = 0;
    long inside = 0, inside_dark = 0, outside = 0, outside_dark = 0;
    json_array_foreach(nuclei, i, feat) {
        json_t *p = json_object_get(json_object_get(feat, "properties"), "measurements");
        if (json_integer_value(json_object_get(p, "Cluster size")) != 1 || checked >= 60) continue;
        checked++;
        json_t *g = json_object_get(feat, "geometry");
        double cx, cy;
        ring_centre(g, &cx, &cy);
        int x0 = (int)cx - 28, y0 = (int)cy - 28;
        uint32_t buf[56 * 56];
        openslide_read_region(f->os, buf, x0, y0, 0, 56, 56);
        for (int y = 0; y < 56; y++)
            for (int x = 0; x < 56; x++) {
                double px = x0 + x + 0.5, py = y0 + y + 0.5, d = edge_distance(g, px, py);
                if (d < 1.5 || d > 4) continue;
                uint32_t v = buf[y * 56 + x];
                int c[3] = {(v >> 16) & 255, (v >> 8) & 255, v & 255};
                bool dark = hematoxylin(c) > 0.13;
                if (in_polygon(g, px, py)) inside++, inside_dark += dark;
                else outside++, outside_dark += dark;
            }
    }
    assert_true(checked > 10);
    assert_true(inside_dark > 0.97 * inside);
    assert_true(outside_dark < 0.03 * outside);
}

/* Reads a level-0 region as a malloc'd buffer. */
static uint32_t *region(const char *path, int64_t x, int64_t y, int64_t w, int64_t h) {
    openslide_t *os = openslide_open(path);
    assert_non_null(os);
    uint32_t *buf = malloc((size_t)(w * h) * 4);
    openslide_read_region(os, buf, x, y, 0, w, h);
    assert_null(openslide_get_error(os));
    openslide_close(os);
    return buf;
}

/* The whole file as bytes (size into *n). */
static unsigned char *slurp_all(const char *path, size_t *n) {
    FILE *fp = fopen(path, "rb");
    assert_non_null(fp);
    fseek(fp, 0, SEEK_END);
    *n = (size_t)ftell(fp);
    fseek(fp, 0, SEEK_SET);
    unsigned char *b = malloc(*n);
    assert_int_equal(fread(b, 1, *n, fp), *n);
    fclose(fp);
    return b;
}

static void test_demo_is_a_pure_function_of_options_and_seed(void **state) {
    fixture *f = *state;
    char a[160], b[160], c[160], err[TS_ERRLEN];
    snprintf(a, sizeof(a), "%s/a.tif", f->dir);
    snprintf(b, sizeof(b), "%s/b.tif", f->dir);
    snprintf(c, sizeof(c), "%s/c.tif", f->dir);
    demo_options o;
    demo_options_default(&o);
    o.width = 1024, o.height = 768, o.mpp = 0.5, o.seed = 3, o.threads = 3;
    assert_int_equal(demo_slide_write(a, &o, NULL, err, sizeof(err)), TS_OK);
    o.threads = 1;
    assert_int_equal(demo_slide_write(b, &o, NULL, err, sizeof(err)), TS_OK);
    o.seed = 4;
    assert_int_equal(demo_slide_write(c, &o, NULL, err, sizeof(err)), TS_OK);
    size_t na, nb;
    unsigned char *ba = slurp_all(a, &na), *bb = slurp_all(b, &nb);
    assert_int_equal(na, nb);
    assert_memory_equal(ba, bb, na);
    free(ba);
    free(bb);
    uint32_t *ra = region(a, 256, 256, 256, 256), *rc = region(c, 256, 256, 256, 256);
    assert_memory_not_equal(ra, rc, 256 * 256 * 4);
    free(ra);
    free(rc);
    char na_gt[160], nb_gt[160];
    snprintf(na_gt, sizeof(na_gt), "%s/a.nuclei.geojson", f->dir);
    snprintf(nb_gt, sizeof(nb_gt), "%s/b.nuclei.geojson", f->dir);
    ba = slurp_all(na_gt, &na), bb = slurp_all(nb_gt, &nb);
    assert_int_equal(na, nb);
    assert_memory_equal(ba, bb, na);
    free(ba);
    free(bb);
}

/* Expects TS_ERR mentioning `word`, and no file. */
static void expect_refused(const fixture *f, const demo_options *o, const char *word) {
    char path[160], err[TS_ERRLEN] = "";
    snprintf(path, sizeof(path), "%s/bad.tiff", f->dir);
    assert_int_equal(demo_slide_write(path, o, NULL, err, sizeof(err)), TS_ERR);
    if (strstr(err, word) == NULL) fprintf(stderr, "message: %s\n", err);
    assert_non_null(strstr(err, word));
    assert_int_equal(access(path, F_OK), -1);
}

static void test_demo_refuses_bad_options(void **state) {
    fixture *f = *state;
    demo_options o;
    demo_options_default(&o);
    o.width = 10;
    expect_refused(f, &o, "size");
    demo_options_default(&o);
    o.height = 2000000;
    expect_refused(f, &o, "size");
    demo_options_default(&o);
    o.mpp = 0;
    expect_refused(f, &o, "mpp");
    demo_options_default(&o);
    o.density = 5;
    expect_refused(f, &o, "density");
    demo_options_default(&o);
    o.tile_size = 100;
    expect_refused(f, &o, "tile size");
    demo_options_default(&o);
    o.jpeg_quality = 0;
    expect_refused(f, &o, "quality");
    demo_options_default(&o);
    o.threads = -1;
    expect_refused(f, &o, "threads");
    demo_options_default(&o);
    o.width = 256, o.height = 256;
    char err[TS_ERRLEN];
    assert_int_equal(demo_slide_write("/nonexistent-dir/x.tiff", &o, NULL, err, sizeof(err)),
                     TS_ERR);
    assert_non_null(strstr(err, "/nonexistent-dir/x"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_demo_opens_in_openslide_with_levels_and_mpp),
        cmocka_unit_test(test_demo_writes_exactly_three_files_named_after_the_slide),
        cmocka_unit_test(test_demo_ground_truth_parses_with_expected_structure),
        cmocka_unit_test(test_demo_pixels_match_ground_truth),
        cmocka_unit_test(test_demo_nucleus_polygons_are_the_drawn_shapes),
        cmocka_unit_test(test_demo_is_a_pure_function_of_options_and_seed),
        cmocka_unit_test(test_demo_refuses_bad_options),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
