/*
 * demo.h - synthetic H&E-like whole-slide images with ground truth
 * (`tessera demo-slide`), for tests, the first-run demo and benchmarks.
 *
 * The slide is a pyramidal, tiled, JPEG-compressed TIFF (BigTIFF when
 * large) that OpenSlide 3.4.1 opens as "generic-tiff", with
 * XResolution/YResolution in pixels per centimetre so that tessera's slide
 * reader derives microns per pixel (OpenSlide reports no mpp for generic
 * TIFF). Content: a few tissue regions (irregular polygons, some with
 * holes), eosin-pink stroma with texture, hematoxylin-blue nuclei of varied
 * size, shape, stain and density (including touching clusters), and a blank
 * background. Everything is a pure function of (options, seed): any tile of
 * any level can be rendered on its own, so memory does not grow with the
 * slide (a 100,000 x 100,000 slide needs what a small one needs).
 *
 * Ground truth beside OUT.tiff (its extension replaced):
 *   OUT.tissue.geojson  one "annotation" feature per tissue region
 *                       (classification "Tissue"), holes as inner rings;
 *   OUT.nuclei.geojson  every nucleus as a "detection" polygon
 *                       (classification "Nucleus"), in the order of the
 *                       nucleus grid (rows of cells, top to bottom).
 * Coordinates are level-0 pixels; a pixel (x, y) is the square [x, x+1] x
 * [y, y+1] and it is drawn as tissue (or nucleus) exactly when its centre
 * (x + 0.5, y + 0.5) is inside the polygon (nucleus edges are anti-aliased
 * over one pixel around that boundary). "OUT's extension" is the last '.'
 * suffix of the file name; without one the suffixes are appended.
 */
#ifndef TESSERA_IMAGE_DEMO_H
#define TESSERA_IMAGE_DEMO_H

#include <stdint.h>

typedef struct demo_options {
    int64_t width, height; /* level 0, pixels, 64..1000000; default 16384 x 12288 */
    double mpp;            /* microns per pixel at level 0, 0.1..4; default 0.25 */
    uint64_t seed;         /* default 1 */
    double density;        /* nuclei density multiplier, 0.25..4; default 1 */
    int tile_size;         /* TIFF tile edge, multiple of 16, 16..4096; default 256 */
    int jpeg_quality;      /* 1..100; default 90 */
    int threads;           /* rendering threads, 0..256; 0 = number of online CPUs */
    /* Variation (issue 15), so accuracy can be measured on slides unlike
     * the ones parameters were chosen on: */
    int stain;             /* DEMO_STAIN_HE (default) or DEMO_STAIN_HDAB */
    double hue_deg;        /* stain vectors turned by up to this many degrees, 0..20; 0 */
    double blur_um;        /* nucleus edges spread over this many µm, 0..2; 0 (one pixel) */
    double noise;          /* extra Gaussian noise, grey levels (sd), 0..20; 0 */
    double touching;       /* share of occupied grid cells holding a touching cluster, 0..0.6; 0.05 */
    double rmin_um, rmax_um; /* nucleus equivalent radius range, µm, 1.5..10; 2.5, 6 */
    double strength;       /* hematoxylin concentration factor (pale < 1 < dark), 0.3..2.5; 1 */
} demo_options;

#define DEMO_STAIN_HE 0
#define DEMO_STAIN_HDAB 1

/* Draws every variation option from vary_seed (stain H&E or H-DAB, hue,
 * blur, noise, JPEG quality, density, touching share, size range,
 * strength), leaving size, mpp, seed, tile size and threads alone. The same
 * vary_seed gives the same draw. */
void demo_options_vary(demo_options *o, uint64_t vary_seed);

typedef struct demo_report {
    int levels;           /* pyramid levels written */
    int64_t nuclei;       /* nuclei in the ground truth */
    int tissue_regions;   /* tissue polygons */
    double tissue_area_px; /* level-0 pixels drawn as tissue (centre inside a region) */
    double seconds;       /* wall time */
} demo_report;

void demo_options_default(demo_options *o);

/* Writes the slide and its ground truth. Files appear atomically (written
 * under temporary names OUT...tmpPID, then renamed, the slide last; removed
 * on failure). report may be NULL. TS_OK, or TS_ERR with a message (an
 * invalid option is named with its value and range; nothing is written). */
int demo_slide_write(const char *out_tiff, const demo_options *o, demo_report *report, char *err,
                     size_t errlen);

#endif
