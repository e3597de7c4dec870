/*
 * morph.c - see morph.h.
 *
 * Disk dilation and erosion are thresholds of a Euclidean distance
 * transform: p is in the dilation of M by r exactly when the nearest
 * foreground pixel is within r, and stays in the erosion exactly when the
 * nearest background pixel is farther than r. That gives true disks at a
 * cost independent of r, where a structuring-element loop would cost r^2
 * per pixel. The EDT treats pixels outside the image as "not background"
 * (never nearest), which is what both border rules in the header ask for:
 * for the dilation we transform the complement, so outside pixels are not
 * foreground; for the erosion outside pixels are not background.
 *
 * Comparisons are on squared distances (exact integers) against r*r in
 * double, so r = 2 includes the pixel at distance exactly 2.
 */
#include "image/morph.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "image/edt.h"
#include "image/label.h"
#include "util/util.h"

static int morph_check(const uint8_t *mask, int w, int h, double r) {
    if (mask == NULL || w < 1 || h < 1 || !(r >= 0)) return TS_ERR;
    if ((int64_t)w * h >= INT32_MAX) return TS_ERR; /* labels are int32 */
    return TS_OK;
}

/* Scratch for one call: a byte mask and a float distance map in one
 * allocation. */
static void *morph_scratch(size_t n, uint8_t **bytes, float **dist) {
    char *block = ts_malloc(n * (sizeof(float) + 1));
    *dist = (float *)block;
    *bytes = (uint8_t *)(block + n * sizeof(float));
    return block;
}

int morph_dilate(uint8_t *mask, int w, int h, float r) {
    if (morph_check(mask, w, h, r) != TS_OK) return TS_ERR;
    size_t n = (size_t)w * h;
    uint8_t *inv;
    float *d;
    void *block = morph_scratch(n, &inv, &d);
    for (size_t i = 0; i < n; i++) inv[i] = mask[i] == 0;
    edt_squared(inv, w, h, d); /* squared distance to the nearest foreground pixel */
    double r2 = (double)r * r;
    for (size_t i = 0; i < n; i++) mask[i] = d[i] < EDT_FAR && (double)d[i] <= r2;
    free(block);
    return TS_OK;
}

int morph_erode(uint8_t *mask, int w, int h, float r) {
    if (morph_check(mask, w, h, r) != TS_OK) return TS_ERR;
    size_t n = (size_t)w * h;
    float *d = ts_malloc(n * sizeof(float));
    edt_squared(mask, w, h, d); /* squared distance to the nearest background pixel */
    double r2 = (double)r * r;
    for (size_t i = 0; i < n; i++) mask[i] = mask[i] != 0 && (d[i] >= EDT_FAR || (double)d[i] > r2);
    free(d);
    return TS_OK;
}

int morph_open(uint8_t *mask, int w, int h, float r) {
    if (morph_erode(mask, w, h, r) != TS_OK) return TS_ERR;
    return morph_dilate(mask, w, h, r);
}

int morph_close(uint8_t *mask, int w, int h, float r) {
    if (morph_dilate(mask, w, h, r) != TS_OK) return TS_ERR;
    return morph_erode(mask, w, h, r);
}

/* Pixel count of each label 1..n of a w x h label image into area[0..n]
 * (area[0] counts unlabelled pixels). */
static void morph_areas(const int32_t *labels, size_t npx, int n, int64_t *area) {
    for (int l = 0; l <= n; l++) area[l] = 0;
    for (size_t i = 0; i < npx; i++) area[labels[i]]++;
}

/* Runs of background (mask == 0) found row by row, joined into
 * 4-connected components by union-find: a run joins every run of the row
 * above whose columns overlap its own. Per component (at its root): pixel
 * count and whether it touches the image border. */
typedef struct bg_runs {
    int32_t *x0, *x1, *y, *parent;
    int64_t *area;
    uint8_t *border;
    size_t n, cap;
} bg_runs;

static void bg_runs_add(bg_runs *r, int y, int x0, int x1, bool border) {
    if (r->n == r->cap) {
        r->cap = r->cap ? r->cap * 2 : 4096;
        r->x0 = ts_realloc(r->x0, r->cap * sizeof(int32_t));
        r->x1 = ts_realloc(r->x1, r->cap * sizeof(int32_t));
        r->y = ts_realloc(r->y, r->cap * sizeof(int32_t));
        r->parent = ts_realloc(r->parent, r->cap * sizeof(int32_t));
        r->area = ts_realloc(r->area, r->cap * sizeof(int64_t));
        r->border = ts_realloc(r->border, r->cap);
    }
    size_t i = r->n++;
    r->x0[i] = x0, r->x1[i] = x1, r->y[i] = y, r->parent[i] = (int32_t)i;
    r->area[i] = x1 - x0 + 1;
    r->border[i] = border;
}

