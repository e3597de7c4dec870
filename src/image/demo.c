/*
 * demo.c - see demo.h: validates the options, writes the ground truth
 * (streamed, nuclei in grid order) and the pyramid, then renames the three
 * files into place. The model lives in demo_model.c, the pixels in
 * demo_render.c.
 *
 * The pyramid is written level by level in batches of tiles in raster
 * order: while the rendering threads fill one batch, this thread encodes
 * and writes the previous one, so memory is two batches whatever the
 * slide's size.
 */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <libgen.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "image/demo.h"
#include "image/demo_model.h"
#include "image/demo_render.h"
#include "image/geojson.h"
#include "image/tiff_write.h"
#include "util/util.h"

#define DEMO_MAX_THREADS 256
#define DEMO_TOP_LEVEL_MAX 512 /* the pyramid stops once both sides fit */

void demo_options_default(demo_options *o) {
    o->width = 16384;
    o->height = 12288;
    o->mpp = 0.25;
    o->seed = 1;
    o->density = 1.0;
    o->tile_size = 256;
    o->jpeg_quality = 90;
    o->threads = 0;
    o->stain = DEMO_STAIN_HE;
    o->hue_deg = 0;
    o->blur_um = 0;
    o->noise = 0;
    o->touching = 0.05;
    o->rmin_um = 2.5;
    o->rmax_um = 6.0;
    o->strength = 1.0;
}

/* A uniform double in [lo, hi) from a hash of (seed, k). */
static double vary_draw(uint64_t seed, int k, double lo, double hi) {
    return lo + (hi - lo) * (double)(demo_hash(seed, 0x7a41, k) >> 11) / 9007199254740992.0;
}

void demo_options_vary(demo_options *o, uint64_t vary_seed) {
    o->stain = vary_draw(vary_seed, 0, 0, 1) < 0.3 ? DEMO_STAIN_HDAB : DEMO_STAIN_HE;
    o->hue_deg = vary_draw(vary_seed, 1, 0, 12);
    o->blur_um = vary_draw(vary_seed, 2, 0, 1.0);
    o->noise = vary_draw(vary_seed, 3, 0, 6);
    o->jpeg_quality = (int)vary_draw(vary_seed, 4, 60, 96);
    o->density = vary_draw(vary_seed, 5, 0.5, 2.0);
    o->touching = vary_draw(vary_seed, 6, 0.02, 0.35);
    o->rmin_um = vary_draw(vary_seed, 7, 2.0, 3.5);
    o->rmax_um = o->rmin_um + vary_draw(vary_seed, 8, 2.0, 4.5);
    o->strength = vary_draw(vary_seed, 9, 0.55, 1.5);
}

/* The variation options within their ranges (demo.h). */
static int validate_variation(const demo_options *o, char *err, size_t errlen) {
    const struct {
        const char *name;
        double v, lo, hi;
    } r[] = {{"hue", o->hue_deg, 0, 20},          {"blur", o->blur_um, 0, 2},
             {"noise", o->noise, 0, 20},          {"touching", o->touching, 0, 0.6},
             {"rmin", o->rmin_um, 1.5, 10},       {"rmax", o->rmax_um, 1.5, 10},
             {"strength", o->strength, 0.3, 2.5}};
    for (size_t i = 0; i < sizeof(r) / sizeof(r[0]); i++)
        if (!(r[i].v >= r[i].lo && r[i].v <= r[i].hi)) {
            ts_errf(err, errlen, "%s %g: must be from %g to %g", r[i].name, r[i].v, r[i].lo, r[i].hi);
            return TS_ERR;
        }
    if (!(o->rmin_um < o->rmax_um)) {
        ts_errf(err, errlen, "rmin %g: must be less than rmax %g", o->rmin_um, o->rmax_um);
        return TS_ERR;
    }
    if (o->stain != DEMO_STAIN_HE && o->stain != DEMO_STAIN_HDAB) {
        ts_errf(err, errlen, "stain: must be he or hdab");
        return TS_ERR;
    }
    return TS_OK;
}

