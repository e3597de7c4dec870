/*
 * test_image_cellseg.c - one window's nuclei (src/image/cellseg.c) on
 * drawn images whose nuclei are known: touching nuclei of different sizes
 * are split, a single elongated nucleus is not, an object larger than
 * max_area is split rather than dropped, one much larger than the
 * window's typical nucleus and not convex is split with weaker seeds, and
 * nuclei touching with a neck too wide for the distance transform are cut
 * at the notches of their outline. The per-label sums (cellseg_measure.c)
 * are held to a plain pixel-by-pixel reference on random label images.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <math.h>
#include <stdlib.h>

#include "image/cellseg.h"
#include "image/cellseg_measure.h"
#include "image/color.h"
#include <string.h>

#define W 160
#define H 160

typedef struct disc {
    double x, y, a, b; /* centre, semi-axes (pixels) */
} disc;

/* Stroma-pink background with hematoxylin-blue ellipses (Beer-Lambert with
 * the Ruifrok-Johnston vectors), edges anti-aliased over one pixel. */
static uint32_t *draw(const disc *d, int n) {
    uint32_t *px = malloc((size_t)W * H * sizeof(uint32_t));
    const double vh[3] = {0.651, 0.701, 0.290}, ve[3] = {0.070, 0.991, 0.110};
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            double cov = 0;
            for (int i = 0; i < n; i++) {
                double u = (x + 0.5 - d[i].x) / d[i].a, v = (y + 0.5 - d[i].y) / d[i].b;
                double r = sqrt(u * u + v * v), edge = (1 - r) * fmin(d[i].a, d[i].b);
                double c = edge + 0.5;
                c = c < 0 ? 0 : c > 1 ? 1 : c;
                if (c > cov) cov = c;
            }
            unsigned ch[3];
            for (int k = 0; k < 3; k++)
                ch[k] = (unsigned)lround(255 * pow(10, -(0.5 * cov * vh[k] + 0.15 * ve[k])));
            px[y * W + x] = 0xff000000u | (ch[0] << 16) | (ch[1] << 8) | ch[2];
        }
    return px;
}

static cellseg_params params(void) {
    return (cellseg_params){.background_radius = 16, .sigma = 3, .threshold = 0.1f,
                            .min_area = 40, .max_area = 1600, .split = true, .refine = true,
                            .expansion = 0, .seed_ratio = 1.3f, .peak_radius = 6, .simplify = 0.5f};
}

static size_t segment(const disc *d, int n, const cellseg_params *p) {
    uint32_t *px = draw(d, n);
    cellseg_ws *ws = cellseg_ws_new(W, H);
    cellseg_cell *cells;
    size_t count = 0;
    assert_int_equal(cellseg_window(ws, px, W, H, p, 0, 0, W, H, NULL, NULL, &cells, &count), 0);
    cellseg_ws_free(ws);
    free(px);
    return count;
}

/* Two nuclei of radius 6 and 9 touching with a sliver of overlap. (At
 * this smoothing, sigma 3, a radius-5 nucleus against a radius-9 one is
 * not split: its smoothed peak is under 3/4 of its neighbour's.) */
static void test_cellseg_splits_touching_pair_of_different_sizes(void **state) {
    (void)state;
    disc d[] = {{60, 80, 9, 9}, {60 + 9 + 6 - 0.5, 80, 6, 6}};
    cellseg_params p = params();
    assert_int_equal(segment(d, 2, &p), 2);
}

/* Three nuclei of radius 7 in a row and a fourth beside them. */
static void test_cellseg_splits_cluster_of_four(void **state) {
    (void)state;
    disc d[] = {{50, 80, 7, 7}, {63.5, 80, 7, 7}, {77, 80, 7, 7}, {63.5, 93.5, 7, 7}};
    cellseg_params p = params();
    assert_int_equal(segment(d, 4, &p), 4);
}

/* One elongated nucleus (12 x 6) is one nucleus. */
static void test_cellseg_keeps_elongated_nucleus_whole(void **state) {
    (void)state;
    disc d[] = {{80, 80, 12, 6}};
    cellseg_params p = params();
    assert_int_equal(segment(d, 1, &p), 1);
}

/* Objects over max_area are split, not dropped: a pair of radius-12
 * nuclei (about 450 px each) with max_area 300 gives two nuclei, and a
 * single one over max_area is kept. */
static void test_cellseg_oversized_split_not_dropped(void **state) {
    (void)state;
    disc pair[] = {{60, 80, 12, 12}, {60 + 24 - 0.5, 80, 12, 12}};
    cellseg_params p = params();
    p.max_area = 300;
    assert_int_equal(segment(pair, 2, &p), 2);
    disc one[] = {{80, 80, 14, 14}};
    assert_int_equal(segment(one, 1, &p), 1);
}

/* Nine single nuclei of radius 6 (the window's typical size) and d[9..]. */
static size_t segment_among_singles(const disc *extra, int n_extra, const cellseg_params *p) {
    disc d[16];
    int n = 0;
    for (int j = 0; j < 3; j++)
        for (int i = 0; i < 3; i++) d[n++] = (disc){25 + 45 * i, 20 + 25 * j, 6, 6};
    for (int i = 0; i < n_extra; i++) d[n++] = extra[i];
    return segment(d, n, p);
}

