/*
 * test_image_geojson.c - the streaming GeoJSON writer (src/image/geojson.c):
 * structure, closed rings, holes, MultiPolygon, nucleusGeometry, number
 * formatting, invalid input and write failures.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <stdbool.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "image/geojson.h"
#include "testlib.h"
#include "util/util.h"

typedef struct fixture {
    char dir[64];
    char path[128];
} fixture;

static int setup(void **state) {
    fixture *f = calloc(1, sizeof(*f));
    strcpy(f->dir, "/tmp/tessera-test-geojson-XXXXXX");
    if (mkdtemp(f->dir) == NULL) return -1;
    snprintf(f->path, sizeof(f->path), "%s/out.geojson", f->dir);
    *state = f;
    return 0;
}

static int teardown(void **state) {
    fixture *f = *state;
    test_rm_rf(f->dir);
    free(f);
    return 0;
}

/* A square ring (x, y, size), counter-clockwise or (hole) clockwise. */
static void square(pt2 *p, double x, double y, double s, bool hole) {
    pt2 q[4] = {{x, y}, {x + s, y}, {x + s, y + s}, {x, y + s}};
    for (int i = 0; i < 4; i++) p[i] = q[hole ? 3 - i : i];
}

/* Asserts that ring is an array of n+1 positions, closed. */
static void assert_closed_ring(json_t *ring, size_t n) {
    assert_true(json_is_array(ring));
    assert_int_equal(json_array_size(ring), n + 1);
    json_t *first = json_array_get(ring, 0), *last = json_array_get(ring, n);
    assert_true(json_equal(first, last));
    assert_int_equal(json_array_size(first), 2);
}

static json_t *load(const char *path) {
    json_error_t jerr;
    json_t *doc = json_load_file(path, 0, &jerr);
    if (doc == NULL) fprintf(stderr, "parse error: %s line %d\n", jerr.text, jerr.line);
    assert_non_null(doc);
    return doc;
}

static void test_geojson_writes_polygons_holes_multipolygon_and_nucleus(void **state) {
    fixture *f = *state;
    char err[TS_ERRLEN];
    geojson_writer *w = NULL;
    assert_int_equal(geojson_open(f->path, &w, err, sizeof(err)), TS_OK);

    pt2 outer[4], hole[4], second[4], nuc[4];
    square(outer, 0, 0, 100, false);
    square(hole, 10, 10, 20, true);
    square(second, 200, 200, 50, false);
    square(nuc, 20.5, 30.25, 5, false);
    contour_ring rings[2] = {{outer, 4, -1}, {hole, 4, 0}};
    contour_ring ring2 = {second, 4, -1}, nring = {nuc, 4, -1};
    geojson_polygon with_hole = {rings, 2}, multi[2] = {{rings, 2}, {&ring2, 1}};
    geojson_polygon nucleus = {&nring, 1};

    json_t *props = json_pack("{s:s}", "objectType", "annotation");
    assert_int_equal(geojson_feature(w, NULL, &with_hole, 1, NULL, props, err, sizeof(err)),
                     TS_OK);
    json_decref(props);
    assert_int_equal(geojson_feature(w, "multi\"1", multi, 2, NULL, NULL, err, sizeof(err)),
                     TS_OK);
    props = json_pack("{s:s, s:{s:f}}", "objectType", "cell", "measurements", "Area", 0.1);
    assert_int_equal(geojson_feature(w, NULL, &with_hole, 1, &nucleus, props, err, sizeof(err)),
                     TS_OK);
    json_decref(props);
    assert_int_equal(geojson_count(w), 3);
    assert_int_equal(geojson_close(w, err, sizeof(err)), TS_OK);

    json_t *doc = load(f->path);
    assert_string_equal(json_string_value(json_object_get(doc, "type")), "FeatureCollection");
    json_t *features = json_object_get(doc, "features");
    assert_int_equal(json_array_size(features), 3);

    json_t *f0 = json_array_get(features, 0), *g0 = json_object_get(f0, "geometry");
    assert_string_equal(json_string_value(json_object_get(f0, "type")), "Feature");
    assert_string_equal(json_string_value(json_object_get(g0, "type")), "Polygon");
    json_t *coords = json_object_get(g0, "coordinates");
    assert_int_equal(json_array_size(coords), 2);
    assert_closed_ring(json_array_get(coords, 0), 4);
    assert_closed_ring(json_array_get(coords, 1), 4);
    assert_null(json_object_get(f0, "id"));
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(f0, "properties"), "objectType")),
        "annotation");

    json_t *f1 = json_array_get(features, 1), *g1 = json_object_get(f1, "geometry");
    assert_string_equal(json_string_value(json_object_get(f1, "id")), "multi\"1");
    assert_string_equal(json_string_value(json_object_get(g1, "type")), "MultiPolygon");
    json_t *polys = json_object_get(g1, "coordinates");
    assert_int_equal(json_array_size(polys), 2);
    assert_int_equal(json_array_size(json_array_get(polys, 0)), 2);
    assert_closed_ring(json_array_get(json_array_get(polys, 1), 0), 4);
    assert_int_equal(json_object_size(json_object_get(f1, "properties")), 0);

    json_t *f2 = json_array_get(features, 2), *ng = json_object_get(f2, "nucleusGeometry");
    assert_string_equal(json_string_value(json_object_get(ng, "type")), "Polygon");
    json_t *nr = json_array_get(json_object_get(ng, "coordinates"), 0);
    assert_closed_ring(nr, 4);
    assert_true(json_real_value(json_array_get(json_array_get(nr, 0), 0)) == 20.5);
    json_decref(doc);

    char *text = test_slurp(f->path);
    assert_non_null(strstr(text, "[[20.5,30.25],[25.5,30.25]"));
    assert_non_null(strstr(text, "\"Area\":0.1}"));
    free(text);
}

