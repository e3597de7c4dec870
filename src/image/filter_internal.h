/*
 * filter_internal.h - what filter.c (min/max filters) and filter_gauss.c
 * (Gaussians) share: the argument check and the mask test of their
 * strips. Not a public interface.
 */
#ifndef TESSERA_IMAGE_FILTER_INTERNAL_H
#define TESSERA_IMAGE_FILTER_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "util/util.h"

/* Columns per strip of the strip-wise filters (the masked ones, and the
 * column pass of the min filter): a strip's rows stay in cache. */
#define FILTER_STRIP 64

/* Common argument check: image present and non-empty, parameter >= 0 and
 * not NaN (infinity is allowed for radii and handled by the callers). */
static inline int filter_check(const float *img, int w, int h, float param) {
    if (img == NULL || w < 1 || h < 1 || !(param >= 0)) return TS_ERR;
    return TS_OK;
}

/* Whether any of the n mask bytes from m on is set. */
static inline bool filter_any(const uint8_t *m, int n) {
    int j = 0;
    for (uint64_t v; j + 8 <= n; j += 8) {
        memcpy(&v, m + j, sizeof(v));
        if (v) return true;
    }
    for (; j < n; j++)
        if (m[j]) return true;
    return false;
}

#endif