/* An L of seven radius-6 nuclei overlapping by a quarter of their radii
 * (wide necks: one object to seed_ratio alone; not convex) is split when
 * the window's other nuclei show that it is several times their size; an
 * elongated nucleus twice their area is not (it is convex). */
static void test_cellseg_splits_object_larger_than_typical(void **state) {
    (void)state;
    disc ell7[] = {{60, 110, 6, 6}, {69, 110, 6, 6}, {78, 110, 6, 6}, {87, 110, 6, 6},
                   {60, 119, 6, 6}, {60, 128, 6, 6}, {60, 137, 6, 6}};
    cellseg_params p = params();
    assert_int_equal(segment(ell7, 7, &p), 1); /* alone: no typical size to compare with */
    assert_int_equal(segment_among_singles(ell7, 7, &p), 9 + 7);
    disc ell[] = {{80, 125, 11, 6}};
    assert_int_equal(segment_among_singles(ell, 1, &p), 9 + 1);
}

/* The concavity cut: a pair of radius-6 nuclei overlapping by 15% of their
 * summed radii (a neck too wide for seed_ratio, the pair nearly convex) is
 * cut at its two notches; a single nucleus, round, elongated or bent, is
 * not; nor is a pair when the cut is off. */
static void test_cellseg_cuts_touching_pair_at_notches(void **state) {
    (void)state;
    cellseg_params p = params();
    disc pair[] = {{70, 80, 6, 6}, {70 + 10.2, 80, 6, 6}};
    assert_int_equal(segment(pair, 2, &p), 1);
    p.concave_depth = 1;
    p.concave_smooth = 1;
    p.concave_ratio = 0.5f;
    assert_int_equal(segment(pair, 2, &p), 2);
    disc end_to_end[] = {{60, 80, 12, 6}, {60 + 21, 80, 10, 5}};
    assert_int_equal(segment(end_to_end, 2, &p), 2);
    disc round[] = {{80, 80, 9, 9}}, elongated[] = {{80, 80, 14, 6}};
    assert_int_equal(segment(round, 1, &p), 1);
    assert_int_equal(segment(elongated, 1, &p), 1);
    assert_int_equal(segment(round, 0, &p), 0); /* an empty window */
}

/* A 64-bit LCG's high bits: the same random inputs on every run. */
static uint32_t measure_rand(uint64_t *s) {
    *s = *s * 6364136223846793005ULL + 1442695040888963407ULL;
    return (uint32_t)(*s >> 33);
}

/* A float of random sign and mantissa over 2^-30 .. 2^6, -0 and 0 among
 * them: sums of such values in double depend on their order. */
static float measure_float(uint64_t *s) {
    uint32_t r = measure_rand(s);
    if (r % 50 == 0) return r % 100 == 0 ? 0.0f : -0.0f;
    return ldexpf((float)(measure_rand(s) % 0x1000000) / 0x1000000, (int)(measure_rand(s) % 37) - 30) *
           (r & 1 ? -1.0f : 1.0f);
}

/* The sums pixel by pixel in raster order over the whole image, as
 * cellseg.c's measure did before its runs: cells' shape and stains into
 * creg, nuclei's shape into nreg, and into nreg's sh and se the stains of
 * the pixels whose nucleus and cell labels are the same l > 0. */
static void measure_reference(const int32_t *cells, const int32_t *nuclei, const float *hraw, const uint32_t *rgb,
                              const float eosin[3][256], int w, int h, cellseg_region *creg, cellseg_region *nreg,
                              size_t n) {
    memset(creg, 0, (n + 1) * sizeof(*creg));
    memset(nreg, 0, (n + 1) * sizeof(*nreg));
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            size_t i = (size_t)y * (size_t)w + (size_t)x;
            for (int k = 0; k < 2; k++) {
                int32_t l = k ? nuclei[i] : cells[i];
                cellseg_region *r = k ? &nreg[l] : &creg[l];
                if (l <= 0) continue;
                if (r->area == 0) r->first_x = x, r->first_y = y;
                r->area += 1;
                r->sx += x + 0.5;
                r->sy += y + 0.5;
                if (k == 0) {
                    r->sh += hraw[i];
                    r->se += color_stain_at(eosin, rgb[i]);
                }
            }
            if (cells[i] > 0 && nuclei[i] == cells[i]) {
                nreg[cells[i]].sh += hraw[i];
                nreg[cells[i]].se += color_stain_at(eosin, rgb[i]);
            }
        }
}

/* Whether a and b hold the same fields bit for bit (valid aside). */
static int measure_same(const cellseg_region *a, const cellseg_region *b) {
    const double da[] = {a->area, a->sx, a->sy, a->sh, a->se}, db[] = {b->area, b->sx, b->sy, b->sh, b->se};
    if (memcmp(da, db, sizeof(da)) != 0) return 0;
    return a->area == 0 || (a->first_x == b->first_x && a->first_y == b->first_y);
}

