/*
 * evaluate.c - see evaluate.h: the pixel-centre rasteriser (in run-length
 * form), instance matching over a uniform grid, AJI, and region Dice.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "image/evaluate.h"
#include "util/util.h"

/* Where grid cell (c, r) lies: its centre is (ox + (c + 0.5) k,
 * oy + (r + 0.5) k). Instances use (0, 0, 1), i.e. level-0 pixels. */
typedef struct placement {
    double ox, oy, k;
} placement;

/* One object's coverage as spans: row r0 + i holds the half-open column
 * ranges [col[j], col[j+1]) for even j in row_off[i] .. row_off[i+1]-1,
 * sorted and disjoint. The arrays are reused from object to object. */
typedef struct spans {
    int64_t r0;
    size_t nrows;
    size_t *row_off; /* nrows + 1 */
    size_t *cursor;  /* nrows: fill positions while crossings are stored */
    double *xs;      /* crossings of the row centre lines, grouped by row */
    int64_t *col;    /* the crossings as column bounds */
    size_t cap_rows, cap_xs;
} spans;

/* A candidate or matched pair. */
typedef struct pair {
    size_t t, p;
    double iou;
} pair;

/* The predictions' bounding boxes bucketed in a uniform grid (CSR). */
typedef struct bucket_grid {
    double x0, y0, cell;
    int64_t w, h;
    size_t *off;   /* w * h + 1 */
    size_t *items; /* prediction indices */
} bucket_grid;

/* Everything eval_instances computes on the way. */
typedef struct inst_work {
    const eval_polys *truth, *pred;
    int64_t *area_t, *area_p;
    spans sa, sb;
    bucket_grid grid;
    size_t *stamp;  /* per prediction: 1 + the last truth that tested it */
    size_t *best;   /* per truth: prediction with the highest IoU, or SIZE_MAX */
    int64_t *best_inter;
    double *best_iou;
    unsigned char *touch; /* per truth: touches another truth */
    pair *pairs;    /* pairs with IoU > threshold */
    size_t n_pairs, cap_pairs, tested;
} inst_work;

/* Frees a span buffer's arrays (the struct itself is the caller's). */
static void spans_free(spans *s) {
    free(s->row_off);
    free(s->cursor);
    free(s->xs);
    free(s->col);
    memset(s, 0, sizeof(*s));
}

/* Row index range of centre lines that can lie in [y0, y1], with a row of
 * margin each side: the exact crossing test decides, the range only has to
 * contain every row it would accept despite rounding. */
static void row_range(double y0, double y1, const placement *pl, int64_t *lo, int64_t *hi) {
    *lo = (int64_t)floor((y0 - pl->oy) / pl->k - 0.5) - 1;
    *hi = (int64_t)ceil((y1 - pl->oy) / pl->k - 0.5) + 1;
}

/* Does the edge (xa, ya)-(xb, yb) cross the centre line yc? Half-open in
 * y, so a vertex exactly on the line counts once and the crossings of a
 * closed ring with any line are even. */
static inline int crosses(double ya, double yb, double yc) {
    return (ya > yc) != (yb > yc);
}

/* Calls back for each crossing of object obj's edges with the centre lines
 * of rows [s->r0, s->r0 + s->nrows): pass 0 counts them into row_off,
 * pass 1 stores their x at the cursors. One routine for both passes keeps
 * the two in exact agreement. */
static void scan_edges(const eval_polys *p, size_t obj, const placement *pl, spans *s, int pass) {
    int64_t rend = s->r0 + (int64_t)s->nrows;
    for (size_t r = p->obj_ring[obj]; r < p->obj_ring[obj + 1]; r++) {
        size_t first = p->ring_pt[r], m = p->ring_pt[r + 1] - first;
        const double *v = p->xy + 2 * first;
        for (size_t i = 0; i < m; i++) {
            size_t j = i + 1 < m ? i + 1 : 0;
            double xa = v[2 * i], ya = v[2 * i + 1], xb = v[2 * j], yb = v[2 * j + 1];
            if (ya == yb) continue;
            int64_t lo, hi;
            row_range(fmin(ya, yb), fmax(ya, yb), pl, &lo, &hi);
            if (lo < s->r0) lo = s->r0;
            if (hi >= rend) hi = rend - 1;
            for (int64_t row = lo; row <= hi; row++) {
                double yc = pl->oy + ((double)row + 0.5) * pl->k;
                if (!crosses(ya, yb, yc)) continue;
                size_t i_row = (size_t)(row - s->r0);
                if (pass == 0)
                    s->row_off[i_row + 1]++;
                else
                    s->xs[s->cursor[i_row]++] = xa + (yc - ya) * (xb - xa) / (yb - ya);
            }
        }
    }
}

