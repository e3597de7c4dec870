/*
 * test_image_watershed.c - h-maxima markers and marker-controlled flooding
 * (src/image/watershed.c).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "image/watershed.h"
#include "util/util.h"

enum { RW = 20, RH = 17 };

static uint64_t rnd_next(uint64_t *s) {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static void fill_u8(uint8_t *m, int n, uint8_t v) {
    memset(m, v, (size_t)n);
}

/* ---- maxima ------------------------------------------------------------ */

/* Profile 0 5 3 4 0 1 0. h = 0: the three peaks 5, 4 and 1 are regional
 * maxima -> labels 1, 2, 3. h = 0.5: the peak 4 rises 1 above its saddle 3
 * and the peak 1 rises 1 above the 0s, both more than 0.5 -> still three.
 * h = 1: the peak 4 rises exactly 1, so in the reconstruction it becomes
 * 3 = its saddle and joins a plateau next to the slope of 5 (not a
 * maximum); same for the peak 1 -> only the 5 remains. h = 1.5 -> the 5. */
static void test_watershed_maxima_hand_computed_profile(void **state) {
    (void)state;
    const float img[7] = {0, 5, 3, 4, 0, 1, 0};
    uint8_t mask[7];
    fill_u8(mask, 7, 1);
    int32_t mk[7];
    const int32_t three[7] = {0, 1, 0, 2, 0, 3, 0}, one[7] = {0, 1, 0, 0, 0, 0, 0};
    assert_int_equal(watershed_maxima(img, mask, 7, 1, 0, mk), 3);
    assert_memory_equal(mk, three, sizeof(three));
    assert_int_equal(watershed_maxima(img, mask, 7, 1, 0.5f, mk), 3);
    assert_memory_equal(mk, three, sizeof(three));
    assert_int_equal(watershed_maxima(img, mask, 7, 1, 1.0f, mk), 1);
    assert_memory_equal(mk, one, sizeof(one));
    assert_int_equal(watershed_maxima(img, mask, 7, 1, 1.5f, mk), 1);
    assert_memory_equal(mk, one, sizeof(one));
}

/* A 3x2 plateau of 7 on a 5x4 image of 1s with a lone 4 elsewhere: the
 * plateau is one marker (label 1, its first pixel comes first), the 4 is
 * marker 2 at h = 2 (rises 3) and disappears at h = 3.5. Pixels outside
 * the mask are ignored: the 9 at (4,3) is masked out, so it neither is a
 * marker nor stops the 4 at (3,3) next to it from being one. */
static void test_watershed_maxima_plateau_and_mask(void **state) {
    (void)state;
    const float img[20] = {1, 7, 7, 7, 1,
                           1, 7, 7, 7, 1,
                           1, 1, 1, 1, 1,
                           1, 1, 1, 4, 9};
    uint8_t mask[20];
    fill_u8(mask, 20, 1);
    mask[19] = 0;
    int32_t mk[20];
    const int32_t want[20] = {0, 1, 1, 1, 0, 0, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0};
    assert_int_equal(watershed_maxima(img, mask, 5, 4, 2.0f, mk), 2);
    assert_memory_equal(mk, want, sizeof(want));
    int32_t want1[20];
    memcpy(want1, want, sizeof(want1));
    want1[18] = 0;
    assert_int_equal(watershed_maxima(img, mask, 5, 4, 3.5f, mk), 1);
    assert_memory_equal(mk, want1, sizeof(want1));
}

/* Brute-force h-maxima: reconstruction by repeated 3x3 geodesic dilation
 * until nothing changes (slow, obviously right), then plateaus grown by
 * repeated sweeps, a plateau being a maximum when no masked neighbour is
 * higher; labels by raster order of first pixel. */
