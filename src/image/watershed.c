/*
 * watershed.c - see watershed.h.
 *
 * h-maxima: the reconstruction by dilation of img - h under img uses
 * Vincent's hybrid algorithm (L. Vincent, "Morphological grayscale
 * reconstruction in image analysis", IEEE TIP 1993): one raster and one
 * anti-raster sweep do most of the work, and a FIFO queue finishes the
 * pixels the sweeps could not reach, so the cost is a few passes rather
 * than one pass per grey level. The regional maxima of the result are then
 * found by walking each 8-connected plateau once.
 *
 * Flooding: Meyer's algorithm with a heap keyed on (elevation, insertion
 * counter). A pixel is labelled when it is pushed, from the
 * pixel that reached it, and each pixel is pushed at most once, so the
 * heap never holds more than w*h entries and is allocated once. The
 * counter makes equal elevations come out first-in first-out, so fronts
 * crossing a plateau advance in step and meet half-way instead of the
 * first front taking the whole plateau.
 */
#include "image/watershed.h"

#include "image/maskblock.h"
#include "image/scratch.h"

#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "util/util.h"

/* Neighbours are always visited in one order, (dx, dy) = (-1,-1) (0,-1)
 * (1,-1) (-1,0) (1,0) (-1,1) (0,1) (1,1): the fronts' FIFO order, and so
 * the labels where fronts meet, depend on it. */

/* Shared argument check; labels are int32, so w*h must fit, and so must
 * the framed grid of the floods, (w + 2) * (h + 2). */
static int ws_check(const void *img, const uint8_t *mask, int w, int h, const int32_t *out) {
    if (img == NULL || mask == NULL || out == NULL || w < 1 || h < 1) return TS_ERR;
    if (((int64_t)w + 2) * ((int64_t)h + 2) >= INT32_MAX) return TS_ERR;
    return TS_OK;
}

/* The 8-neighbours of pixel p inside the image, in the order above (row above left to right, left, right, row below), into q;
 * returns how many. One division per pixel instead of two, and no bounds
 * test per neighbour: the loops over the neighbours are the hot part of
 * every flood. */
/* The image's width with its reciprocal, so that a pixel's column costs a
 * multiplication instead of an integer division (tens of cycles, once per
 * pixel popped in every flood). */
typedef struct ws_grid {
    int w;
    int32_t npx;
    double inv; /* 1.0 / w */
} ws_grid;

static ws_grid ws_grid_of(int w, int h) {
    return (ws_grid){.w = w, .npx = (int32_t)((int64_t)w * h), .inv = 1.0 / w};
}

/* p % w: the quotient from the reciprocal is off by at most one (p < 2^31,
 * the reciprocal's relative error 2^-53), which the correction undoes. */
static inline int ws_col(int32_t p, const ws_grid *g) {
    int x = p - (int)((double)p * g->inv) * g->w;
    if (x < 0) x += g->w;
    else if (x >= g->w) x -= g->w;
    return x;
}

static inline int ws_around(int32_t p, const ws_grid *g, int32_t q[8]) {
    int w = g->w, x = ws_col(p, g), n = 0;
    int32_t npx = g->npx;
    int left = x > 0, right = x < w - 1, up = p >= w, down = p < npx - w;
    if (up) {
        if (left) q[n++] = p - w - 1;
        q[n++] = p - w;
        if (right) q[n++] = p - w + 1;
    }
    if (left) q[n++] = p - 1;
    if (right) q[n++] = p + 1;
    if (down) {
        if (left) q[n++] = p + w - 1;
        q[n++] = p + w;
        if (right) q[n++] = p + w + 1;
    }
    return n;
}

/* The neighbours of p that follow it in raster order (right, row below),
 * or precede it (row above, left) when before is set, in that order. */
static inline int ws_half(int32_t p, const ws_grid *g, int before, int32_t q[4]) {
    int w = g->w, x = ws_col(p, g), n = 0;
    int32_t npx = g->npx;
    int left = x > 0, right = x < w - 1;
    if (before) {
        if (p >= w) {
            if (left) q[n++] = p - w - 1;
            q[n++] = p - w;
            if (right) q[n++] = p - w + 1;
        }
        if (left) q[n++] = p - 1;
    } else {
        if (right) q[n++] = p + 1;
        if (p < npx - w) {
            if (left) q[n++] = p + w - 1;
            q[n++] = p + w;
            if (right) q[n++] = p + w + 1;
        }
    }
    return n;
}