/* qsort order of doubles (rows with many crossings: large objects). */
static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Sorts a row's crossings (insertion sort: rows of a nucleus hold 2-6) and
 * turns consecutive pairs into column ranges: column c is inside when its
 * centre ox + (c + 0.5) k lies in [x_even, x_odd). */
static void row_to_columns(spans *s, size_t i_row, const placement *pl) {
    size_t a = s->row_off[i_row], n = s->row_off[i_row + 1] - a;
    if (n == 0) return; /* and xs may still be NULL: NULL + 0 is undefined */
    double *x = s->xs + a;
    if (n > 16) {
        qsort(x, n, sizeof(double), cmp_double);
    } else {
        for (size_t i = 1; i < n; i++) {
            double v = x[i];
            size_t j = i;
            for (; j > 0 && x[j - 1] > v; j--) x[j] = x[j - 1];
            x[j] = v;
        }
    }
    for (size_t i = 0; i < n; i++) s->col[a + i] = (int64_t)ceil((x[i] - pl->ox) / pl->k - 0.5);
}

/* Rasterises object obj into s, restricted to rows [rlo, rhi): counts the
 * crossings per row, stores them, sorts each row. O(vertices + rows +
 * crossings); no per-pixel work. */
static void raster_object(const eval_polys *p, size_t obj, const placement *pl, int64_t rlo,
                          int64_t rhi, spans *s) {
    const eval_bbox *b = &p->bbox[obj];
    s->nrows = 0;
    s->r0 = 0;
    if (b->x0 > b->x1) return;
    int64_t lo, hi;
    row_range(b->y0, b->y1, pl, &lo, &hi);
    if (lo < rlo) lo = rlo;
    if (hi >= rhi) hi = rhi - 1;
    if (hi < lo) return;
    s->r0 = lo;
    s->nrows = (size_t)(hi - lo + 1);
    if (s->nrows + 1 > s->cap_rows) {
        s->cap_rows = 2 * (s->nrows + 1);
        s->row_off = ts_realloc(s->row_off, s->cap_rows * sizeof(size_t));
        s->cursor = ts_realloc(s->cursor, s->cap_rows * sizeof(size_t));
    }
    memset(s->row_off, 0, (s->nrows + 1) * sizeof(size_t));
    scan_edges(p, obj, pl, s, 0);
    for (size_t i = 0; i < s->nrows; i++) s->row_off[i + 1] += s->row_off[i];
    size_t total = s->row_off[s->nrows];
    if (total > s->cap_xs) {
        s->cap_xs = 2 * total;
        s->xs = ts_realloc(s->xs, s->cap_xs * sizeof(double));
        s->col = ts_realloc(s->col, s->cap_xs * sizeof(int64_t));
    }
    memcpy(s->cursor, s->row_off, s->nrows * sizeof(size_t));
    scan_edges(p, obj, pl, s, 1);
    for (size_t i = 0; i < s->nrows; i++) row_to_columns(s, i, pl);
}

/* Pixels covered by the rasterised object. */
static int64_t spans_area(const spans *s) {
    int64_t sum = 0;
    size_t total = s->nrows ? s->row_off[s->nrows] : 0;
    for (size_t j = 0; j + 1 < total; j += 2)
        if (s->col[j + 1] > s->col[j]) sum += s->col[j + 1] - s->col[j];
    return sum;
}

/* Columns shared by two sorted, disjoint span lists of one row. */
static int64_t row_overlap(const int64_t *ca, size_t na, const int64_t *cb, size_t nb) {
    int64_t sum = 0;
    size_t i = 0, j = 0;
    while (i + 1 < na && j + 1 < nb) {
        int64_t lo = ca[i] > cb[j] ? ca[i] : cb[j];
        int64_t hi = ca[i + 1] < cb[j + 1] ? ca[i + 1] : cb[j + 1];
        if (hi > lo) sum += hi - lo;
        if (ca[i + 1] < cb[j + 1])
            i += 2;
        else
            j += 2;
    }
    return sum;
}