static int brute_hmaxima(const float *img, const uint8_t *mask, int w, int h, float hv,
                         int32_t *out) {
    int n = w * h, changed = 1, nl = 0;
    float *rec = malloc(sizeof(float) * n);
    int32_t *plateau = malloc(sizeof(int32_t) * n);
    for (int p = 0; p < n; p++) rec[p] = img[p] - hv;
    while (changed) {
        changed = 0;
        for (int p = 0; p < n; p++) {
            if (!mask[p]) continue;
            float v = rec[p];
            for (int dy = -1; dy <= 1; dy++)
                for (int dx = -1; dx <= 1; dx++) {
                    int x = p % w + dx, y = p / w + dy;
                    if (x >= 0 && y >= 0 && x < w && y < h && mask[y * w + x] && rec[y * w + x] > v)
                        v = rec[y * w + x];
                }
            if (v > img[p]) v = img[p];
            if (v != rec[p]) {
                rec[p] = v;
                changed = 1;
            }
        }
    }
    memset(out, 0, sizeof(int32_t) * n);
    for (int p = 0; p < n; p++) plateau[p] = mask[p] ? p : -1; /* id = smallest member index */
    for (changed = 1; changed;) {
        changed = 0;
        for (int p = 0; p < n; p++) {
            if (!mask[p]) continue;
            for (int dy = -1; dy <= 1; dy++)
                for (int dx = -1; dx <= 1; dx++) {
                    int x = p % w + dx, y = p / w + dy, q = y * w + x;
                    if (x < 0 || y < 0 || x >= w || y >= h || !mask[q] || rec[q] != rec[p]) continue;
                    if (plateau[q] < plateau[p]) {
                        plateau[p] = plateau[q];
                        changed = 1;
                    }
                }
        }
    }
    for (int first = 0; first < n; first++) {
        if (!mask[first] || plateau[first] != first) continue;
        int is_max = 1;
        for (int p = 0; p < n; p++) {
            if (plateau[p] != first) continue;
            for (int dy = -1; dy <= 1; dy++)
                for (int dx = -1; dx <= 1; dx++) {
                    int x = p % w + dx, y = p / w + dy;
                    if (x >= 0 && y >= 0 && x < w && y < h && mask[y * w + x] && rec[y * w + x] > rec[p])
                        is_max = 0;
                }
        }
        if (!is_max) continue;
        nl++;
        for (int p = 0; p < n; p++)
            if (plateau[p] == first) out[p] = nl;
    }
    free(rec);
    free(plateau);
    return nl;
}

/* Random images quantised to a few levels (so plateaus are common), random
 * masks, several h: identical to the brute-force reference. */
static void test_watershed_maxima_match_brute_force_on_random_images(void **state) {
    (void)state;
    uint64_t s = 555;
    const float hs[4] = {0, 0.5f, 1.0f, 2.5f};
    float img[RW * RH];
    uint8_t mask[RW * RH];
    int32_t got[RW * RH], want[RW * RH];
    for (int trial = 0; trial < 40; trial++) {
        for (int i = 0; i < RW * RH; i++) {
            img[i] = (float)(rnd_next(&s) % (2 + trial % 6));
            mask[i] = rnd_next(&s) % 10 < (uint64_t)(trial < 20 ? 10 : 7);
        }
        float hv = hs[trial % 4];
        int n = brute_hmaxima(img, mask, RW, RH, hv, want);
        assert_int_equal(watershed_maxima(img, mask, RW, RH, hv, got), n);
        assert_memory_equal(got, want, sizeof(got));
    }
}

/* The same on wide images with sparse masks (blobs, as the tight mask of
 * a window is), so that the scans pass over empty blocks of 64 bytes
 * forwards and backwards, with blobs at the image's first and last
 * pixels. */
static void test_watershed_maxima_match_brute_force_on_sparse_wide_masks(void **state) {
    (void)state;
    uint64_t s = 8080;
    enum { W = 203, H = 23 };
    static float img[W * H];
    static uint8_t mask[W * H];
    static int32_t got[W * H], want[W * H];
    for (int trial = 0; trial < 12; trial++) {
        memset(mask, 0, sizeof(mask));
        for (int b = 0; b < 2 + trial % 4; b++) {
            int cx = (int)(rnd_next(&s) % W), cy = (int)(rnd_next(&s) % H), r = 1 + (int)(rnd_next(&s) % 6);
            if (b == 0) cx = 0, cy = 0;
            if (b == 1) cx = W - 1, cy = H - 1;
            for (int y = 0; y < H; y++)
                for (int x = 0; x < W; x++)
                    if ((x - cx) * (x - cx) + (y - cy) * (y - cy) <= r * r) mask[y * W + x] = 1;
        }
        for (int i = 0; i < W * H; i++) img[i] = (float)(rnd_next(&s) % (2 + trial % 5));
        float hv = (float)(trial % 3) * 0.5f;
        int n = brute_hmaxima(img, mask, W, H, hv, want);
        assert_int_equal(watershed_maxima(img, mask, W, H, hv, got), n);
        assert_memory_equal(got, want, sizeof(got));
    }
}