/* ---- h-maxima ---------------------------------------------------------- */

/* Reconstruction state: rec is the marker being raised, img the ceiling;
 * queue is a ring buffer of n entries with inq flags, so a pixel is never
 * queued twice at once and n entries always suffice. */
typedef struct ws_recon {
    const float *img;
    const uint8_t *mask;
    int w, h;
    ws_grid grid;
    float *rec;
    int32_t *queue;
    uint8_t *inq;
    size_t head, count, cap;
} ws_recon;

static void ws_queue_push(ws_recon *r, int32_t p) {
    if (r->inq[p]) return;
    r->inq[p] = 1;
    r->queue[(r->head + r->count++) % r->cap] = p;
}

static int32_t ws_queue_pop(ws_recon *r) {
    int32_t p = r->queue[r->head];
    r->head = (r->head + 1) % r->cap;
    r->count--;
    r->inq[p] = 0;
    return p;
}

/* p, moved on past every block of 64 mask bytes from it that is all 0:
 * the scans over a sparse mask pass over its background a block at a
 * time instead of eight bytes at a time. */
static inline size_t ws_skip64(const uint8_t *m, size_t p, size_t npx) {
    while (p + 64 <= npx && maskblock_empty(m + p)) p += 64;
    return p;
}

/* One sweep: rec[p] = min(max of rec over p and the neighbours already
 * visited in this direction, img[p]). The forward sweep uses the four
 * neighbours before p (above and left), the backward one the four after
 * it; the backward sweep also queues p when a later neighbour could still
 * be raised by it. */
static void ws_recon_sweep(ws_recon *r, int backward) {
    int32_t npx = (int32_t)(r->w * r->h), nb[4];
    for (int32_t i = 0; i < npx; i++) {
        int32_t p = backward ? npx - 1 - i : i;
        if (!r->mask[p]) {
            /* outside the mask, most of a window: skip eight at a time,
             * then whole empty blocks of 64 */
            uint64_t m8 = 1;
            if (i + 8 < npx) memcpy(&m8, r->mask + (backward ? p - 7 : p), sizeof(m8));
            if (m8 == 0) {
                i += 8;
                while (i + 64 < npx && maskblock_empty(r->mask + (backward ? npx - 1 - i - 63 : i))) i += 64;
                i--;
            }
            continue;
        }
        int n = ws_half(p, &r->grid, !backward, nb);
        float v = r->rec[p];
        for (int k = 0; k < n; k++)
            if (r->mask[nb[k]] && r->rec[nb[k]] > v) v = r->rec[nb[k]];
        r->rec[p] = v < r->img[p] ? v : r->img[p];
        for (int k = 0; backward && k < n; k++) {
            int32_t q = nb[k];
            if (r->mask[q] && r->rec[q] < r->rec[p] && r->rec[q] < r->img[q]) {
                ws_queue_push(r, p);
                break;
            }
        }
    }
}

/* FIFO propagation: each popped pixel raises its neighbours towards its
 * own level, capped by img. */
static void ws_recon_propagate(ws_recon *r) {
    int32_t nb[8];
    while (r->count > 0) {
        int32_t p = ws_queue_pop(r);
        int n = ws_around(p, &r->grid, nb);
        for (int k = 0; k < n; k++) {
            int32_t q = nb[k];
            if (!r->mask[q] || r->rec[q] >= r->rec[p] || r->rec[q] == r->img[q]) continue;
            r->rec[q] = r->rec[p] < r->img[q] ? r->rec[p] : r->img[q];
            ws_queue_push(r, q);
        }
    }
}

/* Collects the 8-connected plateau of equal rec containing start into
 * list (returns its size), marking it seen; *is_max is cleared when a
 * neighbour in the mask is higher. */
static size_t ws_plateau(ws_recon *r, int32_t start, int32_t *list, int *is_max) {
    float v = r->rec[start];
    size_t n = 0;
    list[n++] = start;
    r->inq[start] = 1;
    *is_max = 1;
    int32_t nb[8];
    for (size_t i = 0; i < n; i++) {
        int m = ws_around(list[i], &r->grid, nb);
        for (int k = 0; k < m; k++) {
            int32_t q = nb[k];
            if (!r->mask[q]) continue;
            if (r->rec[q] > v) *is_max = 0;
            if (r->rec[q] == v && !r->inq[q]) {
                r->inq[q] = 1;
                list[n++] = q;
            }
        }
    }
    return n;
}