/* |A ∩ B| of two rasterised objects: only their common rows matter. */
static int64_t spans_intersection(const spans *a, const spans *b) {
    int64_t lo = a->r0 > b->r0 ? a->r0 : b->r0;
    int64_t ea = a->r0 + (int64_t)a->nrows, eb = b->r0 + (int64_t)b->nrows;
    int64_t hi = ea < eb ? ea : eb;
    int64_t sum = 0;
    for (int64_t r = lo; r < hi; r++) {
        size_t ia = (size_t)(r - a->r0), ib = (size_t)(r - b->r0);
        size_t oa = a->row_off[ia], ob = b->row_off[ib];
        sum += row_overlap(a->col + oa, a->row_off[ia + 1] - oa, b->col + ob,
                           b->row_off[ib + 1] - ob);
    }
    return sum;
}

/* Instances are counted in level-0 pixels. */
static const placement pixels = {0, 0, 1};

/* See evaluate.h; rasterises with a private span buffer. */
int64_t eval_object_area(const eval_polys *p, size_t i) {
    spans s = {0};
    raster_object(p, i, &pixels, INT64_MIN / 4, INT64_MAX / 4, &s);
    int64_t a = spans_area(&s);
    spans_free(&s);
    return a;
}

/* 0 for 0/0 (see evaluate.h), else the quotient. */
static double ratio(double num, double den) {
    return den > 0 ? num / den : 0.0;
}

/* Pixel areas of every object of p into area (allocated), counting the
 * empty ones and summing the rest. */
static int64_t *all_areas(const eval_polys *p, spans *s, size_t *empty, double *sum) {
    int64_t *area = ts_malloc((p->n ? p->n : 1) * sizeof(int64_t));
    *empty = 0;
    *sum = 0;
    for (size_t i = 0; i < p->n; i++) {
        raster_object(p, i, &pixels, INT64_MIN / 4, INT64_MAX / 4, s);
        area[i] = spans_area(s);
        *empty += area[i] == 0;
        *sum += (double)area[i];
    }
    return area;
}

/* Cell index of coordinate v along one axis of the grid, clamped. */
static int64_t grid_cell(double v, double origin, double cell, int64_t n) {
    double c = floor((v - origin) / cell);
    if (c < 0) return 0;
    if (c >= (double)n) return n - 1;
    return (int64_t)c;
}

/* Chooses the grid over the non-empty predictions: cells about the mean
 * bounding-box side (so an object touches ~4 cells), enlarged until there
 * are at most ~4 cells per prediction (so a sparse set spread over a huge
 * slide does not allocate a huge grid). */
static void grid_layout(const eval_polys *p, const int64_t *area, bucket_grid *g) {
    double x0 = INFINITY, y0 = INFINITY, x1 = -INFINITY, y1 = -INFINITY, side = 0;
    size_t n = 0;
    for (size_t i = 0; i < p->n; i++) {
        if (area[i] == 0) continue;
        const eval_bbox *b = &p->bbox[i];
        x0 = fmin(x0, b->x0), y0 = fmin(y0, b->y0), x1 = fmax(x1, b->x1), y1 = fmax(y1, b->y1);
        side += 0.5 * ((b->x1 - b->x0) + (b->y1 - b->y0));
        n++;
    }
    g->w = g->h = 0;
    if (n == 0) return;
    g->x0 = x0, g->y0 = y0;
    g->cell = fmax(1.0, side / (double)n);
    double limit = 4.0 * (double)n + 16.0;
    for (;;) {
        g->w = (int64_t)floor((x1 - x0) / g->cell) + 1;
        g->h = (int64_t)floor((y1 - y0) / g->cell) + 1;
        if ((double)g->w * (double)g->h <= limit) break;
        g->cell *= 1.5;
    }
}

/* Visits the grid cells under box b: fill = 0 counts, 1 stores index i. */
static void grid_visit(bucket_grid *g, const eval_bbox *b, size_t i, int fill, size_t *cursor) {
    int64_t cx0 = grid_cell(b->x0, g->x0, g->cell, g->w), cx1 = grid_cell(b->x1, g->x0, g->cell, g->w);
    int64_t cy0 = grid_cell(b->y0, g->y0, g->cell, g->h), cy1 = grid_cell(b->y1, g->y0, g->cell, g->h);
    for (int64_t cy = cy0; cy <= cy1; cy++)
        for (int64_t cx = cx0; cx <= cx1; cx++) {
            size_t c = (size_t)(cy * g->w + cx);
            if (fill)
                g->items[cursor[c]++] = i;
            else
                g->off[c + 1]++;
        }
}