static void test_watershed_rejects_bad_arguments(void **state) {
    (void)state;
    float img[4] = {0};
    uint8_t mask[4] = {1, 1, 1, 1};
    int32_t l[4] = {0};
    assert_int_equal(watershed_maxima(img, mask, 2, 2, -1, l), -1);
    assert_int_equal(watershed_maxima(img, mask, 2, 2, NAN, l), -1);
    assert_int_equal(watershed_maxima(NULL, mask, 2, 2, 1, l), -1);
    assert_int_equal(watershed_maxima(img, mask, 0, 2, 1, l), -1);
    assert_int_equal(watershed_flood(img, NULL, 2, 2, l), TS_ERR);
    assert_int_equal(watershed_flood(img, mask, 2, -1, l), TS_ERR);
    assert_int_equal(watershed_flood(img, mask, 2, 2, NULL), TS_ERR);
}

/* ---- flooding ---------------------------------------------------------- */

/* A flat 9x1 plateau with markers at both ends. FIFO by hand: pops go
 * m1(x0) -> labels x1; m2(x8) -> x7; x1 -> x2; x7 -> x6; x2 -> x3;
 * x6 -> x5; x3 -> x4 (label 1, its front was queued first). The fronts
 * meet in the middle; a LIFO or unordered queue would let one marker run
 * across the whole plateau. */
static void test_watershed_flood_fifo_fronts_meet_halfway_on_plateau(void **state) {
    (void)state;
    float elev[9] = {0};
    uint8_t mask[9];
    fill_u8(mask, 9, 1);
    int32_t l[9] = {1, 0, 0, 0, 0, 0, 0, 0, 2};
    const int32_t want[9] = {1, 1, 1, 1, 1, 2, 2, 2, 2};
    assert_int_equal(watershed_flood(elev, mask, 9, 1, l), TS_OK);
    assert_memory_equal(l, want, sizeof(want));
}

/* Two basins 0 1 2 | 5 | 2 1 0 ... with markers in their bottoms at x=0
 * and x=6 and a ridge of 5 at x=3: both basins fill from their own
 * marker up to the ridge; the ridge pixel is reached by marker 1 first
 * (its neighbour x=2, at 2, was queued before marker 2's x=4 at 2). A
 * masked-out pixel (x=8) stays 0 and cuts off x=9, which no marker
 * reaches, so it stays 0 too. */
static void test_watershed_flood_hand_computed_basins_and_mask(void **state) {
    (void)state;
    const float elev[10] = {0, 1, 2, 5, 2, 1, 0, 1, 0, 0};
    uint8_t mask[10];
    fill_u8(mask, 10, 1);
    mask[8] = 0;
    int32_t l[10] = {1, 0, 0, 0, 0, 0, 2, 0, 0, 0};
    const int32_t want[10] = {1, 1, 1, 1, 2, 2, 2, 2, 0, 0};
    assert_int_equal(watershed_flood(elev, mask, 10, 1, l), TS_OK);
    assert_memory_equal(l, want, sizeof(want));
}

/* In 2-D the flood is 8-connected: a marker reaches a pixel touching it
 * only diagonally. A marker placed on a masked-out pixel is dropped (and
 * the pixel reads 0), so it labels nothing. */
static void test_watershed_flood_is_8_connected_and_drops_markers_outside_mask(void **state) {
    (void)state;
    const float elev[9] = {0};
    const uint8_t mask[9] = {1, 0, 0,
                             0, 1, 0,
                             0, 0, 1};
    int32_t l[9] = {3, 0, 0, 0, 0, 0, 0, 0, 0};
    const int32_t want[9] = {3, 0, 0, 0, 3, 0, 0, 0, 3};
    assert_int_equal(watershed_flood(elev, mask, 3, 3, l), TS_OK);
    assert_memory_equal(l, want, sizeof(want));
    int32_t l2[9] = {0, 4, 0, 0, 0, 0, 0, 0, 0};
    assert_int_equal(watershed_flood(elev, mask, 3, 3, l2), TS_OK);
    for (int i = 0; i < 9; i++) assert_int_equal(l2[i], 0);
}

