/*
 * deepzoom.h - Deep Zoom (DZI) geometry of a slide, with no I/O: the
 * pyramid a viewer such as OpenSeadragon asks for, every tile's rectangle
 * with its overlap, and what to read from the slide to draw a tile.
 *
 * Promise: these are the rules of the DZI format, so a viewer that knows
 * only the .dzi file (width, height, TileSize, Overlap) computes the same
 * levels and tiles as the server that draws them:
 *   - a w x h image has levels 0..L, L = ceil(log2(max(w, h))); level L is
 *     the image itself, level l is ceil(w / 2^(L-l)) x ceil(h / 2^(L-l)), so
 *     level 0 is 1 x 1;
 *   - a level is cut into T x T tiles, columns ceil(level_w / T) by rows
 *     ceil(level_h / T); tile (col, row) also carries O pixels of each
 *     neighbour (none beyond the level's edges): it covers
 *     x in [col*T - (col > 0 ? O : 0), min(level_w, (col+1)*T + O)), and the
 *     same with rows in y.
 * Everything is integer arithmetic (exact for any size up to 2^62).
 */
#ifndef TESSERA_IMAGE_DEEPZOOM_H
#define TESSERA_IMAGE_DEEPZOOM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "image/slide.h"

#define DEEPZOOM_TILE_SIZE 254 /* tiles of 254 + 2 x 1 overlap = 256 pixels */
#define DEEPZOOM_OVERLAP 1

typedef struct deepzoom {
    int64_t w, h;  /* the full-resolution image (the slide's level 0) */
    int tile_size; /* T, >= 1 */
    int overlap;   /* O, >= 0 */
    int max_level; /* L */
} deepzoom;

typedef struct deepzoom_rect {
    int64_t x, y, w, h;
} deepzoom_rect;

/* What drawing one tile takes. */
typedef struct deepzoom_plan {
    deepzoom_rect tile;   /* in the Deep Zoom level's pixels: tile.w x tile.h is the JPEG */
    deepzoom_rect region; /* the level-0 pixels it shows (clipped to the image) */
    double downsample;    /* 2^(L - level): level-0 pixels per tile pixel */
    int slide_level;      /* the slide level to read: slide_pick_level(downsample) */
} deepzoom_plan;

/* ceil(log2(max(w, h))) for w, h >= 1: 0 for 1 x 1, 8 for 256 x 256, 9 for 257. */
int deepzoom_max_level(int64_t w, int64_t h);

/* Sets up the geometry of a w x h image. TS_ERR (naming the value) unless
 * 1 <= w, h <= 2^62, tile_size >= 1 and 0 <= overlap < tile_size. */
int deepzoom_init(deepzoom *dz, int64_t w, int64_t h, int tile_size, int overlap, char *err,
                  size_t errlen);

/* Number of levels, max_level + 1 (what a viewer counts). */
int deepzoom_levels(const deepzoom *dz);

/* Size of a level; false (outputs untouched) when level is not 0..L. */
bool deepzoom_level_size(const deepzoom *dz, int level, int64_t *w, int64_t *h);

/* Columns and rows of tiles of a level; false when level is not 0..L. */
bool deepzoom_level_tiles(const deepzoom *dz, int level, int64_t *cols, int64_t *rows);

/* The rectangle (level pixels, overlap included) of tile (col, row) of a
 * level; false when level, col or row is out of range (the viewer's URL
 * names a tile that does not exist: 404). */
bool deepzoom_tile_rect(const deepzoom *dz, int level, int64_t col, int64_t row,
                        deepzoom_rect *r);

/* Plans tile (col, row): its rectangle, the level-0 region behind it, and
 * which of the slide's levels (levels[0..nlevels-1], as slide_get_level
 * gives them) to read: the most reduced one whose downsample does not
 * exceed the tile's, so reducing what is read to the tile's size never
 * loses detail. False when the tile does not exist. */
bool deepzoom_plan_tile(const deepzoom *dz, int level, int64_t col, int64_t row,
                        const slide_level *levels, int nlevels, deepzoom_plan *p);

#endif