/* Whether the 8 mask bytes from m on are all 0. */
static inline bool ws_none8(const uint8_t *m) {
    uint64_t v;
    memcpy(&v, m, sizeof(v));
    return v == 0;
}

/* Labels the regional maxima of rec in raster order of their first pixel
 * (plateau walks reuse the queue buffer as their pixel list and inq as
 * the seen flags, both idle by now). */
static int ws_label_maxima(ws_recon *r, int32_t *markers) {
    size_t npx = (size_t)r->w * r->h;
    int n = 0;
    memset(markers, 0, npx * sizeof(int32_t));
    for (size_t p = 0; p < npx; p++) {
        if (p + 8 <= npx && ws_none8(r->mask + p)) {
            p = ws_skip64(r->mask, p + 8, npx) - 1; /* outside the mask, most of a window */
            continue;
        }
        if (!r->mask[p] || r->inq[p]) continue;
        int is_max;
        size_t len = ws_plateau(r, (int32_t)p, r->queue, &is_max);
        if (!is_max) continue;
        n++;
        for (size_t i = 0; i < len; i++) markers[r->queue[i]] = n;
    }
    return n;
}

int watershed_maxima(const float *img, const uint8_t *mask, int w, int h, float hmin,
                     int32_t *markers) {
    image_scratch own = {0};
    int n = watershed_maxima_with(&own, img, mask, w, h, hmin, markers);
    image_scratch_release(&own);
    return n;
}

/* The reconstruction's three arrays (npx each) from the scratch. */
int watershed_maxima_with(image_scratch *scratch, const float *img, const uint8_t *mask, int w, int h,
                          float hmin, int32_t *markers) {
    if (scratch == NULL || ws_check(img, mask, w, h, markers) != TS_OK || !(hmin >= 0)) return -1;
    size_t npx = (size_t)w * h;
    char *block = image_scratch_take(scratch, npx * (sizeof(float) + sizeof(int32_t) + 1));
    ws_recon r = {.img = img, .mask = mask, .w = w, .h = h, .grid = ws_grid_of(w, h), .cap = npx};
    r.rec = (float *)block;
    r.queue = (int32_t *)(block + npx * sizeof(float));
    r.inq = (uint8_t *)(block + npx * (sizeof(float) + sizeof(int32_t)));
    /* rec and inq are only ever read inside the mask (every access is
     * behind a mask test), so only there are they set */
    for (size_t p = 0; p < npx; p++) {
        if (p + 8 <= npx && ws_none8(mask + p)) {
            p = ws_skip64(mask, p + 8, npx) - 1;
            continue;
        }
        if (!mask[p]) continue;
        r.rec[p] = img[p] - hmin;
        r.inq[p] = 0;
    }
    ws_recon_sweep(&r, 0);
    ws_recon_sweep(&r, 1);
    ws_recon_propagate(&r);
    return ws_label_maxima(&r, markers);
}

/* ---- flooding ---------------------------------------------------------- */

/* The heap flood touches only the pixels it reaches, which on a tile are
 * a few per cent of it (nuclei and the rings around them): nothing is
 * done to the whole image but one read of the labels for the markers
 * (blocks of 16 unlabelled pixels passed over at a time); neighbours are
 * tested against the mask and the labels directly. The bucket-queue flood
 * (cell growth: more pixels, each a cheap pop) works on a framed copy
 * instead, where a neighbour is one load. */

/* Whether the 16 labels from l on are all 0. */
static inline bool ws_zero16(const int32_t *l) {
    int32_t any = 0;
    for (int k = 0; k < 16; k++) any |= l[k];
    return any == 0;
}

/* Calls visit(p) for each marker p (label > 0 inside the mask) in raster
 * order, and clears to 0 negative labels and markers outside the mask:
 * the header's promise. */
