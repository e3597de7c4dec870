/*
 * tiff_write.c - see tiff_write.h.
 *
 * The file descriptor is ours (TIFFFdOpenExt), so that the compressed bytes
 * of the first uniform tile of a level can be read back with pread and
 * rewritten for every later uniform tile with TIFFWriteRawTile: a blank
 * background is most of a slide, and encoding it once per level instead of
 * once per tile is a large speedup.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <tiffio.h>
#include <unistd.h>

#include "image/tiff_write.h"
#include "util/util.h"

struct tiffw {
    TIFF *tif;
    int fd;
    char *path;
    tiffw_options o;
    char *description;
    int level;          /* levels begun so far */
    char lib_err[256];  /* libtiff's last error message */
    /* The current level's uniform tile, once encoded. */
    uint8_t *uniform;   /* compressed bytes, or NULL */
    size_t uniform_len;
    uint8_t uniform_rgb[3];
};

/* libtiff error handler: keeps the message instead of printing it. */
static int on_tiff_error(TIFF *tif, void *user, const char *module, const char *fmt, va_list ap) {
    (void)tif;
    tiffw *w = user;
    char msg[200];
    vsnprintf(msg, sizeof(msg), fmt, ap);
    snprintf(w->lib_err, sizeof(w->lib_err), "%s%s%s", module ? module : "", module ? ": " : "",
             msg);
    return 1;
}

/* libtiff warnings are not errors; they are dropped. */
static int on_tiff_warning(TIFF *tif, void *user, const char *module, const char *fmt,
                           va_list ap) {
    (void)tif, (void)user, (void)module, (void)fmt, (void)ap;
    return 1;
}

/* "path: what: libtiff's message" into err. */
static void tiff_failure(tiffw *w, const char *what, char *err, size_t errlen) {
    ts_errf(err, errlen, "%s: %s%s%s", w->path, what, w->lib_err[0] ? ": " : "", w->lib_err);
}

/* Pessimistic: 1.5 bytes per pixel (JPEG of textured tissue stays well
 * under that at quality <= 95), levels adding a third. */
bool tiffw_need_bigtiff(int64_t width, int64_t height) {
    double est = (double)width * (double)height * 1.5 * 4.0 / 3.0;
    return est > 3e9 || width > 65535 || height > 65535;
}

/* Opens path ourselves, then hands the descriptor to libtiff with our
 * error handlers. */
int tiffw_open(const char *path, const tiffw_options *o, tiffw **out, char *err, size_t errlen) {
    *out = NULL;
    if (o->tile_size < 16 || o->tile_size % 16 != 0 || o->jpeg_quality < 1 ||
        o->jpeg_quality > 100 || !(o->mpp > 0)) {
        ts_errf(err, errlen, "tiff writer: invalid options (tile %d, quality %d, mpp %g)",
                o->tile_size, o->jpeg_quality, o->mpp);
        return TS_ERR;
    }
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        ts_errf(err, errlen, "cannot create %s: %s", path, strerror(errno));
        return TS_ERR;
    }
    tiffw *w = ts_calloc(1, sizeof(*w));
    w->fd = fd;
    w->path = ts_strdup(path);
    w->o = *o;
    w->description = o->description ? ts_strdup(o->description) : NULL;
    TIFFOpenOptions *opts = TIFFOpenOptionsAlloc();
    TIFFOpenOptionsSetErrorHandlerExtR(opts, on_tiff_error, w);
    TIFFOpenOptionsSetWarningHandlerExtR(opts, on_tiff_warning, w);
    w->tif = TIFFFdOpenExt(fd, path, o->bigtiff ? "w8" : "w", opts);
    TIFFOpenOptionsFree(opts);
    if (w->tif == NULL) {
        tiff_failure(w, "cannot start a TIFF", err, errlen);
        close(fd);
        w->fd = -1;
        tiffw_abort(w);
        return TS_ERR;
    }
    *out = w;
    return TS_OK;
}

/* Sets the tags of one level's directory. */
static int set_level_fields(tiffw *w, uint32_t width, uint32_t height, double downsample) {
    TIFF *t = w->tif;
    double res = 10000.0 / (w->o.mpp * downsample);
    int ok = TIFFSetField(t, TIFFTAG_SUBFILETYPE, w->level == 0 ? 0 : FILETYPE_REDUCEDIMAGE) &&
             TIFFSetField(t, TIFFTAG_IMAGEWIDTH, width) &&
             TIFFSetField(t, TIFFTAG_IMAGELENGTH, height) &&
             TIFFSetField(t, TIFFTAG_TILEWIDTH, (uint32_t)w->o.tile_size) &&
             TIFFSetField(t, TIFFTAG_TILELENGTH, (uint32_t)w->o.tile_size) &&
             TIFFSetField(t, TIFFTAG_BITSPERSAMPLE, 8) &&
             TIFFSetField(t, TIFFTAG_SAMPLESPERPIXEL, 3) &&
             TIFFSetField(t, TIFFTAG_PLANARCONFIG, PLANARCONFIG_CONTIG) &&
             TIFFSetField(t, TIFFTAG_COMPRESSION, COMPRESSION_JPEG) &&
             TIFFSetField(t, TIFFTAG_PHOTOMETRIC, PHOTOMETRIC_YCBCR) &&
             TIFFSetField(t, TIFFTAG_JPEGCOLORMODE, JPEGCOLORMODE_RGB) &&
             TIFFSetField(t, TIFFTAG_JPEGQUALITY, w->o.jpeg_quality) &&
             TIFFSetField(t, TIFFTAG_RESOLUTIONUNIT, RESUNIT_CENTIMETER) &&
             TIFFSetField(t, TIFFTAG_XRESOLUTION, res) &&
             TIFFSetField(t, TIFFTAG_YRESOLUTION, res) &&
             TIFFSetField(t, TIFFTAG_SOFTWARE, "tessera");
    if (ok && w->description) ok = TIFFSetField(t, TIFFTAG_IMAGEDESCRIPTION, w->description);
    return ok ? TS_OK : TS_ERR;
}

