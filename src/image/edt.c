/*
 * edt.c - see edt.h.
 *
 * Pass 1 (columns) needs no parabolas: the 1-D distance to the nearest
 * zero in a column is found by a downward and an upward sweep, done row by
 * row so that memory is walked sequentially. Pass 2 (rows) is the lower
 * envelope of parabolas (q - v)^2 + g(v)^2 of Felzenszwalb & Huttenlocher,
 * built only over the columns whose g is finite: an infinite g never
 * contributes, and leaving it out keeps the intersection arithmetic free of
 * infinities. Distances are small integers, exact in double and, up to
 * 2^24, in the float output.
 */
#include "image/edt.h"

#include <math.h>
#include <stdlib.h>

#include "util/util.h"

/* Row-pass scratch: squared column distances of one row, the envelope's
 * parabola apexes and the boundaries between them. */
typedef struct edt_row_scratch {
    double *f; /* w: g(x)^2, or INFINITY */
    int *v;    /* w: apex columns of the envelope */
    double *z; /* w + 1: z[k]..z[k+1] is where parabola k is lowest */
} edt_row_scratch;

/* Vertical distances (in pixels, INFINITY when the column has no zero)
 * into out; returns whether the mask has any zero pixel at all. */
static int edt_columns(const uint8_t *mask, int w, int h, float *out) {
    int any_zero = 0;
    for (int y = 0; y < h; y++) {
        const uint8_t *m = mask + (size_t)y * w;
        float *d = out + (size_t)y * w;
        const float *above = y > 0 ? d - w : NULL;
        for (int x = 0; x < w; x++) {
            if (m[x] == 0) {
                d[x] = 0;
                any_zero = 1;
            } else {
                d[x] = above ? above[x] + 1 : INFINITY;
            }
        }
    }
    for (int y = h - 2; y >= 0; y--) {
        float *d = out + (size_t)y * w, *below = d + w;
        for (int x = 0; x < w; x++)
            if (below[x] + 1 < d[x]) d[x] = below[x] + 1;
    }
    return any_zero;
}

/* Lower envelope over one row: row[x] holds the vertical distance on
 * entry and the squared 2-D distance on exit. The caller guarantees at
 * least one finite entry (a column containing a zero is finite in every
 * row). */
static void edt_row(float *row, int w, edt_row_scratch *s) {
    int k = -1;
    for (int q = 0; q < w; q++) {
        s->f[q] = isinf(row[q]) ? INFINITY : (double)row[q] * row[q];
        if (isinf(s->f[q])) continue;
        if (k < 0) { /* first finite site; z[0] = -inf is never beaten */
            k = 0;
            s->v[0] = q;
            s->z[0] = -INFINITY;
            s->z[1] = INFINITY;
            continue;
        }
        double sq;
        for (;;) {
            int p = s->v[k];
            sq = ((s->f[q] + (double)q * q) - (s->f[p] + (double)p * p)) / (2.0 * (q - p));
            if (sq > s->z[k]) break;
            k--;
        }
        k++;
        s->v[k] = q;
        s->z[k] = sq;
        s->z[k + 1] = INFINITY;
    }
    k = 0;
    for (int q = 0; q < w; q++) {
        while (s->z[k + 1] < q) k++;
        double dx = q - s->v[k];
        row[q] = (float)(dx * dx + s->f[s->v[k]]);
    }
}

int edt_squared(const uint8_t *mask, int w, int h, float *out) {
    if (mask == NULL || out == NULL || w < 1 || h < 1) return TS_ERR;
    size_t n = (size_t)w * h;
    if (!edt_columns(mask, w, h, out)) {
        for (size_t i = 0; i < n; i++) out[i] = EDT_FAR;
        return TS_OK;
    }
    char *block = ts_malloc((size_t)w * sizeof(double) * 2 + sizeof(double) +
                            (size_t)w * sizeof(int));
    edt_row_scratch s = {.f = (double *)block};
    s.z = s.f + w;
    s.v = (int *)(s.z + w + 1);
    for (int y = 0; y < h; y++) edt_row(out + (size_t)y * w, w, &s);
    free(block);
    return TS_OK;
}