#define WS_FOR_MARKERS(labels, mask, npx, visit)                              \
    for (size_t p_ = 0; p_ < (npx);) {                                        \
        if (p_ + 16 <= (npx) && ws_zero16((labels) + p_)) {                   \
            p_ += 16;                                                         \
            continue;                                                         \
        }                                                                     \
        if ((labels)[p_] < 0 || ((labels)[p_] > 0 && !(mask)[p_]))           \
            (labels)[p_] = 0;                                                 \
        else if ((labels)[p_] > 0)                                            \
            visit((int32_t)p_);                                               \
        p_++;                                                                 \
    }

/* The flood's queue pops keys (the elevation's order bits over the
 * insertion counter, the age) in increasing order: one integer compare
 * per comparison, ties first-in first-out. The fronts of every nucleus of
 * a window wait in it at once (tens of thousands of keys), so rather than
 * one deep heap, keys are kept in buckets by the elevation's order bits
 * (monotone in the key): the heap holds only the keys of the buckets up to
 * the current one (any key is in exactly one place), a later bucket's keys
 * wait unsorted in a list by age and enter the heap when the heap runs
 * dry. A pop is still the least key of all, so the order is the one heap's
 * (the keys are unique), from a heap of a few dozen keys. */
typedef struct ws_pq {
    uint64_t *key;  /* the heap */
    int32_t *pixel; /* by age: the pixel and its column (2 * age, 2 * age + 1) */
    int32_t *next;  /* by age: the next age in its bucket's list */
    int32_t *head, *tail; /* per bucket: first and last age, -1 when empty */
    size_t n;
    uint32_t next_age, lo; /* lo: the least seed's order bits */
    int shift, buckets, cur; /* buckets 0..cur have entered the heap */
    const float *elevation;
} ws_pq;

/* The float's order as an unsigned integer's: negative values have all
 * bits flipped, the others the sign bit set; -0 is made +0 first (they
 * compare equal as floats, and so must here, for the counter to decide).
 * A NaN (never produced by the callers) sorts after +infinity. */
static uint32_t ws_order_bits(float f) {
    if (f != f) return UINT32_MAX;
    f += 0.0f; /* -0 + 0 = +0 */
    uint32_t u;
    memcpy(&u, &f, sizeof(u));
    return u & 0x80000000u ? ~u : u | 0x80000000u;
}

/* The bucket of order bits o: (o - lo) >> shift, below lo the first and
 * beyond the range the last, which keeps it monotone. */
static inline int ws_bucket(const ws_pq *q, uint32_t o) {
    if (o <= q->lo) return 0;
    uint32_t b = (o - q->lo) >> q->shift;
    return b >= (uint32_t)q->buckets ? q->buckets - 1 : (int)b;
}

/* 4-ary heap: half the depth of a binary one. */
#define WS_ARITY 4

static inline void ws_heap_insert(ws_pq *q, uint64_t x) {
    size_t i = q->n++;
    while (i > 0) {
        size_t parent = (i - 1) / WS_ARITY;
        if (q->key[parent] <= x) break;
        q->key[i] = q->key[parent];
        i = parent;
    }
    q->key[i] = x;
}

static inline void ws_pq_push(ws_pq *q, uint32_t order, int32_t pixel, int x) {
    uint32_t age = q->next_age++;
    q->pixel[2 * (size_t)age] = pixel;
    q->pixel[2 * (size_t)age + 1] = x;
    int b = ws_bucket(q, order);
    if (b <= q->cur) {
        ws_heap_insert(q, ((uint64_t)order << 32) | age);
        return;
    }
    q->next[age] = -1;
    if (q->head[b] < 0) q->head[b] = (int32_t)age;
    else q->next[q->tail[b]] = (int32_t)age;
    q->tail[b] = (int32_t)age;
}

/* Moves the next non-empty bucket into the heap; false when none is left. */
static bool ws_pq_refill(ws_pq *q) {
    while (++q->cur < q->buckets) {
        for (int32_t a = q->head[q->cur]; a >= 0; a = q->next[a])
            ws_heap_insert(q, ((uint64_t)ws_order_bits(q->elevation[q->pixel[2 * (size_t)a]]) << 32) | (uint32_t)a);
        if (q->n > 0) return true;
    }
    return false;
}

