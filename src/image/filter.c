/*
 * filter.c - see filter.h.
 *
 * Min/max filters use an octagon O = S(a) (+) D(b): a square of half-width
 * a Minkowski-added to a diamond (L1 ball) of radius b, so that
 * O = {|x| <= a+b, |y| <= a+b, |x|+|y| <= 2a+b}. For a disk of radius R we
 * take a+b = floor(R) and 2a+b = floor(R sqrt 2) (the disk's extent along
 * the axes and along the diagonals), which is the disk itself for R in
 * [1, 2.12) and [2.24, 3), and otherwise differs from it by at most one
 * pixel along the boundary.
 *
 * Each factor is itself decomposed into 1-D segments, each run with the
 * van Herk / Gil-Werman algorithm (three comparisons per pixel whatever the
 * length):
 *   S(a)          = horizontal segment (+) vertical segment, both of radius a;
 *   D(2m+1)       = diagonal(m) (+) antidiagonal(m) (+) cross,
 *   D(2m+2)       = diagonal(m) (+) antidiagonal(m) (+) cross (+) cross,
 * where diagonal(m) = {k(1,1) : |k| <= m} and cross is the 5-point plus.
 * (In the rotated coordinates u = x+y, v = x-y the two diagonal segments
 * give every point with u, v even and |u|, |v| <= 2m; adding the cross
 * adds the odd points out to 2m+1, which is exactly D(2m+1).)
 *
 * Borders: replicating edge pixels is the same as clipping the window to
 * the image for any element closed under shrinking a coordinate towards 0
 * (the square, the diamond, the octagon): the replicated value is that of a
 * pixel which is itself inside the clipped window. Clipping each factor in
 * turn gives the same result as clipping the whole octagon for such
 * factors, but not for the diagonal segments, so the diamond is computed
 * on a copy padded by b replicated pixels, where no clipping happens for
 * the pixels that matter.
 */
#include "image/filter.h"

#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "image/filter_internal.h"
#include "image/vectorise.h"
#include "util/util.h"

/* Windows up to this many pixels take the doubling running minimum (at
 * most 5 vectorised passes), longer ones van Herk / Gil-Werman. */
#define FILTER_DOUBLING_MAX 32

/* Scratch for the min filter, one allocation: the padded image and its
 * twin for the cross pass, and the three line buffers of van Herk. */
typedef struct filter_min_scratch {
    float *pad, *pad2; /* padded image, pw x ph (NULL when there is no diamond) */
    int pw, ph;
    float *line, *ext, *suf; /* 1-D buffers, each line_cap floats */
} filter_min_scratch;

/* Smaller of two floats. Plain comparison rather than fminf, which the
 * compiler cannot inline (NaN rules) and which doubled the filter's cost. */
static inline float filter_lesser(float a, float b) {
    return b < a ? b : a;
}

/* One doubling step: dst[i] = min(src[i], src[i + shift]), i < n; distinct
 * buffers, so the loop vectorises without a runtime overlap test. */
static void filter_min_shifted(const float *restrict src, int shift, int n, float *restrict dst) {
    for (int i = 0; i < n; i++) dst[i] = filter_lesser(src[i], src[i + shift]);
}

/* Window minima of width k (>= 1) by doubling: out[i] = min(in[i ..
 * i+k-1]) for i in [0, n), in holding n + k - 1 values. Minima of width
 * 1, 2, 4, ... are built alternately in in and tmp (each step one
 * elementwise minimum of a row with itself shifted), and the window is
 * two overlapping blocks of the largest width. in is destroyed; tmp needs
 * n + k - 1 floats. */
static void filter_window_min(float *in, float *tmp, int n, int k, float *out) {
    int width = 1, len = n + k - 1;
    float *cur = in, *other = tmp;
    while (2 * width <= k) {
        filter_min_shifted(cur, width, len - width, other);
        len -= width;
        width *= 2;
        float *t = cur;
        cur = other;
        other = t;
    }
    for (int i = 0; i < n; i++) out[i] = filter_lesser(cur[i], cur[i + (k - width)]);
}

