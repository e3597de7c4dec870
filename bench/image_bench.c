/*
 * image_bench.c - cell segmentation throughput against OpenSlide's raw read
 * throughput over the same tiles (issue 5).
 *
 *   build/bench/image_bench SLIDE [PIXEL_SIZE_UM] [MAX_TILES]
 *
 * Tiles are planned as the cell_segmentation job plans them (1024 analysis
 * pixels plus the margin its default parameters need, read from the level
 * nearest PIXEL_SIZE_UM, default 0.5). Only tiles with tissue (any pixel
 * that is not background white/grey) are timed, up to MAX_TILES (default
 * 64). Passes over the same tiles, one thread each, page cache warm:
 *   read      slide_read of each window (tessera's read: JPEG tiles decoded
 *             straight into the window where slide_level_direct, else
 *             OpenSlide)
 *   openslide openslide_read_region of the same windows, OpenSlide alone
 *   segment   slide_read + the whole per-tile pipeline (cellseg_window)
 * Figures are megapixels of tile core (analysis pixels) per second on one
 * core, from the process's CPU time (steadier than wall time on a shared
 * machine; wall time is printed too), and the ratio of the whole
 * segmentation's throughput to OpenSlide's raw read.
 * `--worker-thread` runs all of it on a second thread, as job_cells runs
 * every worker but the first (tiles_run): there glibc allocates from a
 * thread arena, which hands large freed blocks back to the kernel (up to
 * 840a625 that cost ~144,000 page faults per 64 windows, 2.5x the CPU).
 * `--tiles FILE` writes the windows timed (level-0 x, y, w, h, level), so
 * bench/refs/speed.py can time the OpenCV reference on the very same reads.
 * `--no-openslide` leaves out the OpenSlide pass (and its two lines), so
 * that a profile of the run holds tessera's own work only (OpenSlide's
 * libjpeg and pixman would otherwise mix with tessera's decoding).
 * The last line is a digest of every cell returned (outlines, centroids,
 * areas, stains, bit for bit): a speed change must leave it as it was.
 */
#include <malloc.h>
#include <pthread.h>
#include <stdbool.h>
#include <openslide/openslide.h>
#include <math.h>
#include <string.h>
#include <time.h>
#include <stdio.h>
#include <stdlib.h>

#include "image/cellseg.h"
#include "image/slide.h"
#include "util/util.h"

#define TILE 1024

typedef struct plan {
    int level, margin, nx, ny;
    double downsample, factor;
} plan;

/* The job's defaults (src/jobs/job_cells.c) in analysis pixels. */
static cellseg_params default_params(double px) {
    return (cellseg_params){.background_radius = (float)(8 / px), .sigma = (float)(1.5 / px),
                            .threshold = 0.1f, .min_area = (float)(10 / (px * px)),
                            .max_area = (float)(400 / (px * px)), .split = true, .refine = true,
                            .expansion = (float)(5 / px), .seed_ratio = 1.3f, .peak_radius = (float)(3 / px), .simplify = 0.5f,
                            .concave_depth = (float)(0.5 / px), .concave_smooth = (float)(0.5 / px),
                            .concave_ratio = 0.5f};
}

/* CPU seconds of this process. */
static double cpu_now(void) {
    struct timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return (double)t.tv_sec + t.tv_nsec / 1e9;
}

static int has_tissue(const uint32_t *rgb, size_t n) {
    size_t coloured = 0;
    for (size_t i = 0; i < n; i++) {
        uint32_t p = rgb[i];
        int r = (p >> 16) & 0xFF, g = (p >> 8) & 0xFF, b = p & 0xFF;
        int mx = r > g ? (r > b ? r : b) : (g > b ? g : b), mn = r < g ? (r < b ? r : b) : (g < b ? g : b);
        if ((p >> 24) && mx - mn > 20) coloured++;
    }
    return coloured > n / 20;
}

/* FNV-1a over n bytes: any change of any cell changes the digest. */
static uint64_t fnv1a(uint64_t hash, const void *data, size_t n) {
    const unsigned char *b = data;
    for (size_t i = 0; i < n; i++) hash = (hash ^ b[i]) * 0x100000001b3ULL;
    return hash;
}

/* The digest of one window's cells, every field bit for bit. */
static uint64_t digest_cells(uint64_t hash, const cellseg_cell *c, size_t k) {
    for (size_t i = 0; i < k; i++) {
        const double f[] = {c[i].cx, c[i].cy, c[i].nucleus_area, c[i].cell_area, c[i].nucleus_perimeter,
                            c[i].nucleus_h, c[i].nucleus_e, c[i].cell_h, c[i].cell_e};
        hash = fnv1a(hash, f, sizeof(f));
        hash = fnv1a(hash, &c[i].nucleus.n, sizeof(c[i].nucleus.n));
        hash = fnv1a(hash, c[i].nucleus.pts, c[i].nucleus.n * sizeof(pt2));
        hash = fnv1a(hash, &c[i].cell.n, sizeof(c[i].cell.n));
        hash = fnv1a(hash, c[i].cell.pts, c[i].cell.n * sizeof(pt2));
    }
    return hash;
}