/* Removes the least key; returns its age (the queue is not empty). */
static inline uint32_t ws_heap_pop(ws_pq *q) {
    uint64_t *k = q->key, top = k[0], last = k[--q->n];
    size_t i = 0;
    for (;;) {
        size_t c = WS_ARITY * i + 1, end = c + WS_ARITY;
        if (c >= q->n) break;
        if (end > q->n) end = q->n;
        size_t best = c;
        for (size_t j = c + 1; j < end; j++)
            if (k[j] < k[best]) best = j;
        if (k[best] >= last) break;
        k[i] = k[best];
        i = best;
    }
    k[i] = last;
    return (uint32_t)top;
}

/* Sizes the buckets for a flood whose least seed has order bits lo: the
 * range from there to elevation 0 (the floods here run over minus a
 * distance: nothing lies above 0) in about npx / 8 buckets, at least 64,
 * at most 65,536, so each holds a few keys. */
static int ws_pq_want(size_t npx) {
    return npx / 8 < 64 ? 64 : npx / 8 > 65536 ? 65536 : (int)(npx / 8);
}

/* The buckets' heads and tails go to heads, room for 2 * ws_pq_want(npx)
 * entries: there are at most that many buckets (span >> shift < want). */
static void ws_pq_buckets(ws_pq *q, uint32_t lo, size_t npx, int32_t *heads) {
    uint32_t span = lo < 0x80000000u ? 0x80000000u - lo : 0;
    int want = ws_pq_want(npx);
    q->lo = lo;
    q->shift = 0;
    while ((span >> q->shift) >= (uint32_t)want) q->shift++;
    q->buckets = (int)(span >> q->shift) + 1;
    q->head = heads;
    q->tail = q->head + q->buckets;
    for (int b = 0; b < q->buckets; b++) q->head[b] = -1;
    q->cur = -1;
}

/* Markers lying outside the mask are dropped (set to 0): the header
 * promises that pixels with mask == 0 end up 0, and a seed there could
 * otherwise leak its label into the mask through a diagonal. Negative
 * input labels are not markers and are cleared to 0 as well. The seeds
 * are gathered first (their ages are their raster order), for the least
 * of their elevations, where the buckets start. */
int watershed_flood(const float *elevation, const uint8_t *mask, int w, int h, int32_t *labels) {
    image_scratch own = {0};
    int rc = watershed_flood_with(&own, elevation, mask, w, h, labels);
    image_scratch_release(&own);
    return rc;
}

/* The queue's keys, pixels with their columns and links (npx each) and
 * its buckets from the scratch: not cleared, only what the flood reaches
 * is touched. A pixel's column comes with it from the queue (a neighbour's
 * is its own plus dx), so a pop needs no division to find which of its
 * neighbours exist, which was on the path from every pop to its
 * neighbours' loads; an interior pixel (most of them) takes all eight at
 * fixed offsets, in the order of the top of the file. */
