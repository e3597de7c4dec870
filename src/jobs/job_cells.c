/*
 * job_cells.c - the `cell_segmentation` job type (DESIGN §5): every nucleus
 * and cell of a slide, tile by tile.
 *
 * The slide is analysed at pixel_size_um (read from the nearest finer
 * pyramid level, resized when the level does not match). The analysis
 * image is cut into tiles of tile_size; each tile is read with a margin
 * wide enough to hold any nucleus and its cell plus the filters' reach, so
 * an object on a seam is seen whole by both tiles and kept only by the one
 * holding its centroid (cellseg.h): no cell is lost or doubled. With an
 * upstream tissue_mask on the same image, tiles without tissue are not read
 * and cells outside the mask are dropped.
 *
 * Tiles run on a pool of threads; results are written in tile order as they
 * come (cells.geojson, cells.csv), so memory is bounded by the threads'
 * windows, never by the slide or the number of cells.
 */
#include <errno.h>
#include <malloc.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "image/cellseg.h"
#include "image/stain.h"
#include "image/geojson.h"
#include "image/pngio.h"
#include "image/resample.h"
#include "image/tiles.h"
#include "jobs/cells_survey.h"
#include "jobs/job_image.h"
#include "util/util.h"

#define MAX_MASK_PIXELS (256L * 1024 * 1024)
#define PEAK_RADIUS_UM 3.0 /* about a small nucleus's radius: see cellseg.h */
#define CONCAVE_DEPTH_UM 0.5  /* notches shallower than this are outline noise; see concave.h */
#define CONCAVE_SMOOTH_UM 0.5 /* an outline's spurs and slits this thin are not notches */
#define CONCAVE_RATIO 0.5f    /* (depth_a + depth_b) / cut length; see concave.h */
#define SEED_RATIO 1.3f /* (1 + peak) / (1 + saddle) distance of a split; see cellseg.h */

static const char *const stains[] = {"auto", "he", "hdab", NULL};

static const job_param cells_params[] = {
    {.name = "pixel_size_um", .type = PARAM_NUMBER, .min = 0.05, .max = 50, .def_number = 0.5,
     .description = "Resolution of the analysis, µm per pixel."},
    {.name = "stain", .type = PARAM_ENUM, .choices = stains, .def_string = "auto",
     .description = "he: hematoxylin and eosin; hdab: hematoxylin and DAB; auto: told from the "
                    "slide. Stain vectors are estimated from the slide (Macenko)."},
    {.name = "stain_vectors", .type = PARAM_VECTORS,
     .description = "Explicit stain OD vectors [[r,g,b] hematoxylin, [r,g,b] eosin or DAB, "
                    "optional residual], used instead of estimating them."},
    {.name = "background_radius_um", .type = PARAM_NUMBER, .min = 0, .max = 1000, .def_number = 8,
     .description = "Radius of the opening that estimates the background (0 = none), µm."},
    {.name = "sigma_um", .type = PARAM_NUMBER, .min = 0, .max = 100, .def_number = 1.5,
     .description = "Gaussian smoothing before the threshold, µm."},
    {.name = "threshold", .type = PARAM_NUMBER_AUTO, .min = 0, .max = 5, .def_string = "auto",
     .description = "Hematoxylin optical density above which a pixel is nucleus; \"auto\": "
                    "chosen once per slide from its tissue's hematoxylin (background level and noise, Otsu)."},
    {.name = "min_area_um2", .type = PARAM_NUMBER, .min = 0, .max = 1e6, .def_number = 10,
     .description = "Smallest nucleus kept, µm²."},
    {.name = "max_area_um2", .type = PARAM_NUMBER, .min = 0, .max = 1e6, .def_number = 400,
     .description = "Largest nucleus expected, µm²: larger objects are split (with split) or "
                    "dropped (without)."},
    {.name = "split", .type = PARAM_BOOL, .def_number = 1,
     .description = "Split touching nuclei with a distance-transform watershed."},
    {.name = "refine_boundary", .type = PARAM_BOOL, .def_number = 1,
     .description = "Move each nucleus outline to half its peak stain (undoes the smoothing's spread)."},
    {.name = "cell_expansion_um", .type = PARAM_NUMBER, .min = 0, .max = 100, .def_number = 5,
     .description = "How far a cell extends beyond its nucleus, µm."},
    {.name = "tile_size", .type = PARAM_INT, .min = 128, .max = 8192, .def_number = 1024,
     .description = "Tile edge in analysis pixels (memory per thread grows with its square)."},
    {.name = "threads", .type = PARAM_INT, .min = 0, .max = 256, .def_number = 0,
     .description = "Worker threads; 0 = the job's cpus."},
};
#define N_PARAMS (sizeof(cells_params) / sizeof(cells_params[0]))

