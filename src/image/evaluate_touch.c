/*
 * evaluate_touch.c - which truth objects touch another (evaluate.h,
 * eval_touching): the objects whose recall matters most for splitting.
 *
 * Two objects touch when a vertex of one lies inside the other or within
 * `dist` of one of its edges. Candidates come from a sweep over the
 * bounding boxes sorted by their left edge, so only boxes that overlap
 * (grown by dist) are compared.
 */
#include <math.h>
#include <stdlib.h>

#include "image/evaluate.h"
#include "util/util.h"

/* Distance from (px, py) to the segment a-b. */
static double seg_dist(double px, double py, double ax, double ay, double bx, double by) {
    double ex = bx - ax, ey = by - ay, l2 = ex * ex + ey * ey;
    double t = l2 > 0 ? ((px - ax) * ex + (py - ay) * ey) / l2 : 0;
    t = t < 0 ? 0 : t > 1 ? 1 : t;
    return hypot(ax + t * ex - px, ay + t * ey - py);
}

/* Whether (x, y) is inside object o (even-odd over its rings) or within
 * dist of one of its edges. */
static int near_object(const eval_polys *p, size_t o, double x, double y, double dist) {
    int inside = 0;
    for (size_t r = p->obj_ring[o]; r < p->obj_ring[o + 1]; r++) {
        size_t a0 = p->ring_pt[r], n = p->ring_pt[r + 1] - a0;
        for (size_t i = 0; i < n; i++) {
            const double *a = &p->xy[2 * (a0 + i)], *b = &p->xy[2 * (a0 + (i + 1) % n)];
            if (seg_dist(x, y, a[0], a[1], b[0], b[1]) <= dist) return 1;
            if ((a[1] > y) != (b[1] > y) && x < a[0] + (y - a[1]) * (b[0] - a[0]) / (b[1] - a[1]))
                inside = !inside;
        }
    }
    return inside;
}

/* Whether some vertex of object a is near object b. */
static int any_vertex_near(const eval_polys *p, size_t a, size_t b, double dist) {
    for (size_t v = p->ring_pt[p->obj_ring[a]]; v < p->ring_pt[p->obj_ring[a + 1]]; v++)
        if (near_object(p, b, p->xy[2 * v], p->xy[2 * v + 1], dist)) return 1;
    return 0;
}

static const eval_polys *sort_set;
static int cmp_left(const void *x, const void *y) {
    double a = sort_set->bbox[*(const size_t *)x].x0, b = sort_set->bbox[*(const size_t *)y].x0;
    return (a > b) - (a < b);
}

size_t eval_touching(const eval_polys *p, double dist, unsigned char *touch) {
    size_t *order = ts_malloc((p->n + 1) * sizeof(size_t)), count = 0;
    for (size_t i = 0; i < p->n; i++) {
        order[i] = i;
        touch[i] = 0;
    }
    sort_set = p; /* qsort has no context argument; evaluation is single-threaded */
    qsort(order, p->n, sizeof(size_t), cmp_left);
    for (size_t i = 0; i < p->n; i++) {
        const eval_bbox *a = &p->bbox[order[i]];
        if (a->x0 > a->x1) continue;
        for (size_t j = i + 1; j < p->n; j++) {
            const eval_bbox *b = &p->bbox[order[j]];
            if (b->x0 > a->x1 + dist) break;
            if (b->x0 > b->x1 || b->y0 > a->y1 + dist || a->y0 > b->y1 + dist) continue;
            if (touch[order[i]] && touch[order[j]]) continue;
            if (any_vertex_near(p, order[i], order[j], dist) ||
                any_vertex_near(p, order[j], order[i], dist))
                touch[order[i]] = touch[order[j]] = 1;
        }
    }
    for (size_t i = 0; i < p->n; i++) count += touch[i];
    free(order);
    return count;
}