static void test_geojson_formats_numbers_with_two_decimals_at_most(void **state) {
    fixture *f = *state;
    char err[TS_ERRLEN];
    geojson_writer *w = NULL;
    assert_int_equal(geojson_open(f->path, &w, err, sizeof(err)), TS_OK);
    pt2 p[4] = {{1.0, 2.5}, {3.14159, -0.001}, {12.10, 1e6}, {-7.126, 0.996}};
    contour_ring r = {p, 4, -1};
    geojson_polygon poly = {&r, 1};
    assert_int_equal(geojson_feature(w, NULL, &poly, 1, NULL, NULL, err, sizeof(err)), TS_OK);
    assert_int_equal(geojson_close(w, err, sizeof(err)), TS_OK);
    char *text = test_slurp(f->path);
    assert_non_null(strstr(text, "[[[1,2.5],[3.14,0],[12.1,1000000],[-7.13,1],[1,2.5]]]"));
    free(text);
    json_t *doc = load(f->path);
    json_decref(doc);
}

/* Found by tests/fuzz/fuzz_geojson: "%.2f" spelt huge values out in full,
 * as integers beyond 64 bits that jansson (the project's own reader)
 * refuses, and cut values of 1e38 or more to the buffer's size. Values
 * without a fraction left are written exactly, in exponent form. */
static void test_geojson_huge_coordinates_read_back(void **state) {
    fixture *f = *state;
    char err[TS_ERRLEN];
    geojson_writer *w = NULL;
    assert_int_equal(geojson_open(f->path, &w, err, sizeof(err)), TS_OK);
    pt2 p[4] = {{1e20, 2.5}, {-1.2345678901234567e50, 1e15}, {1e308, 9.5e18}, {123456789012345.67, 0}};
    contour_ring r = {p, 4, -1};
    geojson_polygon poly = {&r, 1};
    assert_int_equal(geojson_feature(w, NULL, &poly, 1, NULL, NULL, err, sizeof(err)), TS_OK);
    assert_int_equal(geojson_close(w, err, sizeof(err)), TS_OK);
    json_t *doc = load(f->path);
    json_t *ring = json_array_get(json_object_get(json_object_get(json_array_get(
                                      json_object_get(doc, "features"), 0), "geometry"),
                                  "coordinates"), 0);
    assert_int_equal(json_array_size(ring), 5);
    for (size_t i = 0; i < 4; i++) {
        json_t *pos = json_array_get(ring, i);
        assert_true(json_number_value(json_array_get(pos, 0)) == p[i].x ||
                    fabs(json_number_value(json_array_get(pos, 0)) - p[i].x) <= 0.005);
        assert_true(json_number_value(json_array_get(pos, 1)) == p[i].y);
    }
    json_decref(doc);
}

static void test_geojson_keeps_an_already_closed_ring(void **state) {
    fixture *f = *state;
    char err[TS_ERRLEN];
    geojson_writer *w = NULL;
    assert_int_equal(geojson_open(f->path, &w, err, sizeof(err)), TS_OK);
    pt2 p[5] = {{0, 0}, {4, 0}, {4, 4}, {0, 4}, {0, 0}};
    contour_ring r = {p, 5, -1};
    geojson_polygon poly = {&r, 1};
    assert_int_equal(geojson_feature(w, NULL, &poly, 1, NULL, NULL, err, sizeof(err)), TS_OK);
    assert_int_equal(geojson_close(w, err, sizeof(err)), TS_OK);
    json_t *doc = load(f->path);
    json_t *ring = json_array_get(
        json_object_get(json_object_get(json_array_get(json_object_get(doc, "features"), 0),
                                        "geometry"),
                        "coordinates"),
        0);
    assert_closed_ring(ring, 4);
    json_decref(doc);
}

