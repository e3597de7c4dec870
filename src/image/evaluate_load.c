/*
 * evaluate_load.c - see evaluate.h: the compact polygon sets and reading
 * them from QuPath-style GeoJSON.
 */
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "image/evaluate.h"
#include "util/util.h"

/* Growing scratch for one feature's rings while it is read. */
typedef struct ring_buf {
    double *xy;
    size_t n_xy, cap_xy; /* doubles */
    size_t *len;
    size_t n_len, cap_len;
} ring_buf;

/* Makes *ptr hold at least need elements of size elem, doubling: amortised
 * O(1) appends for arrays that end up with millions of vertices. */
static void grow(void **ptr, size_t *cap, size_t need, size_t elem) {
    if (need <= *cap) return;
    size_t c = *cap ? *cap : 16;
    while (c < need) c *= 2;
    *ptr = ts_realloc(*ptr, c * elem);
    *cap = c;
}

/* See evaluate.h: all zero, so that arrays are allocated on first add. */
void eval_polys_init(eval_polys *p) {
    memset(p, 0, sizeof(*p));
}

/* See evaluate.h; leaves p empty and reusable. */
void eval_polys_free(eval_polys *p) {
    free(p->obj_ring);
    free(p->ring_pt);
    free(p->xy);
    free(p->bbox);
    memset(p, 0, sizeof(*p));
}

/* The vertices ring k of an incoming object keeps: a closing repeat of the
 * first vertex is dropped, and a ring of fewer than 3 vertices keeps none
 * (it encloses no area, and the rasteriser needs no special case). */
static size_t kept_len(const double *ring, size_t len) {
    if (len >= 2 && ring[0] == ring[2 * (len - 1)] && ring[1] == ring[2 * (len - 1) + 1]) len--;
    return len >= 3 ? len : 0;
}

/* TS_OK when every coordinate is finite and within EVAL_MAX_COORD, so the
 * rasteriser's row and column arithmetic cannot overflow. */
static int check_coords(const double *xy, size_t n_doubles, char *err, size_t errlen) {
    for (size_t i = 0; i < n_doubles; i++) {
        if (!isfinite(xy[i]) || fabs(xy[i]) > EVAL_MAX_COORD) {
            ts_errf(err, errlen, "coordinate %g is not finite or beyond +-%g pixels", xy[i],
                    EVAL_MAX_COORD);
            return TS_ERR;
        }
    }
    return TS_OK;
}

/* See evaluate.h: validates first (so p is unchanged on error), then
 * copies the kept rings and their bounding box. */
int eval_polys_add(eval_polys *p, const double *xy, const size_t *ring_len, size_t n_rings,
                   char *err, size_t errlen) {
    size_t total = 0, kept_rings = 0, kept_pts = 0;
    for (size_t k = 0; k < n_rings; k++) total += ring_len[k];
    if (check_coords(xy, 2 * total, err, errlen) != TS_OK) return TS_ERR;
    /* An empty ring is skipped before any pointer arithmetic: a reader
     * that met only empty rings passes xy == NULL (found by fuzz_geojson). */
    for (size_t k = 0, off = 0; k < n_rings; off += ring_len[k], k++) {
        if (ring_len[k] == 0) continue;
        size_t m = kept_len(xy + 2 * off, ring_len[k]);
        kept_rings += m > 0;
        kept_pts += m;
    }
    size_t old_cap = p->cap_obj;
    grow((void **)&p->obj_ring, &p->cap_obj, p->n + 2, sizeof(size_t));
    if (p->cap_obj != old_cap) p->bbox = ts_realloc(p->bbox, p->cap_obj * sizeof(eval_bbox));
    grow((void **)&p->ring_pt, &p->cap_rings, p->n_rings + kept_rings + 1, sizeof(size_t));
    grow((void **)&p->xy, &p->cap_points, 2 * (p->n_points + kept_pts), sizeof(double));
    if (p->n == 0) p->obj_ring[0] = 0;
    p->ring_pt[0] = 0;
    eval_bbox b = {INFINITY, INFINITY, -INFINITY, -INFINITY};
    for (size_t k = 0, off = 0; k < n_rings; off += ring_len[k], k++) {
        size_t m = ring_len[k] == 0 ? 0 : kept_len(xy + 2 * off, ring_len[k]);
        if (m == 0) continue;
        memcpy(p->xy + 2 * p->n_points, xy + 2 * off, 2 * m * sizeof(double));
        for (size_t v = 0; v < m; v++) {
            double x = xy[2 * (off + v)], y = xy[2 * (off + v) + 1];
            b.x0 = fmin(b.x0, x), b.x1 = fmax(b.x1, x);
            b.y0 = fmin(b.y0, y), b.y1 = fmax(b.y1, y);
        }
        p->n_points += m;
        p->ring_pt[++p->n_rings] = p->n_points;
    }
    p->bbox[p->n] = b;
    p->obj_ring[++p->n] = p->n_rings;
    return TS_OK;
}

