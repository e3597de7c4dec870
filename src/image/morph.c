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

#include <stdlib.h>

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

/* Marks (area = -1) every label that has a pixel on the image border, so
 * that such components never count as holes. */
static void morph_mark_border(const int32_t *labels, int w, int h, int64_t *area) {
    for (int x = 0; x < w; x++) {
        area[labels[x]] = -1;
        area[labels[(size_t)(h - 1) * w + x]] = -1;
    }
    for (int y = 0; y < h; y++) {
        area[labels[(size_t)y * w]] = -1;
        area[labels[(size_t)y * w + w - 1]] = -1;
    }
}

/* Holes are the 4-connected components of the background (the dual of
 * treating the foreground as 8-connected, as morph_remove_small does). */
int morph_fill_holes(uint8_t *mask, int w, int h, long max_area) {
    if (morph_check(mask, w, h, 0) != TS_OK) return TS_ERR;
    size_t n = (size_t)w * h;
    char *block = ts_malloc(n * (sizeof(int32_t) + 1));
    int32_t *labels = (int32_t *)block;
    uint8_t *inv = (uint8_t *)(block + n * sizeof(int32_t));
    for (size_t i = 0; i < n; i++) inv[i] = mask[i] == 0;
    int nl = label_components(inv, w, h, 4, labels);
    int64_t *area = ts_malloc(((size_t)nl + 1) * sizeof(int64_t));
    morph_areas(labels, n, nl, area);
    morph_mark_border(labels, w, h, area);
    for (size_t i = 0; i < n; i++) {
        int64_t a = area[labels[i]];
        int hole = labels[i] > 0 && a >= 0 && (max_area < 0 || a <= max_area);
        mask[i] = mask[i] != 0 || hole;
    }
    free(area);
    free(block);
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
