/*
 * slide.h - whole-slide images through OpenSlide: every format it reads,
 * the pyramid's levels, microns per pixel, and region reads.
 *
 * Microns per pixel come from openslide.mpp-x/-y; generic TIFFs have none
 * (DESIGN §9), so tiff.XResolution with tiff.ResolutionUnit (centimeter or
 * inch) is the fallback. A slide whose resolution is unknown has mpp 0 and
 * the jobs that need physical units refuse it with a message saying so.
 *
 * Levels stored as JPEG tiles of plain TIFF directories are read without
 * OpenSlide's compositing, with the same pixels (slide_level_direct); the
 * rest through OpenSlide.
 *
 * A slide handle may be shared by threads (OpenSlide's reads are
 * thread-safe, and so are the direct ones); each thread reads into its own
 * buffer.
 */
#ifndef TESSERA_IMAGE_SLIDE_H
#define TESSERA_IMAGE_SLIDE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "image/slide_path.h"

#define SLIDE_MIN_SIDE 16 /* smaller images are refused: nothing to analyse */

typedef struct slide slide;

typedef struct slide_level {
    int64_t w, h;
    double downsample; /* relative to level 0 */
} slide_level;

typedef struct slide_info {
    int64_t w, h;      /* level 0 */
    double mpp_x, mpp_y; /* microns per level-0 pixel; 0 = unknown */
    const char *mpp_source; /* "openslide.mpp", "tiff.XResolution" or "unknown" */
    const char *vendor;   /* OpenSlide's format name, e.g. "aperio", "generic-tiff" */
    int levels;
} slide_info;

/* Opens path. Only a regular file reaches OpenSlide: the file is opened
 * first (O_NONBLOCK, so a FIFO or device cannot block) and checked with
 * fstat, and OpenSlide reads that very file through /proc/self/fd (except
 * the multi-file formats MIRAX .mrxs and Hamamatsu .vms/.vmu, whose
 * companion files OpenSlide finds by name and which are not checked).
 * Errors say what is wrong in the user's terms: "no such file", "not a
 * regular file (a FIFO)", "not a slide format OpenSlide reads", "the image
 * is 1 x 1 pixels; at least 16 x 16 is needed", or OpenSlide's own message.
 * TS_OK / TS_ERR. */
int slide_open(const char *path, slide **out, char *err, size_t errlen);
void slide_close(slide *s);

const slide_info *slide_get_info(const slide *s);
const slide_level *slide_get_level(const slide *s, int level); /* NULL past the end */

/* The level to read for a wanted downsample (>= 1): the most reduced level
 * whose downsample is at most `downsample` (plus a small tolerance), so
 * that reading it and reducing further never loses detail. */
int slide_best_level(const slide *s, double downsample);

/* The same rule over a level table (n >= 1 entries, levels[0] the full
 * image): pure, so geometry code (deepzoom.h) and its tests can plan reads
 * without a slide. Returns an index in 0..n-1. */
int slide_pick_level(const slide_level *levels, int n, double downsample);

/* Reads the w x h region whose top-left corner is (x0, y0) in level-0
 * pixels, at `level`, into buf (w*h uint32 0xAARRGGBB premultiplied; parts
 * outside the slide come back transparent, alpha 0). A decoding error (a
 * corrupt tile) is TS_ERR with OpenSlide's message; the handle is then
 * unusable (OpenSlide latches errors). */
int slide_read(slide *s, int level, int64_t x0, int64_t y0, int w, int h, uint32_t *buf,
               char *err, size_t errlen);

/* Whether reads of level at whole-pixel positions of the level skip
 * OpenSlide's compositing: the level is JPEG tiles of a plain TIFF
 * directory (generic TIFF, Aperio; see tiffjpeg.h), decoded straight into
 * the window with the same pixels OpenSlide gives. Reads at positions
 * between the level's pixels (a level-0 x0 that is no whole multiple of a
 * non-integer downsample) still go through OpenSlide, which interpolates
 * them. For tests and benchmarks; slide_read chooses by itself. */
bool slide_level_direct(const slide *s, int level);

/* The submission check (DESIGN §3, §4): path must be absolute, resolve
 * (symlinks followed) to a regular file inside one of data_roots
 * (colon-separated directories, themselves resolved), and open as a slide of
 * at least SLIDE_MIN_SIDE pixels a side whose smallest level decodes. The
 * resolved file is opened without following a symlink at its end, and the
 * open fd must still be that path (a swap during the check is refused). The
 * message names the problem ("not found in the data roots (/srv/slides)",
 * "unreadable: Permission denied", "not a regular file (a FIFO)", ...).
 * TS_OK / TS_ERR. */
int slide_check_path(const char *path, const char *data_roots, char *err, size_t errlen);

/* slide_check_path that keeps the slide open: the same checks, in the same
 * order, with the same messages, and on TS_OK *out is the open slide (the
 * caller closes it). For callers that go on to read the slide (the
 * service's slide listing and viewer), so that they apply exactly the
 * submission's rule without opening the file twice. */
int slide_open_checked(const char *path, const char *data_roots, slide **out, char *err,
                       size_t errlen);

#endif