/* Random elevations, masks and markers: every masked pixel 8-connected
 * (through the mask) to a marker gets a label, every other pixel 0;
 * markers keep their labels; each label's region is 8-connected and
 * contains one of its markers (checked by flood fill from the markers
 * through pixels of the same label). */
static void test_watershed_flood_labels_every_connected_pixel_on_random_images(void **state) {
    (void)state;
    uint64_t s = 8080;
    enum { N = RW * RH };
    float elev[N];
    uint8_t mask[N], seen[N];
    int32_t l[N], markers[N];
    int stack[N];
    for (int trial = 0; trial < 40; trial++) {
        for (int i = 0; i < N; i++) {
            elev[i] = (float)(rnd_next(&s) % 5);
            mask[i] = rnd_next(&s) % 10 < 6;
            markers[i] = rnd_next(&s) % 60 == 0 ? (int32_t)(1 + rnd_next(&s) % 4) : 0;
            if (!mask[i]) markers[i] = 0;
        }
        memcpy(l, markers, sizeof(l));
        assert_int_equal(watershed_flood(elev, mask, RW, RH, l), TS_OK);
        /* reachable from markers through the mask, and through the same label */
        int top = 0;
        memset(seen, 0, sizeof(seen));
        for (int p = 0; p < N; p++)
            if (markers[p] > 0) {
                assert_int_equal(l[p], markers[p]);
                seen[p] = 1;
                stack[top++] = p;
            }
        while (top > 0) {
            int p = stack[--top];
            for (int dy = -1; dy <= 1; dy++)
                for (int dx = -1; dx <= 1; dx++) {
                    int x = p % RW + dx, y = p / RW + dy, q = y * RW + x;
                    if (x < 0 || y < 0 || x >= RW || y >= RH || !mask[q] || seen[q]) continue;
                    if (l[q] != l[p]) continue; /* different label: reached from another seed */
                    seen[q] = 1;
                    stack[top++] = q;
                }
        }
        for (int p = 0; p < N; p++) {
            if (l[p] != 0) assert_true(seen[p]); /* connected to a marker of its own label */
            if (!mask[p]) assert_int_equal(l[p], 0);
        }
        /* every masked pixel next to a labelled one is labelled itself */
        for (int p = 0; p < N; p++) {
            if (!mask[p] || l[p] == 0) continue;
            for (int dy = -1; dy <= 1; dy++)
                for (int dx = -1; dx <= 1; dx++) {
                    int x = p % RW + dx, y = p / RW + dy;
                    if (x >= 0 && y >= 0 && x < RW && y < RH && mask[y * RW + x])
                        assert_int_not_equal(l[y * RW + x], 0);
                }
        }
    }
}

/* The bucket-queue flood gives the heap flood's labels, pixel for pixel,
 * on random whole-number elevations (plateaus included, -0 among the 0s),
 * masks with holes and markers, some outside the mask; and it rejects
 * what the heap flood rejects. The heap flood on the same elevations
 * shifted below zero gives the same labels (its keys order negative
 * floats correctly). */
