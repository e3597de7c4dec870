"""Images tessera did not make, scored against references (benchmark only).

  other_sources.py ihc-prepare DIR
      scikit-image's real IHC sample (skimage.data.immunohistochemistry,
      ihc.png, hematoxylin + DAB) as DIR/ihc.tiff, a tiled pyramidal TIFF at
      0.5 um/px that OpenSlide opens, and scikit-image's textbook pipeline's
      nuclei on it as DIR/ihc.ref.npy.
  other_sources.py ihc-score DIR CELLS.geojson [LABEL]
      centroid agreement of tessera's nuclei with the reference (matched
      one-to-one within 4 um), and the count ratio.
  other_sources.py ihc-diagnose DIR CELLS.geojson
      where the two disagree: each unmatched nucleus of either side by
      what lies under its centroid on the other side (background, an
      object holding one centroid of ours, or several), and the
      reference's objects that hold several of tessera's nuclei (their
      number, area and share of the reference's nuclear area); the
      reference's nuclei in tessera's background split by the tissue they
      lie in (DAB-negative stroma or DAB-positive epithelium: scikit-image's
      own rgb2hed DAB, smoothed, against its Otsu level).
  other_sources.py ihc-overlay DIR CELLS.geojson OUT
      the same disagreements as pictures, to look at rather than count:
      OUT.blobs.png (reference objects holding several of tessera's
      nuclei) and OUT.missed.png (the reference's nuclei in tessera's
      background, each marked S(troma) or D(AB-positive)), each crop the
      image beside it with the reference's outlines (cyan) and tessera's
      (yellow), 4x.
  other_sources.py tile-score DIR CELLS.geojson
      the independent tile (independent_tile.py): tessera's nuclei, the
      scikit-image pipeline's and the OpenCV pipeline's, each against the
      truth: F1 at IoU 0.5, recall on touching nuclei.

Run with Debian's /usr/bin/python3 (python3-skimage, python3-opencv,
python3-tifffile, python3-scipy).
"""
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
from common import centroid_agreement, centroid_pairs, centroids, geojson_labels, match, write_pyramid_tiff  # noqa: E402
from pipelines import opencv_nuclei, skimage_nuclei  # noqa: E402

MPP = 0.5


def ihc_prepare(d):
    from skimage import data

    rgb = data.immunohistochemistry()
    os.makedirs(d, exist_ok=True)
    write_pyramid_tiff(os.path.join(d, "ihc.tiff"), rgb, MPP)
    ref = skimage_nuclei(rgb, MPP)
    np.save(os.path.join(d, "ihc.ref.npy"), ref)
    print(f"ihc.png {rgb.shape[1]}x{rgb.shape[0]} at {MPP} um/px: scikit-image's pipeline finds {len(np.unique(ref)) - 1} nuclei")


def ihc_score(d, cells, label):
    ref = np.load(os.path.join(d, "ihc.ref.npy"))
    pred = geojson_labels(cells, ref.shape)
    s = centroid_agreement(ref, pred, radius=4.0 / MPP)
    print(f"ihc.png {label}: tessera {s['pred']} nuclei, scikit-image {s['ref']}; centroid agreement "
          f"F1 {s['f1']:.3f} ({s['matched']} matched within 4 um), count ratio {s['count_ratio']:.2f}")
    print("JSON " + json.dumps({"ihc": label, **s}))


def unmatched_by_cover(pts, matched, cover, cover_pts):
    """Counts of the points not in matched by what the other label image
    holds under each: 0 (background), or an object holding one or several
    of the other side's centroids."""
    held = np.bincount([cover[int(round(y)), int(round(x))] for y, x in cover_pts],
                       minlength=int(cover.max()) + 1)
    out = {"background": 0, "object holding one": 0, "object holding several": 0}
    for i, (y, x) in enumerate(pts):
        if i in matched:
            continue
        lab = cover[int(round(y)), int(round(x))]
        out["background" if lab == 0 else "object holding several" if held[lab] > 1 else "object holding one"] += 1
    return out


def dab_positive(rgb):
    """Where the tissue is DAB-positive: scikit-image's rgb2hed DAB,
    smoothed over 1 um, above its Otsu level (diagnosis only)."""
    from skimage.color import rgb2hed
    from skimage.filters import gaussian, threshold_otsu

    dab = gaussian(rgb2hed(rgb)[..., 2], sigma=1.0 / MPP)
    return dab > threshold_otsu(dab)


def ihc_diagnose(d, cells):
    """Where tessera and the reference disagree on ihc.png (used in issue
    15: the reference merges crowded epithelial nuclei into blobs, tessera
    misses faint stromal nuclei)."""
    ref = np.load(os.path.join(d, "ihc.ref.npy"))
    pred = geojson_labels(cells, ref.shape)
    a, b = centroids(ref), centroids(pred)
    used_a, used_b = centroid_pairs(a, b, 4.0 / MPP)
    print(f"tessera {len(b)}, reference {len(a)}, matched {len(used_a)} within 4 um: "
          f"F1 {2 * len(used_a) / max(1, len(a) + len(b)):.3f}")
    print("tessera's unmatched nuclei, under their centroid in the reference:",
          unmatched_by_cover(b, used_b, ref, b))
    print("the reference's unmatched nuclei, under their centroid in tessera:",
          unmatched_by_cover(a, used_a, pred, a))
    from skimage import data

    pos = dab_positive(data.immunohistochemistry())
    bg = [(int(round(y)), int(round(x))) for i, (y, x) in enumerate(a)
          if i not in used_a and pred[int(round(y)), int(round(x))] == 0]
    on_dab = sum(bool(pos[p]) for p in bg)
    print(f"the reference's unmatched nuclei in tessera's background: {len(bg) - on_dab} in DAB-negative "
          f"stroma, {on_dab} in DAB-positive tissue")
    held = np.bincount([ref[int(round(y)), int(round(x))] for y, x in b], minlength=int(ref.max()) + 1)
    held[0] = 0
    area = np.bincount(ref.ravel(), minlength=int(ref.max()) + 1)
    multi, single = area[held > 1], area[held == 1]
    if len(multi):
        print(f"reference objects holding several of tessera's nuclei: {len(multi)}, holding {int(held[held > 1].sum())}; "
              f"median area {np.median(multi) * MPP ** 2:.0f} um2 (those holding one: "
              f"{np.median(single) * MPP ** 2 if len(single) else 0:.0f} um2), "
              f"{multi.sum() / max(1, area[1:].sum()):.0%} of the reference's nuclear area")


