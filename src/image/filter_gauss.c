/*
 * filter_gauss.c - the Gaussian blurs of filter.h: whole images through a
 * ring of rows, and the sparse forms (on a mask; above a floor).
 */
#include "image/filter.h"

#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "image/filter_internal.h"
#include "image/vectorise.h"
#include "util/util.h"

/* Largest Gaussian radius accepted; beyond it the kernel would not fit an
 * int and the filter would be meaningless on a tile anyway. */
#define FILTER_MAX_GAUSS_RADIUS (1 << 24)

/* Normalised half-kernel k[0..r] of a Gaussian of the given sigma. */
static void filter_gauss_kernel(float *k, int r, float sigma) {
    double sum = 0, two_var = 2.0 * (double)sigma * sigma;
    for (int i = 0; i <= r; i++) sum += (i == 0 ? 1 : 2) * exp(-(double)i * i / two_var);
    for (int i = 0; i <= r; i++) k[i] = (float)(exp(-(double)i * i / two_var) / sum);
}

/* Columns per block of the blocked passes (filter_gauss_vrow,
 * filter_gauss_hseg): a block's sums stay in vector registers across the
 * taps instead of being loaded and stored again for every tap (two loads
 * a tap instead of three and a store): the horizontal pass over a window
 * 1.08 -> 0.71 ms. Each pixel's operations and their order are the tap
 * loop's, so the floats are the same. */
#define FILTER_GAUSS_BLOCK 32

/* The horizontal pass of one row at n columns: p points at the first of
 * them, with r valid (or replicated) pixels on each side; the same
 * operations in the same order as filter_gauss_row's, so the same floats.
 * Blocks of FILTER_GAUSS_BLOCK columns, then the rest tap by tap. */
IMAGE_VECTORISED static void filter_gauss_hseg(const float *p, int n, const float *k, int r,
                                               float *restrict out) {
    int j0 = 0;
    for (; j0 + FILTER_GAUSS_BLOCK <= n; j0 += FILTER_GAUSS_BLOCK) {
        float acc[FILTER_GAUSS_BLOCK];
        for (int j = 0; j < FILTER_GAUSS_BLOCK; j++) acc[j] = k[0] * p[j0 + j];
        for (int i = 1; i <= r; i++) {
            const float ki = k[i], *a = p + j0 - i, *b = p + j0 + i;
            for (int j = 0; j < FILTER_GAUSS_BLOCK; j++) acc[j] += ki * (a[j] + b[j]);
        }
        for (int j = 0; j < FILTER_GAUSS_BLOCK; j++) out[j0 + j] = acc[j];
    }
    for (int j = j0; j < n; j++) out[j] = k[0] * p[j];
    for (int i = 1; i <= r; i++) {
        const float ki = k[i], *a = p - i, *b = p + i;
        for (int j = j0; j < n; j++) out[j] += ki * (a[j] + b[j]);
    }
}

/* Horizontal pass of one row into out, through a copy padded by r
 * replicated pixels at each end so that filter_gauss_hseg's loops have no
 * bounds checks. */
static void filter_gauss_row(const float *row, int w, const float *k, int r, float *padded,
                             float *out) {
    for (int i = 0; i < r; i++) {
        padded[i] = row[0];
        padded[r + w + i] = row[w - 1];
    }
    memcpy(padded + r, row, (size_t)w * sizeof(float));
    filter_gauss_hseg(padded + r, w, k, r, out);
}

/* One output row of the vertical pass: d = k[0] * rows[0] + the sum over
 * i of k[i] * (rows[-i] + rows[+i]), in that order, the rows given by the
 * caller (clamped at the image's edges); blocks of FILTER_GAUSS_BLOCK
 * columns, then the rest tap by tap. */
IMAGE_VECTORISED static void filter_gauss_vrow(const float *const *up, const float *const *down,
                                               const float *c, int w, const float *k, int r,
                                               float *restrict d) {
    int x0 = 0;
    for (; x0 + FILTER_GAUSS_BLOCK <= w; x0 += FILTER_GAUSS_BLOCK) {
        float acc[FILTER_GAUSS_BLOCK];
        for (int j = 0; j < FILTER_GAUSS_BLOCK; j++) acc[j] = k[0] * c[x0 + j];
        for (int i = 1; i <= r; i++) {
            const float *a = up[i] + x0, *b = down[i] + x0;
            const float ki = k[i];
            for (int j = 0; j < FILTER_GAUSS_BLOCK; j++) acc[j] += ki * (a[j] + b[j]);
        }
        for (int j = 0; j < FILTER_GAUSS_BLOCK; j++) d[x0 + j] = acc[j];
    }
    for (int x = x0; x < w; x++) d[x] = k[0] * c[x];
    for (int i = 1; i <= r; i++) {
        const float *a = up[i], *b = down[i];
        const float ki = k[i];
        for (int x = x0; x < w; x++) d[x] += ki * (a[x] + b[x]);
    }
}

