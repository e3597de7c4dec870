/*
 * tiff_write.h - a small pyramidal tiled TIFF writer (libtiff) in the
 * layout OpenSlide opens as "generic-tiff": one directory per level, level
 * 0 first, then FILETYPE_REDUCEDIMAGE levels; JPEG tiles in YCbCr (the
 * caller gives RGB); XResolution/YResolution in pixels per centimetre
 * (10000 / (mpp * downsample)) so a reader can derive microns per pixel.
 *
 * Tiles are written as they come, in any order within the current level,
 * so memory is bounded by the caller's tiles in flight. Not thread-safe:
 * one thread writes (rendering may be parallel).
 */
#ifndef TESSERA_IMAGE_TIFF_WRITE_H
#define TESSERA_IMAGE_TIFF_WRITE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct tiffw tiffw;

typedef struct tiffw_options {
    int tile_size;           /* tile edge in pixels, multiple of 16 */
    int jpeg_quality;        /* 1..100 */
    double mpp;              /* microns per pixel at level 0 (> 0) */
    const char *description; /* ImageDescription on every level; NULL = none */
    bool bigtiff;            /* BigTIFF ("w8"); see tiffw_need_bigtiff */
} tiffw_options;

/* Whether a pyramid with this level-0 size may exceed what classic TIFF
 * holds (4 GiB offsets): true when a pessimistic size estimate passes ~3 GB
 * or a dimension passes 65535. */
bool tiffw_need_bigtiff(int64_t width, int64_t height);

/* Creates path (truncating). TS_OK or TS_ERR; libtiff's own messages go
 * into err rather than to stderr. */
int tiffw_open(const char *path, const tiffw_options *o, tiffw **out, char *err, size_t errlen);

/* Starts the next level (finishing the previous one's directory): width x
 * height pixels at this downsample from level 0 (1 for the first level,
 * which must come first). */
int tiffw_begin_level(tiffw *w, uint32_t width, uint32_t height, double downsample, char *err,
                      size_t errlen);

/* Writes tile (tx, ty) of the current level from rgb: tile_size x
 * tile_size pixels, 3 bytes each, rows contiguous (parts beyond the image
 * edge are ignored by readers but still encoded: pad them sensibly). */
int tiffw_write_tile(tiffw *w, uint32_t tx, uint32_t ty, const uint8_t *rgb, char *err,
                     size_t errlen);

/* Writes a tile of one colour. The first one of a level is encoded; later
 * ones of the same colour in the same level reuse its compressed bytes
 * (JPEG tables are per directory, so reuse never crosses levels). */
int tiffw_write_uniform_tile(tiffw *w, uint32_t tx, uint32_t ty, const uint8_t rgb[3], char *err,
                             size_t errlen);

/* Finishes the last directory, flushes, fsyncs and closes; frees w. */
int tiffw_close(tiffw *w, char *err, size_t errlen);

/* Closes without finishing (the file is incomplete); frees w. */
void tiffw_abort(tiffw *w);

#endif