#define P(name) params_number(cells_params, N_PARAMS, ctx->params, name)

static int cells_validate(json_t *params, const char *image_path, char *err, size_t errlen) {
    (void)image_path;
    double v[3][3];
    int nv = params_vectors(params, "stain_vectors", v);
    color_stains cs;
    if (nv >= 2 && color_stains_from(&cs, v[0], v[1], nv == 3 ? v[2] : NULL) != TS_OK) {
        ts_errf(err, errlen, "params.stain_vectors: the vectors are (nearly) parallel, so the "
                             "stains cannot be told apart");
        return TS_ERR;
    }
    double lo = params_number(cells_params, N_PARAMS, params, "min_area_um2");
    double hi = params_number(cells_params, N_PARAMS, params, "max_area_um2");
    if (lo >= hi) {
        ts_errf(err, errlen, "params.min_area_um2: must be less than params.max_area_um2 (%g >= %g)",
                lo, hi);
        return TS_ERR;
    }
    return TS_OK;
}

/* The tissue mask of an upstream tissue_mask job, in its own grid. */
typedef struct tissue {
    uint8_t *px;
    int w, h;
    double downsample; /* level-0 pixels per mask pixel */
    double mpp;
} tissue;

typedef struct thread_buf {
    uint32_t *src, *rgb;
    cellseg_ws *ws;
    cellseg_cell *cells;
    size_t n_cells;
    int win_x, win_y; /* of the tile last worked on */
} thread_buf;

typedef struct run {
    job_ctx *ctx;
    slide *s;
    cellseg_params cp;
    double downsample, factor, mpp; /* level-0 px per analysis px; level px per analysis px */
    int level;
    int64_t aw, ah;                 /* analysis image */
    int tile, margin, nx, ny;
    tissue mask;
    bool has_mask;
    thread_buf *tb;
    geojson_writer *gj;
    FILE *csv;
    char *csv_path;
    size_t tiles_done, tiles_total, tiles_read;
    int64_t count;
    double sum_nucleus_area_um2;
    survey_result survey;
} run;

/* Loads the mask and grid of an upstream tissue_mask's results. */
static int load_tissue(const job_input *in, tissue *t, char *err, size_t errlen) {
    char *summary_path = jobimg_path(in->result_dir, "summary.json");
    char *png_path = jobimg_path(in->result_dir, "mask.png");
    json_error_t jerr;
    json_t *summary = json_load_file(summary_path, 0, &jerr);
    int rc = TS_ERR;
    if (summary == NULL) {
        ts_errf(err, errlen, "upstream tissue_mask %s: %s: %s", in->job_id, summary_path, jerr.text);
        goto cleanup;
    }
    t->downsample = json_number_value(json_object_get(summary, "downsample"));
    t->mpp = json_number_value(json_object_get(summary, "analysis_mpp"));
    if (t->downsample < 1 || t->mpp <= 0) {
        ts_errf(err, errlen, "upstream tissue_mask %s: summary.json has no downsample", in->job_id);
        goto cleanup;
    }
    if (pngio_read_grey(png_path, MAX_MASK_PIXELS, &t->px, &t->w, &t->h, err, errlen) != TS_OK)
        goto cleanup;
    rc = TS_OK;
cleanup:
    json_decref(summary);
    free(summary_path);
    free(png_path);
    return rc;
}