/* Buckets every non-empty prediction into the cells its box touches. */
static void grid_build(const eval_polys *p, const int64_t *area, bucket_grid *g) {
    grid_layout(p, area, g);
    size_t cells = (size_t)(g->w * g->h);
    g->off = ts_calloc(cells + 1, sizeof(size_t));
    for (size_t i = 0; i < p->n; i++)
        if (area[i] > 0) grid_visit(g, &p->bbox[i], i, 0, NULL);
    for (size_t c = 0; c < cells; c++) g->off[c + 1] += g->off[c];
    g->items = ts_malloc((g->off[cells] ? g->off[cells] : 1) * sizeof(size_t));
    size_t *cursor = ts_malloc((cells ? cells : 1) * sizeof(size_t));
    memcpy(cursor, g->off, cells * sizeof(size_t));
    for (size_t i = 0; i < p->n; i++)
        if (area[i] > 0) grid_visit(g, &p->bbox[i], i, 1, cursor);
    free(cursor);
}

/* Closed boxes meet: a cheap filter before rasterising a pair (objects
 * whose vertex boxes are apart share no pixel centre). */
static int boxes_overlap(const eval_bbox *a, const eval_bbox *b) {
    return a->x0 <= b->x1 && b->x0 <= a->x1 && a->y0 <= b->y1 && b->y0 <= a->y1;
}

/* Truth t (already rasterised in w->sa) against one candidate prediction:
 * counts the overlap, keeps AJI's best partner and records a pair above
 * the threshold. */
static void test_pair(inst_work *w, size_t t, size_t p, double threshold) {
    if (!boxes_overlap(&w->truth->bbox[t], &w->pred->bbox[p])) return;
    raster_object(w->pred, p, &pixels, w->sa.r0, w->sa.r0 + (int64_t)w->sa.nrows, &w->sb);
    w->tested++;
    int64_t inter = spans_intersection(&w->sa, &w->sb);
    if (inter == 0) return;
    double iou = (double)inter / (double)(w->area_t[t] + w->area_p[p] - inter);
    if (w->best[t] == SIZE_MAX || iou > w->best_iou[t] || (iou == w->best_iou[t] && p < w->best[t])) {
        w->best[t] = p;
        w->best_iou[t] = iou;
        w->best_inter[t] = inter;
    }
    if (iou <= threshold) return;
    if (w->n_pairs == w->cap_pairs) {
        w->cap_pairs = w->cap_pairs ? 2 * w->cap_pairs : 1024;
        w->pairs = ts_realloc(w->pairs, w->cap_pairs * sizeof(pair));
    }
    w->pairs[w->n_pairs++] = (pair){t, p, iou};
}

/* Every prediction whose grid cells meet truth t's box, each once. */
static void search_truth(inst_work *w, size_t t, double threshold) {
    const bucket_grid *g = &w->grid;
    const eval_bbox *b = &w->truth->bbox[t];
    if (w->area_t[t] == 0 || g->w == 0) return;
    if (b->x1 < g->x0 || b->y1 < g->y0 || b->x0 > g->x0 + (double)g->w * g->cell ||
        b->y0 > g->y0 + (double)g->h * g->cell)
        return;
    raster_object(w->truth, t, &pixels, INT64_MIN / 4, INT64_MAX / 4, &w->sa);
    int64_t cx0 = grid_cell(b->x0, g->x0, g->cell, g->w), cx1 = grid_cell(b->x1, g->x0, g->cell, g->w);
    int64_t cy0 = grid_cell(b->y0, g->y0, g->cell, g->h), cy1 = grid_cell(b->y1, g->y0, g->cell, g->h);
    for (int64_t cy = cy0; cy <= cy1; cy++)
        for (int64_t cx = cx0; cx <= cx1; cx++) {
            size_t c = (size_t)(cy * g->w + cx);
            for (size_t k = g->off[c]; k < g->off[c + 1]; k++) {
                size_t p = g->items[k];
                if (w->stamp[p] == t + 1) continue;
                w->stamp[p] = t + 1;
                test_pair(w, t, p, threshold);
            }
        }
}

/* Descending IoU; ties by truth then prediction index, for determinism. */
static int cmp_pair(const void *a, const void *b) {
    const pair *x = a, *y = b;
    if (x->iou != y->iou) return x->iou < y->iou ? 1 : -1;
    if (x->t != y->t) return x->t < y->t ? -1 : 1;
    return (x->p > y->p) - (x->p < y->p);
}