static void test_watershed_flood_levels_equals_heap_flood(void **state) {
    (void)state;
    const int w = 61, h = 47;
    size_t n = (size_t)w * h;
    float *elev = malloc(n * sizeof(float));
    uint8_t *mask = malloc(n);
    int32_t *a = malloc(n * sizeof(int32_t)), *b = malloc(n * sizeof(int32_t));
    unsigned seed = 12345;
    for (int round = 0; round < 40; round++) {
        int levels = 1 + round % 9 * 3;
        for (size_t i = 0; i < n; i++) {
            seed = seed * 1103515245u + 12345u;
            elev[i] = (float)((seed >> 8) % (unsigned)levels);
            if (elev[i] == 0 && (seed >> 28) % 2) elev[i] = -0.0f; /* equal to +0: FIFO decides */
            mask[i] = ((seed >> 20) % 7) != 0;
            a[i] = ((seed >> 4) % 97) == 0 ? (int32_t)((seed >> 12) % 5 + 1) : 0;
        }
        memcpy(b, a, n * sizeof(int32_t));
        /* from the markers into another array: the same labels, the
         * markers left alone (the output's old contents ignored) */
        int32_t *marks = malloc(n * sizeof(int32_t)), *into = malloc(n * sizeof(int32_t));
        memcpy(marks, a, n * sizeof(int32_t));
        for (size_t i = 0; i < n; i++) into[i] = (int32_t)(i % 5) - 2;
        assert_int_equal(watershed_flood_levels_into(elev, levels, mask, w, h, NULL, marks, into), TS_OK);
        assert_memory_equal(marks, b, n * sizeof(int32_t));
        assert_int_equal(watershed_flood(elev, mask, w, h, a), TS_OK);
        assert_int_equal(watershed_flood_levels(elev, levels, mask, w, h, b), TS_OK);
        assert_memory_equal(a, b, n * sizeof(int32_t));
        assert_memory_equal(into, b, n * sizeof(int32_t));
        free(marks);
        free(into);
        /* negative elevations order as the same shape shifted */
        int32_t *c = malloc(n * sizeof(int32_t));
        float *low = malloc(n * sizeof(float));
        seed = seed * 1103515245u + 12345u;
        for (size_t i = 0; i < n; i++) {
            low[i] = elev[i] - 1000.5f;
            c[i] = (i * 7919 + seed) % 101 == 0 ? (int32_t)(i % 3 + 1) : 0;
        }
        memcpy(b, c, n * sizeof(int32_t));
        assert_int_equal(watershed_flood(elev, mask, w, h, c), TS_OK);
        assert_int_equal(watershed_flood(low, mask, w, h, b), TS_OK);
        assert_memory_equal(b, c, n * sizeof(int32_t));
        free(c);
        free(low);
    }
    assert_int_equal(watershed_flood_levels(elev, 0, mask, w, h, b), TS_ERR);
    assert_int_equal(watershed_flood_levels(NULL, 4, mask, w, h, b), TS_ERR);
    assert_int_equal(watershed_flood_levels_into(elev, 4, mask, w, h, NULL, NULL, b), TS_ERR);
    free(elev);
    free(mask);
    free(a);
    free(b);
}

/* The plain flood the header describes, for reference: the lowest
 * (elevation, push order) first from a linear scan, each neighbour
 * bounds-checked, in the order (-1,-1) (0,-1) (1,-1) (-1,0) (1,0) (-1,1)
 * (0,1) (1,1). Quadratic, for small images only. */
static void plain_flood(const float *elev, const uint8_t *mask, int w, int h, int32_t *labels) {
    int n = w * h, len = 0;
    int *qp = malloc(sizeof(int) * (size_t)n), *qa = malloc(sizeof(int) * (size_t)n), age = 0;
    uint8_t *alive = calloc((size_t)n, 1);
    for (int p = 0; p < n; p++) {
        if (!mask[p] || labels[p] < 0) labels[p] = 0;
        if (labels[p] > 0) qp[len] = p, qa[len] = age++, alive[len++] = 1;
    }
    for (;;) {
        int best = -1;
        for (int i = 0; i < len; i++) {
            if (!alive[i]) continue;
            float eb = best < 0 ? 0 : elev[qp[best]] + 0.0f, ei = elev[qp[i]] + 0.0f;
            if (best < 0 || ei < eb || (ei == eb && qa[i] < qa[best])) best = i;
        }
        if (best < 0) break;
        alive[best] = 0;
        int p = qp[best];
        for (int dy = -1; dy <= 1; dy++)
            for (int dx = -1; dx <= 1; dx++) {
                int x = p % w + dx, y = p / w + dy, q = y * w + x;
                if ((dx == 0 && dy == 0) || x < 0 || y < 0 || x >= w || y >= h) continue;
                if (!mask[q] || labels[q] != 0) continue;
                labels[q] = labels[p];
                qp[len] = q, qa[len] = age++, alive[len++] = 1;
            }
    }
    free(qp);
    free(qa);
    free(alive);
}

