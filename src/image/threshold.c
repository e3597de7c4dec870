/*
 * threshold.c - see threshold.h.
 */
#include "image/threshold.h"

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
