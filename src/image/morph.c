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

/* Scanline flood of the 4-connected background from the seeds already on
 * the stack (x, y pairs; *top of them): each popped seed is widened to its
 * whole run of unseen background in the row, the run is marked seen (and
 * appended to spans, as y, x0, x1, when spans is not NULL), and the first
 * pixel of every unseen background run touching it in the rows above and
 * below is pushed. Works run by run, not pixel by pixel. Returns the
 * pixels marked. */
static size_t morph_flood_background(const uint8_t *mask, int w, int h, uint8_t *seen,
                                     int32_t *stack, size_t *top, int32_t *spans,
                                     size_t *n_spans) {
    size_t filled = 0;
    while (*top > 0) {
        *top -= 2;
        int x = stack[*top], y = stack[*top + 1];
        const uint8_t *m = mask + (size_t)y * w;
        uint8_t *sn = seen + (size_t)y * w;
        if (m[x] || sn[x]) continue;
        int x0 = x, x1 = x;
        while (x0 > 0 && !m[x0 - 1] && !sn[x0 - 1]) x0--;
        while (x1 < w - 1 && !m[x1 + 1] && !sn[x1 + 1]) x1++;
        memset(sn + x0, 1, (size_t)(x1 - x0 + 1));
        filled += (size_t)(x1 - x0 + 1);
        if (spans) {
            spans[3 * *n_spans] = y, spans[3 * *n_spans + 1] = x0, spans[3 * *n_spans + 2] = x1;
            (*n_spans)++;
        }
        for (int dy = -1; dy <= 1; dy += 2) {
            int ny = y + dy;
            if (ny < 0 || ny >= h) continue;
            const uint8_t *nm = mask + (size_t)ny * w, *ns = seen + (size_t)ny * w;
            for (int i = x0; i <= x1; i++) {
                if (nm[i] || ns[i] || (i > x0 && !nm[i - 1] && !ns[i - 1])) continue;
                stack[(*top)++] = i;
                stack[(*top)++] = ny;
            }
        }
    }
    return filled;
}

/* Holes are the 4-connected components of the background (the dual of
 * treating the foreground as 8-connected, as morph_remove_small does) that
 * do not reach the border. The background reached from the border is
 * flooded once; each remaining piece is then flooded on its own and filled
 * when small enough. O(pixels), run by run; no labelling of the whole
 * background. */
int morph_fill_holes(uint8_t *mask, int w, int h, long max_area) {
    if (morph_check(mask, w, h, 0) != TS_OK) return TS_ERR;
    size_t n = (size_t)w * h, top = 0, n_spans = 0;
    if ((int64_t)n >= INT32_MAX / 3) return TS_ERR;
    uint8_t *seen = ts_calloc(n, 1);
    int32_t *stack = ts_malloc((2 * n + 8) * sizeof(int32_t));
    int32_t *spans = ts_malloc((3 * n + 3) * sizeof(int32_t));
    for (int x = 0; x < w; x++) {
        stack[top++] = x, stack[top++] = 0;
        stack[top++] = x, stack[top++] = h - 1;
    }
    for (int y = 0; y < h; y++) {
        stack[top++] = 0, stack[top++] = y;
        stack[top++] = w - 1, stack[top++] = y;
    }
    morph_flood_background(mask, w, h, seen, stack, &top, NULL, NULL);
    for (size_t i = 0; i < n; i++) {
        if (mask[i] || seen[i]) continue;
        stack[0] = (int32_t)(i % (size_t)w), stack[1] = (int32_t)(i / (size_t)w);
        top = 2;
        n_spans = 0;
        size_t area = morph_flood_background(mask, w, h, seen, stack, &top, spans, &n_spans);
        if (max_area >= 0 && (long)area > max_area) continue;
        for (size_t k = 0; k < n_spans; k++)
            memset(mask + (size_t)spans[3 * k] * w + spans[3 * k + 1], 1,
                   (size_t)(spans[3 * k + 2] - spans[3 * k + 1] + 1));
    }
    for (size_t i = 0; i < n; i++) mask[i] = mask[i] != 0;
    free(spans);
    free(stack);
    free(seen);
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
