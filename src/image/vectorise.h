/*
 * vectorise.h - IMAGE_VECTORISED: a pixel loop compiled three times, for
 * AVX-512, AVX2 and the baseline x86-64 (SSE2), the one to run chosen once
 * when the program loads (GCC's target_clones, an ifunc). The vectorised
 * float loops of the kernels then do 16 or 8 pixels per instruction where
 * the CPU allows instead of four, in one binary that still runs anywhere.
 *
 * The results are bit-identical either way: the wider units without FMA
 * (not asked for, and -std=c17 keeps GCC from contracting a * b + c) do the
 * same IEEE operations on each lane in the same order, and GCC does not
 * reorder float reductions. Other compilers and the sanitizer builds get
 * the plain function.
 */
#ifndef TESSERA_IMAGE_VECTORISE_H
#define TESSERA_IMAGE_VECTORISE_H

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && \
    !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_UNDEFINED__)
#define IMAGE_VECTORISED __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define IMAGE_VECTORISED
#endif

/* IMAGE_SCALAR: a loop of table lookups kept scalar. Vectorised, GCC
 * extracts each lane's index and inserts each loaded value lane by lane
 * (vpextrd / vinsertps, no gathers), slower than plain loads: colour
 * deconvolution's three lookups a pixel took 1.34-1.47 ms a 1190 x 1190
 * window vectorised (SSE2 or AVX-512), 0.87-0.95 ms scalar. GCC only; the
 * same operations either way, so the same floats. */
#if defined(__GNUC__) && !defined(__clang__)
#define IMAGE_SCALAR __attribute__((optimize("no-tree-vectorize")))
#else
#define IMAGE_SCALAR
#endif

#endif