/* Floods a copy of markers with watershed_flood (levels > 0:
 * watershed_flood_levels with that many levels) and another with the plain
 * flood, and asserts the same labels pixel for pixel. */
static void assert_flood_is_plain(const float *elev, int levels, const uint8_t *mask, int w, int h,
                                  const int32_t *markers) {
    size_t bytes = sizeof(int32_t) * (size_t)w * (size_t)h;
    int32_t *a = malloc(bytes), *b = malloc(bytes);
    memcpy(a, markers, bytes);
    memcpy(b, markers, bytes);
    int rc = levels > 0 ? watershed_flood_levels(elev, levels, mask, w, h, a)
                        : watershed_flood(elev, mask, w, h, a);
    assert_int_equal(rc, TS_OK);
    plain_flood(elev, mask, w, h, b);
    assert_memory_equal(a, b, bytes);
    free(a);
    free(b);
}

/* Both floods (the framed grid, the heap, the packed bucket queue) give
 * the plain flood's labels pixel for pixel on random images: fractional
 * and whole elevations with plateaus, masks touching every border, and
 * markers inside, outside the mask and negative. */
static void test_watershed_floods_equal_plain_flood_on_random_images(void **state) {
    (void)state;
    uint64_t s = 4242;
    for (int trial = 0; trial < 200; trial++) {
        int w = 1 + (int)(rnd_next(&s) % 23), h = 1 + (int)(rnd_next(&s) % 19), n = w * h;
        int levels = 1 + (int)(rnd_next(&s) % 12);
        float *whole = malloc(sizeof(float) * (size_t)n), *frac = malloc(sizeof(float) * (size_t)n);
        uint8_t *mask = malloc((size_t)n);
        int32_t *markers = malloc(sizeof(int32_t) * (size_t)n);
        for (int i = 0; i < n; i++) {
            whole[i] = (float)(rnd_next(&s) % (uint64_t)levels);
            frac[i] = (float)(rnd_next(&s) % 1000) / 97.0f - 3.0f;
            mask[i] = rnd_next(&s) % 10 < 8;
            uint64_t r = rnd_next(&s) % 40;
            markers[i] = r == 0 ? (int32_t)(1 + rnd_next(&s) % 5) : r == 1 ? -3 : 0;
        }
        assert_flood_is_plain(frac, 0, mask, w, h, markers);
        /* whole numbers: plateaus, where the order of pushes decides */
        assert_flood_is_plain(whole, 0, mask, w, h, markers);
        assert_flood_is_plain(whole, levels, mask, w, h, markers);
        free(whole);
        free(frac);
        free(mask);
        free(markers);
    }
}

/* Sparse masks (about as dense as where 8-connected components stop
 * joining up): many components of every size, several markers in most,
 * components interleaved in raster order, as the nuclei of a window are;
 * the flood equals the plain flood, on fractional and on whole
 * elevations (plateaus). */
static void test_watershed_flood_equals_plain_flood_on_many_components(void **state) {
    (void)state;
    uint64_t s = 99;
    for (int trial = 0; trial < 120; trial++) {
        int w = 1 + (int)(rnd_next(&s) % 60), h = 1 + (int)(rnd_next(&s) % 50), n = w * h;
        float *elev = malloc(sizeof(float) * (size_t)n);
        uint8_t *mask = malloc((size_t)n);
        int32_t *markers = malloc(sizeof(int32_t) * (size_t)n);
        for (int i = 0; i < n; i++) {
            elev[i] = trial % 2 ? (float)(rnd_next(&s) % 4) : (float)(rnd_next(&s) % 1000) / 97.0f - 3.0f;
            mask[i] = rnd_next(&s) % 100 < 40 + (uint64_t)(trial % 3) * 5;
            markers[i] = rnd_next(&s) % 8 == 0 ? (int32_t)(1 + rnd_next(&s) % 50) : 0;
        }
        assert_flood_is_plain(elev, 0, mask, w, h, markers);
        free(elev);
        free(mask);
        free(markers);
    }
}

/* The level flood on wide sparse masks (3 to 15 per cent of pixels: runs
 * of background of every length, so every position of a mask pixel in and
 * around the 16-byte tests that pass over background), whole elevations,
 * markers in and out of the mask: the plain flood's labels. */
