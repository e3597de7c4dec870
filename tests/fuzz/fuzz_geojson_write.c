/*
 * fuzz_geojson_write.c - the streaming GeoJSON writer every analysis uses
 * (src/image/geojson.c), read back with jansson and with the reader of
 * `tessera evaluate` (evaluate_load.c). The input describes up to 16
 * features: polygons, rings, vertices (quarter pixels, now and then scaled
 * far beyond any slide), an id, a nucleus and a property. A separate target
 * from fuzz_geojson because each file costs the writer's 1 MiB stdio
 * buffer, hundreds of microseconds under ASan.
 *
 * Oracles beyond the sanitizers: the writer refuses exactly the features
 * with no polygon, a polygon without rings or a ring of fewer than 3
 * vertices, and stays usable; its file is JSON (jansson reads it) with one
 * Feature per feature written, each ring closed and every vertex within
 * the 1/100 pixel the writer promises; the reader loads it back (when the
 * coordinates are within its limit) with one object per feature, the same
 * rings and the same vertices.
 */
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_lib.h"
#include "image/evaluate.h"
#include "image/geojson.h"

#define MAX_FEATURES 16
#define MAX_POLYS 3
#define MAX_RINGS 3
#define MAX_VERTICES 24

static char out_path[512];

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    fuzz_quiet_logs();
    snprintf(out_path, sizeof(out_path), "%s/out.geojson", fuzz_dir());
    return 0;
}

/* A cursor over the input: bytes run out as zeros. */
typedef struct cursor {
    const uint8_t *p;
    size_t n;
} cursor;

static unsigned take(cursor *c) {
    if (c->n == 0) return 0;
    c->n--;
    return *c->p++;
}

/* A coordinate: quarter pixels (exact in binary and in 2 decimals), now
 * and then scaled far beyond any slide. */
static double coord(cursor *c) {
    int16_t v = (int16_t)(take(c) | take(c) << 8);
    unsigned scale = take(c);
    double x = v / 4.0;
    if (scale >= 0xF0) x *= pow(10, (double)(scale - 0xF0) * 3);
    return x;
}

typedef struct feature {
    contour_ring rings[MAX_POLYS][MAX_RINGS];
    geojson_polygon polys[MAX_POLYS];
    size_t n_polys;
    pt2 pts[MAX_POLYS][MAX_RINGS][MAX_VERTICES];
} feature;

static void make_feature(cursor *c, feature *f) {
    f->n_polys = take(c) % (MAX_POLYS + 1); /* 0: refused */
    for (size_t i = 0; i < f->n_polys; i++) {
        size_t nr = take(c) % (MAX_RINGS + 1);
        for (size_t j = 0; j < nr; j++) {
            size_t nv = take(c) % (MAX_VERTICES + 1);
            for (size_t k = 0; k < nv; k++) f->pts[i][j][k] = (pt2){coord(c), coord(c)};
            f->rings[i][j] = (contour_ring){f->pts[i][j], nv, j == 0 ? -1 : 0};
        }
        f->polys[i] = (geojson_polygon){f->rings[i], nr};
    }
}

static bool feature_valid(const feature *f) {
    if (f->n_polys == 0) return false;
    for (size_t i = 0; i < f->n_polys; i++) {
        if (f->polys[i].n == 0) return false;
        for (size_t j = 0; j < f->polys[i].n; j++)
            if (f->polys[i].rings[j].n < 3) return false;
    }
    return true;
}

/* Does loaded object k hold the rings of f, vertex by vertex? The reader
 * drops the closing vertex, and a ring that ended on its first vertex. */
static void compare(const eval_polys *p, size_t k, const feature *f) {
    size_t r = p->obj_ring[k];
    for (size_t i = 0; i < f->n_polys; i++) {
        for (size_t j = 0; j < f->polys[i].n; j++, r++) {
            const contour_ring *ring = &f->polys[i].rings[j];
            size_t n = ring->n;
            if (n > 3 && ring->pts[0].x == ring->pts[n - 1].x && ring->pts[0].y == ring->pts[n - 1].y)
                n--;
            FUZZ_CHECK(r < p->obj_ring[k + 1], "feature %zu: ring missing", k);
            FUZZ_CHECK(p->ring_pt[r + 1] - p->ring_pt[r] == n, "feature %zu ring %zu: %zu of %zu "
                       "vertices", k, r, p->ring_pt[r + 1] - p->ring_pt[r], n);
            for (size_t v = 0; v < n; v++) {
                const double *xy = &p->xy[2 * (p->ring_pt[r] + v)];
                double tol_x = 0.0051 + 1e-12 * fabs(ring->pts[v].x);
                double tol_y = 0.0051 + 1e-12 * fabs(ring->pts[v].y);
                FUZZ_CHECK(fabs(xy[0] - ring->pts[v].x) <= tol_x &&
                               fabs(xy[1] - ring->pts[v].y) <= tol_y,
                           "vertex written (%.17g, %.17g) read back (%.17g, %.17g)",
                           ring->pts[v].x, ring->pts[v].y, xy[0], xy[1]);
            }
        }
    }
    FUZZ_CHECK(r == p->obj_ring[k + 1], "feature %zu: extra rings", k);
}