/* Running minimum of radius r over line[0..n), the window clipped to the
 * line, in place. The line is embedded in ext with r +inf on either side.
 * Short windows take the doubling (log2(2r+1) vectorised passes); long
 * ones van Herk / Gil-Werman (three comparisons per pixel whatever r,
 * but sequential): per block of k = 2r+1, suffix minima go to suf and
 * prefix minima are made in place in ext, and the window [i-r, i+r] is
 * min(suf[i], ext[i+2r]). ext and suf need n + 4r + 1 floats. */
static void filter_line_min(float *line, int n, int r, float *ext, float *suf) {
    if (r > n - 1) r = n - 1; /* a wider window sees the same clipped line */
    if (r <= 0) return;
    int k = 2 * r + 1, len = ((n + 2 * r + k - 1) / k) * k;
    for (int j = 0; j < r; j++) ext[j] = INFINITY;
    memcpy(ext + r, line, (size_t)n * sizeof(float));
    if (k <= FILTER_DOUBLING_MAX) {
        for (int j = r + n; j < n + 2 * r; j++) ext[j] = INFINITY;
        filter_window_min(ext, suf, n, k, line);
        return;
    }
    for (int j = r + n; j < len; j++) ext[j] = INFINITY;
    for (int b = 0; b < len; b += k) {
        suf[b + k - 1] = ext[b + k - 1];
        for (int j = b + k - 2; j >= b; j--) suf[j] = filter_lesser(ext[j], suf[j + 1]);
        for (int j = b + 1; j < b + k; j++) ext[j] = filter_lesser(ext[j], ext[j - 1]);
    }
    for (int i = 0; i < n; i++) line[i] = filter_lesser(suf[i], ext[i + 2 * r]);
}

/* The running minimum along the n pixels img[start + t*stride]: gathered
 * into a contiguous line, filtered, scattered back. Used for columns and
 * diagonals, whose pixels are not contiguous. */
static void filter_strided_min(float *img, ptrdiff_t start, ptrdiff_t stride, int n, int r,
                               filter_min_scratch *s) {
    for (int t = 0; t < n; t++) s->line[t] = img[start + t * stride];
    filter_line_min(s->line, n, r, s->ext, s->suf);
    for (int t = 0; t < n; t++) img[start + t * stride] = s->line[t];
}

/* The running minimum of radius a down the columns [x0, x0 + sw) of img
 * (row stride W): van Herk / Gil-Werman as in filter_line_min, but on
 * whole strip rows (blocks of k = 2a+1 rows; suffix minima into suf,
 * prefix minima in place in ext, both sw floats a row), so every step is
 * an elementwise minimum of two contiguous rows, which vectorises. */
IMAGE_VECTORISED static void filter_strip_min(float *img, size_t W, int h, int a, size_t x0,
                                              size_t sw, float *ext, float *suf) {
    int k = 2 * a + 1, len = ((h + 2 * a + k - 1) / k) * k;
    for (int j = 0; j < len; j++) {
        float *row = ext + (size_t)j * sw;
        if (j >= a && j < a + h)
            memcpy(row, img + (size_t)(j - a) * W + x0, sw * sizeof(float));
        else
            for (size_t x = 0; x < sw; x++) row[x] = INFINITY;
    }
    for (int b = 0; b < len; b += k) {
        memcpy(suf + (size_t)(b + k - 1) * sw, ext + (size_t)(b + k - 1) * sw, sw * sizeof(float));
        for (int j = b + k - 2; j >= b; j--) {
            float *o = suf + (size_t)j * sw;
            const float *e = ext + (size_t)j * sw, *n = o + sw;
            for (size_t x = 0; x < sw; x++) o[x] = filter_lesser(e[x], n[x]);
        }
        for (int j = b + 1; j < b + k; j++) {
            float *o = ext + (size_t)j * sw;
            const float *p = o - sw;
            for (size_t x = 0; x < sw; x++) o[x] = filter_lesser(o[x], p[x]);
        }
    }
    for (int i = 0; i < h; i++) {
        const float *sf = suf + (size_t)i * sw, *pf = ext + (size_t)(i + 2 * a) * sw;
        float *o = img + (size_t)i * W + x0;
        for (size_t x = 0; x < sw; x++) o[x] = filter_lesser(sf[x], pf[x]);
    }
}