static void test_watershed_flood_levels_equals_plain_on_sparse_wide_masks(void **state) {
    (void)state;
    uint64_t s = 1615;
    for (int trial = 0; trial < 60; trial++) {
        int w = 16 + (int)(rnd_next(&s) % 140), h = 1 + (int)(rnd_next(&s) % 30), n = w * h;
        int levels = 1 + (int)(rnd_next(&s) % 9);
        float *elev = malloc(sizeof(float) * (size_t)n);
        uint8_t *mask = malloc((size_t)n);
        int32_t *markers = malloc(sizeof(int32_t) * (size_t)n);
        uint64_t density = 3 + (uint64_t)(trial % 5) * 3;
        for (int i = 0; i < n; i++) {
            elev[i] = (float)(rnd_next(&s) % (uint64_t)levels);
            mask[i] = rnd_next(&s) % 100 < density;
            markers[i] = rnd_next(&s) % 6 == 0 ? (int32_t)(1 + rnd_next(&s) % 9) : 0;
        }
        assert_flood_is_plain(elev, levels, mask, w, h, markers);
        free(elev);
        free(mask);
        free(markers);
    }
}

/* watershed_flood_levels_into with an occupancy of 64-column blocks:
 * the same labels as without it, on wide sparse masks (blobs, some
 * touching the edges and spanning blocks), whether the occupancy marks
 * exactly the blocks holding mask pixels or more; the markers and the
 * output's old contents outside the mask do not matter. */
static void test_watershed_flood_levels_with_occupancy(void **state) {
    (void)state;
    const int w = 200, h = 37, nbx = (w + 63) / 64;
    size_t n = (size_t)w * h;
    float *elev = malloc(n * sizeof(float));
    uint8_t *mask = malloc(n), *occ = malloc((size_t)nbx * h);
    int32_t *marks = malloc(n * sizeof(int32_t)), *a = malloc(n * sizeof(int32_t)),
            *b = malloc(n * sizeof(int32_t));
    unsigned seed = 777;
    for (int round = 0; round < 12; round++) {
        memset(mask, 0, n);
        memset(marks, 0, n * sizeof(int32_t));
        for (int k = 0; k < 1 + round % 5; k++) {
            seed = seed * 1103515245u + 12345u;
            int cx = (int)((seed >> 8) % (unsigned)w), cy = (int)((seed >> 20) % (unsigned)h), r = 2 + (int)(seed % 9);
            for (int y = 0; y < h; y++)
                for (int x = 0; x < w; x++)
                    if ((x - cx) * (x - cx) + (y - cy) * (y - cy) <= r * r) mask[(size_t)y * w + x] = 1;
            marks[(size_t)cy * w + cx] = k + 1;
        }
        for (size_t i = 0; i < n; i++) {
            seed = seed * 1103515245u + 12345u;
            elev[i] = (float)((seed >> 8) % 7u);
            if (!mask[i] && (seed >> 29) == 0) marks[i] = 3; /* markers outside the mask are dropped */
            a[i] = b[i] = -5;
        }
        for (int y = 0; y < h; y++)
            for (int bx = 0; bx < nbx; bx++) {
                uint8_t any = round % 3 == 2; /* every third round: all blocks marked */
                for (int x = bx * 64; x < w && x < bx * 64 + 64; x++) any |= mask[(size_t)y * w + x];
                occ[(size_t)y * nbx + bx] = any;
            }
        assert_int_equal(watershed_flood_levels_into(elev, 7, mask, w, h, NULL, marks, a), TS_OK);
        assert_int_equal(watershed_flood_levels_into(elev, 7, mask, w, h, occ, marks, b), TS_OK);
        assert_memory_equal(a, b, n * sizeof(int32_t));
    }
    free(elev);
    free(mask);
    free(occ);
    free(marks);
    free(a);
    free(b);
}

/* One scratch taken by all three _with functions in turn, over images of
 * random sizes (so it is grown, then reused by smaller calls) and filled
 * with garbage between calls: each gives exactly what its allocating
 * twin gives, and a NULL scratch is refused. */