static void test_geojson_empty_collection_is_valid(void **state) {
    fixture *f = *state;
    char err[TS_ERRLEN];
    geojson_writer *w = NULL;
    assert_int_equal(geojson_open(f->path, &w, err, sizeof(err)), TS_OK);
    assert_int_equal(geojson_close(w, err, sizeof(err)), TS_OK);
    json_t *doc = load(f->path);
    assert_int_equal(json_array_size(json_object_get(doc, "features")), 0);
    json_decref(doc);
}

static void test_geojson_rejects_invalid_input_and_stays_usable(void **state) {
    fixture *f = *state;
    char err[TS_ERRLEN];
    geojson_writer *w = NULL;
    assert_int_equal(geojson_open(f->path, &w, err, sizeof(err)), TS_OK);
    pt2 p[4] = {{0, 0}, {4, 0}, {4, 4}, {0, 4}};
    contour_ring bad = {p, 2, -1}, good = {p, 4, -1};
    geojson_polygon badp = {&bad, 1}, goodp = {&good, 1};
    assert_int_equal(geojson_feature(w, NULL, &badp, 1, NULL, NULL, err, sizeof(err)), TS_ERR);
    assert_non_null(strstr(err, "at least 3"));
    assert_int_equal(geojson_feature(w, NULL, &goodp, 0, NULL, NULL, err, sizeof(err)), TS_ERR);
    json_t *arr = json_array();
    assert_int_equal(geojson_feature(w, NULL, &goodp, 1, NULL, arr, err, sizeof(err)), TS_ERR);
    json_decref(arr);
    assert_int_equal(geojson_feature(w, NULL, &goodp, 1, &badp, NULL, err, sizeof(err)), TS_ERR);
    assert_int_equal(geojson_feature(w, NULL, &goodp, 1, NULL, NULL, err, sizeof(err)), TS_OK);
    assert_int_equal(geojson_count(w), 1);
    assert_int_equal(geojson_close(w, err, sizeof(err)), TS_OK);
    json_t *doc = load(f->path);
    assert_int_equal(json_array_size(json_object_get(doc, "features")), 1);
    json_decref(doc);
}

static void test_geojson_reports_write_failure_and_open_failure(void **state) {
    (void)state;
    char err[TS_ERRLEN];
    geojson_writer *w = NULL;
    assert_int_equal(geojson_open("/nonexistent-dir/x.geojson", &w, err, sizeof(err)), TS_ERR);
    assert_null(w);
    assert_non_null(strstr(err, "/nonexistent-dir/x.geojson"));
    assert_int_equal(geojson_open("/dev/full", &w, err, sizeof(err)), TS_OK);
    pt2 p[4] = {{0, 0}, {4, 0}, {4, 4}, {0, 4}};
    contour_ring r = {p, 4, -1};
    geojson_polygon poly = {&r, 1};
    int failed = 0;
    for (int i = 0; i < 100000 && !failed; i++)
        failed = geojson_feature(w, NULL, &poly, 1, NULL, NULL, err, sizeof(err)) != TS_OK;
    assert_true(failed);
    assert_non_null(strstr(err, "/dev/full: write failed: No space left on device"));
    err[0] = '\0';
    assert_int_equal(geojson_close(w, err, sizeof(err)), TS_ERR);
    assert_non_null(strstr(err, "No space left"));
    /* A failure found only at close (everything fit in the buffer). */
    assert_int_equal(geojson_open("/dev/full", &w, err, sizeof(err)), TS_OK);
    assert_int_equal(geojson_feature(w, NULL, &poly, 1, NULL, NULL, err, sizeof(err)), TS_OK);
    assert_int_equal(geojson_close(w, err, sizeof(err)), TS_ERR);
    assert_non_null(strstr(err, "/dev/full"));
    geojson_abort(NULL);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(
            test_geojson_writes_polygons_holes_multipolygon_and_nucleus, setup, teardown),
        cmocka_unit_test_setup_teardown(test_geojson_formats_numbers_with_two_decimals_at_most,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_geojson_huge_coordinates_read_back, setup, teardown),
        cmocka_unit_test_setup_teardown(test_geojson_keeps_an_already_closed_ring, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_geojson_empty_collection_is_valid, setup, teardown),
        cmocka_unit_test_setup_teardown(test_geojson_rejects_invalid_input_and_stays_usable,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_geojson_reports_write_failure_and_open_failure,
                                        setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