/* The running minimum of radius a down every column, strip by strip. */
static void filter_columns_min(float *img, int w, int h, int a) {
    if (a > h - 1) a = h - 1;
    if (a <= 0) return;
    int k = 2 * a + 1, len = ((h + 2 * a + k - 1) / k) * k;
    size_t W = (size_t)w, strip = W < FILTER_STRIP ? W : FILTER_STRIP;
    float *ext = ts_malloc((size_t)len * strip * sizeof(float) * 2), *suf = ext + (size_t)len * strip;
    for (size_t x0 = 0; x0 < W; x0 += strip)
        filter_strip_min(img, W, h, a, x0, W - x0 < strip ? W - x0 : strip, ext, suf);
    free(ext);
}

/* Square of half-width a on the w x h image: rows in place, then columns. */
static void filter_square_min(float *img, int w, int h, int a, filter_min_scratch *s) {
    for (int y = 0; y < h; y++) filter_line_min(img + (size_t)y * w, w, a, s->ext, s->suf);
    filter_columns_min(img, w, h, a);
}

/* One row of filter_diagonal_direct with m = 2 (rows 2 .. ph - 3, pw > 4):
 * per pixel the minima with rows y + 1, y - 1, y + 2, y - 2 shifted as its
 * loops shift them, in their order; the inner columns in one vectorised
 * pass instead of five, the two at each end as the loops do them. */
IMAGE_VECTORISED static void filter_diagonal_m2_row(const float *row, int pw, int dir, float *restrict out) {
    const float *d1 = row + pw + dir, *u1 = row - pw - dir, *d2 = row + 2 * pw + 2 * dir,
                *u2 = row - 2 * pw - 2 * dir;
    for (int x = 2; x < pw - 2; x++)
        out[x] = filter_lesser(filter_lesser(filter_lesser(filter_lesser(row[x], d1[x]), u1[x]), d2[x]), u2[x]);
    const int edge[4] = {0, 1, pw - 2, pw - 1};
    for (int e = 0; e < 4; e++) {
        int x = edge[e];
        float v = row[x];
        for (int k = 1; k <= 2; k++) {
            int dx = k * dir;
            if (x + dx >= 0 && x + dx < pw) v = filter_lesser(v, row[(ptrdiff_t)k * pw + x + dx]);
            if (x - dx >= 0 && x - dx < pw) v = filter_lesser(v, row[-(ptrdiff_t)k * pw + x - dx]);
        }
        out[x] = v;
    }
}

/* One diagonal segment of radius m on the padded image, directly: each
 * output row is the elementwise minimum of the 2m+1 rows around it, each
 * shifted by its distance along the diagonal (dir 1: x - y constant; -1:
 * x + y constant), points outside the padded image left out as the
 * strided walk leaves them out. Vectorises; for short segments it is much
 * cheaper than gathering every diagonal line. Swaps the buffers. */
static void filter_diagonal_direct(filter_min_scratch *s, int m, int dir) {
    int pw = s->pw, ph = s->ph;
    for (int y = 0; y < ph; y++) {
        float *restrict out = s->pad2 + (size_t)y * pw;
        const float *row = s->pad + (size_t)y * pw;
        if (m == 2 && y >= 2 && y + 2 < ph && pw > 4) {
            /* the usual case in one pass (the background's diamond):
             * the interior columns with the four shifted rows at once,
             * in the loops' order below, the edge columns by those loops */
            filter_diagonal_m2_row(row, pw, dir, out);
            continue;
        }
        memcpy(out, row, (size_t)pw * sizeof(float));
        for (int k = 1; k <= m && k < pw; k++) {
            int dx = k * dir; /* row y + k is shifted by dx, row y - k by -dx */
            if (y + k < ph) {
                const float *restrict src = s->pad + (size_t)(y + k) * pw;
                int x0 = dx < 0 ? -dx : 0, x1 = dx > 0 ? pw - dx : pw;
                for (int x = x0; x < x1; x++) out[x] = filter_lesser(out[x], src[x + dx]);
            }
            if (y - k >= 0) {
                const float *restrict src = s->pad + (size_t)(y - k) * pw;
                int x0 = dx > 0 ? dx : 0, x1 = dx < 0 ? pw + dx : pw;
                for (int x = x0; x < x1; x++) out[x] = filter_lesser(out[x], src[x - dx]);
            }
        }
    }
    float *t = s->pad;
    s->pad = s->pad2;
    s->pad2 = t;
}

