"""Shared by the reference benchmarks under bench/refs/ (benchmark only,
never part of the product): writing a tiled pyramidal TIFF that OpenSlide
opens, reading tessera's GeoJSON as a label image, and scoring label
images (F1 at IoU 0.5, recall on touching nuclei, centroid agreement).

Uses Debian's python3-numpy, python3-scipy, python3-skimage, python3-tifffile.
"""
import json

import numpy as np
from scipy import ndimage as ndi
from skimage.draw import polygon as draw_polygon


def write_pyramid_tiff(path, rgb, mpp, tile=256):
    """rgb (H x W x 3 uint8) as a tiled, deflate-compressed pyramidal TIFF
    (each level a top-level IFD, halved until it fits one tile), with
    X/YResolution in pixels per centimetre, as OpenSlide's generic-tiff
    reader wants (DESIGN §9)."""
    import tifffile
    from skimage.transform import downscale_local_mean

    ppcm = 10000.0 / mpp
    level = rgb
    with tifffile.TiffWriter(path, bigtiff=False) as tw:
        while True:
            tw.write(level, tile=(tile, tile), compression="zlib", photometric="rgb",
                     resolution=(ppcm, ppcm), resolutionunit="CENTIMETER",
                     description="tessera bench reference image", metadata=None)
            mpp *= 2
            ppcm = 10000.0 / mpp
            if max(level.shape[:2]) <= tile:
                break
            h, w = level.shape[0] // 2 * 2, level.shape[1] // 2 * 2
            level = downscale_local_mean(level[:h, :w].astype(np.float32), (2, 2, 1))
            level = np.clip(level + 0.5, 0, 255).astype(np.uint8)


def geojson_labels(path, shape, key="nucleusGeometry"):
    """tessera's (or QuPath's) GeoJSON as a label image: feature i is label
    i+1; a pixel belongs to a polygon when its centre is inside (level-0
    pixel (x, y) is the square [x, x+1] x [y, y+1], centre (x+.5, y+.5))."""
    with open(path) as f:
        doc = json.load(f)
    feats = doc["features"] if isinstance(doc, dict) else doc
    lab = np.zeros(shape, np.int32)
    for i, feat in enumerate(feats):
        geom = feat.get(key) or feat["geometry"]
        rings = geom["coordinates"] if geom["type"] == "Polygon" else geom["coordinates"][0]
        ring = np.asarray(rings[0], float)
        rr, cc = draw_polygon(ring[:, 1] - 0.5, ring[:, 0] - 0.5, shape)
        lab[rr, cc] = i + 1
    return lab


def relabel(lab):
    """Consecutive labels 1..n."""
    ids = np.unique(lab[lab > 0])
    lut = np.zeros(int(lab.max()) + 1, np.int32)
    lut[ids] = np.arange(1, len(ids) + 1)
    return lut[lab]


def touching_labels(truth):
    """Truth labels that touch another (8-neighbours with a different
    non-zero label, or within one pixel: a 3x3 dilation meets another)."""
    touch = set()
    for dy, dx in ((0, 1), (1, 0), (1, 1), (1, -1), (0, 2), (2, 0)):
        a = truth[max(0, -dy):truth.shape[0] - max(0, dy), max(0, -dx):truth.shape[1] - max(0, dx)]
        b = truth[max(0, dy):, max(0, dx):][:a.shape[0], :a.shape[1]]
        m = (a > 0) & (b > 0) & (a != b)
        touch.update(np.unique(a[m]).tolist())
        touch.update(np.unique(b[m]).tolist())
    return touch


def match(truth, pred, iou=0.5):
    """One-to-one matches with IoU > iou (unique for iou >= 0.5 and
    non-overlapping instances). Returns a dict of counts and scores."""
    truth = relabel(truth)
    pred = relabel(pred)
    nt, npred = int(truth.max()), int(pred.max())
    both = (truth > 0) & (pred > 0)
    pairs = truth[both].astype(np.int64) * (npred + 1) + pred[both]
    ids, inter = np.unique(pairs, return_counts=True)
    t_ids, p_ids = ids // (npred + 1), ids % (npred + 1)
    area_t = np.bincount(truth.ravel(), minlength=nt + 1)
    area_p = np.bincount(pred.ravel(), minlength=npred + 1)
    ious = inter / (area_t[t_ids] + area_p[p_ids] - inter)
    ok = ious > iou
    matched_t = set(t_ids[ok].tolist())
    tp = int(ok.sum())
    fp, fn = npred - tp, nt - tp
    touch = touching_labels(truth)
    t_tp = len(touch & matched_t)
    return {
        "truth": nt, "pred": npred, "tp": tp, "fp": fp, "fn": fn,
        "precision": tp / max(1, tp + fp), "recall": tp / max(1, tp + fn),
        "f1": 2 * tp / max(1, 2 * tp + fp + fn),
        "touching": len(touch), "recall_touching": t_tp / max(1, len(touch)),
        "mean_iou": float(ious[ok].mean()) if tp else 0.0,
    }


def centroids(lab):
    lab = relabel(lab)
    n = int(lab.max())
    if n == 0:
        return np.zeros((0, 2))
    return np.array(ndi.center_of_mass(np.ones_like(lab), lab, np.arange(1, n + 1)))


def centroid_pairs(a, b, radius):
    """Points a and b (rows y, x) matched one-to-one, greedy by distance,
    within radius: the matched indices of a and of b."""
    from scipy.spatial import cKDTree

    used_a, used_b = set(), set()
    if len(a) == 0 or len(b) == 0:
        return used_a, used_b
    d, j = cKDTree(b).query(a, k=4, distance_upper_bound=radius)
    cand = sorted((d[i, k], i, j[i, k]) for i in range(len(a)) for k in range(4) if np.isfinite(d[i, k]))
    for _, i, k in cand:
        if i not in used_a and k not in used_b:
            used_a.add(i)
            used_b.add(k)
    return used_a, used_b


def centroid_agreement(ref, pred, radius):
    """Centroids matched one-to-one (greedy by distance) within radius
    pixels: F1 of the matching, with both counts."""
    a, b = centroids(ref), centroids(pred)
    if len(a) == 0 or len(b) == 0:
        return {"ref": len(a), "pred": len(b), "matched": 0, "f1": 0.0}
    m = len(centroid_pairs(a, b, radius)[0])
    return {"ref": len(a), "pred": len(b), "matched": m, "f1": 2 * m / (len(a) + len(b)),
            "count_ratio": len(b) / len(a)}