/* True if the mask has tissue anywhere in the level-0 rectangle. */
static bool mask_any(const tissue *t, double x0, double y0, double x1, double y1) {
    int ax = (int)floor(x0 / t->downsample), ay = (int)floor(y0 / t->downsample);
    int bx = (int)ceil(x1 / t->downsample), by = (int)ceil(y1 / t->downsample);
    ax = ax < 0 ? 0 : ax;
    ay = ay < 0 ? 0 : ay;
    bx = bx > t->w ? t->w : bx;
    by = by > t->h ? t->h : by;
    for (int y = ay; y < by; y++)
        for (int x = ax; x < bx; x++)
            if (t->px[(size_t)y * (size_t)t->w + (size_t)x]) return true;
    return false;
}

typedef struct keep_arg {
    const run *r;
    int win_x, win_y;
} keep_arg;

/* cellseg_keep_fn: the nucleus centroid is on tissue. */
static bool keep_in_tissue(void *arg, double cx, double cy) {
    const keep_arg *k = arg;
    const tissue *t = &k->r->mask;
    double x = (k->win_x + cx) * k->r->downsample / t->downsample;
    double y = (k->win_y + cy) * k->r->downsample / t->downsample;
    if (x < 0 || y < 0 || x >= t->w || y >= t->h) return false;
    return t->px[(size_t)y * (size_t)t->w + (size_t)x] != 0;
}

/* survey_tissue_fn: analysis pixel (ax, ay) is inside the upstream mask. */
static bool survey_in_mask(void *arg, double ax, double ay) {
    const run *r = arg;
    const tissue *t = &r->mask;
    double x = ax * r->downsample / t->downsample, y = ay * r->downsample / t->downsample;
    if (x < 0 || y < 0 || x >= t->w || y >= t->h) return false;
    return t->px[(size_t)y * (size_t)t->w + (size_t)x] != 0;
}

/* survey_tile_fn: the tile has tissue in the upstream mask. */
static bool survey_tile_in_mask(void *arg, int tx, int ty) {
    const run *r = arg;
    double x0 = (double)tx * r->tile * r->downsample, y0 = (double)ty * r->tile * r->downsample;
    return mask_any(&r->mask, x0, y0, x0 + r->tile * r->downsample, y0 + r->tile * r->downsample);
}

/* The per-slide decisions (stains, threshold) before any tile runs. */
static int survey(run *r, char *err, size_t errlen) {
    job_ctx *ctx = r->ctx;
    const char *st = params_string(cells_params, N_PARAMS, ctx->params, "stain");
    stain_kind kind = strcmp(st, "he") == 0 ? STAIN_HE : strcmp(st, "hdab") == 0 ? STAIN_HDAB : STAIN_AUTO;
    double given[3][3];
    int n_given = params_vectors(ctx->params, "stain_vectors", given);
    survey_grid g = {.s = r->s, .level = r->level, .downsample = r->downsample, .factor = r->factor,
                     .mpp = r->mpp, .aw = r->aw, .ah = r->ah, .tile = r->tile, .nx = r->nx, .ny = r->ny};
    bool is_auto = params_is_auto(cells_params, N_PARAMS, ctx->params, "threshold");
    job_progress(ctx, 0, (double)r->tiles_total + 1, "estimating stains and threshold");
    if (survey_run(&g, kind, given, n_given, is_auto, P("threshold"), &r->cp,
                   r->has_mask ? survey_in_mask : NULL, r->has_mask ? survey_tile_in_mask : NULL, r,
                   &r->survey, err, errlen) != TS_OK)
        return TS_ERR;
    r->cp.stains = &r->survey.stains;
    r->cp.threshold = (float)r->survey.threshold;
    r->cp.typical_area = (float)r->survey.typical_area;
    return TS_OK;
}

