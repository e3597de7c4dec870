/*
 * stain.c - see stain.h.
 */
#include "image/stain.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/util.h"

static const double REF_H[3] = {0.65, 0.70, 0.29};
static const double REF_E[3] = {0.07, 0.99, 0.11};
static const double REF_DAB[3] = {0.27, 0.57, 0.78};

void stain_sampler_init(stain_sampler *s, size_t cap) {
    memset(s, 0, sizeof(*s));
    s->cap = cap ? cap : 1;
    s->od = ts_malloc(s->cap * 3 * sizeof(float));
    s->rng = 0x9e3779b97f4a7c15ull;
}

void stain_sampler_free(stain_sampler *s) {
    free(s->od);
    memset(s, 0, sizeof(*s));
}

/* xorshift64*: the reservoir's coin, deterministic so that a slide always
 * gives the same estimate. */
static uint64_t stain_rand(stain_sampler *s) {
    s->rng ^= s->rng >> 12;
    s->rng ^= s->rng << 25;
    s->rng ^= s->rng >> 27;
    return s->rng * 0x2545f4914f6cdd1dull;
}

/* Every stained pixel adds to the scatter matrix; the sample of vectors is
 * a uniform reservoir (Vitter's algorithm R) so a slide of any size keeps
 * cap vectors. Transparent pixels are outside the scan: skipped. */
void stain_sampler_add(stain_sampler *s, const uint32_t *argb, const uint8_t *mask, size_t n) {
    float od[256];
    color_od_lut(od);
    for (size_t i = 0; i < n; i++) {
        if ((mask && !mask[i]) || (argb[i] >> 24) == 0) continue;
        float v[3] = {od[(argb[i] >> 16) & 0xff], od[(argb[i] >> 8) & 0xff], od[argb[i] & 0xff]};
        double len = sqrt((double)v[0] * v[0] + (double)v[1] * v[1] + (double)v[2] * v[2]);
        if (len < STAIN_MIN_OD || len > STAIN_MAX_OD) continue;
        for (int a = 0; a < 3; a++)
            for (int b = 0; b < 3; b++) s->scatter[a][b] += (double)v[a] * v[b];
        size_t slot = s->n < s->cap ? s->n++ : (size_t)(stain_rand(s) % (s->seen + 1));
        if (slot < s->cap) memcpy(&s->od[slot * 3], v, sizeof(v));
        s->seen++;
    }
}

/* Cyclic Jacobi: a handful of sweeps take a 3x3 matrix to diagonal to
 * double precision; no library needed for three dimensions. */
void stain_eigen_sym3(const double a_in[3][3], double val[3], double vec[3][3]) {
    double a[3][3], v[3][3] = {{1, 0, 0}, {0, 1, 0}, {0, 0, 1}};
    memcpy(a, a_in, sizeof(a));
    for (int sweep = 0; sweep < 50; sweep++) {
        double off = fabs(a[0][1]) + fabs(a[0][2]) + fabs(a[1][2]);
        if (off < 1e-15 * (fabs(a[0][0]) + fabs(a[1][1]) + fabs(a[2][2]) + 1e-300)) break;
        for (int p = 0; p < 2; p++)
            for (int q = p + 1; q < 3; q++) {
                if (a[p][q] == 0) continue;
                double theta = (a[q][q] - a[p][p]) / (2 * a[p][q]);
                double t = (theta >= 0 ? 1 : -1) / (fabs(theta) + sqrt(theta * theta + 1));
                double c = 1 / sqrt(t * t + 1), s = t * c;
                for (int k = 0; k < 3; k++) { /* A <- A J */
                    double akp = a[k][p], akq = a[k][q];
                    a[k][p] = c * akp - s * akq;
                    a[k][q] = s * akp + c * akq;
                }
                for (int k = 0; k < 3; k++) { /* A <- J^T A */
                    double apk = a[p][k], aqk = a[q][k];
                    a[p][k] = c * apk - s * aqk;
                    a[q][k] = s * apk + c * aqk;
                }
                for (int k = 0; k < 3; k++) {
                    double vkp = v[k][p], vkq = v[k][q];
                    v[k][p] = c * vkp - s * vkq;
                    v[k][q] = s * vkp + c * vkq;
                }
            }
    }
    int order[3] = {0, 1, 2};
    for (int i = 0; i < 3; i++)
        for (int j = i + 1; j < 3; j++)
            if (a[order[j]][order[j]] > a[order[i]][order[i]]) {
                int t = order[i];
                order[i] = order[j];
                order[j] = t;
            }
    for (int i = 0; i < 3; i++) {
        val[i] = a[order[i]][order[i]];
        for (int k = 0; k < 3; k++) vec[k][i] = v[k][order[i]];
    }
}

