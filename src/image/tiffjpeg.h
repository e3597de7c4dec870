/*
 * tiffjpeg.h - the direct read of a pyramid level stored as JPEG tiles in a
 * TIFF file (generic tiled TIFF, Aperio SVS): each tile's compressed bytes
 * are read with pread() from the already checked file descriptor and
 * decoded by libjpeg straight into the caller's 0xAARRGGBB window.
 *
 * Why: OpenSlide reads the same tiles, but composes them into the window
 * through cairo, which costs several times the JPEG decoding itself
 * (issue 15: the read alone took most of the time budget of the analysis).
 * The pixels are the same as OpenSlide's: the same libjpeg, with its
 * default decoding settings, and the same placement (whole pixels of the
 * level; parts outside the level transparent, 0).
 *
 * Only what is certain to read identically is taken: tiled directories
 * compressed as JPEG with the YCbCr photometric, 8 bits, 3 samples,
 * interleaved, matched to OpenSlide's levels by their exact dimensions.
 * Everything else (other formats, other compressions, a level without a
 * unique match) is left to OpenSlide: tiffjpeg_level() says which levels
 * are served here.
 *
 * A handle is immutable after tiffjpeg_open and may be read by several
 * threads at once (pread, and a decoder per call).
 */
#ifndef TESSERA_IMAGE_TIFFJPEG_H
#define TESSERA_IMAGE_TIFFJPEG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct tiffjpeg tiffjpeg;

/* Opens the TIFF structure of the file fd refers to (fd is not taken over
 * and must stay open as long as the handle; it is only read with pread, so
 * its offset is untouched). levels[i] = {w, h} of OpenSlide's level i, n of
 * them. Returns NULL when the file is not a TIFF or no level qualifies:
 * the caller then reads everything through OpenSlide. */
tiffjpeg *tiffjpeg_open(int fd, const int64_t (*levels)[2], int n);
void tiffjpeg_close(tiffjpeg *t);

/* Whether level (OpenSlide's index) is read here. */
bool tiffjpeg_level(const tiffjpeg *t, int level);

/* Reads the w x h window whose top-left corner is (x, y) in the level's
 * own pixels (may be negative or reach past the level: those parts are
 * 0) into buf (w * h, row stride w), 0xFFRRGGBB inside the level. A tile
 * that does not decode, or cannot be read from the file, is TS_ERR with a
 * message naming the tile. */
int tiffjpeg_read(const tiffjpeg *t, int level, int64_t x, int64_t y, int w, int h,
                  uint32_t *buf, char *err, size_t errlen);

#endif