/* Reads and segments tile `tile` into the thread's buffer. */
static int work_tile(void *arg, int thread, size_t tile, char *err, size_t errlen) {
    run *r = arg;
    thread_buf *b = &r->tb[thread];
    int tx = (int)(tile % (size_t)r->nx), ty = (int)(tile / (size_t)r->nx);
    int cx0 = tx * r->tile, cy0 = ty * r->tile;
    int cw = (int)(r->aw - cx0 < r->tile ? r->aw - cx0 : r->tile);
    int ch = (int)(r->ah - cy0 < r->tile ? r->ah - cy0 : r->tile);
    b->n_cells = 0;
    b->win_x = cx0 - r->margin;
    b->win_y = cy0 - r->margin;
    if (r->has_mask && !mask_any(&r->mask, cx0 * r->downsample, cy0 * r->downsample,
                                 (cx0 + cw) * r->downsample, (cy0 + ch) * r->downsample))
        return TS_OK;
    int ww = cw + 2 * r->margin, wh = ch + 2 * r->margin;
    int sw = (int)lround(ww * r->factor), sh = (int)lround(wh * r->factor);
    bool same = sw == ww && sh == wh;
    if (slide_read(r->s, r->level, (int64_t)llround(b->win_x * r->downsample),
                   (int64_t)llround(b->win_y * r->downsample), sw, sh, same ? b->rgb : b->src,
                   err, errlen) != TS_OK)
        return TS_ERR;
    if (!same) resample_rgb(b->src, sw, sh, b->rgb, ww, wh);
    keep_arg k = {.r = r, .win_x = b->win_x, .win_y = b->win_y};
    if (cellseg_window(b->ws, b->rgb, ww, wh, &r->cp, r->margin, r->margin, r->margin + cw,
                       r->margin + ch, r->has_mask ? keep_in_tissue : NULL, &k, &b->cells,
                       &b->n_cells) != TS_OK) {
        ts_errf(err, errlen, "segmentation failed in tile %zu", tile);
        return TS_ERR;
    }
    __atomic_add_fetch(&r->tiles_read, 1, __ATOMIC_RELAXED);
    return TS_OK;
}

/* Window pixels to level-0 pixels, in place. */
static void ring_to_level0(contour_ring *ring, const run *r, int win_x, int win_y) {
    for (size_t i = 0; i < ring->n; i++) {
        ring->pts[i].x = (ring->pts[i].x + win_x) * r->downsample;
        ring->pts[i].y = (ring->pts[i].y + win_y) * r->downsample;
    }
}

