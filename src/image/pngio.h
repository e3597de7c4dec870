/*
 * pngio.h - 8-bit greyscale PNG files (tissue masks) through libpng.
 */
#ifndef TESSERA_IMAGE_PNGIO_H
#define TESSERA_IMAGE_PNGIO_H

#include <stddef.h>
#include <stdint.h>

/* Writes w x h 8-bit grey pixels to path (created or truncated) and fsyncs
 * it. TS_OK / TS_ERR naming the path. */
int pngio_write_grey(const char *path, const uint8_t *px, int w, int h, char *err, size_t errlen);

/* Reads an 8-bit greyscale PNG (other colour types and depths are converted
 * to 8-bit grey) of at most max_pixels pixels into a fresh buffer (*px,
 * freed by the caller). TS_OK / TS_ERR naming the path and the problem. */
int pngio_read_grey(const char *path, size_t max_pixels, uint8_t **px, int *w, int *h, char *err,
                    size_t errlen);

#endif