/* cellseg_measure_shape and cellseg_measure_cells against the reference
 * on 200 random label images 1-200 wide: runs of random labels (some
 * labels in several runs of a row, many in many rows), nuclei in runs
 * inside the cells (some of another label), random stains and colours
 * (alpha 0 among them), occupancy exact or with extra blocks. */
static void test_cellseg_measure_matches_pixel_by_pixel(void **state) {
    (void)state;
    uint64_t seed = 15;
    for (int round = 0; round < 200; round++) {
        int w = 1 + (int)(measure_rand(&seed) % 200), h = 1 + (int)(measure_rand(&seed) % 60);
        size_t npx = (size_t)w * (size_t)h, n = 1 + measure_rand(&seed) % 40;
        int32_t *cells = malloc(npx * sizeof(int32_t)), *nuclei = malloc(npx * sizeof(int32_t));
        float *hraw = malloc(npx * sizeof(float));
        uint32_t *rgb = malloc(npx * sizeof(uint32_t));
        float eosin[3][256];
        for (int c = 0; c < 3; c++)
            for (int v = 0; v < 256; v++) eosin[c][v] = measure_float(&seed);
        int sparse = (int)(measure_rand(&seed) % 3); /* 0: dense .. 2: mostly background */
        for (size_t i = 0; i < npx;) {
            size_t len = 1 + measure_rand(&seed) % 24;
            int32_t l = measure_rand(&seed) % 4 < (uint32_t)(1 + sparse) ? 0 : (int32_t)(1 + measure_rand(&seed) % n);
            if (l == 0 && sparse == 2) len *= 8;
            for (size_t k = 0; k < len && i < npx; k++, i++) cells[i] = l;
        }
        for (size_t i = 0; i < npx;) {
            size_t len = 1 + measure_rand(&seed) % 10;
            uint32_t kind = measure_rand(&seed) % 8; /* the cell's label, none, or another */
            for (size_t k = 0; k < len && i < npx; k++, i++)
                nuclei[i] = kind < 5 ? cells[i] : kind < 7 ? 0 : (int32_t)(1 + measure_rand(&seed) % n);
        }
        for (size_t i = 0; i < npx; i++) {
            hraw[i] = measure_float(&seed);
            rgb[i] = measure_rand(&seed) | (measure_rand(&seed) % 10 == 0 ? 0 : 0xff000000u);
            if (measure_rand(&seed) % 10 == 0) rgb[i] &= 0x00ffffffu;
        }
        int nbx = (w + CELLSEG_OCC_W - 1) / CELLSEG_OCC_W;
        uint8_t *cm = malloc(npx), *nm = malloc(npx), *occ_c = malloc((size_t)nbx * h), *occ_n = malloc((size_t)nbx * h);
        for (size_t i = 0; i < npx; i++) cm[i] = cells[i] > 0, nm[i] = nuclei[i] > 0;
        cellseg_occupancy(cm, w, h, nbx, occ_c);
        cellseg_occupancy(nm, w, h, nbx, occ_n);
        for (size_t b = 0; b < (size_t)nbx * h; b++)
            if (measure_rand(&seed) % 5 == 0) occ_c[b] = occ_n[b] = 1; /* a looser occupancy reads the same */
        cellseg_region *creg = malloc((n + 1) * sizeof(*creg)), *nreg = malloc((n + 1) * sizeof(*nreg));
        cellseg_region *cref = malloc((n + 1) * sizeof(*cref)), *nref = malloc((n + 1) * sizeof(*nref));
        memset(creg, 0x5a, (n + 1) * sizeof(*creg));
        memset(nreg, 0x5a, (n + 1) * sizeof(*nreg));
        measure_reference(cells, nuclei, hraw, rgb, eosin, w, h, cref, nref, n);
        cellseg_measure_shape(nuclei, w, h, occ_n, nbx, nreg, n);
        for (size_t l = 1; l <= n; l++) assert_true(nreg[l].sh == 0 && nreg[l].se == 0);
        cellseg_measure_cells(cells, nuclei, hraw, rgb, (const float(*)[256])eosin, w, h, occ_c, nbx, creg, nreg, n);
        for (size_t l = 1; l <= n; l++) {
            assert_true(measure_same(&creg[l], &cref[l]));
            assert_true(measure_same(&nreg[l], &nref[l]));
        }
        free(cells), free(nuclei), free(hraw), free(rgb), free(cm), free(nm), free(occ_c), free(occ_n);
        free(creg), free(nreg), free(cref), free(nref);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cellseg_splits_touching_pair_of_different_sizes),
        cmocka_unit_test(test_cellseg_splits_cluster_of_four),
        cmocka_unit_test(test_cellseg_keeps_elongated_nucleus_whole),
        cmocka_unit_test(test_cellseg_oversized_split_not_dropped),
        cmocka_unit_test(test_cellseg_splits_object_larger_than_typical),
        cmocka_unit_test(test_cellseg_cuts_touching_pair_at_notches),
        cmocka_unit_test(test_cellseg_measure_matches_pixel_by_pixel),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
