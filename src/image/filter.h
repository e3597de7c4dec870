/*
 * filter.h - filters on float images (w x h, row-major, no padding).
 *
 * Borders are handled by replicating the edge pixel, so a filter never
 * darkens or brightens a tile's edge. Every function returns TS_OK, or
 * TS_ERR only for bad arguments (w or h < 1, sigma/radius < 0).
 */
#ifndef TESSERA_IMAGE_FILTER_H
#define TESSERA_IMAGE_FILTER_H

#include <stddef.h>
#include <stdint.h>

#include "image/scratch.h"

/* Gaussian blur in place, separable, kernel radius ceil(3 sigma), weights
 * normalised to sum 1. sigma == 0 leaves img unchanged. */
int filter_gaussian(float *img, int w, int h, float sigma);

/* The same from src into dst (w x h each; dst == src is allowed): the
 * result equals copying src to dst, then filter_gaussian on dst. */
int filter_gaussian_copy(const float *src, float *dst, int w, int h, float sigma);

/* The same where mask (w x h) is set, the same floats as
 * filter_gaussian_copy's there; elsewhere dst is unspecified (it may be
 * written). For an image needed only on a sparse mask (nuclei: a few per
 * cent of a window): in strips of 64 columns, only the rows of a strip
 * holding a mask pixel are blurred, and the rows their kernel reaches.
 * dst must not be src. */
int filter_gaussian_masked(const float *src, float *dst, const uint8_t *mask, int w, int h, float sigma);

/* For src >= 0 (no NaN): filter_gaussian_copy's float at every pixel
 * where that float is above floor; at every other pixel either it or 0.
 * For an image thresholded afterwards whose background is flat: in
 * strips of 64 columns every row is blurred horizontally, and the
 * vertical pass (two thirds of the cost) is done only for the rows whose
 * horizontally blurred neighbours within the kernel's reach could sum to
 * more than floor (filter.c). dst must not be src. */
int filter_gaussian_above(const float *src, float *dst, int w, int h, float sigma, float floor_);

/* Grey-level erosion (min) / dilation (max) in place with an octagonal
 * structuring element of the given radius (a close approximation of a disk:
 * a square of side 2r'+1 combined with a diamond, in O(1) per pixel per
 * pass with the van Herk / Gil-Werman algorithm). radius 0 = unchanged. */
int filter_min(float *img, int w, int h, float radius);
int filter_max(float *img, int w, int h, float radius);

/* The same with a square of half-width a (side 2a+1): cheaper (rows and
 * columns only), for where the shape does not matter. */
int filter_min_square(float *img, int w, int h, int a);
int filter_max_square(float *img, int w, int h, int a);

/* filter_max_square's values of src (no NaN) into dst where mask (w x h)
 * is set; elsewhere dst is unspecified (it may be written). For a local
 * maximum needed only on a sparse mask. dst must not be src. */
int filter_max_square_masked(const float *src, float *dst, const uint8_t *mask, int w, int h, int a);

/* Background subtraction for dark-on-light stains expressed as positive
 * density (e.g. hematoxylin OD): img -= opening(img, radius), the opening
 * being filter_min then filter_max with that radius. Structures smaller
 * than the radius keep their height; a slowly varying background goes to
 * ~0. Results are >= 0. */
int filter_background_subtract(float *img, int w, int h, float radius);

/* The same on a half-resolution copy: the background is the opening (of
 * radius / 2) of the image min-pooled by 2 x 2, spread back over each 2 x 2
 * block. Still >= 0 everywhere (the estimate never exceeds a pixel of its
 * block); a structure narrower than the radius keeps its height, as with
 * the exact filter, give or take a pixel of reach. About 4x cheaper; for
 * radii under 4 pixels the exact filter is used. */
int filter_background_subtract_coarse(float *img, int w, int h, float radius);

/* The same from src into dst (dst == src allowed): equals copying src to
 * dst, then filter_background_subtract_coarse on dst. */
int filter_background_subtract_coarse_copy(const float *src, float *dst, int w, int h, float radius);

/* filter_min, filter_max and filter_background_subtract_coarse_copy with
 * their temporary arrays taken from scratch (not NULL; scratch.h; the
 * last takes two) instead of allocated per call: the same results, the
 * scratch's contents lost. For a worker that filters window after window
 * (cellseg_ws). */
int filter_min_with(image_scratch *scratch, float *img, int w, int h, float radius);
int filter_max_with(image_scratch *scratch, float *img, int w, int h, float radius);
int filter_background_subtract_coarse_with(image_scratch scratch[2], const float *src, float *dst, int w, int h,
                                           float radius);

#endif
