/*
 * geojson.c - see geojson.h: a FeatureCollection streamed through stdio.
 *
 * Every write is checked; the first failure is remembered (with errno) so
 * that later calls fail at once and geojson_close reports it. Coordinates
 * are printed with "%.2f" and trimmed ("12.50" -> "12.5", "3.00" -> "3",
 * "-0.00" -> "0"), which keeps files small and exact to 1/100 pixel;
 * magnitudes from 1e15 on, exactly with "%.17g".
 */
#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "image/geojson.h"
#include "util/util.h"

#define GEOJSON_BUFSIZE (1 << 20)

struct geojson_writer {
    FILE *fp;
    char *path;
    char *buf;        /* stdio buffer */
    size_t count;     /* features written */
    int failed_errno; /* errno of the first failed write; 0 if none */
    bool failed;
};

/* Remembers the first write failure (errno, or EIO when stdio set none). */
static void note_failure(geojson_writer *w) {
    if (!w->failed) {
        w->failed = true;
        w->failed_errno = errno != 0 ? errno : EIO;
    }
}

/* Writes s; false (and the failure remembered) if stdio refused it. */
static bool put(geojson_writer *w, const char *s) {
    if (w->failed) return false;
    errno = 0;
    if (fputs(s, w->fp) == EOF) {
        note_failure(w);
        return false;
    }
    return true;
}

/* The message for a failed write: the path and the errno text. */
static void failure_message(const geojson_writer *w, char *err, size_t errlen) {
    ts_errf(err, errlen, "%s: write failed: %s", w->path, strerror(w->failed_errno));
}

/* Formats v with at most 2 decimals and no trailing zeros into buf (at
 * least 32 bytes). Non-finite values become 0 (GeoJSON has no NaN). From
 * 1e15 on a double has no fraction left to print, and "%.2f" would spell
 * out up to 309 digits: more than buf holds, and integers beyond 64 bits
 * that JSON readers such as jansson refuse; such values are written
 * exactly with 17 significant digits (an exponent from 1e17 on). */
static void format_coord(double v, char *buf, size_t n) {
    if (!isfinite(v)) v = 0;
    if (fabs(v) >= 1e15) {
        snprintf(buf, n, "%.17g", v);
        return;
    }
    snprintf(buf, n, "%.2f", v);
    char *dot = strchr(buf, '.');
    if (dot != NULL) {
        char *end = buf + strlen(buf) - 1;
        while (end > dot && *end == '0') *end-- = '\0';
        if (end == dot) *end = '\0';
    }
    if (strcmp(buf, "-0") == 0) strcpy(buf, "0");
}

/* Writes one ring as [[x,y],...,[x0,y0]]: closed by repeating the first
 * vertex unless the caller already did. */
static bool put_ring(geojson_writer *w, const contour_ring *r) {
    char line[96], xs[40], ys[40];
    size_t n = r->n;
    bool closed = n > 3 && r->pts[0].x == r->pts[n - 1].x && r->pts[0].y == r->pts[n - 1].y;
    if (!put(w, "[")) return false;
    for (size_t i = 0; i <= n; i++) {
        if (i == n && closed) break;
        const pt2 *p = &r->pts[i == n ? 0 : i];
        format_coord(p->x, xs, sizeof(xs));
        format_coord(p->y, ys, sizeof(ys));
        snprintf(line, sizeof(line), "%s[%s,%s]", i == 0 ? "" : ",", xs, ys);
        if (!put(w, line)) return false;
    }
    return put(w, "]");
}

/* The coordinates of one polygon: [outer, hole, ...]. */
static bool put_polygon_coords(geojson_writer *w, const geojson_polygon *p) {
    if (!put(w, "[")) return false;
    for (size_t i = 0; i < p->n; i++) {
        if (i > 0 && !put(w, ",")) return false;
        if (!put_ring(w, &p->rings[i])) return false;
    }
    return put(w, "]");
}

/* A geometry object: a Polygon, or a MultiPolygon when n > 1. */
static bool put_geometry(geojson_writer *w, const geojson_polygon *polys, size_t n) {
    if (n == 1) {
        if (!put(w, "{\"type\":\"Polygon\",\"coordinates\":")) return false;
        if (!put_polygon_coords(w, &polys[0])) return false;
        return put(w, "}");
    }
    if (!put(w, "{\"type\":\"MultiPolygon\",\"coordinates\":[")) return false;
    for (size_t i = 0; i < n; i++) {
        if (i > 0 && !put(w, ",")) return false;
        if (!put_polygon_coords(w, &polys[i])) return false;
    }
    return put(w, "]}");
}

/* Checks that every polygon has an outer ring and every ring at least 3
 * vertices (GeoJSON needs 4 positions once closed). */
