/*
 * pngio.c - libpng's simplified API behind pngio.h.
 *
 * The simplified API (png_image) does the colour conversion and keeps the
 * setjmp handling inside libpng, so no longjmp crosses tessera's code.
 */
#include <errno.h>
#include <png.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "image/pngio.h"
#include "util/util.h"

int pngio_write_grey(const char *path, const uint8_t *px, int w, int h, char *err, size_t errlen) {
    FILE *fp = fopen(path, "wb");
    if (fp == NULL) {
        ts_errf(err, errlen, "%s: %s", path, strerror(errno));
        return TS_ERR;
    }
    png_image img;
    memset(&img, 0, sizeof(img));
    img.version = PNG_IMAGE_VERSION;
    img.width = (png_uint_32)w;
    img.height = (png_uint_32)h;
    img.format = PNG_FORMAT_GRAY;
    int ok = png_image_write_to_stdio(&img, fp, 0, px, w, NULL);
    if (!ok) ts_errf(err, errlen, "%s: cannot write PNG: %s", path, img.message);
    png_image_free(&img);
    if (ok && (fflush(fp) != 0 || fsync(fileno(fp)) != 0)) {
        ts_errf(err, errlen, "%s: %s", path, strerror(errno));
        ok = 0;
    }
    if (fclose(fp) != 0 && ok) {
        ts_errf(err, errlen, "%s: %s", path, strerror(errno));
        ok = 0;
    }
    return ok ? TS_OK : TS_ERR;
}

int pngio_read_grey(const char *path, size_t max_pixels, uint8_t **px, int *w, int *h, char *err,
                    size_t errlen) {
    *px = NULL;
    png_image img;
    memset(&img, 0, sizeof(img));
    img.version = PNG_IMAGE_VERSION;
    if (!png_image_begin_read_from_file(&img, path)) {
        ts_errf(err, errlen, "%s: cannot read PNG: %s", path, img.message);
        return TS_ERR;
    }
    if ((size_t)img.width * img.height > max_pixels) {
        ts_errf(err, errlen, "%s: %u x %u pixels is more than the %zu allowed", path, img.width,
                img.height, max_pixels);
        png_image_free(&img);
        return TS_ERR;
    }
    img.format = PNG_FORMAT_GRAY;
    uint8_t *buf = ts_malloc(PNG_IMAGE_SIZE(img));
    if (!png_image_finish_read(&img, NULL, buf, 0, NULL)) {
        ts_errf(err, errlen, "%s: cannot decode PNG: %s", path, img.message);
        free(buf);
        png_image_free(&img);
        return TS_ERR;
    }
    *w = (int)img.width;
    *h = (int)img.height;
    *px = buf;
    return TS_OK;
}
