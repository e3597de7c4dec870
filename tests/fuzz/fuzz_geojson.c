/*
 * fuzz_geojson.c - the GeoJSON reader of `tessera evaluate`
 * (src/image/evaluate_load.c) on arbitrary files (both geometries: the
 * nucleus and the outline), then the scores computed on what it read
 * (evaluate.c): a loaded set is scored against itself when it is small
 * enough to rasterise quickly (the cost of a score is proportional to the
 * pixels covered, as evaluate.h says). fuzz_geojson_write covers the writer.
 *
 * Oracles beyond the sanitizers: a refusal has a message; a set scored
 * against itself has TP + FN = truths, TP + FP = predictions, F1, PQ, AJI
 * and Dice within [0, 1], and Dice 1 when anything is covered.
 */
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_lib.h"
#include "image/evaluate.h"

#define EVAL_MAX_OBJECTS 256
#define EVAL_MAX_EXTENT 2048.0 /* pixels: larger sets are loaded but not scored */

static char in_path[512];

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    fuzz_quiet_logs();
    snprintf(in_path, sizeof(in_path), "%s/in.geojson", fuzz_dir());
    return 0;
}

static bool small_enough(const eval_polys *p) {
    if (p->n > EVAL_MAX_OBJECTS) return false;
    for (size_t i = 0; i < p->n; i++) {
        const eval_bbox *b = &p->bbox[i];
        if (b->x0 <= b->x1 && (b->x1 - b->x0 > EVAL_MAX_EXTENT || b->y1 - b->y0 > EVAL_MAX_EXTENT ||
                               fabs(b->x0) > 1e6 || fabs(b->y0) > 1e6))
            return false;
    }
    return true;
}

static bool unit(double v) {
    return v >= 0 && v <= 1;
}

/* Scores a set against itself; the invariants of evaluate.h. */
static void score_self(const eval_polys *p) {
    if (!small_enough(p)) return;
    eval_instance_result r;
    char err[TS_ERRLEN];
    FUZZ_CHECK(eval_instances(p, p, 0.5, &r, err, sizeof(err)) == TS_OK, "%s", err);
    FUZZ_CHECK(r.tp + r.fn == r.n_truth && r.tp + r.fp == r.n_pred, "tp %zu fp %zu fn %zu of %zu",
               r.tp, r.fp, r.fn, r.n_truth);
    FUZZ_CHECK(unit(r.f1) && unit(r.pq) && unit(r.aji) && unit(r.precision) && unit(r.recall),
               "score outside [0, 1]: f1 %g pq %g aji %g", r.f1, r.pq, r.aji);
    eval_region_result d;
    FUZZ_CHECK(eval_dice(p, p, 64, &d, err, sizeof(err)) == TS_OK, "%s", err);
    FUZZ_CHECK(unit(d.dice) && unit(d.jaccard), "dice %g jaccard %g", d.dice, d.jaccard);
    FUZZ_CHECK(d.truth_area == 0 || d.dice == 1, "dice of a set with itself: %g", d.dice);
}

static void load_and_score(const uint8_t *data, size_t size) {
    fuzz_write_file(in_path, data, size);
    for (int which = EVAL_GEOM_NUCLEUS; which <= EVAL_GEOM_OUTLINE; which++) {
        eval_polys p;
        char err[TS_ERRLEN];
        if (eval_load_geojson(in_path, (eval_geometry)which, &p, err, sizeof(err)) == TS_OK)
            score_self(&p);
        else
            FUZZ_CHECK(err[0] != '\0', "refused without a message");
        eval_polys_free(&p);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    load_and_score(data, size);
    return 0;
}
