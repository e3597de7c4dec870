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
 * 2^24, in the float output. The envelope is built run by run of
 * foreground in the row (edt_row_runs), so a mostly background mask costs
 * little beyond pass 1.
 */
#include "image/edt.h"

#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "image/maskblock.h"
#include "image/vectorise.h"
#include "util/util.h"

/* edt_squared_within takes the brute-force rows up to this radius (2r+1
 * vectorised passes a row), the envelope beyond. */
#define EDT_BRUTE_MAX 24

/* Row-pass scratch: squared column distances of one row, the envelope's
 * parabola apexes and the boundaries between them. */
typedef struct edt_row_scratch {
    double *f; /* w: g(x)^2, or INFINITY */
    int *v;    /* w: apex columns of the envelope */
    double *z; /* w + 1: z[k]..z[k+1] is where parabola k is lowest */
} edt_row_scratch;

/* n columns of the upward sweep: d = min(below + 1, d), INFINITY beyond
 * cap. A separate function with restrict pointers: it vectorises. */
IMAGE_VECTORISED static void edt_up_segment(float *restrict d, const float *restrict below, int n, float cap) {
    for (int x = 0; x < n; x++) {
        float b = below[x] + 1.0f, v = b < d[x] ? b : d[x];
        d[x] = v > cap ? INFINITY : v;
    }
}

/* Vertical distances (in pixels, INFINITY when the column has no zero, or
 * none within cap rows) into out; returns whether the mask has any zero
 * pixel at all. */
static int edt_columns(const uint8_t *mask, int w, int h, float cap, float *out) {
    if (memchr(mask, 0, (size_t)w * h) == NULL) return 0;
    for (int x = 0; x < w; x++) out[x] = mask[x] == 0 ? 0.0f : INFINITY;
    for (int y = 1; y < h; y++) { /* branch-free selects: the loops vectorise */
        const uint8_t *restrict m = mask + (size_t)y * w;
        float *restrict d = out + (size_t)y * w;
        const float *restrict above = out + (size_t)(y - 1) * w;
        for (int x = 0; x < w; x++) { /* v, or +0 where m is 0, by a bit mask */
            float v = above[x] + 1.0f;
            uint32_t bits;
            memcpy(&bits, &v, sizeof(bits));
            bits &= -(uint32_t)(m[x] != 0);
            memcpy(&d[x], &bits, sizeof(bits));
        }
    }
    float *last = out + (size_t)(h - 1) * w;
    for (int x = 0; x < w; x++) last[x] = last[x] > cap ? INFINITY : last[x];
    /* Upwards: where the mask is 0 the distance is 0 already and stays so
     * (min(below + 1, 0) = 0 <= cap), so blocks of 64 columns with no
     * mask pixel are passed over (most of a sparse mask's rows) */
    for (int y = h - 2; y >= 0; y--) {
        float *restrict d = out + (size_t)y * w;
        const float *restrict below = out + (size_t)(y + 1) * w;
        const uint8_t *m = mask + (size_t)y * w;
        for (int x0 = 0; x0 < w; x0 += 64) {
            int x1 = x0 + 64 < w ? x0 + 64 : w;
            if (x1 - x0 == 64 && maskblock_empty(m + x0)) continue;
            edt_up_segment(d + x0, below + x0, x1 - x0, cap);
        }
    }
    return 1;
}

/* Lower envelope over one row segment: row[x] holds the vertical distance
 * on entry and the squared 2-D distance on exit (far where no finite
 * entry exists in the segment). */
static void edt_row(float *row, int w, edt_row_scratch *s, float far) {
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
    if (k < 0) {
        for (int q = 0; q < w; q++) row[q] = far;
        return;
    }
    k = 0;
    for (int q = 0; q < w; q++) {
        while (s->z[k + 1] < q) k++;
        double dx = q - s->v[k];
        row[q] = (float)(dx * dx + s->f[s->v[k]]);
    }
}

/* Segments up to this long take edt_row_short, longer ones the envelope. */
#define EDT_SHORT_MAX 64