/* One cell as a QuPath cell object and a CSV row. */
static int write_cell(run *r, cellseg_cell *c, int win_x, int win_y, char *err, size_t errlen) {
    double um = r->mpp, um2 = um * um;
    double x_px = (c->cx + win_x) * r->downsample, y_px = (c->cy + win_y) * r->downsample;
    double x_um = (c->cx + win_x) * um, y_um = (c->cy + win_y) * um;
    double area = c->nucleus_area * um2, perim = c->nucleus_perimeter * um;
    double circ = perim > 0 ? 4 * M_PI * c->nucleus_area / (c->nucleus_perimeter * c->nucleus_perimeter) : 0;
    if (circ > 1) circ = 1;
    char id[32];
    snprintf(id, sizeof(id), "cell-%lld", (long long)r->count + 1);
    ring_to_level0(&c->nucleus, r, win_x, win_y);
    ring_to_level0(&c->cell, r, win_x, win_y);
    /* The second stain's measurements are named after it, as QuPath does. */
    bool dab = r->survey.stain.kind == STAIN_HDAB;
    json_t *props = json_pack(
        "{s:s, s:{s:s, s:[iii]}, s:{s:f, s:f, s:f, s:f, s:f, s:f, s:f, s:f, s:f, s:f}}",
        "objectType", "cell", "classification", "name", "Nucleus", "color", 40, 40, 200,
        "measurements", "Centroid X µm", x_um, "Centroid Y µm", y_um, "Nucleus: Area µm^2", area,
        "Nucleus: Perimeter µm", perim, "Nucleus: Circularity", circ,
        "Nucleus: Hematoxylin OD mean", c->nucleus_h,
        dab ? "Nucleus: DAB OD mean" : "Nucleus: Eosin OD mean", c->nucleus_e,
        "Cell: Area µm^2", c->cell_area * um2, "Cell: Hematoxylin OD mean", c->cell_h,
        dab ? "Cell: DAB OD mean" : "Cell: Eosin OD mean", c->cell_e);
    geojson_polygon cell = {.rings = &c->cell, .n = 1}, nucleus = {.rings = &c->nucleus, .n = 1};
    int rc = geojson_feature(r->gj, id, &cell, 1, &nucleus, props, err, errlen);
    json_decref(props);
    if (rc != TS_OK) return TS_ERR;
    if (fprintf(r->csv, "%s,%.2f,%.2f,%.2f,%.2f,%.3f,%.3f,%.4f,%.3f,%.4f,%.4f,%.4f,%.4f\n", id,
                x_um, y_um, x_px, y_px, area, perim, circ, c->cell_area * um2, c->nucleus_h,
                c->nucleus_e, c->cell_h, c->cell_e) < 0) {
        ts_errf(err, errlen, "%s: %s", r->csv_path, strerror(errno));
        return TS_ERR;
    }
    r->count++;
    r->sum_nucleus_area_um2 += area;
    return TS_OK;
}

/* tiles_emit_fn: writes the tile's cells, in tile order. */
static int emit_tile(void *arg, int thread, size_t tile, char *err, size_t errlen) {
    run *r = arg;
    thread_buf *b = &r->tb[thread];
    (void)tile;
    for (size_t i = 0; i < b->n_cells; i++)
        if (write_cell(r, &b->cells[i], b->win_x, b->win_y, err, errlen) != TS_OK) return TS_ERR;
    r->tiles_done++;
    char msg[96];
    snprintf(msg, sizeof(msg), "%zu of %zu tiles, %lld cells", r->tiles_done, r->tiles_total,
             (long long)r->count);
    job_progress(r->ctx, (double)r->tiles_done, (double)r->tiles_total + 1, msg);
    return TS_OK;
}

/* Converts the µm parameters to analysis pixels and sizes tiles and the
 * margin: the margin holds the largest nucleus, its cell, and the reach
 * of the background filter and the Gaussian, so cells owned by a tile are
 * computed as if the slide had no seams. */
static int plan(run *r, char *err, size_t errlen) {
    job_ctx *ctx = r->ctx;
    const slide_info *info = slide_get_info(r->s);
    double px = P("pixel_size_um");
    r->downsample = px / info->mpp_x;
    r->mpp = px;
    r->level = slide_best_level(r->s, r->downsample < 1 ? 1 : r->downsample);
    r->factor = r->downsample / slide_get_level(r->s, r->level)->downsample;
    r->aw = (int64_t)ceil((double)info->w / r->downsample);
    r->ah = (int64_t)ceil((double)info->h / r->downsample);
    if (r->aw > INT32_MAX / 2 || r->ah > INT32_MAX / 2) {
        ts_errf(err, errlen, "params.pixel_size_um: %g µm/px is too fine for a %lld x %lld slide",
                px, (long long)info->w, (long long)info->h);
        return TS_ERR;
    }
    double r_max = sqrt(P("max_area_um2") / M_PI);
    r->cp = (cellseg_params){
        .background_radius = (float)(P("background_radius_um") / px),
        .sigma = (float)(P("sigma_um") / px),
        .threshold = 0, /* set by the survey */
        .min_area = (float)(P("min_area_um2") / (px * px)),
        .max_area = (float)(P("max_area_um2") / (px * px)),
        .split = params_bool(cells_params, N_PARAMS, ctx->params, "split"),
        .refine = params_bool(cells_params, N_PARAMS, ctx->params, "refine_boundary"),
        .expansion = (float)(P("cell_expansion_um") / px),
        .seed_ratio = SEED_RATIO,
        .peak_radius = (float)(PEAK_RADIUS_UM / px),
        .concave_depth = (float)(CONCAVE_DEPTH_UM / px),
        .concave_smooth = (float)(CONCAVE_SMOOTH_UM / px),
        .concave_ratio = CONCAVE_RATIO,
        .simplify = 0.5f,
    };
    r->margin = (int)ceil((2 * r_max + P("cell_expansion_um") + P("background_radius_um") +
                           3 * P("sigma_um")) / px) + 2;
    r->tile = (int)P("tile_size");
    r->nx = (int)((r->aw + r->tile - 1) / r->tile);
    r->ny = (int)((r->ah + r->tile - 1) / r->tile);
    r->tiles_total = (size_t)r->nx * (size_t)r->ny;
    return TS_OK;
}