int watershed_flood_with(image_scratch *scratch, const float *elevation, const uint8_t *mask, int w, int h,
                         int32_t *labels) {
    if (scratch == NULL || ws_check(elevation, mask, w, h, labels) != TS_OK) return TS_ERR;
    size_t npx = (size_t)w * h;
    /* pixels, links, buckets, then the heap (an even count of int32
     * before it, so it is aligned): the parts used, the first few per cent
     * of each, lie where the other users of the scratch (watershed_maxima,
     * the level flood) touch it too, so a worker's first window zeroes
     * less fresh memory */
    size_t ints = (3 * npx + (size_t)ws_pq_want(npx) * 2 + 1) / 2 * 2;
    int32_t *block = image_scratch_take(scratch, ints * sizeof(int32_t) + npx * sizeof(uint64_t));
    ws_pq q = {.key = (uint64_t *)(block + ints), .elevation = elevation};
    q.pixel = block;
    q.next = q.pixel + 2 * npx;
    ws_grid grid = ws_grid_of(w, h);
    uint32_t lo = UINT32_MAX;
#define WS_SEED(p) (q.pixel[2 * (size_t)q.next_age++] = (p))
    WS_FOR_MARKERS(labels, mask, npx, WS_SEED)
#undef WS_SEED
    uint32_t seeds = q.next_age;
    for (uint32_t a = 0; a < seeds; a++) {
        uint32_t o = ws_order_bits(elevation[q.pixel[2 * (size_t)a]]);
        lo = o < lo ? o : lo;
    }
    ws_pq_buckets(&q, lo, npx, q.next + npx);
    q.next_age = 0;
    for (uint32_t a = 0; a < seeds; a++) {
        int32_t p = q.pixel[2 * (size_t)a];
        ws_pq_push(&q, ws_order_bits(elevation[p]), p, ws_col(p, &grid));
    }
    static const int dx[8] = {-1, 0, 1, -1, 1, -1, 0, 1}, dy[8] = {-1, -1, -1, 0, 0, 1, 1, 1};
    int32_t off[8];
    for (int k = 0; k < 8; k++) off[k] = dy[k] * w + dx[k];
    int32_t last_row = (int32_t)(npx - (size_t)w);
    while (q.n > 0 || ws_pq_refill(&q)) {
        uint32_t a = ws_heap_pop(&q);
        int32_t p = q.pixel[2 * (size_t)a], x = q.pixel[2 * (size_t)a + 1], l = labels[p];
        if (x > 0 && x < w - 1 && p >= w && p < last_row) {
            for (int k = 0; k < 8; k++) {
                int32_t r = p + off[k];
                if (!mask[r] || labels[r] != 0) continue;
                labels[r] = l;
                ws_pq_push(&q, ws_order_bits(elevation[r]), r, x + dx[k]);
            }
            continue;
        }
        for (int k = 0; k < 8; k++) { /* at the image's edge: the neighbours inside it */
            if ((dx[k] < 0 && x == 0) || (dx[k] > 0 && x == w - 1) || (dy[k] < 0 && p < w) ||
                (dy[k] > 0 && p >= last_row))
                continue;
            int32_t r = p + off[k];
            if (!mask[r] || labels[r] != 0) continue;
            labels[r] = l;
            ws_pq_push(&q, ws_order_bits(elevation[r]), r, x + dx[k]);
        }
    }
    return TS_OK;
}

/* During a flood, pixels outside the mask carry this label, so that one
 * test (label != 0) tells a neighbour that must not be flooded, whether
 * labelled already or outside; they are set back to 0 at the end. */
#define WS_OUTSIDE (-1) /* all bits set: ws_frame_row relies on it */

/* Columns per block of watershed_flood_levels_into's occupancy. */
#define WS_BLOCK 64

/* The labels of a flood on a grid framed by one pixel of WS_OUTSIDE:
 * (w + 2) x (h + 2), pixel (x, y) at (y + 1) * pw + x + 1. A pixel's 8
 * neighbours are then at fixed offsets (pad[k]) with no bounds test and
 * no column to work out, which was most of the cost of every pop; the
 * same offsets with the image's width (img[k]) give the neighbour in the
 * caller's arrays, valid whenever the framed label is not the frame's. */
typedef struct ws_framed {
    int32_t *lab;
    int pw;
    ptrdiff_t pad[8], img[8]; /* in the order of the top of the file */
} ws_framed;

/* The framed grid in lab ((w + 2) * (h + 2) labels), its offsets set and
 * its frame rows above and below the image WS_OUTSIDE; the image's rows
 * are ws_frame_row's. */
static void ws_frame_begin(ws_framed *f, int w, int h, int32_t *lab) {
    int pw = w + 2;
    f->pw = pw;
    f->lab = lab;
    static const int dx[8] = {-1, 0, 1, -1, 1, -1, 0, 1}, dy[8] = {-1, -1, -1, 0, 0, 1, 1, 1};
    for (int k = 0; k < 8; k++) {
        f->pad[k] = (ptrdiff_t)dy[k] * pw + dx[k];
        f->img[k] = (ptrdiff_t)dy[k] * w + dx[k];
    }
    for (int x = 0; x < pw; x++) {
        f->lab[x] = WS_OUTSIDE;
        f->lab[(size_t)(h + 1) * pw + x] = WS_OUTSIDE;
    }
}

/* Row y of the framed labels from the caller's: WS_OUTSIDE outside the
 * mask and in the frame, negative markers cleared to 0; returns it (its
 * pixel 0, after the frame). occ (NULL: none), the row's blocks of
 * WS_BLOCK columns that may hold mask pixels: the others are outside
 * whole, without reading the mask or the labels there. */
