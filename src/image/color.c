/*
 * color.c - see color.h.
 *
 * Optical densities are looked up in a 256-entry table built on the stack
 * per call: 256 log10 calls are nothing next to a tile's million pixels,
 * and a per-call table keeps the functions free of shared state (several
 * tile workers call them at once).
 */
#include "image/color.h"

#include <math.h>

#include "image/vectorise.h"
#include "util/util.h"

#define COLOR_WHITE 255u

/* The three 8-bit channels of an OpenSlide pixel, with alpha-0 pixels
 * (outside the scanned area) mapped to white so that they read as
 * background everywhere. */
static void color_channels(uint32_t argb, unsigned *r, unsigned *g, unsigned *b) {
    if ((argb >> 24) == 0) {
        *r = *g = *b = COLOR_WHITE;
        return;
    }
    *r = (argb >> 16) & 0xffu;
    *g = (argb >> 8) & 0xffu;
    *b = argb & 0xffu;
}

/* OD of one 8-bit intensity; I is clamped to >= 1 so that black has a
 * finite density (log10(255)) instead of infinity. */
static float color_od(unsigned intensity) {
    double i = intensity < 1 ? 1.0 : (double)intensity;
    return (float)-log10(i / 255.0);
}

/* Fills table[i] = color_od(i) for every 8-bit intensity. */
static void color_od_table(float table[256]) {
    for (unsigned i = 0; i < 256; i++) table[i] = color_od(i);
}

/* Inverse of the 3x3 matrix m by the adjugate, in double so that the
 * float result is correctly rounded. The stain matrix of H&E is far from
 * singular (unit rows, the third orthogonal to the first two), so no
 * pivoting is needed; a singular matrix yields a zero inverse rather than
 * infinities. */
static void color_invert3(const double m[3][3], float inv[3][3]) {
    double c[3][3];
    for (int i = 0; i < 3; i++) {
        for (int j = 0; j < 3; j++) {
            int i1 = (i + 1) % 3, i2 = (i + 2) % 3, j1 = (j + 1) % 3, j2 = (j + 2) % 3;
            c[i][j] = m[i1][j1] * m[i2][j2] - m[i1][j2] * m[i2][j1]; /* cofactor */
        }
    }
    double det = m[0][0] * c[0][0] + m[0][1] * c[0][1] + m[0][2] * c[0][2];
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 3; j++) inv[i][j] = det == 0 ? 0.0f : (float)(c[j][i] / det);
}

/* Builds the matrix from three rows already normalised and its inverse;
 * TS_ERR when the rows are nearly dependent (|det| < 1e-3): deconvolving
 * with such a matrix would blow noise up a thousandfold. */
static int color_stains_set(color_stains *s, double v[3][3]) {
    double det = v[0][0] * (v[1][1] * v[2][2] - v[1][2] * v[2][1]) -
                 v[0][1] * (v[1][0] * v[2][2] - v[1][2] * v[2][0]) +
                 v[0][2] * (v[1][0] * v[2][1] - v[1][1] * v[2][0]);
    if (!(fabs(det) >= 1e-3)) return TS_ERR;
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 3; j++) s->vec[i][j] = (float)v[i][j];
    color_invert3(v, s->inv);
    return TS_OK;
}

/* The residual is the cross product of the two stains when not given, so
 * that the matrix is invertible and the residual channel picks up only
 * what neither stain explains. Negative components are refused: an OD
 * vector of a real absorbing dye has none. */
int color_stains_from(color_stains *s, const double v1[3], const double v2[3],
                      const double v3[3]) {
    double v[3][3];
    for (int k = 0; k < 3; k++) {
        v[0][k] = v1[k];
        v[1][k] = v2[k];
        if (!(v1[k] >= 0) || !(v2[k] >= 0) || (v3 && !(v3[k] >= 0))) return TS_ERR;
    }
    if (v3) {
        for (int k = 0; k < 3; k++) v[2][k] = v3[k];
    } else {
        v[2][0] = v1[1] * v2[2] - v1[2] * v2[1];
        v[2][1] = v1[2] * v2[0] - v1[0] * v2[2];
        v[2][2] = v1[0] * v2[1] - v1[1] * v2[0];
    }
    for (int i = 0; i < 3; i++) {
        double len = sqrt(v[i][0] * v[i][0] + v[i][1] * v[i][1] + v[i][2] * v[i][2]);
        if (!(len > 1e-9)) return TS_ERR;
        for (int k = 0; k < 3; k++) v[i][k] /= len;
    }
    return color_stains_set(s, v);
}

