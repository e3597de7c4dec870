"""An independently generated synthetic H&E tile with ground truth, for the
benchmark only (issue 15): written without looking at tessera's demo
generator's code paths and deliberately unlike it --

  * nucleus shapes: superellipses (exponent 1.6-3.2) with a bend (kidney
    shapes) and low-frequency radial noise, radii 3-7.5 um (the demo's
    are star polygons of 2.5-6 um);
  * textures: stroma fibres from anisotropic Gaussian-filtered noise,
    chromatin as speckle with dark nucleoli, pink cytoplasm around nuclei;
  * stain model: Beer-Lambert with Macenko's reference vectors
    H (0.5626, 0.7201, 0.4062), E (0.2159, 0.8012, 0.5581), not
    Ruifrok-Johnston; glass slightly blue; optical blur (Gaussian 0.8 px),
    shot noise and a JPEG round trip at quality 85;
  * touching: nuclei of a pair or of a cluster of 3-5 overlap their
    neighbour by 5-20% of the radii (as projected nuclei do); the overlap
    goes to the nearer centre, so the truth has no overlapping instances.

By nucleus count about 37% are alone, 28% in touching pairs and 36% in
clusters of 3-5; tissue covers about 45% of the tile.

  python3 bench/refs/independent_tile.py OUT_DIR [--size 4096] [--seed 7]

writes OUT_DIR/independent.tiff (tiled pyramidal, 0.5 um/px),
OUT_DIR/independent.truth.npy (int32 labels), OUT_DIR/independent.tissue.npy
(bool), and prints the counts.
"""
import argparse
import os
import sys

import numpy as np
from scipy import ndimage as ndi

sys.path.insert(0, os.path.dirname(__file__))
from common import write_pyramid_tiff  # noqa: E402

MPP = 0.5
TARGET = {1: 0.37, 2: 0.28, "3-5": 0.36}  # shares of nuclei: alone, in pairs, in clusters
H_VEC = np.array([0.5626, 0.7201, 0.4062])
E_VEC = np.array([0.2159, 0.8012, 0.5581])


def smooth_noise(rng, shape, sigma, aniso=None):
    n = rng.standard_normal(shape).astype(np.float32)
    s = (sigma, sigma) if aniso is None else aniso
    n = ndi.gaussian_filter(n, s)
    return (n - n.mean()) / (n.std() + 1e-9)


