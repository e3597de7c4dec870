/*
 * slide.c - OpenSlide behind slide.h.
 */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <openslide/openslide.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "image/slide.h"
#include "util/util.h"

#define LEVEL_TOLERANCE 1e-3 /* downsamples like 3.99997 count as 4 */
#define CHECK_READ_SIDE 64   /* pixels read at submission to prove the image decodes */

struct slide {
    openslide_t *osr;
    slide_info info;
    slide_level *levels;
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

/* Says why a path OpenSlide did not recognise cannot be used: a missing or
 * unreadable file is the user's typo, not a format problem. */
static void explain_unopenable(const char *path, char *err, size_t errlen) {
    struct stat st;
    if (stat(path, &st) != 0)
        ts_errf(err, errlen, "%s", errno == ENOENT ? "no such file" : strerror(errno));
    else if (!S_ISREG(st.st_mode))
        ts_errf(err, errlen, "not a regular file");
    else if (access(path, R_OK) != 0)
        ts_errf(err, errlen, "unreadable: %s", strerror(errno));
    else
        ts_errf(err, errlen,
                "not a slide format OpenSlide reads (Aperio .svs, tiled TIFF, NDPI, MRXS, ...)");
}

int slide_open(const char *path, slide **out, char *err, size_t errlen) {
    *out = NULL;
    openslide_t *osr = access(path, R_OK) == 0 ? openslide_open(path) : NULL;
    if (osr == NULL) {
        explain_unopenable(path, err, errlen);
        return TS_ERR;
    }
    if (openslide_get_error(osr)) {
        ts_errf(err, errlen, "unreadable slide: %s", openslide_get_error(osr));
        openslide_close(osr);
        return TS_ERR;
    }
    slide *s = ts_calloc(1, sizeof(*s));
    s->osr = osr;
    const char *vendor = openslide_get_property_value(osr, OPENSLIDE_PROPERTY_NAME_VENDOR);
    s->info.vendor = vendor ? vendor : "unknown";
    if (read_levels(s, err, errlen) != TS_OK) goto fail;
    if (s->info.w < SLIDE_MIN_SIDE || s->info.h < SLIDE_MIN_SIDE) {
        ts_errf(err, errlen, "the image is %lld x %lld pixels; at least %d x %d is needed",
                (long long)s->info.w, (long long)s->info.h, SLIDE_MIN_SIDE, SLIDE_MIN_SIDE);
        goto fail;
    }
    read_mpp(s);
    *out = s;
    return TS_OK;
fail:
    slide_close(s);
    return TS_ERR;
}

void slide_close(slide *s) {
    if (s == NULL) return;
    if (s->osr) openslide_close(s->osr);
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

int slide_read(slide *s, int level, int64_t x0, int64_t y0, int w, int h, uint32_t *buf,
               char *err, size_t errlen) {
    if (level < 0 || level >= s->info.levels || w < 1 || h < 1) {
        ts_errf(err, errlen, "bad region: level %d, %d x %d", level, w, h);
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

/* True when the resolved path lies inside the resolved root: equal to it
 * or below it (a prefix ending at a '/'). */
static bool path_under(const char *real, const char *root) {
    size_t n = strlen(root);
    if (n == 1 && root[0] == '/') return true;
    return strncmp(real, root, n) == 0 && (real[n] == '/' || real[n] == '\0');
}

/* Resolves path and checks it against each root; writes the resolved path
 * into real (PATH_MAX). */
int slide_resolve_path(const char *path, const char *data_roots, char *real, char *err,
                       size_t errlen) {
    if (path[0] != '/') {
        ts_errf(err, errlen, "must be an absolute path");
        return TS_ERR;
    }
    if (realpath(path, real) == NULL) {
        explain_unopenable(path, err, errlen);
        return TS_ERR;
    }
    char *roots = ts_strdup(data_roots ? data_roots : "");
    bool inside = false;
    char *save = NULL;
    for (char *r = strtok_r(roots, ":", &save); r && !inside; r = strtok_r(NULL, ":", &save)) {
        char real_root[PATH_MAX];
        if (realpath(r, real_root) != NULL && path_under(real, real_root)) inside = true;
    }
    free(roots);
    if (!inside) {
        ts_errf(err, errlen, "outside the data roots (%s)",
                data_roots && data_roots[0] ? data_roots : "none configured");
        return TS_ERR;
    }
    return TS_OK;
}

int slide_open_checked(const char *path, const char *data_roots, slide **out, char *err,
                       size_t errlen) {
    *out = NULL;
    char real[PATH_MAX];
    if (slide_resolve_path(path, data_roots, real, err, errlen) != TS_OK) return TS_ERR;
    slide *s = NULL;
    if (slide_open(real, &s, err, errlen) != TS_OK) return TS_ERR;
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
