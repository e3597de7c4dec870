/*
 * evaluate.h - scoring a segmentation against ground truth (`tessera
 * evaluate`): nuclei/cells as instances (F1 at an IoU threshold, panoptic
 * quality, aggregated Jaccard index) and tissue as a region (Dice).
 *
 * Input. GeoJSON as QuPath writes it (DESIGN §5, §9): a FeatureCollection
 * (a bare array of Features, or one Feature, is also accepted), geometries
 * "Polygon" or "MultiPolygon" in level-0 pixel coordinates. Rings may be
 * closed (last vertex == first) or not; a Polygon's first ring is its
 * outline and the others are its holes. properties.objectType is not
 * consulted: every feature of the file is one object. The whole file is
 * parsed with jansson (for a moment about 12 times the file size in
 * memory: ~950 MB for an 80 MB file of 100,000 cells, ~2.5 s), then kept
 * as compact arrays (16 bytes per vertex) and the JSON is freed.
 *
 * Definitions (all of them exact for the pixel-centre rasterisation below).
 *
 *   Pixel. Pixel (x, y), x and y integers, is the unit square
 *   [x, x+1] x [y, y+1]; its centre is (x + 0.5, y + 0.5). An object
 *   covers a pixel when the centre lies inside it by the even-odd rule over
 *   ALL the object's rings (outlines and holes of every part of a
 *   MultiPolygon). Ties are half-open, like [x0, x1) x [y0, y1): a centre
 *   exactly on the boundary counts when the interior lies towards larger x
 *   (on a vertical edge) or larger y (on a horizontal one). |A| is the
 *   number of pixels A covers. (Parts of a MultiPolygon are assumed not to
 *   overlap, as GeoJSON requires; overlapping parts would cancel.)
 *
 *   Instances (eval_instances). IoU(G, P) = |G ∩ P| / |G ∪ P|. A truth G
 *   and a prediction P match when IoU(G, P) > t (t = 0.5 by default). For
 *   t >= 0.5, and objects that do not overlap others of their own set (a
 *   label image, a tessera or QuPath segmentation), each object has at most
 *   one partner above t, so the matching is unique. In general (t < 0.5, or
 *   overlapping objects) the pairs above t are taken greedily by decreasing
 *   IoU (ties: lower truth index, then lower prediction index), one-to-one;
 *   when no object has two partners above t this takes every such pair.
 *     TP = matched pairs, FP = unmatched predictions, FN = unmatched truths;
 *     precision = TP/(TP+FP), recall = TP/(TP+FN), F1 = 2TP/(2TP+FP+FN);
 *     SQ = (sum of matched IoU)/TP (the mean IoU of the matches),
 *     RQ = TP/(TP + FP/2 + FN/2) (= F1), PQ = SQ * RQ
 *        = (sum of matched IoU)/(TP + FP/2 + FN/2)   (Kirillov et al. 2019);
 *     AJI (Kumar et al. 2017): C = U = 0; for each truth G, the prediction
 *        P* with the highest IoU among those intersecting G (ties: lower
 *        index) adds |G ∩ P*| to C and |G ∪ P*| to U and is marked used; a
 *        truth that intersects no prediction adds |G| to U; then every
 *        prediction never marked used adds |P| to U; AJI = C / U. (A
 *        prediction chosen by several truths is counted in each of their
 *        unions, as in Kumar's definition.)
 *   Objects that cover no pixel centre (e.g. smaller than a pixel) are kept:
 *   they can never match, so they count as FN or FP, and they are reported
 *   (truth_empty, pred_empty).
 *
 *   Regions (eval_dice). Each set is the union of its features. Both are
 *   sampled on one grid over the joint bounding box of the two sets: cells
 *   of k x k level-0 pixels, k the smallest integer >= 1 such that the
 *   larger side of the box spans at most max_cells cells (default 8192);
 *   a cell is covered when its centre is inside (k = 1: exactly the pixels
 *   above). Areas are in level-0 pixels (covered cells x k^2).
 *     Dice = 2|A ∩ B| / (|A| + |B|),  Jaccard = |A ∩ B| / |A ∪ B|.
 *
 *   A ratio whose denominator is 0 (e.g. precision with no predictions, or
 *   any score when both sets are empty) is reported as 0.
 *
 * Cost. Candidate pairs come from a uniform grid over the predictions'
 * bounding boxes (cell about the mean object size), so work grows with the
 * number of overlapping pairs, not N x M: 100,000 x 100,000 nuclei take
 * about 0.4 s once loaded. The intersection of a pair is counted from the two
 * objects' scanline spans (rasterised in run-length form in their rows).
 * Dice uses one byte per grid cell (at most max_cells^2 bytes, 64 MiB at
 * the default).
 *
 * Coordinates must be finite and within ±EVAL_MAX_COORD.
 */
#ifndef TESSERA_IMAGE_EVALUATE_H
#define TESSERA_IMAGE_EVALUATE_H

#include <stddef.h>
#include <stdint.h>

