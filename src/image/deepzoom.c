/*
 * deepzoom.c - the DZI pyramid's arithmetic (see deepzoom.h).
 *
 * Sizes are computed with shifts on unsigned 64-bit integers rather than
 * with floating point: ceil(w / 2^s) is ((w - 1) >> s) + 1 for w >= 1, exact
 * for every size, where pow() and ceil() could be off by one on large
 * images and a viewer would then ask for tiles the server denies.
 */
#include "image/deepzoom.h"

#include "util/util.h"

#define DEEPZOOM_MAX_SIDE ((int64_t)1 << 62)

/* Smallest L with 2^L >= max(w, h). A loop over at most 62 steps: clearer
 * than bit tricks and never the cost of a tile. */
int deepzoom_max_level(int64_t w, int64_t h) {
    uint64_t m = (uint64_t)(w > h ? w : h);
    int level = 0;
    while (level < 62 && ((uint64_t)1 << level) < m) level++;
    return level;
}

/* Refuses what the arithmetic above cannot hold, so that every later
 * function may assume a sane geometry. */
int deepzoom_init(deepzoom *dz, int64_t w, int64_t h, int tile_size, int overlap, char *err,
                  size_t errlen) {
    if (w < 1 || h < 1 || w > DEEPZOOM_MAX_SIDE || h > DEEPZOOM_MAX_SIDE) {
        ts_errf(err, errlen, "image size %lld x %lld: each side must be 1 to 2^62",
                (long long)w, (long long)h);
        return TS_ERR;
    }
    if (tile_size < 1 || overlap < 0 || overlap >= tile_size) {
        ts_errf(err, errlen, "tile size %d, overlap %d: need tile size >= 1 and 0 <= overlap < "
                "tile size", tile_size, overlap);
        return TS_ERR;
    }
    *dz = (deepzoom){.w = w, .h = h, .tile_size = tile_size, .overlap = overlap,
                     .max_level = deepzoom_max_level(w, h)};
    return TS_OK;
}

int deepzoom_levels(const deepzoom *dz) {
    return dz->max_level + 1;
}

/* ceil(v / 2^shift) for v >= 1. */
static int64_t shrink(int64_t v, int shift) {
    return (int64_t)(((uint64_t)v - 1) >> shift) + 1;
}

bool deepzoom_level_size(const deepzoom *dz, int level, int64_t *w, int64_t *h) {
    if (level < 0 || level > dz->max_level) return false;
    *w = shrink(dz->w, dz->max_level - level);
    *h = shrink(dz->h, dz->max_level - level);
    return true;
}

bool deepzoom_level_tiles(const deepzoom *dz, int level, int64_t *cols, int64_t *rows) {
    int64_t w, h;
    if (!deepzoom_level_size(dz, level, &w, &h)) return false;
    *cols = (w + dz->tile_size - 1) / dz->tile_size;
    *rows = (h + dz->tile_size - 1) / dz->tile_size;
    return true;
}

/* One axis of a tile: start and length of tile i of n over a side of len. */
static void tile_span(int64_t i, int64_t len, int t, int o, int64_t *start, int64_t *size) {
    int64_t a = i * t - (i > 0 ? o : 0);
    int64_t b = (i + 1) * t + o;
    if (b > len) b = len;
    *start = a;
    *size = b - a;
}

bool deepzoom_tile_rect(const deepzoom *dz, int level, int64_t col, int64_t row,
                        deepzoom_rect *r) {
    int64_t w, h, cols, rows;
    if (!deepzoom_level_size(dz, level, &w, &h)) return false;
    deepzoom_level_tiles(dz, level, &cols, &rows);
    if (col < 0 || row < 0 || col >= cols || row >= rows) return false;
    tile_span(col, w, dz->tile_size, dz->overlap, &r->x, &r->w);
    tile_span(row, h, dz->tile_size, dz->overlap, &r->y, &r->h);
    return true;
}

/* The level-0 span of [start, start + size) at a level 2^shift smaller,
 * clipped to the image's side: the last pixel of a level may stand for
 * fewer than 2^shift level-0 pixels. */
static void level0_span(int64_t start, int64_t size, int shift, int64_t side, int64_t *x0,
                        int64_t *len) {
    uint64_t a = (uint64_t)start << shift;
    uint64_t b = (uint64_t)(start + size) << shift;
    if (b > (uint64_t)side) b = (uint64_t)side;
    *x0 = (int64_t)a;
    *len = (int64_t)(b - a);
}

bool deepzoom_plan_tile(const deepzoom *dz, int level, int64_t col, int64_t row,
                        const slide_level *levels, int nlevels, deepzoom_plan *p) {
    if (!deepzoom_tile_rect(dz, level, col, row, &p->tile)) return false;
    int shift = dz->max_level - level;
    level0_span(p->tile.x, p->tile.w, shift, dz->w, &p->region.x, &p->region.w);
    level0_span(p->tile.y, p->tile.h, shift, dz->h, &p->region.y, &p->region.h);
    p->downsample = (double)((uint64_t)1 << shift);
    p->slide_level = slide_pick_level(levels, nlevels, p->downsample);
    return true;
}
