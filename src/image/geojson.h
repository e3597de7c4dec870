/*
 * geojson.h - a streaming GeoJSON FeatureCollection writer in the form
 * QuPath imports (DESIGN §9): properties.objectType ("annotation",
 * "detection", "cell"), optional "classification" and "measurements"
 * objects, cells with a "nucleusGeometry", coordinates in level-0 pixels.
 *
 * Features are written one at a time, so a file of millions of cells never
 * exists in memory. Coordinates are written as given (the caller converts
 * to level-0 pixels), with at most 2 decimals and no trailing zeros.
 * Rings are closed on output (the first vertex is repeated at the end,
 * unless the caller's ring already ends with it); every ring needs at least
 * 3 vertices. Properties are dumped compactly, reals with 10 significant
 * digits.
 */
#ifndef TESSERA_IMAGE_GEOJSON_H
#define TESSERA_IMAGE_GEOJSON_H

#include <jansson.h>
#include <stddef.h>

#include "image/contour.h"

typedef struct geojson_writer geojson_writer;

/* A polygon: rings[0] is the outer ring, rings[1..n-1] its holes. */
typedef struct geojson_polygon {
    const contour_ring *rings;
    size_t n;
} geojson_polygon;

/* Creates path (truncating) and writes the collection's opening. */
int geojson_open(const char *path, geojson_writer **out, char *err, size_t errlen);

/* Appends one Feature: {"type":"Feature","id":id?,"geometry":<Polygon>,
 * "nucleusGeometry":<Polygon>? ,"properties":properties}. id and nucleus
 * may be NULL; properties is borrowed (NULL = {}). The geometry is a
 * "Polygon", or a "MultiPolygon" when n_polys > 1. TS_OK or TS_ERR (write
 * failure, named with the path and errno text; or invalid input - no
 * polygon, a ring of fewer than 3 vertices, properties not an object - in
 * which case nothing is written and the writer stays usable). */
int geojson_feature(geojson_writer *w, const char *id, const geojson_polygon *polys, size_t n_polys,
                    const geojson_polygon *nucleus, json_t *properties, char *err, size_t errlen);

/* Writes the closing, flushes, fsyncs and closes; frees w. TS_ERR if any
 * earlier write failed (the file is then incomplete and should be removed). */
int geojson_close(geojson_writer *w, char *err, size_t errlen);

/* Closes and frees without finishing (after an error). */
void geojson_abort(geojson_writer *w);

/* Features written so far. */
size_t geojson_count(const geojson_writer *w);

#endif