static void alloc_threads(run *r, int threads) {
    int win = r->tile + 2 * r->margin;
    int src = (int)ceil(win * r->factor) + 2;
    r->tb = ts_calloc((size_t)threads, sizeof(thread_buf));
    for (int i = 0; i < threads; i++) {
        r->tb[i].rgb = ts_malloc((size_t)win * win * sizeof(uint32_t));
        r->tb[i].src = ts_malloc((size_t)src * src * sizeof(uint32_t));
        r->tb[i].ws = cellseg_ws_new(win, win);
    }
}

static void free_threads(run *r, int threads) {
    for (int i = 0; r->tb && i < threads; i++) {
        free(r->tb[i].rgb);
        free(r->tb[i].src);
        cellseg_ws_free(r->tb[i].ws);
    }
    free(r->tb);
}

/* The CSV header; the second stain's columns are named after it. */
static int write_csv_header(run *r) {
    const char *s = r->survey.stain.kind == STAIN_HDAB ? "dab" : "eosin";
    return fprintf(r->csv,
                   "id,centroid_x_um,centroid_y_um,centroid_x_px,centroid_y_px,nucleus_area_um2,"
                   "nucleus_perimeter_um,nucleus_circularity,cell_area_um2,"
                   "nucleus_hematoxylin_od_mean,nucleus_%s_od_mean,cell_hematoxylin_od_mean,"
                   "cell_%s_od_mean\n", s, s) < 0 ? TS_ERR : TS_OK;
}

static int open_outputs(run *r, char *err, size_t errlen) {
    char *gj = jobimg_path(r->ctx->out_dir, "cells.geojson");
    int rc = geojson_open(gj, &r->gj, err, errlen);
    free(gj);
    if (rc != TS_OK) return TS_ERR;
    r->csv_path = jobimg_path(r->ctx->out_dir, "cells.csv");
    r->csv = fopen(r->csv_path, "w");
    if (r->csv == NULL || write_csv_header(r) != TS_OK) {
        ts_errf(err, errlen, "%s: %s", r->csv_path, strerror(errno));
        return TS_ERR;
    }
    return TS_OK;
}

/* Flushes, fsyncs and closes both outputs; TS_ERR if anything was lost. */
static int close_outputs(run *r, char *err, size_t errlen) {
    int rc = geojson_close(r->gj, err, errlen);
    r->gj = NULL;
    if (fflush(r->csv) != 0 || fsync(fileno(r->csv)) != 0 || ferror(r->csv)) {
        ts_errf(err, errlen, "%s: %s", r->csv_path, strerror(errno));
        rc = TS_ERR;
    }
    if (fclose(r->csv) != 0 && rc == TS_OK) {
        ts_errf(err, errlen, "%s: %s", r->csv_path, strerror(errno));
        rc = TS_ERR;
    }
    r->csv = NULL;
    return rc;
}

