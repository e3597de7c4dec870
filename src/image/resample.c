/*
 * resample.c - area-average reduction and bilinear enlargement.
 */
#include <math.h>
#include <stddef.h>

#include "image/resample.h"

/* One destination pixel as the mean of the source pixels whose centres lie
 * in [x0, x1) x [y0, y1) (at least the nearest one). */
static uint32_t area_mean(const uint32_t *src, int sw, int sh, double x0, double x1, double y0,
                          double y1) {
    int ax = (int)ceil(x0 - 0.5), bx = (int)ceil(x1 - 0.5);
    int ay = (int)ceil(y0 - 0.5), by = (int)ceil(y1 - 0.5);
    if (bx <= ax) bx = ax + 1;
    if (by <= ay) by = ay + 1;
    if (ax < 0) ax = 0;
    if (ay < 0) ay = 0;
    if (bx > sw) bx = sw;
    if (by > sh) by = sh;
    uint64_t r = 0, g = 0, b = 0, n = 0;
    for (int y = ay; y < by; y++)
        for (int x = ax; x < bx; x++) {
            uint32_t p = resample_opaque(src[(size_t)y * (size_t)sw + (size_t)x]);
            r += (p >> 16) & 0xFF;
            g += (p >> 8) & 0xFF;
            b += p & 0xFF;
            n++;
        }
    if (n == 0) return 0xFFFFFFFFu;
    return 0xFF000000u | (uint32_t)((r + n / 2) / n) << 16 | (uint32_t)((g + n / 2) / n) << 8 |
           (uint32_t)((b + n / 2) / n);
}

/* Bilinear sample at source coordinates (x, y) of pixel centres. */
static uint32_t bilinear(const uint32_t *src, int sw, int sh, double x, double y) {
    if (x < 0) x = 0;
    if (y < 0) y = 0;
    if (x > sw - 1) x = sw - 1;
    if (y > sh - 1) y = sh - 1;
    int x0 = (int)x, y0 = (int)y;
    int x1 = x0 + 1 < sw ? x0 + 1 : x0, y1 = y0 + 1 < sh ? y0 + 1 : y0;
    double fx = x - x0, fy = y - y0;
    size_t r0 = (size_t)y0 * (size_t)sw, r1 = (size_t)y1 * (size_t)sw;
    uint32_t p[4] = {resample_opaque(src[r0 + (size_t)x0]), resample_opaque(src[r0 + (size_t)x1]),
                     resample_opaque(src[r1 + (size_t)x0]), resample_opaque(src[r1 + (size_t)x1])};
    uint32_t out = 0xFF000000u;
    for (int shift = 0; shift <= 16; shift += 8) {
        double a = (p[0] >> shift & 0xFF) * (1 - fx) + (p[1] >> shift & 0xFF) * fx;
        double b = (p[2] >> shift & 0xFF) * (1 - fx) + (p[3] >> shift & 0xFF) * fx;
        out |= (uint32_t)lround(a * (1 - fy) + b * fy) << shift;
    }
    return out;
}

void resample_rgb(const uint32_t *src, int sw, int sh, uint32_t *dst, int dw, int dh) {
    double sx = (double)sw / dw, sy = (double)sh / dh;
    for (int y = 0; y < dh; y++)
        for (int x = 0; x < dw; x++) {
            uint32_t *out = &dst[(size_t)y * (size_t)dw + (size_t)x];
            if (sx >= 1 && sy >= 1)
                *out = area_mean(src, sw, sh, x * sx, (x + 1) * sx, y * sy, (y + 1) * sy);
            else
                *out = bilinear(src, sw, sh, (x + 0.5) * sx - 0.5, (y + 0.5) * sy - 0.5);
        }
}