/* Both diagonal segments of radius m on the padded image: every line
 * x - y = const (stride pw+1), then every line x + y = const (stride
 * 1-pw, walking up and to the right). */
static void filter_diagonals_min(filter_min_scratch *s, int m) {
    int pw = s->pw, ph = s->ph;
    if (2 * m + 1 <= FILTER_DOUBLING_MAX) {
        filter_diagonal_direct(s, m, 1);
        filter_diagonal_direct(s, m, -1);
        return;
    }
    for (int d = -(ph - 1); d <= pw - 1; d++) { /* x - y = d */
        int x0 = d > 0 ? d : 0, y0 = x0 - d;
        int n = (pw - x0 < ph - y0) ? pw - x0 : ph - y0;
        filter_strided_min(s->pad, (ptrdiff_t)y0 * pw + x0, pw + 1, n, m, s);
    }
    for (int c = 0; c <= pw + ph - 2; c++) { /* x + y = c */
        int x0 = c - (ph - 1) > 0 ? c - (ph - 1) : 0, y0 = c - x0;
        int n = (pw - x0 < y0 + 1) ? pw - x0 : y0 + 1;
        filter_strided_min(s->pad, (ptrdiff_t)y0 * pw + x0, 1 - (ptrdiff_t)pw, n, m, s);
    }
}

/* One row of the 5-point plus minimum: the ends apart, so the inner loop
 * has no test and vectorises; one pass (it was three over out). The order
 * of the minima is the same at every pixel (up and down, the centre, left,
 * right); min is exact anyway. */
IMAGE_VECTORISED static void filter_cross_row(const float *restrict row, const float *up,
                                              const float *down, int pw, float *restrict out) {
    for (int x = 1; x < pw - 1; x++)
        out[x] = filter_lesser(filter_lesser(filter_lesser(row[x], filter_lesser(up[x], down[x])), row[x - 1]),
                               row[x + 1]);
    for (int x = 0; x < pw; x += pw - 1 > 0 ? pw - 1 : 1) { /* the two ends (one when pw is 1) */
        float v = filter_lesser(row[x], filter_lesser(up[x], down[x]));
        if (x > 0) v = filter_lesser(v, row[x - 1]);
        if (x < pw - 1) v = filter_lesser(v, row[x + 1]);
        out[x] = v;
    }
}

/* 5-point plus minimum of the padded image (clipped at its edge, which
 * only touches padding the result does not depend on); swaps the buffers. */
static void filter_cross_min(filter_min_scratch *s) {
    int pw = s->pw, ph = s->ph;
    for (int y = 0; y < ph; y++) {
        const float *row = s->pad + (size_t)y * pw;
        const float *up = y > 0 ? row - pw : row, *down = y < ph - 1 ? row + pw : row;
        filter_cross_row(row, up, down, pw, s->pad2 + (size_t)y * pw);
    }
    float *t = s->pad;
    s->pad = s->pad2;
    s->pad2 = t;
}

/* Diamond of radius b >= 1 on img via the padded copy (see the top of the
 * file), the result copied back into img. */
static void filter_diamond_min(float *img, int w, int h, int b, filter_min_scratch *s) {
    for (int y = 0; y < s->ph; y++) {
        int sy = y - b < 0 ? 0 : (y - b >= h ? h - 1 : y - b);
        const float *src = img + (size_t)sy * w;
        float *dst = s->pad + (size_t)y * s->pw;
        for (int x = 0; x < b; x++) {
            dst[x] = src[0];
            dst[b + w + x] = src[w - 1];
        }
        memcpy(dst + b, src, (size_t)w * sizeof(float));
    }
    int m = (b - 1) / 2;
    filter_cross_min(s);
    if (b % 2 == 0) filter_cross_min(s);
    if (m > 0) filter_diagonals_min(s, m);
    for (int y = 0; y < h; y++)
        memcpy(img + (size_t)y * w, s->pad + (size_t)(y + b) * s->pw + b, (size_t)w * sizeof(float));
}

/* Splits a disk radius into the square half-width *a and diamond radius
 * *b of the octagon (see the top of the file). A radius beyond w + h is
 * cut down to it: the octagon then covers the whole image either way. */