/* edt_row over a short segment by brute force: out[q] = min over the
 * sites p of (q - p)^2 + g(p)^2, one elementwise pass over the segment
 * per finite site, which vectorises, instead of the envelope's
 * sequential divisions. The same values: distances are whole numbers,
 * exact in double, and the envelope finds this very minimum; each is
 * rounded to float once, as there. f: n doubles of scratch. */
IMAGE_VECTORISED static void edt_row_short(float *row, int n, double *restrict f, float far) {
    double best[EDT_SHORT_MAX];
    int sites = 0;
    for (int q = 0; q < n; q++) {
        best[q] = INFINITY;
        if (isinf(row[q])) continue;
        f[sites] = (double)row[q] * row[q];
        f[EDT_SHORT_MAX + sites++] = q;
    }
    if (sites == 0) {
        for (int q = 0; q < n; q++) row[q] = far;
        return;
    }
    for (int k = 0; k < sites; k++) {
        double fp = f[k], p = f[EDT_SHORT_MAX + k];
        for (int q = 0; q < n; q++) {
            double d = ((double)q - p) * ((double)q - p) + fp;
            best[q] = d < best[q] ? d : best[q];
        }
    }
    for (int q = 0; q < n; q++) row[q] = (float)best[q];
}

/* Whether the 16 mask bytes from m on are all 0: two 64-bit tests. */
static inline bool edt_none16(const uint8_t *m) {
    uint64_t a, b;
    memcpy(&a, m, sizeof(a));
    memcpy(&b, m + 8, sizeof(b));
    return (a | b) == 0;
}

/* One row of the second pass, run by run: a background pixel (vertical
 * distance 0) is at distance 0, and for a pixel in a run of non-zero
 * entries the background pixel just outside the run on either side is
 * nearer than any site beyond it, so the envelope is built over the run
 * and those two pixels only. Exact, and on sparse foreground it costs the
 * foreground rather than the whole row. The runs are found on the mask
 * row m (the vertical distance is 0 exactly where the mask is), a
 * quarter of the bytes of the distances. */
static void edt_row_runs(float *row, const uint8_t *m, int w, edt_row_scratch *s, float far) {
    for (int x = 0; x < w;) {
        if (x + 16 <= w && edt_none16(m + x)) { /* background, most of a row */
            x += 16;
            continue;
        }
        if (m[x] == 0) {
            x++;
            continue;
        }
        int start = x;
        while (x < w && m[x] != 0) x++;
        int lo = start > 0 ? start - 1 : 0, hi = x < w ? x : w - 1;
        if (hi - lo + 1 <= EDT_SHORT_MAX)
            edt_row_short(row + lo, hi - lo + 1, s->f, far);
        else
            edt_row(row + lo, hi - lo + 1, s, far);
    }
}

/* Both passes; cap bounds the vertical distances kept (INFINITY: all). */
static int edt_run(const uint8_t *mask, int w, int h, float cap, float far, float *out) {
    if (mask == NULL || out == NULL || w < 1 || h < 1) return TS_ERR;
    size_t n = (size_t)w * h;
    if (!edt_columns(mask, w, h, cap, out)) {
        for (size_t i = 0; i < n; i++) out[i] = EDT_FAR;
        return TS_OK;
    }
    size_t nf = (size_t)w > 2 * EDT_SHORT_MAX ? (size_t)w : 2 * EDT_SHORT_MAX; /* edt_row_short's too */
    char *block = ts_malloc(nf * sizeof(double) + (size_t)w * sizeof(double) + sizeof(double) +
                            (size_t)w * sizeof(int));
    edt_row_scratch s = {.f = (double *)block};
    s.z = s.f + nf;
    s.v = (int *)(s.z + w + 1);
    for (int y = 0; y < h; y++) edt_row_runs(out + (size_t)y * w, mask + (size_t)y * w, w, &s, far);
    free(block);
    return TS_OK;
}

int edt_squared(const uint8_t *mask, int w, int h, float *out) {
    return edt_run(mask, w, h, INFINITY, EDT_FAR, out);
}

/* Whether the 16 values from v on are all INFINITY (no site). */
static inline bool edt_all_inf16(const float *v) {
    int any = 0;
    for (int k = 0; k < 16; k++) any |= v[k] != INFINITY;
    return any == 0;
}

/* Columns per block of edt_row_brute: its minima stay in registers
 * across the 2r + 1 offsets instead of being loaded and stored again for
 * each. */
