/*
 * demo_render.h - renders one tile of one pyramid level of the synthetic
 * slide from the model (internal to demo.c). Level l has downsample 2^l;
 * each of its pixels is the mean of k x k point samples in level 0
 * (k = min(2^l, 4)), so every level looks like a downsampled level 0
 * without any level being built from another.
 */
#ifndef TESSERA_IMAGE_DEMO_RENDER_H
#define TESSERA_IMAGE_DEMO_RENDER_H

#include <stdbool.h>
#include <stdint.h>

#include "image/demo_model.h"

/* Per-thread working memory (crossings, the window of nucleus-grid rows). */
typedef struct demo_scratch demo_scratch;

demo_scratch *demo_scratch_new(const demo_model *m, int tile_size);
void demo_scratch_free(demo_scratch *s);

/* Renders tile (tx, ty) of level `level`, whose size is lw x lh, into rgb
 * (tile_size^2 pixels, 3 bytes each; parts beyond the level's edge are
 * background). Returns true when the tile is pure background (rgb then
 * holds only background). Adds the tile's tissue pixels to *tissue_px at
 * level 0. */
bool demo_render_tile(const demo_model *m, demo_scratch *s, int level, int64_t lw, int64_t lh,
                      int64_t tx, int64_t ty, uint8_t *rgb, int64_t *tissue_px);

#endif
