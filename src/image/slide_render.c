/*
 * slide_render.c - region reads scaled to an output raster (see
 * slide_render.h).
 *
 * A region is read at the chosen level in one piece when that is at most
 * SLIDE_RENDER_MAX_READ pixels; otherwise the output is cut in two along
 * the axis that reads more, at an output pixel boundary, and each half is
 * drawn from its own part of the region. An output of one pixel that would
 * still read too much is drawn at 2 x 2 and averaged. Parts meet at output
 * pixel boundaries, so the seams are invisible up to rounding of the
 * level-0 coordinate where the cut falls.
 */
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "image/resample.h"
#include "image/slide_render.h"
#include "util/util.h"

typedef struct region {
    int64_t x, y, w, h; /* level-0 pixels */
} region;

/* How many pixels of the level the region spans along one axis, from its
 * level-0 start and length, clipped to the level's side. */
static int64_t read_span(int64_t start, int64_t len, double ds, int64_t level_side) {
    int64_t first = (int64_t)floor((double)start / ds);
    int64_t n = (int64_t)ceil((double)len / ds);
    if (first + n > level_side) n = level_side - first;
    return n < 1 ? 1 : n;
}

/* Reads the whole region at the level, composites it over white and
 * reduces it to out (dw x dh, contiguous). */
static int render_direct(slide *s, int level, region r, uint32_t *out, int dw, int dh, char *err,
                         size_t errlen) {
    const slide_level *l = slide_get_level(s, level);
    int rw = (int)read_span(r.x, r.w, l->downsample, l->w);
    int rh = (int)read_span(r.y, r.h, l->downsample, l->h);
    size_t n = (size_t)rw * (size_t)rh;
    uint32_t *buf = ts_malloc(n * sizeof(uint32_t));
    int rc = slide_read(s, level, r.x, r.y, rw, rh, buf, err, errlen);
    if (rc == TS_OK) {
        for (size_t i = 0; i < n; i++) buf[i] = slide_render_over_white(buf[i]);
        resample_rgb(buf, rw, rh, out, dw, dh);
    }
    free(buf);
    return rc;
}

/* Splits len at output pixel k of d: the level-0 length of the first part,
 * at least 1 and leaving at least 1. */
static int64_t cut_at(int64_t len, int k, int d) {
    int64_t c = (len * k + d / 2) / d;
    if (c < 1) c = 1;
    if (c > len - 1) c = len - 1;
    return c;
}

/* Draws region r into the dw x dh window of dst at (dx, dy), dst being
 * stride pixels wide; splits as the file's header describes. */
static int render_part(slide *s, int level, region r, uint32_t *dst, int stride, int dx, int dy,
                       int dw, int dh, int64_t max_read, char *err, size_t errlen) {
    const slide_level *l = slide_get_level(s, level);
    int64_t rw = read_span(r.x, r.w, l->downsample, l->w);
    int64_t rh = read_span(r.y, r.h, l->downsample, l->h);
    bool too_big = rw * rh > max_read;
    if (too_big && (dw > 1 || dh > 1)) {
        bool along_x = dh < 2 || (dw >= 2 && rw >= rh);
        region a = r, b = r;
        if (along_x && r.w >= 2) {
            int k = dw / 2;
            a.w = cut_at(r.w, k, dw);
            b.x = r.x + a.w;
            b.w = r.w - a.w;
            int rc = render_part(s, level, a, dst, stride, dx, dy, k, dh, max_read, err, errlen);
            if (rc != TS_OK) return rc;
            return render_part(s, level, b, dst, stride, dx + k, dy, dw - k, dh, max_read, err,
                               errlen);
        }
        if (!along_x && r.h >= 2) {
            int k = dh / 2;
            a.h = cut_at(r.h, k, dh);
            b.y = r.y + a.h;
            b.h = r.h - a.h;
            int rc = render_part(s, level, a, dst, stride, dx, dy, dw, k, max_read, err, errlen);
            if (rc != TS_OK) return rc;
            return render_part(s, level, b, dst, stride, dx, dy + k, dw, dh - k, max_read, err,
                               errlen);
        }
    }
    int tw = dw, th = dh;
    if (too_big && dw == 1 && dh == 1 && r.w >= 2 && r.h >= 2) tw = th = 2;
    uint32_t *tmp = ts_malloc((size_t)tw * (size_t)th * sizeof(uint32_t));
    int rc = tw == dw ? render_direct(s, level, r, tmp, tw, th, err, errlen)
                      : render_part(s, level, r, tmp, tw, 0, 0, tw, th, max_read, err, errlen);
    if (rc == TS_OK && tw != dw) {
        uint32_t one;
        resample_rgb(tmp, tw, th, &one, 1, 1);
        tmp[0] = one;
    }
    if (rc == TS_OK)
        for (int y = 0; y < dh; y++)
            memcpy(dst + (size_t)(dy + y) * (size_t)stride + (size_t)dx,
                   tmp + (size_t)y * (size_t)dw, (size_t)dw * sizeof(uint32_t));
    free(tmp);
    return rc;
}

int slide_render_bounded(slide *s, int level, int64_t x0, int64_t y0, int64_t w0, int64_t h0,
                         uint32_t *dst, int dw, int dh, int64_t max_read, char *err,
                         size_t errlen) {
    if (slide_get_level(s, level) == NULL || w0 < 1 || h0 < 1 || dw < 1 || dh < 1 ||
        max_read < 1) {
        ts_errf(err, errlen, "bad render: level %d, region %lld x %lld, output %d x %d", level,
                (long long)w0, (long long)h0, dw, dh);
        return TS_ERR;
    }
    region r = {x0, y0, w0, h0};
    return render_part(s, level, r, dst, dw, 0, 0, dw, dh, max_read, err, errlen);
}

int slide_render(slide *s, int level, int64_t x0, int64_t y0, int64_t w0, int64_t h0,
                 uint32_t *dst, int dw, int dh, char *err, size_t errlen) {
    return slide_render_bounded(s, level, x0, y0, w0, h0, dst, dw, dh, SLIDE_RENDER_MAX_READ, err,
                                errlen);
}