static void filter_octagon(float radius, int w, int h, int *a, int *b) {
    double r = radius > (float)(w + h) ? (double)(w + h) : (double)radius;
    int n = (int)floor(r), d = (int)floor(r * sqrt(2.0));
    if (d > 2 * n) d = 2 * n;
    if (d < n) d = n;
    *a = d - n;
    *b = 2 * n - d;
}

int filter_min(float *img, int w, int h, float radius) {
    image_scratch own = {0};
    int rc = filter_min_with(&own, img, w, h, radius);
    image_scratch_release(&own);
    return rc;
}

/* The padded copies (diamond) and the line buffers (square) from the
 * scratch, in one block. */
int filter_min_with(image_scratch *scratch, float *img, int w, int h, float radius) {
    if (scratch == NULL || filter_check(img, w, h, radius) != TS_OK) return TS_ERR;
    int a, b;
    filter_octagon(radius, w, h, &a, &b);
    if (a == 0 && b == 0) return TS_OK;
    filter_min_scratch s = {.pw = b > 0 ? w + 2 * b : 0, .ph = b > 0 ? h + 2 * b : 0};
    int longest = w > h ? w : h;
    if (s.pw > longest) longest = s.pw;
    if (s.ph > longest) longest = s.ph;
    size_t line_cap = (size_t)longest + 4 * (size_t)(a > b ? a : b) + 2;
    size_t npad = (size_t)s.pw * s.ph;
    float *block = image_scratch_take(scratch, (2 * npad + 3 * line_cap) * sizeof(float));
    s.pad = block;
    s.pad2 = block + npad;
    s.line = block + 2 * npad;
    s.ext = s.line + line_cap;
    s.suf = s.ext + line_cap;
    if (b > 0) filter_diamond_min(img, w, h, b, &s);
    if (a > 0) filter_square_min(img, w, h, a, &s);
    return TS_OK;
}

int filter_min_square(float *img, int w, int h, int a) {
    if (filter_check(img, w, h, (float)a) != TS_OK) return TS_ERR;
    if (a == 0) return TS_OK;
    int longest = w > h ? w : h;
    size_t line_cap = (size_t)longest + 4 * (size_t)a + 2;
    float *block = ts_malloc(3 * line_cap * sizeof(float));
    filter_min_scratch sc = {.line = block, .ext = block + line_cap, .suf = block + 2 * line_cap};
    filter_square_min(img, w, h, a, &sc);
    free(block);
    return TS_OK;
}

int filter_max_square(float *img, int w, int h, int a) {
    if (filter_check(img, w, h, (float)a) != TS_OK) return TS_ERR;
    size_t n = (size_t)w * h;
    for (size_t i = 0; i < n; i++) img[i] = -img[i];
    int rc = filter_min_square(img, w, h, a);
    for (size_t i = 0; i < n; i++) img[i] = -img[i];
    return rc;
}

/* The larger of two floats, the way filter_lesser is the smaller. */
static inline float filter_greater(float a, float b) {
    return b > a ? b : a;
}

/* Columns per block of filter_max_square_row (see there). */
#define FILTER_MAX_BLOCK 32

/* One row of filter_max_square_masked at the n columns from x0: the
 * maxima down the rows ya .. yb of the columns within a of them into col
 * (-infinity beyond the image's edges), then across 2a + 1 of those. Each
 * step an elementwise maximum of contiguous floats, which vectorises. */