static int32_t *ws_frame_row(ws_framed *f, const uint8_t *mask, const int32_t *labels, int w, int y,
                             const uint8_t *occ) {
    int32_t *restrict row = f->lab + (size_t)(y + 1) * f->pw;
    const uint8_t *restrict m = mask + (size_t)y * w;
    const int32_t *restrict l = labels + (size_t)y * w;
    row[0] = row[w + 1] = WS_OUTSIDE;
    for (int x0 = 0; x0 < w; x0 += WS_BLOCK) {
        int x1 = x0 + WS_BLOCK < w ? x0 + WS_BLOCK : w;
        if (occ && !occ[x0 / WS_BLOCK]) { /* no mask pixel: all outside */
            memset(row + 1 + x0, 0xff, (size_t)(x1 - x0) * sizeof(int32_t));
            continue;
        }
        /* bit masks rather than selects, so that the loop vectorises:
         * max(l, 0) where m is set, all ones (WS_OUTSIDE) where it is not */
        for (int x = x0; x < x1; x++) {
            int32_t keep = -(int32_t)(m[x] != 0), v = l[x] & ~(l[x] >> 31);
            row[x + 1] = (v & keep) | ~keep;
        }
    }
    return row + 1;
}

/* The framed labels back into the caller's (WS_OUTSIDE as 0; with occ,
 * blocks holding no mask pixel as 0 at once). */
static void ws_unframe(ws_framed *f, int32_t *labels, int w, int h, const uint8_t *occ) {
    int nbx = (w + WS_BLOCK - 1) / WS_BLOCK;
    for (int y = 0; y < h; y++) {
        const int32_t *restrict row = f->lab + (size_t)(y + 1) * f->pw + 1;
        int32_t *restrict l = labels + (size_t)y * w;
        for (int x0 = 0; x0 < w; x0 += WS_BLOCK) {
            int x1 = x0 + WS_BLOCK < w ? x0 + WS_BLOCK : w;
            if (occ && !occ[(size_t)y * nbx + x0 / WS_BLOCK]) {
                memset(l + x0, 0, (size_t)(x1 - x0) * sizeof(int32_t));
                continue;
            }
            for (int x = x0; x < x1; x++) l[x] = row[x] & ~(row[x] >> 31);
        }
    }
}

/* Whether the 16 mask bytes from m on are all 0. */
static inline bool ws_none16(const uint8_t *m) {
    uint64_t a, b;
    memcpy(&a, m, sizeof(a));
    memcpy(&b, m + 8, sizeof(b));
    return (a | b) == 0;
}

/* A pixel's level: its elevation clamped to [0, levels), fractions
 * truncated, NaN as 0. */
static inline int ws_level(float v, int levels) {
    return !(v > 0) ? 0 : v >= levels - 1 ? levels - 1 : (int)v;
}

/* Frames the labels (ws_frame_begin, ws_frame_row) and, row by row while
 * the row is in cache, counts the mask's pixels per level into wr, writes
 * -2 - level into the unlabelled ones, and lists the markers in raster
 * order into seeds (framed position, level); returns how many. One pass
 * over the window instead of three (frame, count, markers). */
static size_t ws_frame_levels(ws_framed *f, const float *elevation, int levels, const uint8_t *mask,
                              const int32_t *labels, int w, int h, const uint8_t *occ, int32_t *wr,
                              int32_t *seeds, int32_t *lab) {
    size_t n = 0, nbx = (size_t)(w + WS_BLOCK - 1) / WS_BLOCK;
    ws_frame_begin(f, w, h, lab);
    for (int y = 0; y < h; y++) {
        const uint8_t *o = occ ? occ + (size_t)y * nbx : NULL;
        int32_t *row = ws_frame_row(f, mask, labels, w, y, o);
        const float *e = elevation + (size_t)y * w;
        /* in a block occ marks, a framed label is WS_OUTSIDE exactly where
         * the mask is 0: the mask's 16 bytes are tested, not 64 of labels */
        const uint8_t *m = mask + (size_t)y * w;
        for (int x = 0; x < w; x++) {
            if (o && x % WS_BLOCK == 0 && !o[x / WS_BLOCK]) {
                x += WS_BLOCK - 1; /* outside whole */
                continue;
            }
            if (x + 16 <= w && ws_none16(m + x)) {
                x += 15; /* outside the mask: most of a window */
                continue;
            }
            if (!m[x]) continue;
            int l = ws_level(e[x], levels);
            wr[l]++;
            if (row[x] == 0) {
                row[x] = -2 - l;
            } else {
                seeds[2 * n] = (int32_t)((y + 1) * f->pw + x + 1);
                seeds[2 * n++ + 1] = l;
            }
        }
    }
    return n;
}