/* Every option within its documented range; the message names it. */
static int validate(const demo_options *o, char *err, size_t errlen) {
    if (o->width < 64 || o->width > 1000000 || o->height < 64 || o->height > 1000000) {
        ts_errf(err, errlen, "size %lldx%lld: each side must be from 64 to 1000000 pixels",
                (long long)o->width, (long long)o->height);
        return TS_ERR;
    }
    if (!(o->mpp >= 0.1 && o->mpp <= 4)) {
        ts_errf(err, errlen, "mpp %g: must be from 0.1 to 4 microns per pixel", o->mpp);
        return TS_ERR;
    }
    if (!(o->density >= 0.25 && o->density <= 4)) {
        ts_errf(err, errlen, "density %g: must be from 0.25 to 4", o->density);
        return TS_ERR;
    }
    if (o->tile_size < 16 || o->tile_size > 4096 || o->tile_size % 16 != 0) {
        ts_errf(err, errlen, "tile size %d: must be a multiple of 16 from 16 to 4096",
                o->tile_size);
        return TS_ERR;
    }
    if (o->jpeg_quality < 1 || o->jpeg_quality > 100) {
        ts_errf(err, errlen, "JPEG quality %d: must be from 1 to 100", o->jpeg_quality);
        return TS_ERR;
    }
    if (validate_variation(o, err, errlen) != TS_OK) return TS_ERR;
    if (o->threads < 0 || o->threads > DEMO_MAX_THREADS) {
        ts_errf(err, errlen, "threads %d: must be from 0 (all CPUs) to %d", o->threads,
                DEMO_MAX_THREADS);
        return TS_ERR;
    }
    return TS_OK;
}

/* ---- file names ---- */

typedef struct demo_paths {
    char *final[3]; /* tissue GT, nuclei GT, slide */
    char *tmp[3];
} demo_paths;

/* OUT.tiff -> OUT.tissue.geojson and OUT.nuclei.geojson (the last
 * extension of the file name replaced, or appended to when there is none);
 * temporary names carry the process id. */
static void make_paths(const char *out, demo_paths *p) {
    const char *slash = strrchr(out, '/'), *dot = strrchr(out, '.');
    size_t stem = dot && dot > (slash ? slash : out) ? (size_t)(dot - out) : strlen(out);
    p->final[0] = ts_asprintf("%.*s.tissue.geojson", (int)stem, out);
    p->final[1] = ts_asprintf("%.*s.nuclei.geojson", (int)stem, out);
    p->final[2] = ts_strdup(out);
    for (int i = 0; i < 3; i++) p->tmp[i] = ts_asprintf("%s.tmp%ld", p->final[i], (long)getpid());
}

static void free_paths(demo_paths *p, bool unlink_tmp) {
    for (int i = 0; i < 3; i++) {
        if (unlink_tmp) unlink(p->tmp[i]);
        free(p->final[i]);
        free(p->tmp[i]);
    }
}

/* Renames the temporaries into place (the slide last, so a slide on disk
 * always has its ground truth) and syncs the directory. */
static int publish(const demo_paths *p, char *err, size_t errlen) {
    for (int i = 0; i < 3; i++) {
        if (rename(p->tmp[i], p->final[i]) != 0) {
            ts_errf(err, errlen, "cannot rename %s to %s: %s", p->tmp[i], p->final[i],
                    strerror(errno));
            return TS_ERR;
        }
    }
    char *copy = ts_strdup(p->final[2]);
    int fd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
    free(copy);
    return TS_OK;
}

/* ---- ground truth ---- */

/* {"name": name, "color": [r, g, b]} in QuPath's form. */
static json_t *classification(const char *name, int r, int g, int b) {
    return json_pack("{s:s, s:[i,i,i]}", "name", name, "color", r, g, b);
}

/* Absolute signed area of a ring (shoelace). */
static double ring_area(const contour_ring *r) {
    double s = 0;
    for (size_t i = 0; i < r->n; i++) {
        const pt2 *a = &r->pts[i], *b = &r->pts[(i + 1) % r->n];
        s += a->x * b->y - b->x * a->y;
    }
    return fabs(s) / 2;
}