/* One-to-one matching of the recorded pairs, greedy by IoU (for a
 * threshold >= 0.5 the pairs are already disjoint); fills TP/FP/FN/SQ. */
static void match_pairs(inst_work *w, eval_instance_result *r) {
    if (w->n_pairs > 1) qsort(w->pairs, w->n_pairs, sizeof(pair), cmp_pair);
    unsigned char *used_t = ts_calloc(w->truth->n + 1, 1), *used_p = ts_calloc(w->pred->n + 1, 1);
    double sum_iou = 0;
    r->tp = 0;
    for (size_t i = 0; i < w->n_pairs; i++) {
        pair *q = &w->pairs[i];
        if (used_t[q->t] || used_p[q->p]) continue;
        used_t[q->t] = used_p[q->p] = 1;
        r->tp++;
        r->touching_tp += w->touch[q->t];
        sum_iou += q->iou;
    }
    r->recall_touching = ratio((double)r->touching_tp, (double)r->touching);
    free(used_t);
    free(used_p);
    r->fp = r->n_pred - r->tp;
    r->fn = r->n_truth - r->tp;
    double tp = (double)r->tp, fp = (double)r->fp, fn = (double)r->fn;
    r->precision = ratio(tp, tp + fp);
    r->recall = ratio(tp, tp + fn);
    r->f1 = ratio(2 * tp, 2 * tp + fp + fn);
    r->sq = ratio(sum_iou, tp);
    r->rq = ratio(tp, tp + fp / 2 + fn / 2);
    r->pq = ratio(sum_iou, tp + fp / 2 + fn / 2);
}

/* Kumar et al.'s aggregated Jaccard index from each truth's best partner. */
static void aji(inst_work *w, eval_instance_result *r) {
    unsigned char *used = ts_calloc(w->pred->n + 1, 1);
    double c = 0, u = 0;
    for (size_t t = 0; t < w->truth->n; t++) {
        size_t p = w->best[t];
        if (p == SIZE_MAX) {
            u += (double)w->area_t[t];
            continue;
        }
        c += (double)w->best_inter[t];
        u += (double)(w->area_t[t] + w->area_p[p] - w->best_inter[t]);
        used[p] = 1;
    }
    for (size_t p = 0; p < w->pred->n; p++)
        if (!used[p]) u += (double)w->area_p[p];
    free(used);
    r->aji_c = c;
    r->aji_u = u;
    r->aji = ratio(c, u);
}

/* Frees everything eval_instances allocated on the way. */
static void inst_work_free(inst_work *w) {
    free(w->area_t);
    free(w->area_p);
    spans_free(&w->sa);
    spans_free(&w->sb);
    free(w->grid.off);
    free(w->grid.items);
    free(w->stamp);
    free(w->best);
    free(w->best_inter);
    free(w->best_iou);
    free(w->pairs);
    free(w->touch);
}

/* See evaluate.h: areas once per object, the grid over the predictions,
 * each truth against its candidates, then matching and AJI. */
int eval_instances(const eval_polys *truth, const eval_polys *pred, double t,
                   eval_instance_result *r, char *err, size_t errlen) {
    memset(r, 0, sizeof(*r));
    if (!(t > 0 && t < 1)) {
        ts_errf(err, errlen, "IoU threshold must be greater than 0 and less than 1, not %g", t);
        return TS_ERR;
    }
    inst_work w = {.truth = truth, .pred = pred};
    r->iou_threshold = t;
    r->n_truth = truth->n;
    r->n_pred = pred->n;
    w.area_t = all_areas(truth, &w.sa, &r->truth_empty, &r->truth_area);
    w.area_p = all_areas(pred, &w.sa, &r->pred_empty, &r->pred_area);
    grid_build(pred, w.area_p, &w.grid);
    w.stamp = ts_calloc(pred->n + 1, sizeof(size_t));
    w.best = ts_malloc((truth->n + 1) * sizeof(size_t));
    w.best_inter = ts_calloc(truth->n + 1, sizeof(int64_t));
    w.best_iou = ts_calloc(truth->n + 1, sizeof(double));
    for (size_t i = 0; i < truth->n; i++) w.best[i] = SIZE_MAX;
    for (size_t i = 0; i < truth->n; i++) search_truth(&w, i, t);
    r->pairs = w.tested;
    w.touch = ts_malloc(truth->n + 1);
    r->touching = eval_touching(truth, EVAL_TOUCH_DIST, w.touch);
    match_pairs(&w, r);
    aji(&w, r);
    inst_work_free(&w);
    return TS_OK;
}

