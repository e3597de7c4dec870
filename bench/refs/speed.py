"""The OpenCV reference pipeline (pipelines.opencv_nuclei) timed on the very
windows image_bench timed (its --tiles file), read through OpenSlide's
Python binding, one thread, CPU time of this process: megapixels of tile
core per second per core, reading included, and the read alone.
Benchmark only.

  speed.py SLIDE TILES_FILE PIXEL_SIZE_UM
"""
import os
import sys
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
import cv2  # noqa: E402
import numpy as np  # noqa: E402
import openslide  # noqa: E402

sys.path.insert(0, os.path.dirname(__file__))
from pipelines import opencv_nuclei  # noqa: E402


def main():
    slide_path, tiles_path, px = sys.argv[1], sys.argv[2], float(sys.argv[3])
    cv2.setNumThreads(1)
    s = openslide.OpenSlide(slide_path)
    tiles = [tuple(int(v) for v in line.split()) for line in open(tiles_path)]
    core = 1024 * 1024 * len(tiles) / 1e6

    def read(t):
        x, y, w, h, level, _ = t
        return np.asarray(s.read_region((x, y), level, (w, h)).convert("RGB"))

    for t in tiles:  # warm the page cache, as image_bench does
        read(t)
    c0 = time.process_time()
    for t in tiles:
        read(t)
    c_read = time.process_time() - c0
    c0, n = time.process_time(), 0
    for t in tiles:
        lab = opencv_nuclei(read(t), px)
        n += int(lab.max())
    c_all = time.process_time() - c0
    print(f"OpenCV reference: {len(tiles)} windows, {core:.1f} MP of tile cores, {n} nuclei (whole windows)")
    print(f"openslide (python) read only:  {core / c_read:8.2f} MP/s per core (CPU {c_read:.3f} s)")
    print(f"read + OpenCV pipeline:        {core / c_all:8.2f} MP/s per core (CPU {c_all:.3f} s)")


if __name__ == "__main__":
    main()