static int read_window(slide *s, const plan *p, int tx, int ty, uint32_t *buf, int *side) {
    char err[TS_ERRLEN];
    int win = TILE + 2 * p->margin;
    *side = (int)lround(win * p->factor);
    double x0 = (tx * TILE - p->margin) * p->downsample, y0 = (ty * TILE - p->margin) * p->downsample;
    if (slide_read(s, p->level, (int64_t)x0, (int64_t)y0, *side, *side, buf, err, sizeof(err)) != TS_OK) {
        fprintf(stderr, "image_bench: %s\n", err);
        return TS_ERR;
    }
    return TS_OK;
}

/* Reads and segments the n tiles; counts the cells into *cells, or hashes
 * them into *digest when digest is not NULL. */
static int segment_tiles(slide *s, const plan *p, const int *tiles, int n, uint32_t *buf, cellseg_ws *ws,
                         const cellseg_params *cp, size_t *cells, uint64_t *digest) {
    int win = TILE + 2 * p->margin, side;
    for (int i = 0; i < n; i++) {
        cellseg_cell *out;
        size_t k;
        if (read_window(s, p, tiles[i] % p->nx, tiles[i] / p->nx, buf, &side) != TS_OK ||
            cellseg_window(ws, buf, win, win, cp, p->margin, p->margin, p->margin + TILE, p->margin + TILE, NULL,
                           NULL, &out, &k) != TS_OK)
            return TS_ERR;
        if (digest)
            *digest = digest_cells(*digest, out, k);
        else
            *cells += k;
    }
    return TS_OK;
}

