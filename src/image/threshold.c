/*
 * threshold.c - see threshold.h.
 */
#include "image/threshold.h"

#include <math.h>
#include <stdlib.h>

#include "util/util.h"

void threshold_histogram(const uint8_t *v, size_t n, uint64_t hist[256]) {
    for (size_t i = 0; i < n; i++) hist[v[i]]++;
}

/* Between-class variance up to the constant factor 1/N^2:
 * w0 w1 (mu0 - mu1)^2 = (s0 w1 - s1 w0)^2 / (w0 w1), with w the class
 * counts and s the class sums. Thresholds that split the histogram the same
 * way (empty bins between two values) have identical counts and sums, so
 * they produce bit-identical doubles and the strict comparison keeps the
 * smallest of them, as the header promises. */
int threshold_otsu(const uint64_t hist[256]) {
    return threshold_otsu_bins(hist, 256);
}

int threshold_otsu_bins(const uint64_t *hist, int nbins) {
    double total = 0, sum_all = 0;
    int distinct = 0, only = 0;
    for (int v = 0; v < nbins; v++) {
        if (hist[v] == 0) continue;
        total += (double)hist[v];
        sum_all += (double)hist[v] * v;
        distinct++;
        only = v;
    }
    if (distinct <= 1) return only; /* empty: 0; single-valued: that value */
    double w0 = 0, s0 = 0, best = -1;
    int best_t = 0;
    for (int t = 0; t < nbins - 1; t++) {
        w0 += (double)hist[t];
        s0 += (double)hist[t] * t;
        double w1 = total - w0, s1 = sum_all - s0;
        if (w0 == 0 || w1 == 0) continue;
        double num = s0 * w1 - s1 * w0, var = num * num / (w0 * w1);
        if (var > best) {
            best = var;
            best_t = t;
        }
    }
    return best_t;
}

void threshold_background(const uint64_t *hist, int n, int *mode, double *spread) {
    double best = -1;
    *mode = 0;
    *spread = 1;
    for (int b = 0; b < n; b++) {
        /* triangular weights 1 2 3 2 1: a single-bin spike keeps its bin */
        double s = 0, wsum = 0;
        for (int k = -2; k <= 2; k++) {
            if (b + k < 0 || b + k >= n) continue;
            double wk = 3 - abs(k);
            s += wk * (double)hist[b + k];
            wsum += wk;
        }
        s /= wsum;
        if (s > best) {
            best = s;
            *mode = b;
        }
    }
    /* Count up to the middle of the mode bin, then walk down to 31.73% of it. */
    double below = (double)hist[*mode] / 2;
    for (int b = 0; b < *mode; b++) below += (double)hist[b];
    if (below <= 0) return;
    double want = 0.3173 * below, seen = 0;
    for (int b = 0; b < *mode; b++) {
        if (seen + (double)hist[b] >= want) {
            /* linear within bin b */
            double frac = hist[b] ? (want - seen) / (double)hist[b] : 0;
            double d = *mode + 0.5 - (b + frac);
            *spread = d < 1 ? 1 : d;
            return;
        }
        seen += (double)hist[b];
    }
}

/* The bin where the running count of hist from bin `from` reaches want. */
static int hist_quantile(const uint64_t *hist, int from, uint64_t want) {
    uint64_t seen = 0;
    int b = from;
    while (b < THRESHOLD_OD_BINS - 1 && (seen += hist[b]) < want) b++;
    return b;
}

void threshold_glass_od(const float *f, size_t n, threshold_glass *c) {
    const double scale = THRESHOLD_OD_RANGE / THRESHOLD_OD_BINS;
    uint64_t *hist = ts_calloc(THRESHOLD_OD_BINS, sizeof(uint64_t));
    for (size_t i = 0; i < n; i++) {
        int b = (int)(f[i] / scale);
        hist[b < 0 ? 0 : b >= THRESHOLD_OD_BINS ? THRESHOLD_OD_BINS - 1 : b]++;
    }
    int gb = hist_quantile(hist, 0, (uint64_t)ceil(THRESHOLD_GLASS_PERCENTILE / 100 * (double)n));
    c->glass_od = (gb + 0.5) * scale;
    c->otsu = (threshold_otsu_bins(hist, THRESHOLD_OD_BINS) + 1) * scale;
    c->glass_found = c->glass_od <= THRESHOLD_GLASS_MAX_OD;
    double lo = c->glass_od + THRESHOLD_MIN_ABOVE_GLASS;
    int tb = (int)(lo / scale) + 1;
    uint64_t darker = 0;
    for (int b = tb; b < THRESHOLD_OD_BINS; b++) darker += hist[b];
    c->tissue_od = darker ? (hist_quantile(hist, tb, (darker + 1) / 2) + 0.5) * scale : lo;
    double half = c->glass_od + 0.5 * (c->tissue_od - c->glass_od);
    double t = c->otsu < half ? c->otsu : half;
    if (t > c->glass_od + THRESHOLD_MAX_ABOVE_GLASS) t = c->glass_od + THRESHOLD_MAX_ABOVE_GLASS;
    c->threshold = !c->glass_found ? c->glass_od / 2 : t < lo ? lo : t;
    free(hist);
}