#define EVAL_MAX_COORD 1.0e7       /* |x|, |y| in level-0 pixels */
#define EVAL_DEFAULT_MAX_CELLS 8192 /* Dice grid: cells along the longer side */

/* An axis-aligned box; empty when x0 > x1 (an object without vertices). */
typedef struct eval_bbox {
    double x0, y0, x1, y1;
} eval_bbox;

/* A set of objects in compact arrays. Object i owns rings
 * obj_ring[i] .. obj_ring[i+1]-1; ring r owns vertices
 * ring_pt[r] .. ring_pt[r+1]-1, stored as xy[2v], xy[2v+1], without the
 * closing repeat of the first vertex. Rings with fewer than 3 vertices are
 * dropped when added (they enclose nothing). */
typedef struct eval_polys {
    size_t n, n_rings, n_points;
    size_t *obj_ring; /* n + 1 entries */
    size_t *ring_pt;  /* n_rings + 1 entries */
    double *xy;       /* 2 * n_points */
    eval_bbox *bbox;  /* n: each object's vertex bounding box */
    size_t cap_obj, cap_rings, cap_points; /* allocated (cap_points in doubles) */
} eval_polys;

/* Which outline of a feature is the object. */
typedef enum eval_geometry {
    EVAL_GEOM_NUCLEUS = 0, /* "nucleusGeometry" when present, else "geometry" */
    EVAL_GEOM_OUTLINE = 1, /* always "geometry" (whole cells, tissue) */
} eval_geometry;

typedef struct eval_instance_result {
    double iou_threshold;
    size_t n_truth, n_pred;
    size_t tp, fp, fn;
    size_t truth_empty, pred_empty; /* objects covering no pixel centre */
    double precision, recall, f1;
    double sq, rq, pq; /* sq is also the mean IoU of the matches */
    double aji;
    double aji_c, aji_u;        /* AJI's numerator and denominator, pixels */
    double truth_area, pred_area; /* sum of |G|, of |P|, pixels */
    size_t pairs;               /* candidate pairs whose overlap was counted */
    size_t touching, touching_tp; /* truths touching another (eval_touching), and matched */
    double recall_touching;     /* touching_tp / touching (0 when none touch) */
} eval_instance_result;

typedef struct eval_region_result {
    size_t n_truth, n_pred;       /* features */
    double truth_area, pred_area; /* level-0 pixels */
    double inter_area, union_area;
    double dice, jaccard;
    int cell;                   /* k: level-0 pixels per grid cell side */
    int64_t grid_w, grid_h;     /* grid size in cells */
    double origin_x, origin_y;  /* level-0 position of cell (0, 0)'s corner */
} eval_region_result;

/* An empty set (no allocation yet). */
void eval_polys_init(eval_polys *p);

/* Frees the arrays and empties p (safe on an initialised or zeroed set). */
void eval_polys_free(eval_polys *p);

/* Appends one object made of n_rings rings: ring k has ring_len[k]
 * vertices taken in order from xy (pairs x, y). A ring may be closed or
 * not; rings of fewer than 3 vertices (after dropping the closing repeat)
 * are dropped; n_rings
 * may be 0 (an empty object). TS_ERR if a coordinate is not finite or
 * beyond EVAL_MAX_COORD (p is then unchanged). */
int eval_polys_add(eval_polys *p, const double *xy, const size_t *ring_len, size_t n_rings,
                   char *err, size_t errlen);

/* Loads every feature of a GeoJSON file into *out (initialised here; the
 * caller frees it, also after TS_ERR). TS_ERR with a message naming the
 * path and the reason: cannot open, invalid JSON (line and column), not
 * GeoJSON, "features[N]: no geometry", unsupported geometry type, bad
 * coordinates. */
int eval_load_geojson(const char *path, eval_geometry which, eval_polys *out, char *err,
                      size_t errlen);

/* Pixel count |A| of object i. */
int64_t eval_object_area(const eval_polys *p, size_t i);

#define EVAL_TOUCH_DIST 1.5 /* pixels: truths this close touch */

/* Marks in touch[i] (p->n entries) whether object i touches another of
 * the set: a vertex of one inside the other or within dist of one of its
 * edges. Returns how many touch. Objects touching others are where
 * splitting fails; eval_instances reports their recall separately. */
size_t eval_touching(const eval_polys *p, double dist, unsigned char *touch);

/* Scores pred against truth as instances at IoU threshold t (0 < t < 1).
 * Fills *r. TS_ERR only for a bad threshold. */
int eval_instances(const eval_polys *truth, const eval_polys *pred, double t,
                   eval_instance_result *r, char *err, size_t errlen);

/* Dice of two region sets; max_cells 0 = EVAL_DEFAULT_MAX_CELLS (otherwise
 * 16 .. 65536). Fills *r. TS_ERR for a bad max_cells. */
int eval_dice(const eval_polys *truth, const eval_polys *pred, int max_cells,
              eval_region_result *r, char *err, size_t errlen);

#endif