/* Every parameter as used (defaults filled in). */
static json_t *params_used(const run *r) {
    json_t *params = json_object();
    for (size_t i = 0; i < N_PARAMS; i++) {
        const job_param *p = &cells_params[i];
        json_t *v = json_object_get(r->ctx->params, p->name);
        if (p->type == PARAM_BOOL)
            v = json_boolean(params_bool(cells_params, N_PARAMS, r->ctx->params, p->name));
        else if (v != NULL)
            v = json_deep_copy(v);
        else if (p->type == PARAM_NUMBER || p->type == PARAM_INT)
            v = json_real(p->def_number);
        else
            v = p->def_string ? json_string(p->def_string) : json_null();
        json_object_set_new(params, p->name, v);
    }
    return params;
}

static json_t *vec_json(const double v[3]) {
    return json_pack("[f,f,f]", round(v[0] * 1e4) / 1e4, round(v[1] * 1e4) / 1e4,
                     round(v[2] * 1e4) / 1e4);
}

/* The stains used: which, where from, the vectors (as QuPath shows them). */
static json_t *stain_json(const survey_result *sv) {
    const stain_estimate *e = &sv->stain;
    bool dab = e->kind == STAIN_HDAB;
    const char *source = sv->stain_given ? "params.stain_vectors"
                         : e->estimated  ? "estimated (Macenko)"
                                         : "default (Ruifrok-Johnston)";
    json_t *j = json_pack("{s:s, s:s, s:o, s:o, s:s, s:s, s:I, s:i}", "type", dab ? "hdab" : "he",
                          "source", source, "hematoxylin", vec_json(e->v1), dab ? "dab" : "eosin",
                          vec_json(e->v2), "second_stain", dab ? "DAB" : "Eosin", "note", e->reason,
                          "pixels", (json_int_t)e->pixels, "windows", sv->windows);
    if (!sv->stain_given) {
        json_object_set_new(j, "level_read", json_integer(sv->stain_level));
        json_object_set_new(j, "mpp", json_real(sv->stain_mpp));
    }
    return j;
}

static json_t *threshold_json(const survey_result *sv) {
    if (!sv->threshold_auto) return json_pack("{s:s, s:f}", "method", "given", "value", sv->threshold);
    return json_pack("{s:s, s:f, s:f, s:f, s:f, s:f, s:f, s:I, s:i}", "method",
                     "auto (tissue hematoxylin: half-way from its background to Otsu, above its noise)",
                     "value", sv->threshold, "otsu", sv->otsu, "background", sv->background,
                     "background_spread", sv->spread, "factor", SURVEY_OTSU_FACTOR,
                     "noise_spreads", SURVEY_NOISE_SPREADS,
                     "tissue_pixels", (json_int_t)sv->tissue_pixels, "windows", sv->windows);
}