IMAGE_VECTORISED static void filter_max_square_row(const float *src, int w, int ya, int yb, int x0, int n,
                                                   int a, float *restrict col, float *restrict out) {
    /* col[j] is column x0 - a + j; the image's columns xa .. xb - 1 */
    int xa = x0 - a < 0 ? 0 : x0 - a, xb = x0 + n + a > w ? w : x0 + n + a, m = n + 2 * a;
    int ja = xa - (x0 - a), jb = xb - (x0 - a);
    for (int j = 0; j < ja; j++) col[j] = -INFINITY;
    for (int j = jb; j < m; j++) col[j] = -INFINITY;
    /* blocks of FILTER_MAX_BLOCK columns whose maxima stay in vector
     * registers across the rows (and then the offsets), the rest row by
     * row: each value's maxima in the same order, so the same floats */
    int m0 = xb - xa, c0 = 0;
    const float *top = src + (size_t)ya * w + xa;
    for (; c0 + FILTER_MAX_BLOCK <= m0; c0 += FILTER_MAX_BLOCK) {
        float acc[FILTER_MAX_BLOCK];
        for (int j = 0; j < FILTER_MAX_BLOCK; j++) acc[j] = top[c0 + j];
        for (int y = ya + 1; y <= yb; y++) {
            const float *restrict r = src + (size_t)y * w + xa + c0;
            for (int j = 0; j < FILTER_MAX_BLOCK; j++) acc[j] = filter_greater(acc[j], r[j]);
        }
        for (int j = 0; j < FILTER_MAX_BLOCK; j++) col[ja + c0 + j] = acc[j];
    }
    memcpy(col + ja + c0, top + c0, (size_t)(m0 - c0) * sizeof(float));
    for (int y = ya + 1; y <= yb; y++) {
        const float *restrict r = src + (size_t)y * w + xa;
        float *restrict d = col + ja;
        for (int x = c0; x < m0; x++) d[x] = filter_greater(d[x], r[x]);
    }
    int j0 = 0;
    for (; j0 + FILTER_MAX_BLOCK <= n; j0 += FILTER_MAX_BLOCK) {
        float acc[FILTER_MAX_BLOCK];
        for (int j = 0; j < FILTER_MAX_BLOCK; j++) acc[j] = col[j0 + j];
        for (int k = 1; k <= 2 * a; k++)
            for (int j = 0; j < FILTER_MAX_BLOCK; j++) acc[j] = filter_greater(acc[j], col[j0 + j + k]);
        for (int j = 0; j < FILTER_MAX_BLOCK; j++) out[j0 + j] = acc[j];
    }
    for (int j = j0; j < n; j++) out[j] = col[j];
    for (int k = 1; k <= 2 * a; k++) {
        const float *restrict r = col + k;
        for (int j = j0; j < n; j++) out[j] = filter_greater(out[j], r[j]);
    }
}

/* Strips of 64 columns; in each, the rows holding a mask pixel there get
 * their maxima directly (filter_max_square_row: 2a + 1 rows down, 2a + 1
 * columns across). A maximum is exact in any order, so these are
 * filter_max_square's values; on a sparse mask a few per cent of the
 * rows of a strip are done instead of two van Herk passes and two
 * negations over the whole image. */
int filter_max_square_masked(const float *src, float *dst, const uint8_t *mask, int w, int h, int a) {
    if (filter_check(src, w, h, (float)a) != TS_OK || dst == NULL || dst == src || mask == NULL) return TS_ERR;
    if (a > w + h) a = w + h; /* the window covers the image either way */
    float *col = ts_malloc(((size_t)FILTER_STRIP + 2 * (size_t)a) * sizeof(float));
    for (int x0 = 0; x0 < w; x0 += FILTER_STRIP) {
        int n = w - x0 < FILTER_STRIP ? w - x0 : FILTER_STRIP;
        for (int y = 0; y < h; y++) {
            if (!filter_any(mask + (size_t)y * w + x0, n)) continue;
            filter_max_square_row(src, w, y - a < 0 ? 0 : y - a, y + a >= h ? h - 1 : y + a, x0, n, a, col,
                                  dst + (size_t)y * w + x0);
        }
    }
    free(col);
    return TS_OK;
}

/* max(f) = -min(-f): one code path for both, at the cost of two cheap
 * negation sweeps. */
int filter_max(float *img, int w, int h, float radius) {
    image_scratch own = {0};
    int rc = filter_max_with(&own, img, w, h, radius);
    image_scratch_release(&own);
    return rc;
}

/* filter_max with filter_min_with's scratch. */
int filter_max_with(image_scratch *scratch, float *img, int w, int h, float radius) {
    if (scratch == NULL || filter_check(img, w, h, radius) != TS_OK) return TS_ERR;
    size_t n = (size_t)w * h;
    for (size_t i = 0; i < n; i++) img[i] = -img[i];
    int rc = filter_min_with(scratch, img, w, h, radius);
    for (size_t i = 0; i < n; i++) img[i] = -img[i];
    return rc;
}

/* The opening is anti-extensive (never above img: every window of the
 * dilation contains the pixel itself, so each minimum it takes is <= img),
 * and both are exact copies of input values, so the difference is >= 0
 * already; the clamp keeps the header's promise independent of that
 * reasoning (e.g. for NaN inputs, which become 0). */