double stain_angle_deg(const double a[3], const double b[3]) {
    double dot = 0, la = 0, lb = 0;
    for (int k = 0; k < 3; k++) {
        dot += a[k] * b[k];
        la += a[k] * a[k];
        lb += b[k] * b[k];
    }
    if (la == 0 || lb == 0) return 180;
    double c = dot / sqrt(la * lb);
    c = c > 1 ? 1 : c < -1 ? -1 : c;
    return acos(c) * 180 / M_PI;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void unit(double v[3]) {
    double len = sqrt(v[0] * v[0] + v[1] * v[1] + v[2] * v[2]);
    for (int k = 0; k < 3; k++) v[k] = len > 0 ? v[k] / len : 0;
}

/* The Ruifrok–Johnston vectors of kind, with the reason they are used. */
static void fallback(stain_kind kind, const char *reason, stain_estimate *out,
                     color_stains *stains) {
    out->estimated = false;
    out->kind = kind == STAIN_HDAB ? STAIN_HDAB : STAIN_HE;
    memcpy(out->v1, REF_H, sizeof(out->v1));
    memcpy(out->v2, out->kind == STAIN_HDAB ? REF_DAB : REF_E, sizeof(out->v2));
    unit(out->v1);
    unit(out->v2);
    ts_strlcpy(out->reason, reason, sizeof(out->reason));
    if (out->kind == STAIN_HDAB)
        color_stains_hdab(stains);
    else
        color_stains_he(stains);
}

/* The two extreme stain directions of the sample in the plane (e1, e2):
 * the vectors at the STAIN_PERCENTILE and 100 - STAIN_PERCENTILE
 * percentiles of the angle. */
static void plane_extremes(const stain_sampler *s, const double e1[3], const double e2[3],
                           double lo[3], double hi[3]) {
    double *phi = ts_malloc(s->n * sizeof(double));
    for (size_t i = 0; i < s->n; i++) {
        const float *v = &s->od[i * 3];
        double p1 = v[0] * e1[0] + v[1] * e1[1] + v[2] * e1[2];
        double p2 = v[0] * e2[0] + v[1] * e2[1] + v[2] * e2[2];
        phi[i] = atan2(p2, p1);
    }
    qsort(phi, s->n, sizeof(double), cmp_double);
    size_t ilo = (size_t)floor(STAIN_PERCENTILE / 100 * (double)(s->n - 1));
    size_t ihi = (size_t)ceil((100 - STAIN_PERCENTILE) / 100 * (double)(s->n - 1));
    for (int k = 0; k < 3; k++) {
        lo[k] = e1[k] * cos(phi[ilo]) + e2[k] * sin(phi[ilo]);
        hi[k] = e1[k] * cos(phi[ihi]) + e2[k] * sin(phi[ihi]);
    }
    free(phi);
}

/* Negative components (noise around a dye that absorbs nothing in one
 * channel) are set to a trace so the vector stays a physical OD. */
static void clamp_positive(double v[3]) {
    for (int k = 0; k < 3; k++)
        if (v[k] < 1e-3) v[k] = 1e-3;
    unit(v);
}

void stain_estimate_from(const stain_sampler *s, stain_kind kind, stain_estimate *out,
                         color_stains *stains) {
    memset(out, 0, sizeof(*out));
    out->pixels = s->seen;
    char why[160];
    if (s->seen < STAIN_MIN_PIXELS) {
        snprintf(why, sizeof(why), "only %llu stained pixels (%d needed)",
                 (unsigned long long)s->seen, STAIN_MIN_PIXELS);
        fallback(kind, why, out, stains);
        return;
    }
    double val[3], vec[3][3], e1[3], e2[3];
    stain_eigen_sym3(s->scatter, val, vec);
    for (int k = 0; k < 3; k++) {
        e1[k] = vec[k][0];
        e2[k] = vec[k][1];
    }
    if (e1[0] + e1[1] + e1[2] < 0)
        for (int k = 0; k < 3; k++) e1[k] = -e1[k];
    double a[3], b[3];
    plane_extremes(s, e1, e2, a, b);
    clamp_positive(a);
    clamp_positive(b);
    double *h = a[0] >= b[0] ? a : b, *o = h == a ? b : a; /* hematoxylin: more red OD */
    double sep = stain_angle_deg(h, o);
    if (sep < STAIN_MIN_SEPARATION_DEG) {
        snprintf(why, sizeof(why), "the stained pixels show one colour only (%.1f degrees apart)", sep);
        fallback(kind, why, out, stains);
        return;
    }
    double to_e = stain_angle_deg(o, REF_E), to_dab = stain_angle_deg(o, REF_DAB);
    /* Brown DAB absorbs blue most, pink eosin green most: a physical test
     * that holds for stain vectors far from either reference (e.g.
     * Macenko's own eosin is nearer Ruifrok's DAB than Ruifrok's eosin). */
    stain_kind k = kind != STAIN_AUTO ? kind : o[2] > o[1] ? STAIN_HDAB : STAIN_HE;
    double dev_h = stain_angle_deg(h, REF_H), dev_o = k == STAIN_HDAB ? to_dab : to_e;
    if (dev_h > STAIN_MAX_DEVIATION_DEG || dev_o > STAIN_MAX_DEVIATION_DEG) {
        snprintf(why, sizeof(why),
                 "the estimate is %.0f and %.0f degrees from the reference hematoxylin and %s "
                 "(more than %.0f)",
                 dev_h, dev_o, k == STAIN_HDAB ? "DAB" : "eosin", STAIN_MAX_DEVIATION_DEG);
        fallback(k, why, out, stains);
        return;
    }
    if (color_stains_from(stains, h, o, NULL) != TS_OK) {
        fallback(k, "the estimated vectors are not independent", out, stains);
        return;
    }
    out->estimated = true;
    out->kind = k;
    memcpy(out->v1, h, sizeof(out->v1));
    memcpy(out->v2, o, sizeof(out->v2));
}