/* Separable: O(r) per pixel per pass. The horizontal pass is kept in a
 * ring of the 2r + 1 rows the vertical pass needs (row y in slot
 * y % (2r + 1)), so the horizontally blurred image is never written out
 * whole: a whole-image intermediate went to memory and back, which cost
 * as much as the arithmetic. Output row y is written once rows up to
 * y + r have been blurred horizontally, which no longer need src rows up
 * to y: so dst may be src (in place). The same operations in the same
 * order as blurring rows then columns over the whole image. */
static int filter_gaussian_rows(const float *src, float *dst, int w, int h, float sigma) {
    if (filter_check(src, w, h, sigma) != TS_OK || dst == NULL || isinf(sigma)) return TS_ERR;
    if (sigma == 0) {
        if (dst != src) memcpy(dst, src, (size_t)w * h * sizeof(float));
        return TS_OK;
    }
    double rr = ceil(3.0 * (double)sigma);
    if (rr > FILTER_MAX_GAUSS_RADIUS) return TS_ERR;
    int r = (int)rr, slots = 2 * r + 1;
    size_t nk = (size_t)r + 1, npad = (size_t)w + 2 * (size_t)r, nring = (size_t)slots * w;
    /* the row pointers first, so that they are aligned */
    char *block = ts_malloc(2 * nk * sizeof(float *) + (nk + npad + nring) * sizeof(float));
    const float **up = (const float **)block, **down = up + nk;
    float *k = (float *)(down + nk), *padded = k + nk, *ring = padded + npad;
    filter_gauss_kernel(k, r, sigma);
    int done = 0; /* rows blurred horizontally so far */
    for (int y = 0; y < h; y++) {
        int need = y + r < h - 1 ? y + r : h - 1;
        for (; done <= need; done++)
            filter_gauss_row(src + (size_t)done * w, w, k, r, padded, ring + (size_t)(done % slots) * w);
        for (int i = 1; i <= r; i++) {
            int ya = y - i < 0 ? 0 : y - i, yb = y + i >= h ? h - 1 : y + i;
            up[i] = ring + (size_t)(ya % slots) * w;
            down[i] = ring + (size_t)(yb % slots) * w;
        }
        filter_gauss_vrow(up, down, ring + (size_t)(y % slots) * w, w, k, r, dst + (size_t)y * w);
    }
    free(block);
    return TS_OK;
}

int filter_gaussian(float *img, int w, int h, float sigma) {
    return filter_gaussian_rows(img, img, w, h, sigma);
}

int filter_gaussian_copy(const float *src, float *dst, int w, int h, float sigma) {
    return filter_gaussian_rows(src, dst, w, h, sigma);
}

/* Row yy of src blurred horizontally at columns x0 .. x0 + n - 1 into
 * out: straight from src inside the image, through seg (edges replicated)
 * for the strips at its left and right edges. */
static void filter_gauss_strip_row(const float *src, int w, int yy, int x0, int n, const float *k, int r,
                                   float *seg, float *out) {
    const float *row = src + (size_t)yy * w;
    if (x0 - r >= 0 && x0 + n + r <= w) {
        filter_gauss_hseg(row + x0, n, k, r, out);
        return;
    }
    for (int j = 0; j < n + 2 * r; j++) {
        int x = x0 - r + j;
        seg[j] = row[x < 0 ? 0 : x >= w ? w - 1 : x];
    }
    filter_gauss_hseg(seg + r, n, k, r, out);
}

/* One strip: the output rows with a mask pixel in the strip, from a ring
 * of the horizontally blurred rows they need (slot_row: which row each
 * slot holds, -1 for none), each blurred once. */
static void filter_gauss_strip(const float *src, float *dst, const uint8_t *mask, int w, int h, int x0, int n,
                               const float *k, int r, float *ring, int *slot_row, float *seg,
                               const float **up, const float **down) {
    int slots = 2 * r + 1;
    for (int i = 0; i < slots; i++) slot_row[i] = -1;
    for (int y = 0; y < h; y++) {
        if (!filter_any(mask + (size_t)y * w + x0, n)) continue;
        for (int j = -r; j <= r; j++) {
            int yy = y + j < 0 ? 0 : y + j >= h ? h - 1 : y + j;
            if (slot_row[yy % slots] == yy) continue;
            filter_gauss_strip_row(src, w, yy, x0, n, k, r, seg, ring + (size_t)(yy % slots) * FILTER_STRIP);
            slot_row[yy % slots] = yy;
        }
        for (int i = 1; i <= r; i++) {
            int ya = y - i < 0 ? 0 : y - i, yb = y + i >= h ? h - 1 : y + i;
            up[i] = ring + (size_t)(ya % slots) * FILTER_STRIP;
            down[i] = ring + (size_t)(yb % slots) * FILTER_STRIP;
        }
        filter_gauss_vrow(up, down, ring + (size_t)(y % slots) * FILTER_STRIP, n, k, r, dst + (size_t)y * w + x0);
    }
}

