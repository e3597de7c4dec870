/*
 * slide.c - OpenSlide behind slide.h.
 *
 * OpenSlide takes a path and opens it itself, again and again (its TIFF
 * handle cache reopens lazily). Handed a FIFO it blocks in open() for good;
 * handed a path that a tenant can swap, it reads whatever is there at that
 * moment. So a slide is first opened here as an fd (O_NONBLOCK: a FIFO or a
 * device cannot block us; O_NOFOLLOW on the resolved path: a symlink swapped
 * in at the last moment is refused), checked with fstat to be a regular
 * file, and OpenSlide is given /proc/self/fd/N: every reopen of that path
 * reaches the very inode that was checked, whatever happens to the name.
 * The fd lives as long as the handle, so the number is never reused under
 * OpenSlide. Formats that are several files found by name (MIRAX .mrxs,
 * Hamamatsu .vms/.vmu) get the checked real path instead: their companion
 * files are outside this check (documented in slide.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <openslide/openslide.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "image/slide.h"
#include "image/tiffjpeg.h"
#include "util/util.h"

#define LEVEL_TOLERANCE 1e-3 /* downsamples like 3.99997 count as 4 */
#define WHOLE_PIXEL 1e-3     /* a level position this close to a whole pixel is that pixel */
#define CHECK_READ_SIDE 64   /* pixels read at submission to prove the image decodes */

struct slide {
    openslide_t *osr;
    slide_info info;
    slide_level *levels;
    int fd; /* the checked file, open for the handle's life (see the top) */
    tiffjpeg *direct; /* levels read without OpenSlide (tiffjpeg.h); NULL = none */
};

/* A property as a positive number, or 0 when absent or not a number. */
static double property_number(openslide_t *osr, const char *name) {
    const char *v = openslide_get_property_value(osr, name);
    double d;
    if (v == NULL || ts_parse_double(v, 1e-12, 1e12, &d) != TS_OK) return 0;
    return d;
}

/* Microns per pixel from TIFF resolution tags. OpenSlide 3.4.1 reports the
 * unit as libtiff names it ("centimeter", "inch"); "none" or a missing unit
 * means the numbers carry no physical meaning, so none is derived. */
static double tiff_mpp(openslide_t *osr, const char *res_name) {
    double res = property_number(osr, res_name);
    const char *unit = openslide_get_property_value(osr, "tiff.ResolutionUnit");
    if (res <= 0 || unit == NULL) return 0;
    if (strcmp(unit, "centimeter") == 0) return 10000.0 / res;
    if (strcmp(unit, "inch") == 0) return 25400.0 / res;
    return 0;
}

/* Fills info.mpp_* from the best source the slide has. */
static void read_mpp(slide *s) {
    double x = property_number(s->osr, OPENSLIDE_PROPERTY_NAME_MPP_X);
    double y = property_number(s->osr, OPENSLIDE_PROPERTY_NAME_MPP_Y);
    s->info.mpp_source = "openslide.mpp";
    if (x <= 0) {
        x = tiff_mpp(s->osr, "tiff.XResolution");
        y = tiff_mpp(s->osr, "tiff.YResolution");
        s->info.mpp_source = "tiff.XResolution";
    }
    if (x <= 0) {
        s->info.mpp_source = "unknown";
        x = y = 0;
    }
    s->info.mpp_x = x;
    s->info.mpp_y = y > 0 ? y : x;
}

/* Reads the level table; TS_ERR with OpenSlide's message if it fails. */
static int read_levels(slide *s, char *err, size_t errlen) {
    int32_t n = openslide_get_level_count(s->osr);
    if (n < 1) goto fail;
    s->levels = ts_calloc((size_t)n, sizeof(*s->levels));
    for (int32_t i = 0; i < n; i++) {
        openslide_get_level_dimensions(s->osr, i, &s->levels[i].w, &s->levels[i].h);
        s->levels[i].downsample = openslide_get_level_downsample(s->osr, i);
        if (s->levels[i].w < 1 || s->levels[i].downsample < 1) goto fail;
    }
    s->info.levels = n;
    s->info.w = s->levels[0].w;
    s->info.h = s->levels[0].h;
    return TS_OK;
fail:
    ts_errf(err, errlen, "cannot read the image's levels: %s",
            openslide_get_error(s->osr) ? openslide_get_error(s->osr) : "no levels");
    return TS_ERR;
}

/* Formats whose slide is several files found by name next to the one
 * named: OpenSlide must be given the real name to find the others. */