/* The same flood with integer elevations: a bucket queue per level, each
 * a FIFO in its own slice of one array (sized by counting the mask's
 * pixels per level first, so pops read memory in order instead of chasing
 * a linked list), and the lowest non-empty bucket popped first. Popping by
 * (level, insertion order) is exactly the heap's order, so the labels are
 * identical, at a constant cost per pixel instead of a logarithmic one.
 * A NaN elevation counts as level 0. The framed grid holds, for a pixel
 * not yet labelled, -2 - its level: a neighbour's label and level come
 * from one load (the flood is bound by those scattered loads), and the
 * queue holds framed positions only. */
int watershed_flood_levels(const float *elevation, int levels, const uint8_t *mask, int w, int h,
                           int32_t *labels) {
    return watershed_flood_levels_into(elevation, levels, mask, w, h, NULL, labels, labels);
}

/* The markers are read only while framing (ws_frame_levels) and the
 * labels written only when unframing, so the two may be one array or
 * two: from two, the caller saves copying its markers first. */
int watershed_flood_levels_into(const float *elevation, int levels, const uint8_t *mask, int w, int h,
                                const uint8_t *occ, const int32_t *markers, int32_t *labels) {
    image_scratch own = {0};
    int rc = watershed_flood_levels_with(&own, elevation, levels, mask, w, h, occ, markers, labels);
    image_scratch_release(&own);
    return rc;
}

/* All four arrays from the scratch, in one block: the framed labels, the
 * queue (at most npx: a pixel is queued once), the levels' read and write
 * ends and the seeds (2 npx). */
int watershed_flood_levels_with(image_scratch *scratch, const float *elevation, int levels, const uint8_t *mask,
                                int w, int h, const uint8_t *occ, const int32_t *markers, int32_t *labels) {
    if (scratch == NULL || ws_check(elevation, mask, w, h, labels) != TS_OK || markers == NULL || levels < 1)
        return TS_ERR;
    size_t npx = (size_t)w * (size_t)h, nat = (size_t)levels * 2 + 1;
    size_t nframed = (size_t)(w + 2) * (size_t)(h + 2);
    /* the framed labels (touched whole) first, where watershed_maxima's
     * reconstruction (touched whole too) lies, then the queue and the
     * levels' ends, the seeds last: the scratch's users overlap in what
     * they touch, so a worker's first window zeroes less fresh memory */
    int32_t *block = image_scratch_take(scratch, (nframed + npx + 1 + nat + 2 * npx) * sizeof(int32_t));
    int32_t *queue = block + nframed, *at = queue + npx + 1;
    /* A pixel is queued at most once, at its own level, and only inside
     * the mask: each level's FIFO gets a slice of one array as long as the
     * mask's pixels at that level. */
    memset(at, 0, nat * sizeof(int32_t));
    int32_t *rd = at, *wr = at + levels;
    /* markers in raster order: framed position, level (pairs) */
    int32_t *seeds = at + nat;
    ws_framed f;
    size_t nseeds = ws_frame_levels(&f, elevation, levels, mask, markers, w, h, occ, wr, seeds, block);
    int32_t *lab = f.lab;
    int32_t sum = 0;
    for (int l = 0; l < levels; l++) {
        int32_t c = wr[l];
        rd[l] = wr[l] = sum;
        sum += c;
    }
    int cur = levels;
    for (size_t i = 0; i < nseeds; i++) {
        int l = seeds[2 * i + 1];
        queue[wr[l]++] = seeds[2 * i];
        if (l < cur) cur = l;
    }
    while (cur < levels) {
        if (rd[cur] == wr[cur]) {
            cur++;
            continue;
        }
        int32_t p = queue[rd[cur]++], l = lab[p];
        for (int k = 0; k < 8; k++) {
            int32_t q = p + (int32_t)f.pad[k], v = lab[q];
            if (v >= WS_OUTSIDE) continue; /* labelled, or outside the mask or the image */
            int lq = -2 - v;
            lab[q] = l;
            queue[wr[lq]++] = q;
            if (lq < cur) cur = lq;
        }
    }
    ws_unframe(&f, labels, w, h, occ);
    return TS_OK;
}
