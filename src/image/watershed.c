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
            /* outside the mask, most of a window: skip eight at a time */
            uint64_t m8 = 1;
            if (i + 8 < npx) memcpy(&m8, r->mask + (backward ? p - 7 : p), sizeof(m8));
            if (m8 == 0) i += 7;
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
            p += 7; /* outside the mask, most of a window */
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
    if (ws_check(img, mask, w, h, markers) != TS_OK || !(hmin >= 0)) return -1;
    size_t npx = (size_t)w * h;
    char *block = ts_malloc(npx * (sizeof(float) + sizeof(int32_t) + 1));
    ws_recon r = {.img = img, .mask = mask, .w = w, .h = h, .grid = ws_grid_of(w, h), .cap = npx};
    r.rec = (float *)block;
    r.queue = (int32_t *)(block + npx * sizeof(float));
    r.inq = (uint8_t *)(block + npx * (sizeof(float) + sizeof(int32_t)));
    /* rec and inq are only ever read inside the mask (every access is
     * behind a mask test), so only there are they set */
    for (size_t p = 0; p < npx; p++) {
        if (p + 8 <= npx && ws_none8(mask + p)) {
            p += 7;
            continue;
        }
        if (!mask[p]) continue;
        r.rec[p] = img[p] - hmin;
        r.inq[p] = 0;
    }
    ws_recon_sweep(&r, 0);
    ws_recon_sweep(&r, 1);
    ws_recon_propagate(&r);
    int n = ws_label_maxima(&r, markers);
    free(block);
    return n;
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

/* The heap holds 64-bit keys alone: the elevation's order bits over the
 * insertion counter (the age), so that a comparison is one integer
 * compare and ties go first-in first-out; the pixel pushed at each age is
 * kept apart, written in order. */
typedef struct ws_heap {
    uint64_t *key;
    int32_t *pixel; /* by age */
    size_t n;
    uint32_t next_age;
} ws_heap;

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

/* 4-ary heap: half the depth of a binary one. Keys are unique (the
 * counter), so any heap pops them in the same order. */
#define WS_ARITY 4

static inline void ws_heap_push(ws_heap *hp, float level, int32_t pixel) {
    uint32_t age = hp->next_age++;
    hp->pixel[age] = pixel;
    uint64_t x = ((uint64_t)ws_order_bits(level) << 32) | age;
    size_t i = hp->n++;
    while (i > 0) {
        size_t parent = (i - 1) / WS_ARITY;
        if (hp->key[parent] <= x) break;
        hp->key[i] = hp->key[parent];
        i = parent;
    }
    hp->key[i] = x;
}

/* Removes the least key; returns its pixel. */
static inline int32_t ws_heap_pop(ws_heap *hp) {
    uint64_t *k = hp->key, top = k[0], last = k[--hp->n];
    size_t i = 0;
    for (;;) {
        size_t c = WS_ARITY * i + 1, end = c + WS_ARITY;
        if (c >= hp->n) break;
        if (end > hp->n) end = hp->n;
        size_t best = c;
        for (size_t j = c + 1; j < end; j++)
            if (k[j] < k[best]) best = j;
        if (k[best] >= last) break;
        k[i] = k[best];
        i = best;
    }
    k[i] = last;
    return hp->pixel[(uint32_t)top];
}

/* Markers lying outside the mask are dropped (set to 0): the header
 * promises that pixels with mask == 0 end up 0, and a seed there could
 * otherwise leak its label into the mask through a diagonal. Negative
 * input labels are not markers and are cleared to 0 as well. */
int watershed_flood(const float *elevation, const uint8_t *mask, int w, int h, int32_t *labels) {
    if (ws_check(elevation, mask, w, h, labels) != TS_OK) return TS_ERR;
    size_t npx = (size_t)w * h;
    /* allocated, not cleared: only what the flood reaches is touched */
    char *block = ts_malloc(npx * (sizeof(uint64_t) + sizeof(int32_t)));
    ws_heap hp = {.key = (uint64_t *)block};
    hp.pixel = (int32_t *)(hp.key + npx);
    ws_grid grid = ws_grid_of(w, h);
#define WS_SEED(p) ws_heap_push(&hp, elevation[p], p)
    WS_FOR_MARKERS(labels, mask, npx, WS_SEED)
#undef WS_SEED
    int32_t nb[8];
    while (hp.n > 0) {
        int32_t p = ws_heap_pop(&hp), l = labels[p];
        int n = ws_around(p, &grid, nb);
        for (int k = 0; k < n; k++) {
            int32_t q = nb[k];
            if (!mask[q] || labels[q] != 0) continue;
            labels[q] = l;
            ws_heap_push(&hp, elevation[q], q);
        }
    }
    free(block);
    return TS_OK;
}

/* During a flood, pixels outside the mask carry this label, so that one
 * test (label != 0) tells a neighbour that must not be flooded, whether
 * labelled already or outside; they are set back to 0 at the end. */
#define WS_OUTSIDE (-1) /* all bits set: ws_frame relies on it */

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

/* The framed labels from the caller's: WS_OUTSIDE outside the mask and
 * in the frame, negative markers cleared to 0. */