static bool multi_file_format(const char *name) {
    static const char *const exts[] = {".mrxs", ".vms", ".vmu"};
    const char *dot = strrchr(name, '.');
    for (size_t i = 0; dot && i < sizeof(exts) / sizeof(exts[0]); i++)
        if (strcasecmp(dot, exts[i]) == 0) return true;
    return false;
}

/* The path OpenSlide is given for fd (see the top of this file) into via
 * (64 bytes): /proc/self/fd/N when it leads to the same inode, else name
 * (a system without /proc: the check on fd still stands, the race window
 * is back). */
static const char *openslide_path(int fd, const struct stat *checked, const char *name,
                                  char via[64]) {
    struct stat st;
    snprintf(via, 64, "/proc/self/fd/%d", fd);
    if (multi_file_format(name)) return name;
    if (stat(via, &st) == 0 && st.st_dev == checked->st_dev && st.st_ino == checked->st_ino)
        return via;
    return name;
}

/* The direct read of JPEG-tiled TIFF levels (tiffjpeg.h) for the formats
 * whose levels are plain TIFF directories read tile by tile: generic tiled
 * TIFF and Aperio SVS. Other TIFF-based formats (Ventana's overlapping
 * tiles, Philips, Leica, NDPI, ...) place their tiles in ways of their own
 * and stay with OpenSlide. */
static void open_direct(slide *s) {
    if (strcmp(s->info.vendor, "generic-tiff") != 0 && strcmp(s->info.vendor, "aperio") != 0)
        return;
    int64_t(*dims)[2] = ts_malloc((size_t)s->info.levels * sizeof(*dims));
    for (int i = 0; i < s->info.levels; i++) {
        dims[i][0] = s->levels[i].w;
        dims[i][1] = s->levels[i].h;
    }
    s->direct = tiffjpeg_open(s->fd, (const int64_t(*)[2])dims, s->info.levels);
    free(dims);
}

/* Opens the file fd refers to with OpenSlide, taking fd (closed on error).
 * name is what messages and multi-file formats use. */
static int open_fd(int fd, const char *name, slide **out, char *err, size_t errlen) {
    struct stat st;
    char via[64];
    if (slide_path_regular(fd, &st, err, errlen) != TS_OK) {
        close(fd);
        return TS_ERR;
    }
    openslide_t *osr = openslide_open(openslide_path(fd, &st, name, via));
    if (osr == NULL) {
        ts_errf(err, errlen,
                "not a slide format OpenSlide reads (Aperio .svs, tiled TIFF, NDPI, MRXS, ...)");
        close(fd);
        return TS_ERR;
    }
    if (openslide_get_error(osr)) {
        ts_errf(err, errlen, "unreadable slide: %s", openslide_get_error(osr));
        openslide_close(osr);
        close(fd);
        return TS_ERR;
    }
    slide *s = ts_calloc(1, sizeof(*s));
    s->osr = osr;
    s->fd = fd;
    const char *vendor = openslide_get_property_value(osr, OPENSLIDE_PROPERTY_NAME_VENDOR);
    s->info.vendor = vendor ? vendor : "unknown";
    if (read_levels(s, err, errlen) != TS_OK) goto fail;
    if (s->info.w < SLIDE_MIN_SIDE || s->info.h < SLIDE_MIN_SIDE) {
        ts_errf(err, errlen, "the image is %lld x %lld pixels; at least %d x %d is needed",
                (long long)s->info.w, (long long)s->info.h, SLIDE_MIN_SIDE, SLIDE_MIN_SIDE);
        goto fail;
    }
    read_mpp(s);
    open_direct(s);
    *out = s;
    return TS_OK;
fail:
    slide_close(s);
    return TS_ERR;
}

/* See slide.h: the file is opened first and must be a regular file. */
int slide_open(const char *path, slide **out, char *err, size_t errlen) {
    *out = NULL;
    int fd = open(path, SLIDE_OPEN_FLAGS);
    if (fd < 0) {
        slide_path_explain(errno, err, errlen);
        return TS_ERR;
    }
    return open_fd(fd, path, out, err, errlen);
}

void slide_close(slide *s) {
    if (s == NULL) return;
    if (s->osr) openslide_close(s->osr);
    tiffjpeg_close(s->direct);
    if (s->fd >= 0) close(s->fd); /* after OpenSlide: it may reopen through it until then */
    free(s->levels);
    free(s);
}

const slide_info *slide_get_info(const slide *s) {
    return &s->info;
}

