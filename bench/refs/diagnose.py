"""Where a nucleus segmentation goes wrong against a truth label image
(benchmark only): every truth nucleus is put in one class --

  match      a prediction overlaps it with IoU > 0.5;
  missed     no prediction covers 20% of it;
  merged     the prediction covering most of it also covers 20% of another
             truth nucleus (touching nuclei not split);
  oversplit  two or more predictions cover 20% of it each (split wrongly or
             cut in the wrong place);
  tight / loose  one prediction, IoU <= 0.5, smaller / larger than it;

counted over all nuclei and over those touching another, with their median
area; unmatched predictions are counted as background, merges or
fragments; matched predictions' area over their truth's (outlines too
tight or too loose). Used to find what to work on in issue 15 (most losses
on the independent tiles were merges of small nuclei with a neighbour).

  python3 bench/refs/diagnose.py DIR CELLS.geojson
      DIR holds independent.truth.npy (bench/refs/independent_tile.py)

Run with Debian's /usr/bin/python3 (python3-numpy, python3-scipy,
python3-skimage).
"""
import os
import sys
from collections import defaultdict

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
from common import geojson_labels, match, relabel, touching_labels  # noqa: E402

CLASSES = ("match", "missed", "merged", "oversplit", "tight", "loose")


def overlaps(truth, pred):
    """(truth id, pred id, intersection, IoU) of every overlapping pair,
    and both label images' areas."""
    nt, npd = int(truth.max()), int(pred.max())
    both = (truth > 0) & (pred > 0)
    pairs = truth[both].astype(np.int64) * (npd + 1) + pred[both]
    ids, inter = np.unique(pairs, return_counts=True)
    ti, pi = ids // (npd + 1), ids % (npd + 1)
    at = np.bincount(truth.ravel(), minlength=nt + 1)
    ap = np.bincount(pred.ravel(), minlength=npd + 1)
    return ti, pi, inter, inter / (at[ti] + ap[pi] - inter), at, ap


def classify(truth, pred):
    ti, pi, inter, iou, at, ap = overlaps(truth, pred)
    by_t, by_p = defaultdict(list), defaultdict(list)
    for a, b, i, u in zip(ti, pi, inter, iou):
        by_t[a].append((b, i, u))
        by_p[b].append((a, i, u))
    cls = {}
    for t in range(1, int(truth.max()) + 1):
        hits = by_t.get(t, [])
        if hits and max(h[2] for h in hits) > 0.5:
            cls[t] = "match"
        elif not hits or max(h[1] for h in hits) < 0.2 * at[t]:
            cls[t] = "missed"
        elif sum(h[1] >= 0.2 * at[t] for h in hits) >= 2:
            cls[t] = "oversplit"
        else:
            b = max(hits, key=lambda h: h[1])[0]
            if any(o[0] != t and o[1] >= 0.2 * at[o[0]] for o in by_p[b]):
                cls[t] = "merged"
            else:
                cls[t] = "tight" if ap[b] < at[t] else "loose"
    unmatched = defaultdict(int)
    matched_p = set(pi[iou > 0.5].tolist())
    for b in range(1, int(pred.max()) + 1):
        if b in matched_p:
            continue
        hits = by_p.get(b, [])
        if sum(h[1] for h in hits) < 0.3 * ap[b]:
            unmatched["background"] += 1
        elif sum(h[1] >= 0.2 * at[h[0]] for h in hits) >= 2:
            unmatched["merge"] += 1
        else:
            unmatched["fragment or outline"] += 1
    ok = iou > 0.5
    ratio = ap[pi[ok]] / at[ti[ok]]
    return cls, at, dict(unmatched), ratio


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    truth = relabel(np.load(os.path.join(sys.argv[1], "independent.truth.npy")))
    pred = relabel(geojson_labels(sys.argv[2], truth.shape))
    s = match(truth, pred)
    print(f"truth {s['truth']}, found {s['pred']}: F1 {s['f1']:.4f}, precision {s['precision']:.4f}, "
          f"recall {s['recall']:.4f}, touching recall {s['recall_touching']:.4f}")
    cls, at, unmatched, ratio = classify(truth, pred)
    touch = touching_labels(truth)
    print(f"{'truth nuclei':<12} {'all':>6} {'touching':>9} {'median area px':>15}")
    for c in CLASSES:
        ids = [t for t, k in cls.items() if k == c]
        med = float(np.median(at[ids])) if ids else 0.0
        print(f"{c:<12} {len(ids):>6} {sum(t in touch for t in ids):>9} {med:>15.0f}")
    print("unmatched predictions: " + ", ".join(f"{k} {v}" for k, v in sorted(unmatched.items())))
    if len(ratio):
        print(f"matched area / truth area: median {np.median(ratio):.3f}, "
              f"10th percentile {np.percentile(ratio, 10):.3f}, 90th {np.percentile(ratio, 90):.3f}")


if __name__ == "__main__":
    main()