/* Appends one GeoJSON ring (an array of [x, y, ...] positions) to rb.
 * Extra position members (z) are ignored, as GeoJSON allows them. */
static int read_ring(json_t *ring, ring_buf *rb, char *err, size_t errlen) {
    if (!json_is_array(ring)) {
        ts_errf(err, errlen, "a ring is not an array of positions");
        return TS_ERR;
    }
    size_t n = json_array_size(ring);
    grow((void **)&rb->xy, &rb->cap_xy, rb->n_xy + 2 * n, sizeof(double));
    for (size_t i = 0; i < n; i++) {
        json_t *pos = json_array_get(ring, i);
        json_t *x = json_array_get(pos, 0), *y = json_array_get(pos, 1);
        if (!json_is_array(pos) || !json_is_number(x) || !json_is_number(y)) {
            ts_errf(err, errlen, "position %zu of a ring is not [x, y] numbers", i);
            return TS_ERR;
        }
        rb->xy[rb->n_xy++] = json_number_value(x);
        rb->xy[rb->n_xy++] = json_number_value(y);
    }
    grow((void **)&rb->len, &rb->cap_len, rb->n_len + 1, sizeof(size_t));
    rb->len[rb->n_len++] = n;
    return TS_OK;
}

/* Appends the rings of one Polygon's "coordinates" (outline, then holes). */
static int read_polygon(json_t *rings, ring_buf *rb, char *err, size_t errlen) {
    if (!json_is_array(rings)) {
        ts_errf(err, errlen, "polygon coordinates are not an array of rings");
        return TS_ERR;
    }
    size_t i;
    json_t *ring;
    json_array_foreach(rings, i, ring) {
        if (read_ring(ring, rb, err, errlen) != TS_OK) return TS_ERR;
    }
    return TS_OK;
}

/* Appends every ring of a Polygon or MultiPolygon geometry object; other
 * types are refused rather than skipped so that a wrong file is noticed. */
static int read_geometry(json_t *g, ring_buf *rb, char *err, size_t errlen) {
    const char *type = json_string_value(json_object_get(g, "type"));
    json_t *coords = json_object_get(g, "coordinates");
    if (type == NULL) {
        ts_errf(err, errlen, "geometry has no \"type\"");
        return TS_ERR;
    }
    if (strcmp(type, "Polygon") == 0) return read_polygon(coords, rb, err, errlen);
    if (strcmp(type, "MultiPolygon") != 0) {
        ts_errf(err, errlen, "geometry type \"%s\" is not supported (Polygon or MultiPolygon)", type);
        return TS_ERR;
    }
    if (!json_is_array(coords)) {
        ts_errf(err, errlen, "MultiPolygon coordinates are not an array of polygons");
        return TS_ERR;
    }
    size_t i;
    json_t *poly;
    json_array_foreach(coords, i, poly) {
        if (read_polygon(poly, rb, err, errlen) != TS_OK) return TS_ERR;
    }
    return TS_OK;
}