/* The whole bench (after the options), on the calling thread. */
static int bench_main(int argc, char **argv, const char *tiles_out, bool no_openslide) {
    if (argc < 2) {
        fprintf(stderr, "usage: image_bench [--worker-thread] [--tiles FILE] [--no-openslide] SLIDE [PIXEL_SIZE_UM] [MAX_TILES]\n");
        return 2;
    }
    /* as the cell_segmentation job does (job_cells.c) */
    mallopt(M_MMAP_THRESHOLD, 256 * 1024 * 1024);
    mallopt(M_TRIM_THRESHOLD, 512 * 1024 * 1024);
    double px = argc > 2 ? atof(argv[2]) : 0.5;
    int max_tiles = argc > 3 ? atoi(argv[3]) : 64;
    char err[TS_ERRLEN];
    int rc = 1; /* every early exit below frees what exists (goto done) */
    slide *s = NULL;
    uint32_t *buf = NULL;
    int *tiles = NULL;
    cellseg_ws *ws = NULL;
    openslide_t *os = NULL;
    if (slide_open(argv[1], &s, err, sizeof(err)) != TS_OK) {
        fprintf(stderr, "image_bench: %s: %s\n", argv[1], err);
        goto done;
    }
    const slide_info *info = slide_get_info(s);
    plan p;
    p.downsample = px / info->mpp_x;
    p.level = slide_best_level(s, p.downsample);
    p.factor = p.downsample / slide_get_level(s, p.level)->downsample;
    p.margin = (int)ceil((2 * sqrt(400 / M_PI) + 5 + 8 + 4.5) / px) + 2;
    p.nx = (int)ceil(info->w / p.downsample / TILE);
    p.ny = (int)ceil(info->h / p.downsample / TILE);
    if (fabs(p.factor - 1) > 1e-6) {
        fprintf(stderr, "image_bench: no level at %g um/px (factor %g); pick a slide with one\n", px, p.factor);
        goto done;
    }
    int win = TILE + 2 * p.margin, side;
    buf = malloc((size_t)win * win * 4);
    tiles = malloc(sizeof(int) * (size_t)p.nx * p.ny);
    int n = 0;
    if (buf == NULL || tiles == NULL) goto done;
    for (int t = 0; t < p.nx * p.ny && n < max_tiles; t++) {
        if (read_window(s, &p, t % p.nx, t / p.nx, buf, &side) != TS_OK) goto done;
        if (has_tissue(buf, (size_t)side * side)) tiles[n++] = t;
    }
    ws = cellseg_ws_new(win, win);
    cellseg_params cp = default_params(px);
    if (tiles_out) {
        FILE *fp = fopen(tiles_out, "w");
        for (int i = 0; fp && i < n; i++) {
            double x0 = (tiles[i] % p.nx * TILE - p.margin) * p.downsample;
            double y0 = (tiles[i] / p.nx * TILE - p.margin) * p.downsample;
            fprintf(fp, "%lld %lld %d %d %d %d\n", (long long)x0, (long long)y0, win, win, p.level, p.margin);
        }
        if (fp) fclose(fp);
    }
    double t_os = 0, c_os = 0;
    if (no_openslide) goto openslide_done;
    os = openslide_open(argv[1]);
    if (os == NULL || openslide_get_error(os)) {
        fprintf(stderr, "image_bench: OpenSlide cannot open %s\n", argv[1]);
        goto done;
    }
    for (int pass = 0; pass < 2; pass++) { /* the first pass warms OpenSlide's caches */
        double t0 = ts_monotonic(), c0 = cpu_now();
        for (int i = 0; i < n; i++) {
            double x0 = (tiles[i] % p.nx * TILE - p.margin) * p.downsample;
            double y0 = (tiles[i] / p.nx * TILE - p.margin) * p.downsample;
            openslide_read_region(os, buf, (int64_t)x0, (int64_t)y0, p.level, win, win);
        }
        t_os = ts_monotonic() - t0;
        c_os = cpu_now() - c0;
    }
    if (openslide_get_error(os)) {
        fprintf(stderr, "image_bench: %s\n", openslide_get_error(os));
        goto done;
    }
    openslide_close(os);
    os = NULL;
openslide_done:;
    double t_read = 0, t_seg = 0, c_read = 0, c_seg = 0;
    size_t cells = 0;
    uint64_t digest = 0xcbf29ce484222325ULL;
    for (int pass = 0; pass < 2; pass++) { /* the first pass warms the page cache */
        double t0 = ts_monotonic(), c0 = cpu_now();
        for (int i = 0; i < n; i++)
            if (read_window(s, &p, tiles[i] % p.nx, tiles[i] / p.nx, buf, &side) != TS_OK) goto done;
        t_read = ts_monotonic() - t0;
        c_read = cpu_now() - c0;
    }
    double t0 = ts_monotonic(), c0 = cpu_now();
    if (segment_tiles(s, &p, tiles, n, buf, ws, &cp, &cells, NULL) != TS_OK) goto done;
    t_seg = ts_monotonic() - t0;
    c_seg = cpu_now() - c0;
    /* again, untimed, for the digest (hashing is no part of the pipeline) */
    if (segment_tiles(s, &p, tiles, n, buf, ws, &cp, &cells, &digest) != TS_OK) goto done;
    double mp = (double)n * TILE * TILE / 1e6;
    printf("slide %s: %lld x %lld at %.3f um/px; analysis at %g um/px from level %d\n", argv[1],
           (long long)info->w, (long long)info->h, info->mpp_x, px, p.level);
    printf("tiles with tissue timed: %d (of %d), %.1f MP of tile cores, %zu cells\n", n, p.nx * p.ny, mp, cells);
    printf("tessera read only:        %8.2f MP/s per core (CPU %.3f s; wall %.3f s; %s)\n", mp / c_read,
           c_read, t_read, slide_level_direct(s, p.level) ? "JPEG tiles decoded directly" : "through OpenSlide");
    if (no_openslide)
        printf("openslide raw read:       skipped (--no-openslide)\n");
    else
        printf("openslide raw read:       %8.2f MP/s per core (CPU %.3f s; wall %.3f s)\n", mp / c_os, c_os, t_os);
    printf("read + cell segmentation: %8.2f MP/s per core (CPU %.3f s; wall %.3f s)\n", mp / c_seg, c_seg, t_seg);
    if (!no_openslide) printf("ratio segmentation/openslide read: %8.3f\n", c_os / c_seg);
    printf("cell digest: %016llx\n", (unsigned long long)digest);
    rc = 0;
done:
    if (os) openslide_close(os);
    cellseg_ws_free(ws);
    free(buf);
    free(tiles);
    slide_close(s);
    return rc;
}

/* bench_main's arguments and result, for the worker thread. */
typedef struct bench_args {
    int argc;
    char **argv;
    const char *tiles_out;
    bool no_openslide;
    int rc;
} bench_args;

/* Runs bench_main on a worker thread (pthread_create's start routine). */
static void *bench_thread(void *arg) {
    bench_args *a = arg;
    a->rc = bench_main(a->argc, a->argv, a->tiles_out, a->no_openslide);
    return NULL;
}

/* Options first (--worker-thread, --tiles FILE, --no-openslide), in that order. The
 * process's CPU time, which the figures come from, counts every thread;
 * the main one only waits. */
int main(int argc, char **argv) {
    bench_args a = {.argc = argc, .argv = argv};
    bool worker = argc > 1 && strcmp(argv[1], "--worker-thread") == 0;
    if (worker) {
        a.argv++;
        a.argc--;
    }
    if (a.argc > 2 && strcmp(a.argv[1], "--tiles") == 0) {
        a.tiles_out = a.argv[2];
        a.argv += 2;
        a.argc -= 2;
    }
    if (a.argc > 1 && strcmp(a.argv[1], "--no-openslide") == 0) {
        a.no_openslide = true;
        a.argv++;
        a.argc--;
    }
    if (!worker) return bench_main(a.argc, a.argv, a.tiles_out, a.no_openslide);
    pthread_t t;
    if (pthread_create(&t, NULL, bench_thread, &a) != 0) {
        fprintf(stderr, "image_bench: cannot start the worker thread\n");
        return 1;
    }
    pthread_join(t, NULL);
    return a.rc;
}