const slide_level *slide_get_level(const slide *s, int level) {
    return level >= 0 && level < s->info.levels ? &s->levels[level] : NULL;
}

int slide_pick_level(const slide_level *levels, int n, double downsample) {
    int best = 0;
    for (int i = 1; i < n; i++)
        if (levels[i].downsample <= downsample * (1 + LEVEL_TOLERANCE) &&
            levels[i].downsample > levels[best].downsample)
            best = i;
    return best;
}

int slide_best_level(const slide *s, double downsample) {
    return slide_pick_level(s->levels, s->info.levels, downsample);
}

bool slide_level_direct(const slide *s, int level) {
    return tiffjpeg_level(s->direct, level);
}

/* The level pixel where a read from level-0 coordinate v starts, as
 * OpenSlide places it: a negative v is cut off (the level's pixel 0 lands
 * (-v) / downsample pixels in, truncated); otherwise v / downsample, which
 * the direct read can only match when it is a whole pixel (within
 * WHOLE_PIXEL, below what cairo's compositing resolves). false when it is
 * not: OpenSlide then reads it. */
static bool level_origin(int64_t v, double downsample, int64_t *out) {
    if (v < 0) {
        *out = -(int64_t)((double)-v / downsample);
        return true;
    }
    double p = (double)v / downsample;
    *out = llround(p);
    return fabs(p - (double)*out) < WHOLE_PIXEL;
}

int slide_read(slide *s, int level, int64_t x0, int64_t y0, int w, int h, uint32_t *buf,
               char *err, size_t errlen) {
    if (level < 0 || level >= s->info.levels || w < 1 || h < 1) {
        ts_errf(err, errlen, "bad region: level %d, %d x %d", level, w, h);
        return TS_ERR;
    }
    int64_t lx, ly;
    if (tiffjpeg_level(s->direct, level) && level_origin(x0, s->levels[level].downsample, &lx) &&
        level_origin(y0, s->levels[level].downsample, &ly)) {
        if (tiffjpeg_read(s->direct, level, lx, ly, w, h, buf, err, errlen) == TS_OK) return TS_OK;
        char why[TS_ERRLEN];
        ts_strlcpy(why, err, sizeof(why));
        ts_errf(err, errlen, "cannot decode the slide at level %d, (%lld, %lld): %s", level,
                (long long)x0, (long long)y0, why);
        return TS_ERR;
    }
    openslide_read_region(s->osr, buf, x0, y0, level, w, h);
    const char *e = openslide_get_error(s->osr);
    if (e) {
        ts_errf(err, errlen, "cannot decode the slide at level %d, (%lld, %lld): %s", level,
                (long long)x0, (long long)y0, e);
        return TS_ERR;
    }
    return TS_OK;
}

int slide_open_checked(const char *path, const char *data_roots, slide **out, char *err,
                       size_t errlen) {
    *out = NULL;
    char real[PATH_MAX];
    int fd;
    if (slide_resolve_path(path, data_roots, real, err, errlen) != TS_OK) return TS_ERR;
    if (slide_path_open(real, &fd, err, errlen) != TS_OK) return TS_ERR;
    slide *s = NULL;
    if (open_fd(fd, real, &s, err, errlen) != TS_OK) return TS_ERR;
    /* A truncated file can have intact directories and missing tiles: read
     * a little of the smallest level so such a file fails here, not hours
     * later in a job. */
    int level = s->info.levels - 1;
    const slide_level *l = &s->levels[level];
    int w = (int)(l->w < CHECK_READ_SIDE ? l->w : CHECK_READ_SIDE);
    int h = (int)(l->h < CHECK_READ_SIDE ? l->h : CHECK_READ_SIDE);
    uint32_t *buf = ts_malloc((size_t)w * (size_t)h * sizeof(uint32_t));
    int64_t x0 = (int64_t)((double)(l->w - w) / 2 * l->downsample);
    int64_t y0 = (int64_t)((double)(l->h - h) / 2 * l->downsample);
    int rc = slide_read(s, level, x0, y0, w, h, buf, err, errlen);
    free(buf);
    if (rc != TS_OK) {
        slide_close(s);
        return TS_ERR;
    }
    *out = s;
    return TS_OK;
}

int slide_check_path(const char *path, const char *data_roots, char *err, size_t errlen) {
    slide *s = NULL;
    if (slide_open_checked(path, data_roots, &s, err, errlen) != TS_OK) return TS_ERR;
    slide_close(s);
    return TS_OK;
}