int filter_background_subtract(float *img, int w, int h, float radius) {
    if (filter_check(img, w, h, radius) != TS_OK) return TS_ERR;
    size_t n = (size_t)w * h;
    float *open = ts_malloc(n * sizeof(float));
    memcpy(open, img, n * sizeof(float));
    filter_min(open, w, h, radius);
    filter_max(open, w, h, radius);
    for (size_t i = 0; i < n; i++) {
        float d = img[i] - open[i];
        img[i] = d > 0 ? d : 0;
    }
    free(open);
    return TS_OK;
}

/* One row of 2 x 2 min-pooling: o[x] = the least of r0 and r1 at 2x and
 * 2x + 1 (2x alone at an odd width's last column). The pairs first, the
 * odd column apart, so the loop has no test and vectorises. */
IMAGE_VECTORISED static void filter_pool_row(const float *restrict r0, const float *restrict r1,
                                             int w, float *restrict o) {
    int pairs = w / 2;
    for (int x = 0; x < pairs; x++)
        o[x] = filter_lesser(filter_lesser(r0[2 * x], r0[2 * x + 1]),
                             filter_lesser(r1[2 * x], r1[2 * x + 1]));
    if (w % 2) o[pairs] = filter_lesser(filter_lesser(r0[w - 1], r0[w - 1]), filter_lesser(r1[w - 1], r1[w - 1]));
}

/* One row of the difference of src with the coarse background b (each
 * coarse pixel under two fine ones), clamped at 0, into o (o may be src). */
IMAGE_VECTORISED static void filter_subtract_row(const float *src, float *o, int w, const float *restrict b) {
    int pairs = w / 2;
    for (int x = 0; x < pairs; x++) {
        float d0 = src[2 * x] - b[x], d1 = src[2 * x + 1] - b[x];
        o[2 * x] = d0 > 0 ? d0 : 0;
        o[2 * x + 1] = d1 > 0 ? d1 : 0;
    }
    if (w % 2) {
        float d = src[w - 1] - b[pairs];
        o[w - 1] = d > 0 ? d : 0;
    }
}

/* Min-pooling by 2 x 2 (the coarse pixel is the least of its block) keeps
 * the coarse opening under every fine pixel of the block, so the
 * difference stays >= 0 like the exact one; the opening's radius halves
 * with the scale. A quarter of the pixels for the two filters that cost
 * most. From src into dst, so a caller that keeps src needs no copy. */
int filter_background_subtract_coarse_copy(const float *src, float *dst, int w, int h, float radius) {
    image_scratch own[2] = {{0}, {0}};
    int rc = filter_background_subtract_coarse_with(own, src, dst, w, h, radius);
    image_scratch_release(&own[0]);
    image_scratch_release(&own[1]);
    return rc;
}

/* The coarse image from scratch[0], the opening's buffers from scratch[1]
 * (two: both are in use at once). */
int filter_background_subtract_coarse_with(image_scratch scratch[2], const float *src, float *dst, int w, int h,
                                           float radius) {
    if (scratch == NULL || filter_check(src, w, h, radius) != TS_OK || dst == NULL) return TS_ERR;
    if (w < 4 || h < 4 || radius < 4) {
        if (dst != src) memcpy(dst, src, (size_t)w * h * sizeof(float));
        return filter_background_subtract(dst, w, h, radius);
    }
    int cw = (w + 1) / 2, ch = (h + 1) / 2;
    float *bg = image_scratch_take(&scratch[0], (size_t)cw * ch * sizeof(float));
    for (int y = 0; y < ch; y++)
        filter_pool_row(src + (size_t)(2 * y) * w, 2 * y + 1 < h ? src + (size_t)(2 * y + 1) * w : src + (size_t)(2 * y) * w,
                        w, bg + (size_t)y * cw);
    filter_min_with(&scratch[1], bg, cw, ch, radius / 2);
    filter_max_with(&scratch[1], bg, cw, ch, radius / 2);
    for (int y = 0; y < h; y++)
        filter_subtract_row(src + (size_t)y * w, dst + (size_t)y * w, w, bg + (size_t)(y / 2) * cw);
    return TS_OK;
}

int filter_background_subtract_coarse(float *img, int w, int h, float radius) {
    return filter_background_subtract_coarse_copy(img, img, w, h, radius);
}