/* One "annotation" feature per region, holes as inner rings. */
static int write_tissue(const demo_model *m, const char *path, char *err, size_t errlen) {
    geojson_writer *w = NULL;
    if (geojson_open(path, &w, err, errlen) != TS_OK) return TS_ERR;
    for (int i = 0; i < m->n_regions; i++) {
        const demo_region *g = &m->regions[i];
        double area = ring_area(&g->rings[0]);
        for (int j = 1; j < g->n_rings; j++) area -= ring_area(&g->rings[j]);
        char name[32];
        snprintf(name, sizeof(name), "Tissue %d", i + 1);
        json_t *props = json_pack(
            "{s:s, s:s, s:o, s:{s:f, s:f, s:i}}", "objectType", "annotation", "name", name,
            "classification", classification("Tissue", 0, 160, 60), "measurements", "Area px",
            round(area), "Area um^2", round(area * m->o.mpp * m->o.mpp), "Holes", g->n_rings - 1);
        geojson_polygon poly = {g->rings, (size_t)g->n_rings};
        int rc = geojson_feature(w, NULL, &poly, 1, NULL, props, err, errlen);
        json_decref(props);
        if (rc != TS_OK) {
            geojson_abort(w);
            return TS_ERR;
        }
    }
    return geojson_close(w, err, errlen);
}

/* One nucleus as a "detection" feature. */
static int write_nucleus(geojson_writer *w, const demo_model *m, const demo_nucleus *n, char *err,
                         size_t errlen) {
    double area = demo_nucleus_area(n);
    json_t *props = json_pack("{s:s, s:o, s:{s:f, s:f, s:f, s:i}}", "objectType", "detection",
                              "classification", classification("Nucleus", 40, 40, 200),
                              "measurements", "Area px", round(area * 100) / 100, "Area um^2",
                              round(area * m->o.mpp * m->o.mpp * 100) / 100, "Hematoxylin",
                              round(n->conc * 1000) / 1000, "Cluster size", n->cluster);
    contour_ring ring = {(pt2 *)n->v, DEMO_NUC_VERTS, -1};
    geojson_polygon poly = {&ring, 1};
    int rc = geojson_feature(w, NULL, &poly, 1, NULL, props, err, errlen);
    json_decref(props);
    return rc;
}

/* Every nucleus, grid cell by grid cell in raster order. */
static int write_nuclei(const demo_model *m, const char *path, int64_t *count, char *err,
                        size_t errlen) {
    geojson_writer *w = NULL;
    demo_nucleus nuc[DEMO_CELL_MAX];
    if (geojson_open(path, &w, err, errlen) != TS_OK) return TS_ERR;
    for (int64_t row = 0; row < m->cell_rows; row++)
        for (int64_t col = 0; col < m->cell_cols; col++) {
            int n = demo_cell_nuclei(m, col, row, nuc);
            for (int i = 0; i < n; i++)
                if (write_nucleus(w, m, &nuc[i], err, errlen) != TS_OK) {
                    geojson_abort(w);
                    return TS_ERR;
                }
        }
    *count = (int64_t)geojson_count(w);
    return geojson_close(w, err, errlen);
}


/* ---- the pyramid ---- */

/* A batch of consecutive tiles (raster order) of one level. */
typedef struct batch {
    int64_t first;
    int count;
    uint8_t *pix;  /* count tiles of tile_size^2 * 3 bytes */
    bool *uniform; /* per tile: pure background */
} batch;

/* What the rendering threads share for one batch. */
typedef struct render_job {
    const demo_model *m;
    demo_scratch **scratch; /* one per thread */
    int level;
    int64_t lw, lh, tiles_x;
    batch *b;
    atomic_int next;
    _Atomic int64_t tissue_px;
} render_job;

typedef struct render_arg {
    render_job *job;
    int index;
} render_arg;

/* A rendering thread: takes tiles of the batch until none is left. */
static void *render_worker(void *p) {
    render_arg *a = p;
    render_job *j = a->job;
    size_t tile_bytes = (size_t)j->m->o.tile_size * j->m->o.tile_size * 3;
    int64_t tissue = 0;
    for (;;) {
        int i = atomic_fetch_add(&j->next, 1);
        if (i >= j->b->count) break;
        int64_t t = j->b->first + i;
        j->b->uniform[i] = demo_render_tile(j->m, j->scratch[a->index], j->level, j->lw, j->lh,
                                            t % j->tiles_x, t / j->tiles_x,
                                            j->b->pix + (size_t)i * tile_bytes, &tissue);
    }
    atomic_fetch_add(&j->tissue_px, tissue);
    return NULL;
}