/* The scratch of filter_gaussian_masked and filter_gaussian_above, one
 * allocation: row pointers, the ring's slot rows, the kernel, an edge
 * segment, the ring, and (above) each row's maximum after the horizontal
 * pass. */
typedef struct filter_gauss_scratch {
    const float **up, **down;
    int *slot_row;
    float *k, *seg, *ring, *rowmax;
    int r;
    char *block;
} filter_gauss_scratch;

static int filter_gauss_scratch_new(filter_gauss_scratch *s, float sigma, int h) {
    double rr = ceil(3.0 * (double)sigma);
    if (rr > FILTER_MAX_GAUSS_RADIUS) return TS_ERR;
    int r = (int)rr, slots = 2 * r + 1;
    size_t nk = (size_t)r + 1;
    /* the row pointers first, so that they are aligned */
    s->block = ts_malloc(2 * nk * sizeof(float *) + (size_t)slots * sizeof(int) +
                         (nk + FILTER_STRIP + 2 * (size_t)r + (size_t)slots * FILTER_STRIP + (size_t)h) *
                             sizeof(float));
    s->up = (const float **)s->block;
    s->down = s->up + nk;
    s->slot_row = (int *)(s->down + nk);
    s->k = (float *)(s->slot_row + slots);
    s->seg = s->k + nk;
    s->ring = s->seg + FILTER_STRIP + 2 * r;
    s->rowmax = s->ring + (size_t)slots * FILTER_STRIP;
    s->r = r;
    filter_gauss_kernel(s->k, r, sigma);
    return TS_OK;
}

int filter_gaussian_masked(const float *src, float *dst, const uint8_t *mask, int w, int h, float sigma) {
    if (filter_check(src, w, h, sigma) != TS_OK || dst == NULL || dst == src || mask == NULL || isinf(sigma))
        return TS_ERR;
    if (sigma == 0) return filter_gaussian_copy(src, dst, w, h, 0);
    filter_gauss_scratch s;
    if (filter_gauss_scratch_new(&s, sigma, h) != TS_OK) return TS_ERR;
    for (int x0 = 0; x0 < w; x0 += FILTER_STRIP)
        filter_gauss_strip(src, dst, mask, w, h, x0, w - x0 < FILTER_STRIP ? w - x0 : FILTER_STRIP, s.k, s.r,
                           s.ring, s.slot_row, s.seg, s.up, s.down);
    free(s.block);
    return TS_OK;
}

/* filter_gauss_row without copying the whole row: the columns at least
 * r from either end straight from it (filter_gauss_hseg: the same
 * operations in the same order, so the same floats), the r at each end
 * through padded (3r floats, edges replicated). Rows shorter than 3r + 1
 * go through filter_gauss_row. */
static void filter_gauss_row_direct(const float *row, int w, const float *k, int r, float *padded,
                                    float *out) {
    if (w < 3 * r + 1) {
        filter_gauss_row(row, w, k, r, padded, out);
        return;
    }
    filter_gauss_hseg(row + r, w - 2 * r, k, r, out + r);
    for (int j = 0; j < 3 * r; j++) padded[j] = row[j - r < 0 ? 0 : j - r]; /* columns -r .. 2r - 1 */
    filter_gauss_hseg(padded + r, r, k, r, out);
    for (int j = 0; j < 3 * r; j++) { /* columns w - 2r .. w + r - 1 */
        int x = w - 2 * r + j;
        padded[j] = row[x >= w ? w - 1 : x];
    }
    filter_gauss_hseg(padded + r, r, k, r, out + w - r);
}

/* flags[s] = whether any value of the strip s of row (columns 64 s ..
 * 64 s + 63, the last strip shorter) is above skip (NaN is not). An OR of
 * comparisons per strip, which vectorises. */
IMAGE_VECTORISED static void filter_strip_flags(const float *row, int w, float skip, uint8_t *flags) {
    for (int x0 = 0, s = 0; x0 < w; x0 += FILTER_STRIP, s++) {
        int n = w - x0 < FILTER_STRIP ? w - x0 : FILTER_STRIP, any = 0;
        for (int j = 0; j < n; j++) any |= row[x0 + j] > skip;
        flags[s] = (uint8_t)any;
    }
}