def crop_sheet(rgb, ref, pred, centres, tags, path, half=20, scale=4, per_row=4):
    """Crops around centres (y, x), each the image beside it with the
    reference's outlines (cyan) and tessera's (yellow), tagged, in rows,
    as one PNG."""
    import cv2
    from skimage.segmentation import find_boundaries

    pad = lambda im: np.pad(im, ((half, half), (half, half)) + ((0, 0),) * (im.ndim - 2), mode="edge")
    rp, refp, predp = pad(rgb), pad(ref), pad(pred)
    tiles = []
    for (y, x), tag in zip(centres, tags):
        y, x = int(round(y)) + half, int(round(x)) + half
        win = (slice(y - half, y + half), slice(x - half, x + half))
        big = cv2.resize(rp[win], None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC)
        over = big.copy()
        for lab, colour in ((refp, (0, 200, 255)), (predp, (255, 255, 0))):
            up = cv2.resize(lab[win].astype(np.float32), None, fx=scale, fy=scale, interpolation=cv2.INTER_NEAREST)
            over[find_boundaries(up.astype(np.int32), mode="inner")] = colour
        cv2.circle(over, (half * scale, half * scale), 5, (255, 0, 255), 2)
        cv2.putText(over, tag, (4, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.7, (255, 0, 255), 2)
        tiles.append(np.pad(np.concatenate([big, over], 1), ((2, 2), (2, 2), (0, 0))))
    if not tiles:
        return
    while len(tiles) % per_row:
        tiles.append(np.zeros_like(tiles[0]))
    rows = [np.concatenate(tiles[i:i + per_row], 1) for i in range(0, len(tiles), per_row)]
    cv2.imwrite(path, cv2.cvtColor(np.concatenate(rows, 0), cv2.COLOR_RGB2BGR))


def ihc_overlay(d, cells, out):
    """ihc-diagnose's disagreements as crop sheets (see the module's
    help): the reference's blobs, and the nuclei tessera misses."""
    from skimage import data

    rgb = data.immunohistochemistry()
    ref = np.load(os.path.join(d, "ihc.ref.npy"))
    pred = geojson_labels(cells, ref.shape)
    a, b = centroids(ref), centroids(pred)
    used_a, _ = centroid_pairs(a, b, 4.0 / MPP)
    held = np.bincount([ref[int(round(y)), int(round(x))] for y, x in b], minlength=int(ref.max()) + 1)
    held[0] = 0
    blobs = [tuple(np.argwhere(ref == lab).mean(0)) for lab in np.nonzero(held > 1)[0]]
    crop_sheet(rgb, ref, pred, blobs, [str(held[lab]) for lab in np.nonzero(held > 1)[0]], out + ".blobs.png",
               half=30, scale=3)
    pos = dab_positive(rgb)
    missed = [(y, x) for i, (y, x) in enumerate(a) if i not in used_a and pred[int(round(y)), int(round(x))] == 0]
    crop_sheet(rgb, ref, pred, missed, ["D" if pos[int(round(y)), int(round(x))] else "S" for y, x in missed],
               out + ".missed.png")
    print(f"{out}.blobs.png: {len(blobs)} reference objects holding several of tessera's nuclei; "
          f"{out}.missed.png: {len(missed)} reference nuclei in tessera's background")


def tile_score(d, cells):
    import tifffile

    truth = np.load(os.path.join(d, "independent.truth.npy"))
    rgb = tifffile.imread(os.path.join(d, "independent.tiff"), key=0)
    rows = [("tessera", geojson_labels(cells, truth.shape)),
            ("scikit-image", skimage_nuclei(rgb, MPP)),
            ("OpenCV", opencv_nuclei(rgb, MPP))]
    print(f"independent tile: {int(truth.max())} nuclei in the truth")
    print(f"{'pipeline':<14} {'found':>7} {'F1':>7} {'prec':>7} {'recall':>7} {'touchR':>7} {'mIoU':>7}")
    for name, lab in rows:
        s = match(truth, lab)
        print(f"{name:<14} {s['pred']:>7} {s['f1']:>7.4f} {s['precision']:>7.4f} {s['recall']:>7.4f} "
              f"{s['recall_touching']:>7.4f} {s['mean_iou']:>7.4f}")
        print("JSON " + json.dumps({"pipeline": name, **s}))


def main():
    cmd = sys.argv[1] if len(sys.argv) > 1 else ""
    if cmd == "ihc-prepare":
        ihc_prepare(sys.argv[2])
    elif cmd == "ihc-score":
        ihc_score(sys.argv[2], sys.argv[3], sys.argv[4] if len(sys.argv) > 4 else "")
    elif cmd == "ihc-diagnose":
        ihc_diagnose(sys.argv[2], sys.argv[3])
    elif cmd == "ihc-overlay":
        ihc_overlay(sys.argv[2], sys.argv[3], sys.argv[4])
    elif cmd == "tile-score":
        tile_score(sys.argv[2], sys.argv[3])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