/* One written ring against its JSON: the vertices in order (within 1/100
 * pixel, or a relative 1e-12 for huge values), then the closing vertex. */
static void compare_json_ring(json_t *jr, const contour_ring *ring) {
    size_t n = ring->n;
    bool closed = n > 3 && ring->pts[0].x == ring->pts[n - 1].x && ring->pts[0].y == ring->pts[n - 1].y;
    FUZZ_CHECK(json_array_size(jr) == (closed ? n : n + 1), "%zu positions for %zu vertices",
               json_array_size(jr), n);
    for (size_t v = 0; v < json_array_size(jr); v++) {
        const pt2 *want = &ring->pts[v < n ? v : 0];
        json_t *pos = json_array_get(jr, v);
        double x = json_number_value(json_array_get(pos, 0));
        double y = json_number_value(json_array_get(pos, 1));
        FUZZ_CHECK(fabs(x - want->x) <= 0.0051 + 1e-12 * fabs(want->x) &&
                       fabs(y - want->y) <= 0.0051 + 1e-12 * fabs(want->y),
                   "vertex (%.17g, %.17g) written as (%.17g, %.17g)", want->x, want->y, x, y);
    }
}

/* The writer's file as plain JSON: one Feature per feature written, each
 * geometry a Polygon (one polygon) or MultiPolygon with every ring. */
static void compare_json(size_t written, const feature *f) {
    json_error_t je;
    json_t *doc = json_load_file(out_path, JSON_REJECT_DUPLICATES, &je);
    FUZZ_CHECK(doc != NULL, "the writer's file is not JSON: %s", je.text);
    json_t *features = json_object_get(doc, "features");
    FUZZ_CHECK(json_array_size(features) == written, "%zu features in the file, %zu written",
               json_array_size(features), written);
    for (size_t i = 0; i < written; i++) {
        json_t *g = json_object_get(json_array_get(features, i), "geometry");
        json_t *coords = json_object_get(g, "coordinates");
        bool multi = f[i].n_polys > 1;
        FUZZ_CHECK(strcmp(json_string_value(json_object_get(g, "type")),
                          multi ? "MultiPolygon" : "Polygon") == 0, "geometry type");
        for (size_t k = 0; k < f[i].n_polys; k++) {
            json_t *poly = multi ? json_array_get(coords, k) : coords;
            FUZZ_CHECK(json_array_size(poly) == f[i].polys[k].n, "ring count");
            for (size_t j = 0; j < f[i].polys[k].n; j++)
                compare_json_ring(json_array_get(poly, j), &f[i].polys[k].rings[j]);
        }
    }
    json_decref(doc);
}

static void write_and_read(const uint8_t *data, size_t size) {
    cursor c = {data, size};
    static feature f[MAX_FEATURES];
    size_t n = take(&c) % (MAX_FEATURES + 1), written = 0;
    bool all_in_range = true;
    geojson_writer *w = NULL;
    char err[TS_ERRLEN], id[16];
    FUZZ_CHECK(geojson_open(out_path, &w, err, sizeof(err)) == TS_OK, "%s", err);
    for (size_t i = 0; i < n; i++) {
        feature *cur = &f[written];
        make_feature(&c, cur);
        snprintf(id, sizeof(id), "f%zu", i);
        json_t *props = json_pack("{sf}", "value", coord(&c));
        int rc = geojson_feature(w, take(&c) & 1 ? id : NULL, cur->polys, cur->n_polys,
                                 take(&c) & 1 ? &cur->polys[0] : NULL, props, err, sizeof(err));
        json_decref(props);
        FUZZ_CHECK((rc == TS_OK) == feature_valid(cur), "feature %zu: rc %d, valid %d (%s)", i,
                   rc, feature_valid(cur), rc == TS_OK ? "" : err);
        if (rc == TS_OK) written++;
    }
    FUZZ_CHECK(geojson_count(w) == written, "count %zu, written %zu", geojson_count(w), written);
    FUZZ_CHECK(geojson_close(w, err, sizeof(err)) == TS_OK, "%s", err);
    compare_json(written, f);
    eval_polys p;
    int rc = eval_load_geojson(out_path, EVAL_GEOM_OUTLINE, &p, err, sizeof(err));
    for (size_t i = 0; i < written; i++)
        for (size_t k = 0; k < f[i].n_polys; k++)
            for (size_t j = 0; j < f[i].polys[k].n; j++)
                for (size_t v = 0; v < f[i].polys[k].rings[j].n; v++)
                    if (fabs(f[i].polys[k].rings[j].pts[v].x) > EVAL_MAX_COORD ||
                        fabs(f[i].polys[k].rings[j].pts[v].y) > EVAL_MAX_COORD)
                        all_in_range = false;
    if (all_in_range) {
        FUZZ_CHECK(rc == TS_OK, "the reader refused the writer's file: %s", err);
        FUZZ_CHECK(p.n == written, "%zu objects read, %zu written", p.n, written);
        for (size_t i = 0; i < written; i++) compare(&p, i, &f[i]);
    }
    eval_polys_free(&p);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    write_and_read(data, size);
    return 0;
}