/* Ruifrok & Johnston's H&E vectors (never singular). */
void color_stains_he(color_stains *s) {
    static const double h[3] = {0.65, 0.70, 0.29}, e[3] = {0.07, 0.99, 0.11};
    color_stains_from(s, h, e, NULL);
}

/* Ruifrok & Johnston's H-DAB vectors. */
void color_stains_hdab(color_stains *s) {
    static const double h[3] = {0.65, 0.70, 0.29}, d[3] = {0.27, 0.57, 0.78};
    color_stains_from(s, h, d, NULL);
}

void color_od_lut(float table[256]) {
    color_od_table(table);
}

void color_stain_tables(const color_stains *s, const float od[256], int k, float t[3][256]) {
    for (int c = 0; c < 3; c++)
        for (int i = 0; i < 256; i++) t[c][i] = od[i] * s->inv[c][k];
}

/* c = od x inv (od a row vector), so out1 takes column 0 of inv and out2
 * column 1: each the sum of three products od[channel] * inv[channel][k],
 * looked up in tables of those products (color_stain_tables: the same
 * floats as multiplying per pixel, three multiplications fewer a pixel).
 * Alpha-0 pixels are white, so their OD and concentrations are exactly
 * 0. Scalar (IMAGE_SCALAR): vectorised, the lookups went lane by lane,
 * half as fast again. */
IMAGE_SCALAR void color_deconvolve(const color_stains *s, const uint32_t *argb, size_t n, float *out1,
                                   float *out2) {
    float od[256], t1[3][256], t2[3][256];
    color_od_table(od);
    color_stain_tables(s, od, 0, t1);
    color_stain_tables(s, od, 1, t2);
    if (out1 && out2) {
        for (size_t i = 0; i < n; i++) {
            out1[i] = color_stain_at((const float(*)[256])t1, argb[i]);
            out2[i] = color_stain_at((const float(*)[256])t2, argb[i]);
        }
    } else if (out1 || out2) { /* one stain (cell segmentation: out1 alone) */
        float *out = out1 ? out1 : out2;
        const float(*t)[256] = out1 ? (const float(*)[256])t1 : (const float(*)[256])t2;
        for (size_t i = 0; i < n; i++) out[i] = color_stain_at(t, argb[i]);
    }
}

/* The expression of color_deconvolve's out2, operation for operation. */
float color_stain2(const color_stains *s, const float od[256], uint32_t argb) {
    unsigned r, g, b;
    color_channels(argb, &r, &g, &b);
    float odr = od[r], odg = od[g], odb = od[b];
    return odr * s->inv[0][1] + odg * s->inv[1][1] + odb * s->inv[2][1];
}

/* (max - min) * 255 / max in integer arithmetic, truncated (the header's
 * expression read literally), so the result is always within 0..255.
 * Alpha-0 pixels are white, whose saturation is 0. */
void color_saturation(const uint32_t *argb, size_t n, uint8_t *out) {
    for (size_t i = 0; i < n; i++) {
        unsigned r, g, b;
        color_channels(argb[i], &r, &g, &b);
        unsigned mx = r > g ? r : g, mn = r < g ? r : g;
        if (b > mx) mx = b;
        if (b < mn) mn = b;
        out[i] = mx == 0 ? 0 : (uint8_t)((mx - mn) * 255u / mx);
    }
}

/* Luma with integer weights in thousandths and rounding half up; the
 * weights sum to 1000 so white maps to exactly 255. */
void color_grey(const uint32_t *argb, size_t n, uint8_t *out) {
    for (size_t i = 0; i < n; i++) {
        unsigned r, g, b;
        color_channels(argb[i], &r, &g, &b);
        out[i] = (uint8_t)((299u * r + 587u * g + 114u * b + 500u) / 1000u);
    }
}

void color_od_length(const uint32_t *argb, size_t n, float *out) {
    float od[256];
    color_od_table(od);
    for (size_t i = 0; i < n; i++) {
        unsigned r, g, b;
        color_channels(argb[i], &r, &g, &b);
        out[i] = sqrtf(od[r] * od[r] + od[g] * od[g] + od[b] * od[b]);
    }
}

/* One pixel, so no table: three log10 calls. */
float color_od_mean(uint32_t argb) {
    unsigned r, g, b;
    color_channels(argb, &r, &g, &b);
    return (color_od(r) + color_od(g) + color_od(b)) / 3.0f;
}
