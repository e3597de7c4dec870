/*
 * evaluate.c - `tessera evaluate cells|tissue`: scores a segmentation
 * against ground truth (image/evaluate.h) and prints a summary for people
 * or one JSON object (--json) for scripts.
 *
 * The options are files and numbers, not configuration keys, so a small
 * argv loop reads them instead of cli_parse (which maps flags onto
 * TESSERA_* settings).
 */
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "image/evaluate.h"
#include "util/util.h"

static const char evaluate_usage[] =
    "usage: tessera evaluate cells  --truth GT.geojson --pred cells.geojson [--iou T]\n"
    "                               [--use-geometry] [--json]\n"
    "       tessera evaluate tissue --truth GT.geojson --pred tissue.geojson [--max-cells N]\n"
    "                               [--json]\n"
    "\n"
    "Scores a segmentation against ground truth. Both files are GeoJSON in level-0\n"
    "pixels as QuPath writes them (e.g. OUT.nuclei.geojson and OUT.tissue.geojson from\n"
    "tessera demo-slide; cells.geojson and tissue.geojson from tessera's jobs).\n"
    "A pixel belongs to a polygon when its centre is inside (holes excluded).\n"
    "\n"
    "cells   every feature is one object: its nucleusGeometry when present, else its\n"
    "        geometry. A prediction matches a truth when their IoU > T. Prints the\n"
    "        counts (TP, FP, FN), precision, recall, F1, SQ, RQ, panoptic quality and\n"
    "        the aggregated Jaccard index (AJI, Kumar et al. 2017).\n"
    "tissue  each file is the union of its polygons; prints Dice, Jaccard and the\n"
    "        areas, counted on a grid of at most N cells along the longer side.\n"
    "\n"
    "options:\n"
    "  --truth FILE      the ground truth\n"
    "  --pred FILE       the prediction\n"
    "  --iou T           cells: match threshold, 0 < T < 1 (default 0.5)\n"
    "  --use-geometry    cells: compare each feature's \"geometry\" (the cell outline)\n"
    "                    even where a nucleusGeometry exists\n"
    "  --max-cells N     tissue: grid size, 16..65536 (default 8192)\n"
    "  --json            print one JSON object instead of the summary\n"
    "\n"
    "Exit status: 0 scored; 2 bad usage or unreadable input (the file and reason named).\n";

typedef struct eval_opts {
    const char *kind, *truth, *pred, *iou_text, *cells_text;
    bool json, use_geometry;
} eval_opts;

/* If argv[*i] is option name ("--x V" or "--x=V"), stores its value and
 * moves *i onto the last entry used. 1 taken, 0 another option, -1 the
 * value is missing (printed). */
static int opt_value(int argc, char **argv, int *i, const char *name, const char **out) {
    size_t n = strlen(name);
    const char *a = argv[*i];
    if (strncmp(a, name, n) != 0 || (a[n] != '\0' && a[n] != '=')) return 0;
    if (a[n] == '=') {
        *out = a + n + 1;
        return 1;
    }
    if (*i + 1 >= argc) {
        fprintf(stderr, "tessera evaluate: %s needs a value\n", name);
        return -1;
    }
    *out = argv[++*i];
    return 1;
}

/* One argument into o; CLI_USAGE (printed) when it is not understood. */
static int parse_one(int argc, char **argv, int *i, eval_opts *o) {
    static const char *const names[] = {"--truth", "--pred", "--iou", "--max-cells"};
    const char **slots[] = {&o->truth, &o->pred, &o->iou_text, &o->cells_text};
    const char *a = argv[*i];
    for (size_t k = 0; k < sizeof(names) / sizeof(names[0]); k++) {
        int rc = opt_value(argc, argv, i, names[k], slots[k]);
        if (rc != 0) return rc == 1 ? CLI_OK : CLI_USAGE;
    }
    if (strcmp(a, "--json") == 0) {
        o->json = true;
    } else if (strcmp(a, "--use-geometry") == 0) {
        o->use_geometry = true;
    } else if (a[0] != '-' && o->kind == NULL) {
        o->kind = a;
    } else {
        fprintf(stderr, "tessera evaluate: unexpected argument %s (see tessera evaluate --help)\n", a);
        return CLI_USAGE;
    }
    return CLI_OK;
}

/* The options that belong to the other kind, and the required ones. */
static int check_opts(const eval_opts *o) {
    const char *bad = NULL;
    if (o->kind == NULL || (strcmp(o->kind, "cells") != 0 && strcmp(o->kind, "tissue") != 0)) {
        fprintf(stderr, "tessera evaluate: say what to score: cells or tissue (see --help)\n");
        return CLI_USAGE;
    }
    if (o->truth == NULL || o->pred == NULL) {
        fprintf(stderr, "tessera evaluate %s: --truth FILE and --pred FILE are required\n", o->kind);
        return CLI_USAGE;
    }
    bool cells = strcmp(o->kind, "cells") == 0;
    if (cells && o->cells_text) bad = "--max-cells";
    if (!cells && o->iou_text) bad = "--iou";
    if (!cells && o->use_geometry) bad = "--use-geometry";
    if (bad) {
        fprintf(stderr, "tessera evaluate %s: %s applies to %s only\n", o->kind, bad,
                cells ? "tissue" : "cells");
        return CLI_USAGE;
    }
    return CLI_OK;
}