def tissue_mask(rng, size, fraction):
    f = smooth_noise(rng, (size // 8, size // 8), 40)
    t = np.quantile(f, 1 - fraction)
    m = ndi.zoom((f > t).astype(np.float32), 8, order=1) > 0.5
    return m[:size, :size]


def nucleus_shape(rng, r_px):
    """A boolean patch and its centre offset: superellipse, bent, bumpy."""
    a = r_px * rng.uniform(1.0, 1.6)
    b = r_px * r_px / a
    p = rng.uniform(1.6, 3.2)
    bend = rng.uniform(0, 0.25) if rng.random() < 0.4 else 0.0
    ori = rng.uniform(0, np.pi)
    k = rng.integers(2, 5)
    amp, ph = rng.uniform(0.02, 0.08), rng.uniform(0, 2 * np.pi)
    R = int(np.ceil(a * 1.4)) + 2
    yy, xx = np.mgrid[-R:R + 1, -R:R + 1].astype(np.float32)
    u = xx * np.cos(ori) + yy * np.sin(ori)
    v = -xx * np.sin(ori) + yy * np.cos(ori)
    v = v + bend * (u * u) / a  # bend into a kidney
    th = np.arctan2(v, u)
    rad = 1 + amp * np.sin(k * th + ph)
    val = (np.abs(u / a) ** p + np.abs(v / b) ** p) ** (1 / p)
    return val <= rad, R


def group_offsets(rng, radii):
    """Centres of a touching group: each new member overlaps one placed
    member by 5-20% of the summed radii."""
    pts = [np.zeros(2)]
    for i in range(1, len(radii)):
        for _ in range(50):
            j = rng.integers(0, i)
            ang = rng.uniform(0, 2 * np.pi)
            d = (radii[i] + radii[j]) * rng.uniform(0.80, 0.95)
            c = pts[j] + d * np.array([np.cos(ang), np.sin(ang)])
            if all(np.hypot(*(c - q)) > 0.8 * (radii[i] + radii[k]) for k, q in enumerate(pts)):
                pts.append(c)
                break
        else:
            pts.append(pts[-1] + (radii[i] + radii[-2]) * 0.9 * np.array([1.0, 0.0]))
    return np.array(pts)


def place_groups(rng, size, tissue, n_target):
    truth = np.zeros((size, size), np.int32)
    occupied = np.zeros((size, size), bool)
    sizes = []
    counts = {1: 0, 2: 0, "3-5": 0}
    label = 0
    tries = 0
    ys, xs = np.nonzero(tissue[::4, ::4])
    while label < n_target and tries < n_target * 20:
        tries += 1
        # steer towards the target shares by nucleus count (clusters are
        # rejected more often, so drawing by fixed odds would undershoot)
        total = max(1, label)
        short = {k: TARGET[k] - counts[k] / total for k in TARGET}
        kind = max(short, key=short.get)
        g = kind if kind != "3-5" else int(rng.integers(3, 6))
        radii = rng.uniform(3.0, 7.5, g) / MPP
        if g > 1:
            radii *= rng.uniform(0.7, 0.9)
        offs = group_offsets(rng, radii)
        k = rng.integers(0, len(ys))
        cy, cx = ys[k] * 4 + rng.uniform(0, 4), xs[k] * 4 + rng.uniform(0, 4)
        shapes = [nucleus_shape(rng, r) for r in radii]
        R = max(s[1] for s in shapes) + int(np.abs(offs).max()) + 4
        y0, x0 = int(cy) - R, int(cx) - R
        if y0 < 0 or x0 < 0 or y0 + 2 * R + 1 > size or x0 + 2 * R + 1 > size:
            continue
        win = np.zeros((2 * R + 1, 2 * R + 1), np.int32)
        dist = np.full(win.shape, np.inf, np.float32)
        yy, xx = np.mgrid[0:2 * R + 1, 0:2 * R + 1]
        for i, ((m, r), o) in enumerate(zip(shapes, offs)):
            py, px = int(round(R + o[1])) - r, int(round(R + o[0])) - r
            sub = np.zeros(win.shape, bool)
            sub[py:py + m.shape[0], px:px + m.shape[1]] = m
            d = np.hypot(yy - (R + o[1]), xx - (R + o[0])) / radii[i]
            take = sub & (d < dist)
            win[take] = i + 1
            dist[take] = d[take]
        body = win > 0
        region = (slice(y0, y0 + 2 * R + 1), slice(x0, x0 + 2 * R + 1))
        if not tissue[region][body].all() or occupied[region][ndi.binary_dilation(body, iterations=3)].any():
            continue
        for i in range(g):
            if not (win == i + 1).any():
                continue
            label += 1
            truth[region][win == i + 1] = label
            sizes.append(g)
        occupied[region] |= body
        counts[g if g < 3 else "3-5"] += g
    return truth, np.array(sizes), counts


def render(rng, truth, tissue):
    size = truth.shape[0]
    nuc = truth > 0
    fib = smooth_noise(rng, (size, size), None, aniso=(1.5, 12))
    fib2 = smooth_noise(rng, (size, size), None, aniso=(10, 1.5))
    low = smooth_noise(rng, (size, size), 60)
    e = np.clip(0.18 + 0.07 * fib + 0.05 * fib2 + 0.05 * low, 0.02, 0.6)
    cyto = ndi.binary_dilation(nuc, iterations=6) & ~nuc
    e = np.where(cyto, e + 0.10, e)
    h = 0.04 + 0.015 * smooth_noise(rng, (size, size), 8)
    # per-nucleus hematoxylin: pale (vesicular) to dark, chromatin speckle, nucleoli
    n = int(truth.max())
    level = np.concatenate([[0], rng.uniform(0.30, 0.85, n)]).astype(np.float32)
    speck = 1 + 0.22 * smooth_noise(rng, (size, size), 1.2)
    hn = level[truth] * speck
    nucleoli = (smooth_noise(rng, (size, size), 1.0) > 2.6) & nuc
    hn = np.where(nucleoli, hn * 1.5, hn)
    h = np.where(nuc, hn, h)
    e = np.where(nuc, 0.08, e)
    h = np.where(tissue, h, 0.0)
    e = np.where(tissue, e, 0.0)
    od = h[..., None] * H_VEC + e[..., None] * E_VEC
    od = ndi.gaussian_filter(od, (0.8, 0.8, 0))
    glass = np.array([236, 237, 242], np.float32)
    rgb = glass * 10 ** (-od)
    rgb = rng.poisson(np.clip(rgb, 0, 255) * 0.5) / 0.5
    rgb = np.clip(rgb, 0, 255).astype(np.uint8)
    import cv2
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 85])
    return cv2.cvtColor(cv2.imdecode(buf, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out_dir")
    ap.add_argument("--size", type=int, default=4096)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--nuclei", type=int, default=8600)
    a = ap.parse_args()
    rng = np.random.default_rng(a.seed)
    tissue = tissue_mask(rng, a.size, 0.45)
    n_target = int(a.nuclei * (a.size / 4096) ** 2)
    truth, sizes, counts = place_groups(rng, a.size, tissue, n_target)
    rgb = render(rng, truth, tissue)
    os.makedirs(a.out_dir, exist_ok=True)
    write_pyramid_tiff(os.path.join(a.out_dir, "independent.tiff"), rgb, MPP)
    np.save(os.path.join(a.out_dir, "independent.truth.npy"), truth)
    np.save(os.path.join(a.out_dir, "independent.tissue.npy"), tissue)
    n = int(truth.max())
    print(f"independent tile {a.size}x{a.size} at {MPP} um/px: {n} nuclei "
          f"({100 * counts[1] / n:.0f}% alone, {100 * counts[2] / n:.0f}% in pairs, "
          f"{100 * counts['3-5'] / n:.0f}% in clusters of 3-5), tissue fraction {tissue.mean():.2f}")


if __name__ == "__main__":
    main()
