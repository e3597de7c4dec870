/*
 * stain.h - stain vectors estimated from a slide's own pixels (Macenko et
 * al., "A method for normalizing histology slides for quantitative
 * analysis", ISBI 2009), as QuPath's "Estimate stain vectors" does, so that
 * colour deconvolution follows the slide's scanner and staining instead of
 * the textbook Ruifrok–Johnston vectors.
 *
 * Method: optical densities of the sampled pixels; pixels whose OD vector
 * is shorter than STAIN_MIN_OD (glass, unstained) or longer than
 * STAIN_MAX_OD (black dirt, folds) are left out; the plane of the two
 * largest eigenvectors of the OD scatter matrix (uncentred, as Macenko's
 * SVD) holds both stains; the angle of each pixel in that plane is taken,
 * and the vectors at its 1st and 99th percentiles are the two stains (robust
 * extremes rather than the extremes themselves). The one with the larger red
 * OD share is hematoxylin (it absorbs red; eosin and DAB absorb green and
 * blue). With kind "auto", the second stain is DAB when it absorbs blue
 * more than green (brown), else eosin (pink).
 *
 * An estimate is refused (the caller then uses Ruifrok–Johnston) when fewer
 * than STAIN_MIN_PIXELS pixels are stained, when the two vectors are less
 * than STAIN_MIN_SEPARATION_DEG apart (one stain only: nothing to
 * separate), or when hematoxylin ends up more than STAIN_MAX_DEVIATION_DEG
 * from the reference (not a brightfield H stain at all); the reason is
 * reported.
 */
#ifndef TESSERA_IMAGE_STAIN_H
#define TESSERA_IMAGE_STAIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "image/color.h"

#define STAIN_MIN_OD 0.15
#define STAIN_MAX_OD 2.2
#define STAIN_MIN_PIXELS 500
#define STAIN_MIN_SEPARATION_DEG 8.0
#define STAIN_MAX_DEVIATION_DEG 35.0
#define STAIN_PERCENTILE 1.0 /* percent cut at each end of the angle range */

typedef enum stain_kind { STAIN_AUTO = 0, STAIN_HE = 1, STAIN_HDAB = 2 } stain_kind;

/* Running sums of one slide's stained pixels, fed window by window so no
 * window has to be kept: the scatter matrix, and a sample of OD vectors
 * (kept in a bounded reservoir) for the angle percentiles. */
typedef struct stain_sampler {
    double scatter[3][3];
    float *od;      /* cap x 3 */
    size_t n, cap;  /* kept, capacity */
    uint64_t seen;  /* stained pixels offered */
    uint64_t rng;
} stain_sampler;

/* The outcome, for summary.json. */
typedef struct stain_estimate {
    bool estimated;        /* false: the fallback vectors are in use */
    stain_kind kind;       /* STAIN_HE or STAIN_HDAB, never AUTO */
    double v1[3], v2[3];   /* unit OD vectors: hematoxylin, eosin or DAB */
    uint64_t pixels;       /* stained pixels the estimate used */
    char reason[160];      /* why the fallback, or "" */
} stain_estimate;

/* cap: how many OD vectors to keep for the percentiles (e.g. 200000). */
void stain_sampler_init(stain_sampler *s, size_t cap);
void stain_sampler_free(stain_sampler *s);

/* Offers n pixels (0xAARRGGBB); where mask is not NULL only pixels with
 * mask[i] != 0 count. */
void stain_sampler_add(stain_sampler *s, const uint32_t *argb, const uint8_t *mask, size_t n);

/* Estimates the stains of `kind` from what was sampled. Always fills *out
 * and *stains: with the estimate, or with Ruifrok–Johnston vectors of the
 * kind (H&E when kind is AUTO and nothing could be told) and the reason. */
void stain_estimate_from(const stain_sampler *s, stain_kind kind, stain_estimate *out,
                         color_stains *stains);

/* Eigenvalues (descending) and unit eigenvectors (columns of vec) of the
 * symmetric 3x3 matrix a, by Jacobi rotations. Exposed for its test. */
void stain_eigen_sym3(const double a[3][3], double val[3], double vec[3][3]);

/* The angle between two vectors in degrees (0..180). */
double stain_angle_deg(const double a[3], const double b[3]);

#endif
