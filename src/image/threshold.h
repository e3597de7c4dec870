/*
 * threshold.h - automatic thresholds.
 */
#ifndef TESSERA_IMAGE_THRESHOLD_H
#define TESSERA_IMAGE_THRESHOLD_H

#include <stddef.h>
#include <stdint.h>

/* Adds the n values to hist (256 bins; the caller zeroes it first). */
void threshold_histogram(const uint8_t *v, size_t n, uint64_t hist[256]);

/* Otsu's threshold: the t in 0..254 maximising the between-class variance
 * of {v <= t} and {v > t}; foreground is v > t. Ties take the smallest t.
 * An empty or single-valued histogram returns that value (or 0). */
int threshold_otsu(const uint64_t hist[256]);

/* The same over a histogram of n bins (n >= 2): the bin t in 0..n-2
 * maximising the between-class variance of {bin <= t} and {bin > t}. */
int threshold_otsu_bins(const uint64_t *hist, int n);

#endif