/* Running renders of one batch: threads[0..started). */
typedef struct render_run {
    pthread_t threads[DEMO_MAX_THREADS];
    render_arg args[DEMO_MAX_THREADS];
    int started;
} render_run;

/* Starts n threads on the job; a thread that cannot start leaves its share
 * to the others, and with none started the batch is rendered here. */
static void render_start(render_job *j, int n, render_run *run) {
    atomic_store(&j->next, 0);
    run->started = 0;
    for (int i = 0; i < n; i++) {
        run->args[i] = (render_arg){j, i};
        if (pthread_create(&run->threads[run->started], NULL, render_worker, &run->args[i]) == 0)
            run->started++;
    }
    if (run->started == 0) render_worker(&run->args[0]);
}

static void render_join(render_run *run) {
    for (int i = 0; i < run->started; i++) pthread_join(run->threads[i], NULL);
    run->started = 0;
}

/* Encodes and writes a rendered batch. */
static int write_batch(tiffw *tw, const batch *b, int64_t tiles_x, size_t tile_bytes,
                       char *err, size_t errlen) {
    static const uint8_t bg[3] = {DEMO_BG, DEMO_BG, DEMO_BG};
    for (int i = 0; i < b->count; i++) {
        int64_t t = b->first + i;
        uint32_t tx = (uint32_t)(t % tiles_x), ty = (uint32_t)(t / tiles_x);
        int rc = b->uniform[i] ? tiffw_write_uniform_tile(tw, tx, ty, bg, err, errlen)
                               : tiffw_write_tile(tw, tx, ty, b->pix + (size_t)i * tile_bytes,
                                                  err, errlen);
        if (rc != TS_OK) return TS_ERR;
    }
    return TS_OK;
}

/* Everything one level's writing needs. */
typedef struct pyramid {
    const demo_model *m;
    tiffw *tw;
    demo_scratch **scratch;
    int threads, batch_tiles;
    batch bufs[2];
    int64_t tissue_px;
} pyramid;

/* Renders and writes level `level`, two batches in flight. */
static int write_level(pyramid *p, int level, char *err, size_t errlen) {
    const demo_model *m = p->m;
    int64_t ds = (int64_t)1 << level, T = m->o.tile_size;
    int64_t lw = (m->o.width + ds - 1) / ds, lh = (m->o.height + ds - 1) / ds;
    int64_t tiles_x = (lw + T - 1) / T, n_tiles = tiles_x * ((lh + T - 1) / T);
    size_t tile_bytes = (size_t)(T * T * 3);
    if (tiffw_begin_level(p->tw, (uint32_t)lw, (uint32_t)lh, (double)ds, err, errlen) != TS_OK)
        return TS_ERR;
    render_job job = {.m = m, .scratch = p->scratch, .level = level, .lw = lw, .lh = lh,
                      .tiles_x = tiles_x};
    atomic_init(&job.next, 0);
    atomic_init(&job.tissue_px, 0);
    render_run run = {.started = 0};
    int cur = 0, rc = TS_OK;
    batch *b = &p->bufs[cur];
    b->first = 0;
    b->count = (int)(n_tiles < p->batch_tiles ? n_tiles : p->batch_tiles);
    job.b = b;
    render_start(&job, p->threads, &run);
    render_join(&run);
    while (rc == TS_OK && b->count > 0) {
        batch *nb = &p->bufs[1 - cur];
        nb->first = b->first + b->count;
        int64_t left = n_tiles - nb->first;
        nb->count = (int)(left < p->batch_tiles ? left : p->batch_tiles);
        if (nb->count > 0) {
            job.b = nb;
            render_start(&job, p->threads, &run);
        }
        rc = write_batch(p->tw, b, tiles_x, tile_bytes, err, errlen);
        render_join(&run);
        cur = 1 - cur;
        b = nb;
    }
    if (level == 0) p->tissue_px = atomic_load(&job.tissue_px);
    return rc;
}

/* Levels: halving until both sides are at most DEMO_TOP_LEVEL_MAX. */
static int count_levels(const demo_options *o) {
    int levels = 1;
    int64_t w = o->width, h = o->height;
    while (w > DEMO_TOP_LEVEL_MAX || h > DEMO_TOP_LEVEL_MAX) {
        w = (w + 1) / 2, h = (h + 1) / 2;
        levels++;
    }
    return levels;
}

