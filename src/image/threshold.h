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

/* The background level of a histogram whose largest population is
 * background with a minority of brighter (larger) foreground: *mode is the
 * bin of the highest count after a 1-2-3-2-1 weighted mean (the background's
 * level), *spread its left half-width: the distance in bins from the mode
 * down to where the running count reaches 31.73% of the count up to the
 * mode (one standard deviation for a Gaussian), taken on the side that
 * the foreground's tail does not reach. At least 1 bin; an empty
 * histogram gives mode 0, spread 1. */
void threshold_background(const uint64_t *hist, int n, int *mode, double *spread);

#define THRESHOLD_OD_BINS 600     /* histogram of |OD| from 0 to THRESHOLD_OD_RANGE */
#define THRESHOLD_OD_RANGE 1.5
#define THRESHOLD_GLASS_PERCENTILE 2.0 /* the palest pixels: glass, if the image shows any */
#define THRESHOLD_GLASS_MAX_OD 0.085   /* glass is paler than this (|OD| of grey ~226) */
#define THRESHOLD_MIN_ABOVE_GLASS 0.015 /* noise and dust above glass are not tissue */
#define THRESHOLD_MAX_ABOVE_GLASS 0.10  /* this much darker than glass is stain, always */

/* What threshold_glass_od chose (for the job's summary.json). */
typedef struct threshold_glass {
    double threshold;  /* |OD| above which a pixel is tissue */
    double otsu;       /* Otsu's |OD| threshold */
    double glass_od;   /* |OD| at THRESHOLD_GLASS_PERCENTILE */
    double tissue_od;  /* median |OD| of what is clearly darker than glass */
    int glass_found;   /* the image shows glass (else all of it may be tissue) */
} threshold_glass;

/* Tissue against glass on the length of the optical-density vector of n
 * pixels (od). Glass is the palest THRESHOLD_GLASS_PERCENTILE; tissue is
 * what is clearly darker (THRESHOLD_MIN_ABOVE_GLASS). The threshold is the
 * smaller of Otsu's and the level half-way from glass to the median
 * tissue, so the outline sits at half the contrast whether the stain is
 * strong (H&E: Otsu) or faint (IHC counterstain: half-way), never closer
 * to glass than the minimum and never further than the maximum (a
 * pixel that much darker than glass is stained, however dark the rest). Otsu alone splits an image without
 * glass in two and puts pale tissue with the glass. When even the palest
 * pixels are darker than THRESHOLD_GLASS_MAX_OD there is no glass: the
 * threshold is half their |OD|, so all of the image is tissue. */
void threshold_glass_od(const float *od, size_t n, threshold_glass *out);

#endif