/* Loads both files; the message names the file that failed. */
static int load_pair(const eval_opts *o, eval_geometry which, eval_polys *t, eval_polys *p) {
    char err[TS_ERRLEN];
    eval_polys_init(p);
    if (eval_load_geojson(o->truth, which, t, err, sizeof(err)) != TS_OK ||
        eval_load_geojson(o->pred, which, p, err, sizeof(err)) != TS_OK) {
        fprintf(stderr, "tessera evaluate %s: %s\n", o->kind, err);
        return CLI_USAGE;
    }
    return CLI_OK;
}

/* Prints j indented (10 significant digits for reals) and frees it. */
static void print_json(json_t *j) {
    json_dumpf(j, stdout, JSON_INDENT(2) | JSON_REAL_PRECISION(10));
    putchar('\n');
    json_decref(j);
}

/* The instance scores as one JSON object. */
static void cells_json(const eval_opts *o, const eval_instance_result *r) {
    json_t *j = json_object();
    json_object_set_new(j, "kind", json_string("cells"));
    json_object_set_new(j, "truth", json_string(o->truth));
    json_object_set_new(j, "pred", json_string(o->pred));
    json_object_set_new(j, "geometry", json_string(o->use_geometry ? "geometry" : "nucleus"));
    json_object_set_new(j, "iou_threshold", json_real(r->iou_threshold));
    json_object_set_new(j, "truth_count", json_integer((json_int_t)r->n_truth));
    json_object_set_new(j, "pred_count", json_integer((json_int_t)r->n_pred));
    json_object_set_new(j, "tp", json_integer((json_int_t)r->tp));
    json_object_set_new(j, "fp", json_integer((json_int_t)r->fp));
    json_object_set_new(j, "fn", json_integer((json_int_t)r->fn));
    json_object_set_new(j, "precision", json_real(r->precision));
    json_object_set_new(j, "recall", json_real(r->recall));
    json_object_set_new(j, "touching", json_integer((json_int_t)r->touching));
    json_object_set_new(j, "touching_tp", json_integer((json_int_t)r->touching_tp));
    json_object_set_new(j, "recall_touching", json_real(r->recall_touching));
    json_object_set_new(j, "f1", json_real(r->f1));
    json_object_set_new(j, "mean_matched_iou", json_real(r->sq));
    json_object_set_new(j, "sq", json_real(r->sq));
    json_object_set_new(j, "rq", json_real(r->rq));
    json_object_set_new(j, "pq", json_real(r->pq));
    json_object_set_new(j, "aji", json_real(r->aji));
    json_object_set_new(j, "aji_intersection_px", json_real(r->aji_c));
    json_object_set_new(j, "aji_union_px", json_real(r->aji_u));
    json_object_set_new(j, "truth_area_px", json_real(r->truth_area));
    json_object_set_new(j, "pred_area_px", json_real(r->pred_area));
    json_object_set_new(j, "truth_empty", json_integer((json_int_t)r->truth_empty));
    json_object_set_new(j, "pred_empty", json_integer((json_int_t)r->pred_empty));
    json_object_set_new(j, "pairs_tested", json_integer((json_int_t)r->pairs));
    print_json(j);
}

/* The instance scores as a few readable lines. */
static void cells_text(const eval_opts *o, const eval_instance_result *r) {
    printf("cells: %zu truth objects (%s), %zu predicted (%s)\n", r->n_truth, o->truth, r->n_pred,
           o->pred);
    printf("compared: %s; a match is IoU > %g\n",
           o->use_geometry ? "geometry (cell outlines)" : "nucleusGeometry where present, else geometry",
           r->iou_threshold);
    printf("  TP %zu  FP %zu  FN %zu\n", r->tp, r->fp, r->fn);
    printf("  precision %.4f  recall %.4f  F1 %.4f\n", r->precision, r->recall, r->f1);
    printf("  touching truths %zu (within %.1f px of another), matched %zu: recall %.4f\n",
           r->touching, EVAL_TOUCH_DIST, r->touching_tp, r->recall_touching);
    printf("  SQ (mean IoU of matches) %.4f  RQ %.4f  PQ %.4f\n", r->sq, r->rq, r->pq);
    printf("  AJI %.4f\n", r->aji);
    printf("  area: truth %.0f px, predicted %.0f px\n", r->truth_area, r->pred_area);
    if (r->truth_empty || r->pred_empty)
        printf("  objects covering no pixel centre: truth %zu, predicted %zu\n", r->truth_empty,
               r->pred_empty);
}

/* `evaluate cells`: threshold, both files, score, print. CLI_OK or
 * CLI_USAGE (bad threshold or input, message printed). */