#define EDT_BLOCK 32

/* One row of the bounded transform by brute force over the 2r+1
 * horizontal offsets: out = min over |dx| <= r of dx^2 + g(x+dx)^2, from
 * the capped vertical distances g (INFINITY beyond the cap; outside the
 * row counts as INFINITY too). Each offset is one vectorised pass; for
 * the small radii of cell growth that beats the envelope's sequential
 * scan. Values above the limit may be left larger than exact (allowed). */
IMAGE_VECTORISED static void edt_row_brute(float *row, int w, int r, float *pad) {
    /* Only [first site - r, last site + r] can be within reach of a site;
     * elsewhere every candidate is INFINITY and the row stays EDT_FAR.
     * Around sparse nuclei most rows have few sites or none. */
    int first = 0, last = w - 1;
    while (first + 16 <= w && edt_all_inf16(row + first)) first += 16;
    while (first < w && row[first] == INFINITY) first++;
    if (first == w) {
        for (int x = 0; x < w; x++) row[x] = EDT_FAR;
        return;
    }
    while (last - 15 > first && edt_all_inf16(row + last - 15)) last -= 16;
    while (row[last] == INFINITY) last--;
    int lo = first - r > 0 ? first - r : 0, hi = last + r < w - 1 ? last + r : w - 1;
    int xa = lo - r > 0 ? lo - r : 0, xb = hi + r < w - 1 ? hi + r : w - 1;
    for (int i = 0; i < r; i++) pad[i] = pad[r + w + i] = INFINITY;
    for (int x = xa; x <= xb; x++) pad[r + x] = row[x] * row[x];
    for (int x = 0; x < w; x++) row[x] = EDT_FAR;
    /* blocks of EDT_BLOCK columns whose minima stay in vector registers
     * across the offsets (a minimum of sums that are never NaN is the
     * same in any order), then the rest offset by offset */
    int x0 = lo;
    for (; x0 + EDT_BLOCK <= hi + 1; x0 += EDT_BLOCK) {
        float acc[EDT_BLOCK];
        for (int j = 0; j < EDT_BLOCK; j++) acc[j] = EDT_FAR;
        for (int dx = -r; dx <= r; dx++) {
            const float *g = pad + r + dx + x0, d2 = (float)(dx * dx);
            for (int j = 0; j < EDT_BLOCK; j++) {
                float v = d2 + g[j];
                acc[j] = v < acc[j] ? v : acc[j];
            }
        }
        for (int j = 0; j < EDT_BLOCK; j++) row[x0 + j] = acc[j];
    }
    for (int dx = -r; dx <= r; dx++) {
        const float *g = pad + r + dx, d2 = (float)(dx * dx);
        for (int x = x0; x <= hi; x++) {
            float v = d2 + g[x];
            row[x] = v < row[x] ? v : row[x];
        }
    }
}

/* Vertical distances beyond floor(sqrt(limit)) cannot be part of a
 * distance within limit: dropping them leaves few sites per row, and for
 * a small limit the rows are done by brute force over the few offsets
 * that can matter. */
int edt_squared_within(const uint8_t *mask, int w, int h, float limit, float *out) {
    if (!(limit >= 0)) return TS_ERR;
    float cap = limit >= 1e12f ? INFINITY : floorf(sqrtf(limit));
    while ((cap + 1) * (cap + 1) <= limit) cap++; /* sqrtf rounding, either way */
    while (cap > 0 && cap * cap > limit) cap--;
    if (cap > EDT_BRUTE_MAX) return edt_run(mask, w, h, cap, EDT_FAR, out);
    if (mask == NULL || out == NULL || w < 1 || h < 1) return TS_ERR;
    size_t n = (size_t)w * h;
    if (!edt_columns(mask, w, h, cap, out)) {
        for (size_t i = 0; i < n; i++) out[i] = EDT_FAR;
        return TS_OK;
    }
    int r = (int)cap;
    float *pad = ts_malloc(((size_t)w + 2 * (size_t)r) * sizeof(float));
    for (int y = 0; y < h; y++) edt_row_brute(out + (size_t)y * w, w, r, pad);
    free(pad);
    return TS_OK;
}