/* One feature becomes one object: its "nucleusGeometry" when asked for and
 * present (non-null), else its "geometry", which must then exist. */
static int read_feature(json_t *f, eval_geometry which, ring_buf *rb, eval_polys *out, char *err,
                        size_t errlen) {
    if (!json_is_object(f)) {
        ts_errf(err, errlen, "not a JSON object");
        return TS_ERR;
    }
    const char *type = json_string_value(json_object_get(f, "type"));
    if (type != NULL && strcmp(type, "Feature") != 0) {
        ts_errf(err, errlen, "type is \"%s\", not \"Feature\"", type);
        return TS_ERR;
    }
    json_t *g = which == EVAL_GEOM_NUCLEUS ? json_object_get(f, "nucleusGeometry") : NULL;
    if (!json_is_object(g)) g = json_object_get(f, "geometry");
    if (!json_is_object(g)) {
        ts_errf(err, errlen, "no geometry");
        return TS_ERR;
    }
    rb->n_xy = rb->n_len = 0;
    if (read_geometry(g, rb, err, errlen) != TS_OK) return TS_ERR;
    return eval_polys_add(out, rb->xy, rb->len, rb->n_len, err, errlen);
}

/* The array of features in a parsed document (a new reference): a
 * FeatureCollection's "features", a bare array, or one Feature wrapped.
 * NULL when the document is none of these. */
static json_t *features_of(json_t *doc) {
    if (json_is_array(doc)) return json_incref(doc);
    const char *type = json_string_value(json_object_get(doc, "type"));
    if (type == NULL) return NULL;
    if (strcmp(type, "FeatureCollection") == 0) {
        json_t *arr = json_object_get(doc, "features");
        return json_is_array(arr) ? json_incref(arr) : NULL;
    }
    if (strcmp(type, "Feature") != 0) return NULL;
    json_t *arr = json_array();
    json_array_append(arr, doc);
    return arr;
}

/* Parses path with jansson; the message names the file and, for bad JSON,
 * the line and column. */
static json_t *parse_file(const char *path, char *err, size_t errlen) {
    FILE *fp = fopen(path, "rb");
    if (fp == NULL) {
        ts_errf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    json_error_t jerr;
    json_t *doc = json_loadf(fp, 0, &jerr);
    if (doc == NULL && ferror(fp))
        ts_errf(err, errlen, "%s: cannot read: %s", path, strerror(errno));
    else if (doc == NULL)
        ts_errf(err, errlen, "%s: invalid JSON at line %d column %d: %s", path, jerr.line,
                jerr.column, jerr.text);
    fclose(fp);
    return doc;
}

/* See evaluate.h: parse, find the features, convert each, free the JSON. */
int eval_load_geojson(const char *path, eval_geometry which, eval_polys *out, char *err,
                      size_t errlen) {
    int rc = TS_ERR;
    char msg[TS_ERRLEN];
    ring_buf rb = {0};
    json_t *features = NULL;
    eval_polys_init(out);
    json_t *doc = parse_file(path, err, errlen);
    if (doc == NULL) goto cleanup;
    features = features_of(doc);
    if (features == NULL) {
        ts_errf(err, errlen, "%s: not GeoJSON (expected a FeatureCollection, a Feature or an array "
                             "of Features)", path);
        goto cleanup;
    }
    size_t i;
    json_t *f;
    json_array_foreach(features, i, f) {
        if (read_feature(f, which, &rb, out, msg, sizeof(msg)) != TS_OK) {
            ts_errf(err, errlen, "%s: features[%zu]: %s", path, i, msg);
            goto cleanup;
        }
    }
    rc = TS_OK;
cleanup:
    json_decref(features);
    json_decref(doc);
    free(rb.xy);
    free(rb.len);
    return rc;
}