/* The joint vertex bounding box of the non-empty objects of two sets;
 * FALSE when there are none. */
static int joint_bbox(const eval_polys *a, const eval_polys *b, eval_bbox *out) {
    eval_bbox j = {INFINITY, INFINITY, -INFINITY, -INFINITY};
    const eval_polys *sets[2] = {a, b};
    for (int s = 0; s < 2; s++)
        for (size_t i = 0; i < sets[s]->n; i++) {
            const eval_bbox *bb = &sets[s]->bbox[i];
            if (bb->x0 > bb->x1) continue;
            j.x0 = fmin(j.x0, bb->x0), j.y0 = fmin(j.y0, bb->y0);
            j.x1 = fmax(j.x1, bb->x1), j.y1 = fmax(j.y1, bb->y1);
        }
    *out = j;
    return j.x0 <= j.x1;
}

/* ORs bit into the cells each object of p covers (clipped to the grid). */
static void paint(const eval_polys *p, const placement *pl, const eval_region_result *r,
                  unsigned char *mask, unsigned char bit, spans *s) {
    for (size_t i = 0; i < p->n; i++) {
        raster_object(p, i, pl, 0, r->grid_h, s);
        for (size_t row = 0; row < s->nrows; row++) {
            unsigned char *line = mask + (size_t)(s->r0 + (int64_t)row) * (size_t)r->grid_w;
            for (size_t j = s->row_off[row]; j + 1 < s->row_off[row + 1]; j += 2) {
                int64_t c0 = s->col[j] < 0 ? 0 : s->col[j];
                int64_t c1 = s->col[j + 1] > r->grid_w ? r->grid_w : s->col[j + 1];
                for (int64_t c = c0; c < c1; c++) line[c] |= bit;
            }
        }
    }
}

/* Grid placement for Dice: origin at the box's integer corner, cell side
 * k the smallest integer keeping the longer side within max_cells. */
static placement region_grid(const eval_bbox *b, int max_cells, eval_region_result *r) {
    double ox = floor(b->x0), oy = floor(b->y0);
    double w = ceil(b->x1) - ox, h = ceil(b->y1) - oy;
    double k = fmax(1.0, ceil(fmax(w, h) / max_cells));
    r->cell = (int)k;
    r->origin_x = ox;
    r->origin_y = oy;
    r->grid_w = (int64_t)fmax(1.0, ceil(w / k));
    r->grid_h = (int64_t)fmax(1.0, ceil(h / k));
    return (placement){ox, oy, k};
}

/* See evaluate.h: both sets painted into one byte mask (bit 1 truth, bit
 * 2 prediction), then the four kinds of cell counted. */
int eval_dice(const eval_polys *truth, const eval_polys *pred, int max_cells,
              eval_region_result *r, char *err, size_t errlen) {
    memset(r, 0, sizeof(*r));
    if (max_cells == 0) max_cells = EVAL_DEFAULT_MAX_CELLS;
    if (max_cells < 16 || max_cells > 65536) {
        ts_errf(err, errlen, "grid size must be 16 .. 65536 cells, not %d", max_cells);
        return TS_ERR;
    }
    r->n_truth = truth->n;
    r->n_pred = pred->n;
    eval_bbox box;
    if (!joint_bbox(truth, pred, &box)) return TS_OK;
    placement pl = region_grid(&box, max_cells, r);
    size_t cells = (size_t)r->grid_w * (size_t)r->grid_h;
    unsigned char *mask = ts_calloc(cells, 1);
    spans s = {0};
    paint(truth, &pl, r, mask, 1, &s);
    paint(pred, &pl, r, mask, 2, &s);
    spans_free(&s);
    size_t count[4] = {0, 0, 0, 0};
    for (size_t i = 0; i < cells; i++) count[mask[i]]++;
    free(mask);
    double px = pl.k * pl.k;
    r->truth_area = (double)(count[1] + count[3]) * px;
    r->pred_area = (double)(count[2] + count[3]) * px;
    r->inter_area = (double)count[3] * px;
    r->union_area = (double)(count[1] + count[2] + count[3]) * px;
    r->dice = ratio(2 * r->inter_area, r->truth_area + r->pred_area);
    r->jaccard = ratio(r->inter_area, r->union_area);
    return TS_OK;
}