static int run_cells(const eval_opts *o) {
    double t = 0.5;
    char err[TS_ERRLEN];
    eval_polys truth, pred;
    eval_instance_result r;
    int rc = CLI_USAGE;
    eval_polys_init(&truth), eval_polys_init(&pred);
    if (o->iou_text && (ts_parse_double(o->iou_text, 0, 1, &t) != TS_OK || t <= 0 || t >= 1)) {
        fprintf(stderr, "tessera evaluate cells: --iou must be a number greater than 0 and less "
                        "than 1, not %s\n", o->iou_text);
        goto cleanup;
    }
    if (load_pair(o, o->use_geometry ? EVAL_GEOM_OUTLINE : EVAL_GEOM_NUCLEUS, &truth, &pred) != CLI_OK)
        goto cleanup;
    if (eval_instances(&truth, &pred, t, &r, err, sizeof(err)) != TS_OK) {
        fprintf(stderr, "tessera evaluate cells: %s\n", err);
        goto cleanup;
    }
    if (o->json)
        cells_json(o, &r);
    else
        cells_text(o, &r);
    rc = CLI_OK;
cleanup:
    eval_polys_free(&truth), eval_polys_free(&pred);
    return rc;
}

/* The region scores as one JSON object. */
static void tissue_json(const eval_opts *o, const eval_region_result *r) {
    json_t *j = json_object();
    json_object_set_new(j, "kind", json_string("tissue"));
    json_object_set_new(j, "truth", json_string(o->truth));
    json_object_set_new(j, "pred", json_string(o->pred));
    json_object_set_new(j, "truth_count", json_integer((json_int_t)r->n_truth));
    json_object_set_new(j, "pred_count", json_integer((json_int_t)r->n_pred));
    json_object_set_new(j, "dice", json_real(r->dice));
    json_object_set_new(j, "jaccard", json_real(r->jaccard));
    json_object_set_new(j, "truth_area_px", json_real(r->truth_area));
    json_object_set_new(j, "pred_area_px", json_real(r->pred_area));
    json_object_set_new(j, "intersection_area_px", json_real(r->inter_area));
    json_object_set_new(j, "union_area_px", json_real(r->union_area));
    json_object_set_new(j, "cell_px", json_integer(r->cell));
    json_object_set_new(j, "grid_width", json_integer((json_int_t)r->grid_w));
    json_object_set_new(j, "grid_height", json_integer((json_int_t)r->grid_h));
    print_json(j);
}

/* The region scores as a few readable lines. */
static void tissue_text(const eval_opts *o, const eval_region_result *r) {
    printf("tissue: %zu truth regions (%s), %zu predicted (%s)\n", r->n_truth, o->truth, r->n_pred,
           o->pred);
    printf("  Dice %.4f  Jaccard %.4f\n", r->dice, r->jaccard);
    printf("  area: truth %.0f px, predicted %.0f px, both %.0f px, either %.0f px\n",
           r->truth_area, r->pred_area, r->inter_area, r->union_area);
    printf("  counted on %lld x %lld cells of %d x %d px\n", (long long)r->grid_w,
           (long long)r->grid_h, r->cell, r->cell);
}

/* `evaluate tissue`: grid size, both files (outlines), Dice, print.
 * CLI_OK or CLI_USAGE (message printed). */
static int run_tissue(const eval_opts *o) {
    long cells = 0;
    char err[TS_ERRLEN];
    eval_polys truth, pred;
    eval_region_result r;
    int rc = CLI_USAGE;
    eval_polys_init(&truth), eval_polys_init(&pred);
    if (o->cells_text && ts_parse_int(o->cells_text, 16, 65536, &cells) != TS_OK) {
        fprintf(stderr, "tessera evaluate tissue: --max-cells must be an integer 16..65536, not %s\n",
                o->cells_text);
        goto cleanup;
    }
    if (load_pair(o, EVAL_GEOM_OUTLINE, &truth, &pred) != CLI_OK) goto cleanup;
    if (eval_dice(&truth, &pred, (int)cells, &r, err, sizeof(err)) != TS_OK) {
        fprintf(stderr, "tessera evaluate tissue: %s\n", err);
        goto cleanup;
    }
    if (o->json)
        tissue_json(o, &r);
    else
        tissue_text(o, &r);
    rc = CLI_OK;
cleanup:
    eval_polys_free(&truth), eval_polys_free(&pred);
    return rc;
}

/* See cli.h: --help anywhere wins; otherwise parse, check, run the kind. */
int cmd_evaluate(int argc, char **argv) {
    eval_opts o = {0};
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            fputs(evaluate_usage, stdout);
            return CLI_OK;
        }
    }
    for (int i = 0; i < argc; i++)
        if (parse_one(argc, argv, &i, &o) != CLI_OK) return CLI_USAGE;
    if (argc == 0) {
        fputs(evaluate_usage, stderr);
        return CLI_USAGE;
    }
    if (check_opts(&o) != CLI_OK) return CLI_USAGE;
    return strcmp(o.kind, "cells") == 0 ? run_cells(&o) : run_tissue(&o);
}
