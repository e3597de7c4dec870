/*
 * slide_render.h - any rectangle of a slide drawn at any size, as the
 * viewer's tiles and the slide list's thumbnails need: read from the level
 * the caller chose, composite over white, reduce by area averaging.
 *
 * Promise: the output is opaque (alpha 255 everywhere); what OpenSlide
 * leaves transparent (outside the scanned area, beyond the image's edges)
 * is white, and partly transparent edge pixels (premultiplied ARGB) are
 * composited over white, never over black. Memory stays bounded whatever
 * is asked: a region whose read would pass SLIDE_RENDER_MAX_READ pixels is
 * drawn in parts (a slide without a pyramid costs time, not memory).
 */
#ifndef TESSERA_IMAGE_SLIDE_RENDER_H
#define TESSERA_IMAGE_SLIDE_RENDER_H

#include <stddef.h>
#include <stdint.h>

#include "image/slide.h"

#define SLIDE_RENDER_MAX_READ (4096 * 4096) /* pixels read at once (64 MiB) */

/* Draws the level-0 rectangle (x0, y0, w0, h0) of s, read at `level`, into
 * dst (dw x dh pixels 0xAARRGGBB, opaque). w0, h0, dw, dh >= 1. TS_ERR with
 * the slide's message when a read fails; the slide handle is then unusable
 * (OpenSlide latches errors: close it). */
int slide_render(slide *s, int level, int64_t x0, int64_t y0, int64_t w0, int64_t h0,
                 uint32_t *dst, int dw, int dh, char *err, size_t errlen);

/* slide_render with another bound on the pixels read at once (>= 1): the
 * same picture, drawn in more parts. For tests of the splitting. */
int slide_render_bounded(slide *s, int level, int64_t x0, int64_t y0, int64_t w0, int64_t h0,
                         uint32_t *dst, int dw, int dh, int64_t max_read, char *err,
                         size_t errlen);

/* Premultiplied ARGB over white, made opaque. */
static inline uint32_t slide_render_over_white(uint32_t p) {
    uint32_t a = p >> 24;
    if (a == 255) return p;
    uint32_t add = 255 - a, out = 0xFF000000u;
    for (int shift = 0; shift <= 16; shift += 8) {
        uint32_t c = ((p >> shift) & 0xFF) + add;
        out |= (c > 255 ? 255 : c) << shift;
    }
    return out;
}

#endif
