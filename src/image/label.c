/*
 * label.c - see label.h.
 *
 * Two-pass labelling with union-find over provisional labels. Provisional
 * labels are handed out in raster order and a union always makes the
 * smaller label the root, so the root of a component is the provisional
 * label of its first pixel in raster order (that pixel has no earlier
 * neighbour in the component, so it always opens a new label). Numbering
 * roots in increasing order therefore gives the final labels in the order
 * the header promises, without a sort.
 */
#include "image/label.h"

#include <stdint.h>
#include <stdlib.h>

#include "util/util.h"

/* Root of label a, halving the path on the way (keeps trees shallow
 * without recursion). */
static int32_t label_find(int32_t *parent, int32_t a) {
    while (parent[a] != a) {
        parent[a] = parent[parent[a]];
        a = parent[a];
    }
    return a;
}

/* Joins the sets of a and b under the smaller root; returns that root. */
static int32_t label_union(int32_t *parent, int32_t a, int32_t b) {
    a = label_find(parent, a);
    b = label_find(parent, b);
    if (a < b) {
        parent[b] = a;
        return a;
    }
    parent[a] = b;
    return b;
}

/* Provisional label of pixel (x, y) from its already visited neighbours
 * (west and north; with 8-connectivity also north-west and north-east),
 * merging their sets; 0 when none is foreground. */
static int32_t label_from_neighbours(const int32_t *labels, int w, int x, int y, int conn,
                                     int32_t *parent) {
    const int32_t *row = labels + (size_t)y * w;
    int32_t cand[4];
    int nc = 0;
    if (x > 0) cand[nc++] = row[x - 1];
    if (y > 0) {
        const int32_t *up = row - w;
        cand[nc++] = up[x];
        if (conn == 8 && x > 0) cand[nc++] = up[x - 1];
        if (conn == 8 && x < w - 1) cand[nc++] = up[x + 1];
    }
    int32_t root = 0;
    for (int i = 0; i < nc; i++) {
        if (cand[i] == 0) continue;
        root = root == 0 ? label_find(parent, cand[i]) : label_union(parent, root, cand[i]);
    }
    return root;
}

/* Each run of foreground in a row opens at most one provisional label, so
 * there are at most h * ceil(w / 2) of them; parent[] is sized for that,
 * which is why the parent array is allocated once and never grows. */
int label_components(const uint8_t *mask, int w, int h, int connectivity, int32_t *labels) {
    if (mask == NULL || labels == NULL || w < 1 || h < 1) return -1;
    if (connectivity != 4 && connectivity != 8) return -1;
    if ((int64_t)w * h >= INT32_MAX) return -1;
    size_t cap = (size_t)h * (((size_t)w + 1) / 2) + 1;
    int32_t *parent = ts_malloc(cap * sizeof(int32_t));
    int32_t next = 1;
    parent[0] = 0;
    for (int y = 0; y < h; y++) {
        for (int x = 0; x < w; x++) {
            size_t i = (size_t)y * w + x;
            if (mask[i] == 0) {
                labels[i] = 0;
                continue;
            }
            int32_t l = label_from_neighbours(labels, w, x, y, connectivity, parent);
            if (l == 0) {
                l = next++;
                parent[l] = l;
            }
            labels[i] = l;
        }
    }
    /* Unions and path halving only ever point a label at a smaller one, so
     * parent[l] < l for every non-root: walking l upwards, parent[parent[l]]
     * has already been replaced by its final label, which is the root's. */
    int32_t n = 0;
    for (int32_t l = 1; l < next; l++) parent[l] = parent[l] == l ? ++n : parent[parent[l]];
    size_t npx = (size_t)w * h;
    for (size_t i = 0; i < npx; i++) labels[i] = parent[labels[i]];
    free(parent);
    return n;
}