/* Threads to use: the option, or the number of online CPUs. */
static int thread_count(const demo_options *o) {
    long n = o->threads > 0 ? o->threads : sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : n > DEMO_MAX_THREADS ? DEMO_MAX_THREADS : (int)n;
}

/* Opens the TIFF, writes every level, closes it. */
static int write_slide(const demo_model *m, const char *path, int levels, int64_t *tissue_px,
                       char *err, size_t errlen) {
    const demo_options *o = &m->o;
    char *desc = ts_asprintf("tessera demo-slide: synthetic %s, %lldx%lld, mpp %g, seed %llu, "
                             "density %g, hue %.1f, blur %.2f, noise %.1f, touching %.2f, "
                             "radius %.1f-%.1f um, strength %.2f, jpeg %d",
                             o->stain == DEMO_STAIN_HDAB ? "H-DAB" : "H&E", (long long)o->width,
                             (long long)o->height, o->mpp, (unsigned long long)o->seed, o->density,
                             o->hue_deg, o->blur_um, o->noise, o->touching, o->rmin_um, o->rmax_um,
                             o->strength, o->jpeg_quality);
    tiffw_options to = {.tile_size = o->tile_size, .jpeg_quality = o->jpeg_quality,
                        .mpp = o->mpp, .description = desc,
                        .bigtiff = tiffw_need_bigtiff(o->width, o->height)};
    pyramid p = {.m = m, .threads = thread_count(o)};
    p.batch_tiles = p.threads * 4 < 16 ? 16 : p.threads * 4;
    int rc = tiffw_open(path, &to, &p.tw, err, errlen);
    free(desc);
    if (rc != TS_OK) return TS_ERR;
    size_t tile_bytes = (size_t)o->tile_size * o->tile_size * 3;
    p.scratch = ts_calloc((size_t)p.threads, sizeof(*p.scratch));
    for (int i = 0; i < p.threads; i++) p.scratch[i] = demo_scratch_new(m, o->tile_size);
    for (int i = 0; i < 2; i++) {
        p.bufs[i].pix = ts_malloc((size_t)p.batch_tiles * tile_bytes);
        p.bufs[i].uniform = ts_calloc((size_t)p.batch_tiles, sizeof(bool));
    }
    for (int level = 0; rc == TS_OK && level < levels; level++)
        rc = write_level(&p, level, err, errlen);
    if (rc == TS_OK) rc = tiffw_close(p.tw, err, errlen);
    else tiffw_abort(p.tw);
    for (int i = 0; i < p.threads; i++) demo_scratch_free(p.scratch[i]);
    for (int i = 0; i < 2; i++) free(p.bufs[i].pix), free(p.bufs[i].uniform);
    free(p.scratch);
    *tissue_px = p.tissue_px;
    return rc;
}

int demo_slide_write(const char *out_tiff, const demo_options *o, demo_report *report, char *err,
                     size_t errlen) {
    double t0 = ts_monotonic();
    if (out_tiff == NULL || *out_tiff == '\0') {
        ts_errf(err, errlen, "no output path");
        return TS_ERR;
    }
    if (validate(o, err, errlen) != TS_OK) return TS_ERR;
    demo_model m;
    demo_model_init(&m, o);
    demo_paths paths;
    make_paths(out_tiff, &paths);
    int levels = count_levels(o);
    int64_t nuclei = 0, tissue_px = 0;
    int rc = write_tissue(&m, paths.tmp[0], err, errlen);
    if (rc == TS_OK) rc = write_nuclei(&m, paths.tmp[1], &nuclei, err, errlen);
    if (rc == TS_OK) rc = write_slide(&m, paths.tmp[2], levels, &tissue_px, err, errlen);
    if (rc == TS_OK) rc = publish(&paths, err, errlen);
    if (rc == TS_OK && report != NULL) {
        *report = (demo_report){.levels = levels, .nuclei = nuclei,
                                .tissue_regions = m.n_regions,
                                .tissue_area_px = (double)tissue_px,
                                .seconds = ts_monotonic() - t0};
    }
    free_paths(&paths, rc != TS_OK);
    demo_model_free(&m);
    return rc;
}