static void test_watershed_with_scratch_equals_allocating_calls(void **state) {
    (void)state;
    uint64_t s = 777;
    image_scratch scratch = {0};
    for (int trial = 0; trial < 150; trial++) {
        int w = 1 + (int)(rnd_next(&s) % 61), h = 1 + (int)(rnd_next(&s) % 47), n = w * h;
        int levels = 1 + (int)(rnd_next(&s) % 9);
        float *img = malloc(sizeof(float) * (size_t)n);
        uint8_t *mask = malloc((size_t)n);
        int32_t *a = malloc(sizeof(int32_t) * (size_t)n), *b = malloc(sizeof(int32_t) * (size_t)n);
        int32_t *la = malloc(sizeof(int32_t) * (size_t)n), *lb = malloc(sizeof(int32_t) * (size_t)n);
        for (int i = 0; i < n; i++) {
            img[i] = (float)(rnd_next(&s) % (uint64_t)levels);
            mask[i] = rnd_next(&s) % 10 < 7;
        }
        if (scratch.cap) memset(scratch.block, 0xa5, scratch.cap);
        int ka = watershed_maxima(img, mask, w, h, 1.0f, a);
        int kb = watershed_maxima_with(&scratch, img, mask, w, h, 1.0f, b);
        assert_int_equal(ka, kb);
        assert_memory_equal(a, b, sizeof(int32_t) * (size_t)n);
        memset(scratch.block, 0x5a, scratch.cap);
        memcpy(la, a, sizeof(int32_t) * (size_t)n);
        memcpy(lb, a, sizeof(int32_t) * (size_t)n);
        assert_int_equal(watershed_flood(img, mask, w, h, la), TS_OK);
        assert_int_equal(watershed_flood_with(&scratch, img, mask, w, h, lb), TS_OK);
        assert_memory_equal(la, lb, sizeof(int32_t) * (size_t)n);
        memset(scratch.block, 0xff, scratch.cap);
        assert_int_equal(watershed_flood_levels_into(img, levels, mask, w, h, NULL, a, la), TS_OK);
        assert_int_equal(watershed_flood_levels_with(&scratch, img, levels, mask, w, h, NULL, a, lb), TS_OK);
        assert_memory_equal(la, lb, sizeof(int32_t) * (size_t)n);
        free(img);
        free(mask);
        free(a);
        free(b);
        free(la);
        free(lb);
    }
    int32_t one = 1;
    float e = 0;
    uint8_t m = 1;
    assert_int_equal(watershed_maxima_with(NULL, &e, &m, 1, 1, 0, &one), -1);
    assert_int_equal(watershed_flood_with(NULL, &e, &m, 1, 1, &one), TS_ERR);
    assert_int_equal(watershed_flood_levels_with(NULL, &e, 1, &m, 1, 1, NULL, &one, &one), TS_ERR);
    image_scratch_release(&scratch);
    assert_null(scratch.block);
    assert_int_equal(scratch.cap, 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_watershed_maxima_hand_computed_profile),
        cmocka_unit_test(test_watershed_maxima_plateau_and_mask),
        cmocka_unit_test(test_watershed_maxima_match_brute_force_on_random_images),
        cmocka_unit_test(test_watershed_maxima_match_brute_force_on_sparse_wide_masks),
        cmocka_unit_test(test_watershed_rejects_bad_arguments),
        cmocka_unit_test(test_watershed_flood_fifo_fronts_meet_halfway_on_plateau),
        cmocka_unit_test(test_watershed_flood_hand_computed_basins_and_mask),
        cmocka_unit_test(test_watershed_flood_is_8_connected_and_drops_markers_outside_mask),
        cmocka_unit_test(test_watershed_flood_labels_every_connected_pixel_on_random_images),
        cmocka_unit_test(test_watershed_flood_levels_equals_heap_flood),
        cmocka_unit_test(test_watershed_flood_levels_with_occupancy),
        cmocka_unit_test(test_watershed_flood_levels_equals_plain_on_sparse_wide_masks),
        cmocka_unit_test(test_watershed_floods_equal_plain_flood_on_random_images),
        cmocka_unit_test(test_watershed_flood_equals_plain_flood_on_many_components),
        cmocka_unit_test(test_watershed_with_scratch_equals_allocating_calls),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