static json_t *summary_json(const run *r, double seconds, int threads) {
    const slide_info *info = slide_get_info(r->s);
    double area_mm2;
    if (r->has_mask) {
        size_t on = 0;
        for (size_t i = 0; i < (size_t)r->mask.w * r->mask.h; i++) on += r->mask.px[i] != 0;
        area_mm2 = (double)on * r->mask.mpp * r->mask.mpp / 1e6;
    } else {
        area_mm2 = (double)info->w * info->h * info->mpp_x * info->mpp_y / 1e6;
    }
    json_t *out = json_pack("{s:I, s:f, s:s, s:f, s:f, s:f, s:f, s:i, s:f, s:I, s:I, s:i, s:I, s:I, s:i, s:f, s:o, s:s?, s:s, s:s}",
                     "count", (json_int_t)r->count, "area_mm2", area_mm2, "area_source",
                     r->has_mask ? "tissue_mask" : "whole slide", "density_per_mm2",
                     area_mm2 > 0 ? r->count / area_mm2 : 0.0, "mean_nucleus_area_um2",
                     r->count ? r->sum_nucleus_area_um2 / r->count : 0.0, "mpp", info->mpp_x,
                     "analysis_mpp", r->mpp, "level_read", r->level, "downsample", r->downsample,
                     "width", (json_int_t)info->w, "height", (json_int_t)info->h, "tile_size",
                     r->tile, "tiles", (json_int_t)r->tiles_total, "tiles_read",
                     (json_int_t)r->tiles_read, "threads", threads, "seconds", seconds, "params",
                     params_used(r), "tissue_mask_job", r->has_mask ? "upstream" : NULL, "cells",
                     "cells.geojson", "table", "cells.csv");
    json_object_set_new(out, "stain", stain_json(&r->survey));
    json_object_set_new(out, "threshold", threshold_json(&r->survey));
    json_object_set_new(out, "typical_nucleus",
                        json_pack("{s:f, s:I, s:s}", "area_um2",
                                  r->survey.typical_area * r->mpp * r->mpp, "nuclei",
                                  (json_int_t)r->survey.typical_nuclei, "use",
                                  "objects over 1.6 times this area that are not convex (solidity under 0.85) are split "
                                  "with weaker seeds"));
    return out;
}

static int cells_run(job_ctx *ctx, char *err, size_t errlen) {
    run r = {.ctx = ctx};
    /* Every tile allocates the same large scratch images; keep them on the
     * heap for reuse instead of mapping, zero-filling and unmapping them per
     * tile (a third of the time went to page faults). This job runs in its
     * own process, so the setting touches nothing else. */
    mallopt(M_MMAP_THRESHOLD, 256 * 1024 * 1024);
    mallopt(M_TRIM_THRESHOLD, 512 * 1024 * 1024);
    int threads = (int)P("threads");
    if (threads <= 0) threads = ctx->cpus > 0 ? ctx->cpus : 1;
    double started = ts_monotonic();
    json_t *summary = NULL;
    int rc = TS_ERR;
    if (jobimg_open(ctx, &r.s, err, errlen) != TS_OK || plan(&r, err, errlen) != TS_OK) goto cleanup;
    const job_input *up = jobimg_upstream(ctx, "tissue_mask");
    if (up) {
        if (load_tissue(up, &r.mask, err, errlen) != TS_OK) goto cleanup;
        r.has_mask = true;
    }
    if (survey(&r, err, errlen) != TS_OK) goto cleanup;
    alloc_threads(&r, threads);
    if (open_outputs(&r, err, errlen) != TS_OK) goto cleanup;
    job_progress(ctx, 0, (double)r.tiles_total + 1, "starting");
    if (tiles_run(r.tiles_total, threads, work_tile, emit_tile, &r, ctx->stop, err, errlen) != TS_OK)
        goto cleanup;
    if (close_outputs(&r, err, errlen) != TS_OK) goto cleanup;
    summary = summary_json(&r, ts_monotonic() - started, threads);
    if (jobimg_write_json(ctx->out_dir, "summary.json", summary, err, errlen) != TS_OK) goto cleanup;
    job_progress(ctx, 1, 1, "done");
    rc = TS_OK;
cleanup:
    if (r.gj) geojson_abort(r.gj);
    if (r.csv) fclose(r.csv);
    json_decref(summary);
    free(r.csv_path);
    free_threads(&r, threads);
    free(r.mask.px);
    slide_close(r.s);
    return rc;
}

const job_type job_type_cell_segmentation = {
    .name = "cell_segmentation",
    .description = "Nuclei and cells by watershed cell detection: cells.geojson, cells.csv, "
                   "summary.json.",
    .params = cells_params,
    .n_params = N_PARAMS,
    .validate = cells_validate,
    .run = cells_run,
    .needs_image = true,
    .reads_slides = true,
    .reads_inputs = true, /* an upstream tissue_mask's mask (jobimg_upstream) */
};
