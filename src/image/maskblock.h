/*
 * maskblock.h - the test the image kernels share for passing over
 * background: whether a block of 64 mask bytes is empty.
 *
 * Most of an analysis window is background (a nucleus mask covers a few per
 * cent of it), so the per-pixel passes of the distance transform, the
 * watershed and the per-label passes of cell segmentation skip 64 columns
 * at a time where the mask is empty, and still vectorise inside the blocks
 * they do visit. Header-only: the test must inline into those loops.
 */
#ifndef TESSERA_IMAGE_MASKBLOCK_H
#define TESSERA_IMAGE_MASKBLOCK_H

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#define MASKBLOCK_BYTES 64

/* Whether the MASKBLOCK_BYTES mask bytes from m on are all 0: eight 64-bit
 * tests (memcpy: m need not be aligned). */
static inline bool maskblock_empty(const uint8_t *m) {
    uint64_t any = 0;
    for (int k = 0; k < MASKBLOCK_BYTES / 8; k++) {
        uint64_t v;
        memcpy(&v, m + 8 * k, sizeof(v));
        any |= v;
    }
    return any == 0;
}

#endif