/* Finishes the previous directory (if any) and describes the next. */
int tiffw_begin_level(tiffw *w, uint32_t width, uint32_t height, double downsample, char *err,
                      size_t errlen) {
    if (width == 0 || height == 0 || !(downsample >= 1)) {
        ts_errf(err, errlen, "%s: invalid level %ux%u at downsample %g", w->path, width, height,
                downsample);
        return TS_ERR;
    }
    if (w->level > 0 && !TIFFWriteDirectory(w->tif)) {
        tiff_failure(w, "cannot write a directory", err, errlen);
        return TS_ERR;
    }
    free(w->uniform);
    w->uniform = NULL;
    w->uniform_len = 0;
    if (set_level_fields(w, width, height, downsample) != TS_OK) {
        tiff_failure(w, "cannot set the TIFF tags", err, errlen);
        return TS_ERR;
    }
    w->level++;
    return TS_OK;
}

/* Encodes one tile. libtiff does not modify 8-bit data when encoding
 * JPEG, hence the cast. */
int tiffw_write_tile(tiffw *w, uint32_t tx, uint32_t ty, const uint8_t *rgb, char *err,
                     size_t errlen) {
    uint32_t ts = (uint32_t)w->o.tile_size;
    if (w->level == 0) {
        ts_errf(err, errlen, "%s: tile written before a level was begun", w->path);
        return TS_ERR;
    }
    if (TIFFWriteTile(w->tif, (void *)rgb, tx * ts, ty * ts, 0, 0) < 0) {
        tiff_failure(w, "cannot write a tile", err, errlen);
        return TS_ERR;
    }
    return TS_OK;
}

/* Reads back the compressed bytes of tile `index` just written. */
static int read_back_tile(tiffw *w, uint32_t index, char *err, size_t errlen) {
    uint64_t *offsets = NULL, *counts = NULL;
    if (!TIFFGetField(w->tif, TIFFTAG_TILEOFFSETS, &offsets) ||
        !TIFFGetField(w->tif, TIFFTAG_TILEBYTECOUNTS, &counts) || offsets == NULL ||
        counts == NULL || counts[index] == 0) {
        tiff_failure(w, "cannot find a written tile", err, errlen);
        return TS_ERR;
    }
    size_t n = (size_t)counts[index];
    uint8_t *buf = ts_malloc(n);
    ssize_t got = pread(w->fd, buf, n, (off_t)offsets[index]);
    if (got != (ssize_t)n) {
        ts_errf(err, errlen, "%s: cannot read back a tile: %s", w->path,
                got < 0 ? strerror(errno) : "short read");
        free(buf);
        return TS_ERR;
    }
    w->uniform = buf;
    w->uniform_len = n;
    return TS_OK;
}

/* Encodes the first uniform tile of the level (or of a new colour), then
 * reuses its bytes. */
int tiffw_write_uniform_tile(tiffw *w, uint32_t tx, uint32_t ty, const uint8_t rgb[3], char *err,
                             size_t errlen) {
    uint32_t ts = (uint32_t)w->o.tile_size;
    if (w->uniform != NULL && memcmp(w->uniform_rgb, rgb, 3) == 0) {
        uint32_t index = TIFFComputeTile(w->tif, tx * ts, ty * ts, 0, 0);
        if (TIFFWriteRawTile(w->tif, index, w->uniform, (tmsize_t)w->uniform_len) < 0) {
            tiff_failure(w, "cannot write a tile", err, errlen);
            return TS_ERR;
        }
        return TS_OK;
    }
    size_t n = (size_t)ts * ts;
    uint8_t *buf = ts_malloc(n * 3);
    for (size_t i = 0; i < n; i++) memcpy(buf + 3 * i, rgb, 3);
    int rc = tiffw_write_tile(w, tx, ty, buf, err, errlen);
    free(buf);
    if (rc != TS_OK) return rc;
    free(w->uniform);
    w->uniform = NULL;
    memcpy(w->uniform_rgb, rgb, 3);
    return read_back_tile(w, TIFFComputeTile(w->tif, tx * ts, ty * ts, 0, 0), err, errlen);
}

/* The last directory, then fsync before libtiff closes the descriptor. */
int tiffw_close(tiffw *w, char *err, size_t errlen) {
    int rc = TS_OK;
    if (w->level == 0) {
        ts_errf(err, errlen, "%s: no level was written", w->path);
        rc = TS_ERR;
    } else if (!TIFFWriteDirectory(w->tif)) {
        tiff_failure(w, "cannot write a directory", err, errlen);
        rc = TS_ERR;
    } else if (fsync(w->fd) != 0) {
        ts_errf(err, errlen, "%s: fsync failed: %s", w->path, strerror(errno));
        rc = TS_ERR;
    }
    tiffw_abort(w);
    return rc;
}

/* TIFFClose also closes our descriptor. */
void tiffw_abort(tiffw *w) {
    if (w == NULL) return;
    if (w->tif) TIFFClose(w->tif);
    else if (w->fd >= 0) close(w->fd);
    free(w->uniform);
    free(w->description);
    free(w->path);
    free(w);
}