static void ws_frame(ws_framed *f, const uint8_t *mask, const int32_t *labels, int w, int h) {
    int pw = w + 2;
    f->pw = pw;
    f->lab = ts_malloc((size_t)pw * (size_t)(h + 2) * sizeof(int32_t));
    static const int dx[8] = {-1, 0, 1, -1, 1, -1, 0, 1}, dy[8] = {-1, -1, -1, 0, 0, 1, 1, 1};
    for (int k = 0; k < 8; k++) {
        f->pad[k] = (ptrdiff_t)dy[k] * pw + dx[k];
        f->img[k] = (ptrdiff_t)dy[k] * w + dx[k];
    }
    for (int x = 0; x < pw; x++) {
        f->lab[x] = WS_OUTSIDE;
        f->lab[(size_t)(h + 1) * pw + x] = WS_OUTSIDE;
    }
    for (int y = 0; y < h; y++) {
        int32_t *restrict row = f->lab + (size_t)(y + 1) * pw;
        const uint8_t *restrict m = mask + (size_t)y * w;
        const int32_t *restrict l = labels + (size_t)y * w;
        row[0] = row[w + 1] = WS_OUTSIDE;
        /* bit masks rather than selects, so that the loop vectorises:
         * max(l, 0) where m is set, all ones (WS_OUTSIDE) where it is not */
        for (int x = 0; x < w; x++) {
            int32_t keep = -(int32_t)(m[x] != 0), v = l[x] & ~(l[x] >> 31);
            row[x + 1] = (v & keep) | ~keep;
        }
    }
}

/* The framed labels back into the caller's (WS_OUTSIDE as 0); frees them. */
static void ws_unframe(ws_framed *f, int32_t *labels, int w, int h) {
    for (int y = 0; y < h; y++) {
        const int32_t *restrict row = f->lab + (size_t)(y + 1) * f->pw + 1;
        int32_t *restrict l = labels + (size_t)y * w;
        for (int x = 0; x < w; x++) l[x] = row[x] & ~(row[x] >> 31);
    }
    free(f->lab);
}

/* Whether the 16 framed labels from l on are all WS_OUTSIDE (all bits
 * set, so their AND is too): one vectorised test instead of 16 branches
 * that go either way at every edge of the mask. */
static inline bool ws_outside16(const int32_t *l) {
    int32_t all = WS_OUTSIDE;
    for (int k = 0; k < 16; k++) all &= l[k];
    return all == WS_OUTSIDE;
}

/* Whether none of the 16 framed labels from l on is a marker (> 0), by
 * their maximum, which vectorises: markers are the nuclei, a few per cent
 * of a window, and the scan for them was a branch per pixel. */
static inline bool ws_unlabelled16(const int32_t *l) {
    int32_t top = 0;
    for (int k = 0; k < 16; k++) top = l[k] > top ? l[k] : top;
    return top <= 0;
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
    if (ws_check(elevation, mask, w, h, labels) != TS_OK || levels < 1) return TS_ERR;
#define WS_LEVEL(v) (!((v) > 0) ? 0 : (v) >= levels - 1 ? levels - 1 : (int)(v))
    /* A pixel is queued at most once, at its own level, and only inside
     * the mask: each level's FIFO gets a slice of one array as long as the
     * mask's pixels at that level. */
    int32_t *at = ts_calloc((size_t)levels * 2 + 1, sizeof(int32_t)), *rd = at, *wr = at + levels;
    ws_framed f;
    ws_frame(&f, mask, labels, w, h);
    int32_t *lab = f.lab;
    for (int y = 0; y < h; y++) {
        int32_t *row = lab + (size_t)(y + 1) * f.pw + 1;
        const float *e = elevation + (size_t)y * w;
        for (int x = 0; x < w; x++) {
            if (x + 16 <= w && ws_outside16(row + x)) {
                x += 15; /* outside the mask: most of a window */
                continue;
            }
            if (row[x] == WS_OUTSIDE) continue;
            int l = WS_LEVEL(e[x]);
            wr[l]++;
            if (row[x] == 0) row[x] = -2 - l;
        }
    }
    int32_t sum = 0;
    for (int l = 0; l < levels; l++) {
        int32_t c = wr[l];
        rd[l] = wr[l] = sum;
        sum += c;
    }
    int32_t *queue = ts_malloc(((size_t)sum + 1) * sizeof(int32_t));
    int cur = levels;
    for (int y = 0; y < h; y++) {
        const int32_t *row = lab + (size_t)(y + 1) * f.pw + 1;
        const float *e = elevation + (size_t)y * w;
        for (int x = 0; x < w; x++) {
            if (x + 16 <= w && ws_unlabelled16(row + x)) {
                x += 15; /* no marker: all but the nuclei */
                continue;
            }
            if (row[x] <= 0) continue;
            int l = WS_LEVEL(e[x]);
            queue[wr[l]++] = (int32_t)((y + 1) * f.pw + x + 1);
            if (l < cur) cur = l;
        }
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
#undef WS_LEVEL
    ws_unframe(&f, labels, w, h);
    free(queue);
    free(at);
    return TS_OK;
}
