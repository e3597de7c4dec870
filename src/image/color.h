/*
 * color.h - colour deconvolution and simple colour measures for brightfield
 * slides (DESIGN §9: Ruifrok & Johnston, "Quantification of histochemical
 * staining by color deconvolution", 2001).
 *
 * Pixels are OpenSlide's: uint32_t 0xAARRGGBB, premultiplied alpha. A pixel
 * with alpha 0 (outside the scanned area) is taken as white (255,255,255),
 * i.e. background; other alphas are treated as opaque (OpenSlide only returns
 * 0 or 255 for the formats tessera reads).
 *
 * Optical density per channel: OD = -log10(max(I, 1) / 255), so a white
 * pixel has OD 0 and OD is bounded by log10(255) ~ 2.41.
 */
#ifndef TESSERA_IMAGE_COLOR_H
#define TESSERA_IMAGE_COLOR_H

#include <stddef.h>
#include <stdint.h>

typedef struct color_stains {
    float vec[3][3]; /* rows: stain 1, stain 2, residual; each a unit OD vector (r,g,b) */
    float inv[3][3]; /* inverse of vec: concentrations = od (row) x inv */
} color_stains;

/* Hematoxylin (0.65, 0.70, 0.29) and eosin (0.07, 0.99, 0.11), each
 * normalised to unit length; the third vector is their normalised cross
 * product. Fills the inverse. */
void color_stains_he(color_stains *s);

/* Hematoxylin (0.65, 0.70, 0.29) and DAB (0.27, 0.57, 0.78), normalised,
 * residual their normalised cross product (DESIGN §9). */
void color_stains_hdab(color_stains *s);

/* Stains from two OD vectors (any positive length; normalised here) and
 * an optional third (NULL: the normalised cross product of the two). The
 * vectors must be independent: TS_ERR (s unchanged) when the matrix is
 * nearly singular or a vector is zero or has a negative component. */
int color_stains_from(color_stains *s, const double v1[3], const double v2[3],
                      const double v3[3]);

/* 255-entry table of OD per 8-bit intensity (OD = -log10(max(I,1)/255)),
 * for callers that convert many pixels themselves. */
void color_od_lut(float table[256]);

/* Stain concentrations of n pixels: out1[i] = stain 1 (hematoxylin),
 * out2[i] = stain 2 (eosin); either may be NULL. Values may be slightly
 * negative for pixels off the stain plane; they are not clamped. */
void color_deconvolve(const color_stains *s, const uint32_t *argb, size_t n, float *out1,
                      float *out2);

/* Stain 2 of one pixel, the very value color_deconvolve gives as out2
 * (od: color_od_lut's table), for callers that need it at a few pixels. */
float color_stain2(const color_stains *s, const float od[256], uint32_t argb);

/* t[c][i] = od[i] * s->inv[c][k]: the products stain k + 1 sums per
 * pixel (k 0: hematoxylin, 1: eosin), rounded to float as the sums'
 * terms are, so that color_stain_at gives color_deconvolve's values. */
void color_stain_tables(const color_stains *s, const float od[256], int k, float t[3][256]);

/* Stain k + 1 of one pixel from color_stain_tables' t: the very value
 * color_deconvolve gives (the same three products, summed in the same
 * order; alpha-0 pixels white), inline, for per-pixel loops that cannot
 * afford a call (one spills every register the loop keeps). */
static inline float color_stain_at(const float t[3][256], uint32_t argb) {
    unsigned r = 255, g = 255, b = 255;
    if ((argb >> 24) != 0) {
        r = (argb >> 16) & 0xffu;
        g = (argb >> 8) & 0xffu;
        b = argb & 0xffu;
    }
    return t[0][r] + t[1][g] + t[2][b];
}

/* HSV saturation (max - min) * 255 / max, 0 for black and for alpha-0 pixels. */
void color_saturation(const uint32_t *argb, size_t n, uint8_t *out);

/* Luma (0.299 R + 0.587 G + 0.114 B), rounded; alpha-0 pixels are 255. */
void color_grey(const uint32_t *argb, size_t n, uint8_t *out);

/* Length of each pixel's optical-density vector, sqrt(ODr² + ODg² +
 * ODb²): how much light any stain of any colour took away (alpha-0 pixels
 * are white: 0). */
void color_od_length(const uint32_t *argb, size_t n, float *out);

/* Mean optical density of the three channels of one pixel (as above). */
float color_od_mean(uint32_t argb);

#endif