static int32_t bg_find(bg_runs *r, int32_t i) {
    while (r->parent[i] != i) {
        r->parent[i] = r->parent[r->parent[i]]; /* path halving */
        i = r->parent[i];
    }
    return i;
}

static void bg_union(bg_runs *r, int32_t a, int32_t b) {
    a = bg_find(r, a), b = bg_find(r, b);
    if (a == b) return;
    if (a > b) {
        int32_t t = a;
        a = b, b = t;
    }
    r->parent[b] = a;
    r->area[a] += r->area[b];
    r->border[a] |= r->border[b];
}

/* The end of the run of bytes equal to (m[x] != 0) that starts at x:
 * eight bytes at a time while they are all zero or all set. The run's
 * bytes are ORed into *seen (a set run's only: the others are 0), so the
 * caller learns whether any byte was other than 0 or 1. */
static int run_end(const uint8_t *m, int x, int w, uint64_t *seen) {
    bool set = m[x] != 0;
    uint64_t bits = m[x];
    x++;
    while (x + 8 <= w) {
        uint64_t v;
        memcpy(&v, m + x, 8);
        if (set ? (((v - 0x0101010101010101ull) & ~v & 0x8080808080808080ull) != 0) : v != 0) break;
        bits |= v;
        x += 8;
    }
    while (x < w && (m[x] != 0) == set) bits |= m[x++];
    *seen |= bits;
    return x;
}

/* Holes are the 4-connected components of the background (the dual of
 * treating the foreground as 8-connected, as morph_remove_small does) that
 * do not reach the border. Background runs are joined into components in
 * one raster pass (union-find over runs, not pixels), and the runs of
 * every small enough hole are then filled. */
int morph_fill_holes(uint8_t *mask, int w, int h, long max_area) {
    if (morph_check(mask, w, h, 0) != TS_OK) return TS_ERR;
    bg_runs r = {0};
    uint64_t seen = 0; /* every byte ORed: whether any is other than 0 or 1 */
    size_t above = 0, above_end = 0; /* runs of the previous row: [above, above_end) */
    for (int y = 0; y < h; y++) {
        const uint8_t *m = mask + (size_t)y * w;
        size_t first = r.n;
        for (int x = 0; x < w;) {
            int end = run_end(m, x, w, &seen);
            if (m[x] == 0) {
                bg_runs_add(&r, y, x, end - 1, y == 0 || y == h - 1 || x == 0 || end == w);
                int32_t me = (int32_t)(r.n - 1);
                while (above < above_end && r.x1[above] < x) above++;
                for (size_t k = above; k < above_end && r.x0[k] <= end - 1; k++) bg_union(&r, me, (int32_t)k);
            }
            x = end;
        }
        above = first, above_end = r.n;
    }
    for (size_t i = 0; i < r.n; i++) {
        int32_t root = bg_find(&r, (int32_t)i);
        if (r.border[root] || (max_area >= 0 && r.area[root] > max_area)) continue;
        memset(mask + (size_t)r.y[i] * w + r.x0[i], 1, (size_t)(r.x1[i] - r.x0[i] + 1));
    }
    /* the holes were filled with 1; the rest is made 0 / 1 only when a
     * byte was something else (a pass over the whole mask that cell
     * segmentation's masks, 0 / 1 already, never need) */
    size_t n = (size_t)w * h;
    if (seen & 0xFEFEFEFEFEFEFEFEull)
        for (size_t i = 0; i < n; i++) mask[i] = mask[i] != 0;
    free(r.x0), free(r.x1), free(r.y), free(r.parent), free(r.area), free(r.border);
    return TS_OK;
}

int morph_remove_small(uint8_t *mask, int w, int h, long min_area) {
    if (morph_check(mask, w, h, 0) != TS_OK) return TS_ERR;
    size_t n = (size_t)w * h;
    int32_t *labels = ts_malloc(n * sizeof(int32_t));
    int nl = label_components(mask, w, h, 8, labels);
    int64_t *area = ts_malloc(((size_t)nl + 1) * sizeof(int64_t));
    morph_areas(labels, n, nl, area);
    for (size_t i = 0; i < n; i++) mask[i] = labels[i] > 0 && area[labels[i]] >= min_area;
    free(area);
    free(labels);
    return TS_OK;
}
