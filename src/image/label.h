/*
 * label.h - connected-component labelling.
 */
#ifndef TESSERA_IMAGE_LABEL_H
#define TESSERA_IMAGE_LABEL_H

#include <stdint.h>

/* Labels the components of non-zero mask pixels with 1..n in the raster
 * order of each component's first pixel; background gets 0. connectivity
 * is 4 or 8. Returns n (>= 0), or -1 on bad arguments. */
int label_components(const uint8_t *mask, int w, int h, int connectivity, int32_t *labels);

#endif