/* filter_gaussian_rows' ring of horizontally blurred rows, where output
 * row y is blurred vertically only in the strips (FILTER_STRIP columns)
 * in which some row within r of it has a value above skip (cnt: per
 * strip, how many of those rows do), neighbouring such strips in one
 * call; the other strips of the row are set to 0. */
static void filter_gauss_above_rows(const float *src, float *dst, int w, int h, const float *k, int r,
                                    float skip, float *padded, float *ring, const float **up,
                                    const float **down, const float **up2, const float **down2,
                                    uint8_t *flags, int *cnt) {
    int slots = 2 * r + 1, ns = (w + FILTER_STRIP - 1) / FILTER_STRIP, done = 0;
    for (int s = 0; s < ns; s++) cnt[s] = 0;
    for (int y = 0; y < h; y++) {
        int need = y + r < h - 1 ? y + r : h - 1;
        for (; done <= need; done++) {
            float *row = ring + (size_t)(done % slots) * w;
            uint8_t *f = flags + (size_t)done * ns;
            filter_gauss_row_direct(src + (size_t)done * w, w, k, r, padded, row);
            filter_strip_flags(row, w, skip, f);
            for (int s = 0; s < ns; s++) cnt[s] += f[s];
        }
        if (y - r - 1 >= 0) { /* row y - r - 1 leaves the reach */
            const uint8_t *f = flags + (size_t)(y - r - 1) * ns;
            for (int s = 0; s < ns; s++) cnt[s] -= f[s];
        }
        for (int i = 1; i <= r; i++) {
            int ya = y - i < 0 ? 0 : y - i, yb = y + i >= h ? h - 1 : y + i;
            up[i] = ring + (size_t)(ya % slots) * w;
            down[i] = ring + (size_t)(yb % slots) * w;
        }
        const float *c = ring + (size_t)(y % slots) * w;
        float *d = dst + (size_t)y * w;
        for (int s = 0; s < ns;) {
            int e = s + 1;
            bool on = cnt[s] > 0;
            while (e < ns && (cnt[e] > 0) == on) e++;
            int x0 = s * FILTER_STRIP, x1 = e * FILTER_STRIP < w ? e * FILTER_STRIP : w;
            if (!on) {
                memset(d + x0, 0, (size_t)(x1 - x0) * sizeof(float));
            } else {
                for (int i = 1; i <= r; i++) up2[i] = up[i] + x0, down2[i] = down[i] + x0;
                filter_gauss_vrow(up2, down2, c + x0, x1 - x0, k, r, d + x0);
            }
            s = e;
        }
    }
}

/* Skipping a strip of a row whose horizontally blurred rows within reach
 * are all at most m there: its vertical sum is k[0] c + sum k[i] (a + b)
 * over values in [0, m], with float weights summing to at most
 * 1 + 2^-24, in 3r + 1 roundings, so it is at most m (1 + 2^-24)^(3r + 2).
 * With m at most floor (1 - 4 (r + 1) 2^-24) that stays at or under
 * floor. */
int filter_gaussian_above(const float *src, float *dst, int w, int h, float sigma, float floor_) {
    if (filter_check(src, w, h, sigma) != TS_OK || dst == NULL || dst == src || isinf(sigma) || isnan(floor_))
        return TS_ERR;
    if (sigma == 0) return filter_gaussian_copy(src, dst, w, h, 0);
    double rr = ceil(3.0 * (double)sigma);
    if (rr > FILTER_MAX_GAUSS_RADIUS) return TS_ERR;
    int r = (int)rr, slots = 2 * r + 1, ns = (w + FILTER_STRIP - 1) / FILTER_STRIP;
    double shrink = 1.0 - 4.0 * ((double)r + 1) * 0x1p-24;
    float skip = (float)((double)floor_ * shrink);
    if ((double)skip > (double)floor_ * shrink) skip = nextafterf(skip, -INFINITY); /* rounded down */
    if (!(shrink > 0)) skip = -INFINITY; /* no strip skipped */
    size_t nk = (size_t)r + 1, npad = (size_t)w + 2 * (size_t)r, nring = (size_t)slots * w;
    /* the row pointers first, so that they are aligned */
    char *block = ts_malloc(4 * nk * sizeof(float *) + (size_t)ns * sizeof(int) +
                            (nk + npad + nring) * sizeof(float) + (size_t)h * (size_t)ns);
    const float **up = (const float **)block, **down = up + nk, **up2 = down + nk, **down2 = up2 + nk;
    int *cnt = (int *)(down2 + nk);
    float *k = (float *)(cnt + ns), *padded = k + nk, *ring = padded + npad;
    uint8_t *flags = (uint8_t *)(ring + nring);
    filter_gauss_kernel(k, r, sigma);
    filter_gauss_above_rows(src, dst, w, h, k, r, skip, padded, ring, up, down, up2, down2, flags, cnt);
    free(block);
    return TS_OK;
}