static int check_polygons(const geojson_polygon *polys, size_t n, const char *what, char *err,
                          size_t errlen) {
    for (size_t i = 0; i < n; i++) {
        if (polys[i].n == 0 || polys[i].rings == NULL) {
            ts_errf(err, errlen, "geojson: %s polygon %zu has no rings", what, i);
            return TS_ERR;
        }
        for (size_t j = 0; j < polys[i].n; j++) {
            if (polys[i].rings[j].n < 3 || polys[i].rings[j].pts == NULL) {
                ts_errf(err, errlen, "geojson: %s polygon %zu ring %zu has %zu vertices (at "
                        "least 3 needed)", what, i, j, polys[i].rings[j].n);
                return TS_ERR;
            }
        }
    }
    return TS_OK;
}

/* Creates the file with a 1 MiB stdio buffer and writes the opening. */
int geojson_open(const char *path, geojson_writer **out, char *err, size_t errlen) {
    *out = NULL;
    FILE *fp = fopen(path, "w");
    if (fp == NULL) {
        ts_errf(err, errlen, "cannot create %s: %s", path, strerror(errno));
        return TS_ERR;
    }
    geojson_writer *w = ts_calloc(1, sizeof(*w));
    w->fp = fp;
    w->path = ts_strdup(path);
    w->buf = ts_malloc(GEOJSON_BUFSIZE);
    setvbuf(fp, w->buf, _IOFBF, GEOJSON_BUFSIZE);
    if (!put(w, "{\"type\":\"FeatureCollection\",\"features\":[\n")) {
        failure_message(w, err, errlen);
        geojson_abort(w);
        return TS_ERR;
    }
    *out = w;
    return TS_OK;
}

/* Writes "id": as a JSON string (escaped by jansson). */
static bool put_id(geojson_writer *w, const char *id) {
    json_t *s = json_string(id);
    char *text = s ? json_dumps(s, JSON_ENCODE_ANY) : NULL;
    json_decref(s);
    if (text == NULL) {
        errno = EINVAL;
        note_failure(w);
        return false;
    }
    bool ok = put(w, ",\"id\":") && put(w, text);
    free(text);
    return ok;
}

/* Writes the properties object (compact, keys in insertion order, reals
 * with 10 significant digits so that 0.1 prints as 0.1). */
static bool put_properties(geojson_writer *w, json_t *properties) {
    if (properties == NULL) return put(w, ",\"properties\":{}");
    char *text =
        json_dumps(properties, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(10));
    if (text == NULL) {
        errno = EINVAL;
        note_failure(w);
        return false;
    }
    bool ok = put(w, ",\"properties\":") && put(w, text);
    free(text);
    return ok;
}

/* One Feature per call, separated by ",\n" so that files stay greppable. */
int geojson_feature(geojson_writer *w, const char *id, const geojson_polygon *polys, size_t n_polys,
                    const geojson_polygon *nucleus, json_t *properties, char *err, size_t errlen) {
    if (n_polys == 0 || polys == NULL) {
        ts_errf(err, errlen, "geojson: a feature needs at least one polygon");
        return TS_ERR;
    }
    if (check_polygons(polys, n_polys, "geometry", err, errlen) != TS_OK) return TS_ERR;
    if (nucleus && check_polygons(nucleus, 1, "nucleusGeometry", err, errlen) != TS_OK)
        return TS_ERR;
    if (properties != NULL && !json_is_object(properties)) {
        ts_errf(err, errlen, "geojson: properties must be a JSON object");
        return TS_ERR;
    }
    bool ok = put(w, w->count > 0 ? ",\n{\"type\":\"Feature\"" : "{\"type\":\"Feature\"");
    if (ok && id != NULL) ok = put_id(w, id);
    ok = ok && put(w, ",\"geometry\":") && put_geometry(w, polys, n_polys);
    if (ok && nucleus != NULL)
        ok = put(w, ",\"nucleusGeometry\":") && put_geometry(w, nucleus, 1);
    ok = ok && put_properties(w, properties) && put(w, "}");
    if (!ok) {
        failure_message(w, err, errlen);
        return TS_ERR;
    }
    w->count++;
    return TS_OK;
}

/* Finishes the document; the file is durable when TS_OK is returned. */
int geojson_close(geojson_writer *w, char *err, size_t errlen) {
    put(w, "\n]}\n");
    errno = 0;
    if (!w->failed && fflush(w->fp) != 0) note_failure(w);
    errno = 0;
    if (!w->failed && fsync(fileno(w->fp)) != 0) note_failure(w);
    errno = 0;
    if (fclose(w->fp) != 0) note_failure(w);
    w->fp = NULL;
    int rc = TS_OK;
    if (w->failed) {
        failure_message(w, err, errlen);
        rc = TS_ERR;
    }
    free(w->buf);
    free(w->path);
    free(w);
    return rc;
}

/* Drops the handle: closes the file as it is and frees everything. */
void geojson_abort(geojson_writer *w) {
    if (w == NULL) return;
    if (w->fp) fclose(w->fp);
    free(w->buf);
    free(w->path);
    free(w);
}

size_t geojson_count(const geojson_writer *w) { return w ? w->count : 0; }
