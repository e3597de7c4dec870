#!/bin/sh
# Speed at the analysis resolution, reading included, side by side in one
# run (issue 15): tessera's cell segmentation (bench/image_bench.c), the
# same windows read by OpenSlide alone, and the OpenCV reference pipeline
# (bench/refs/speed.py) on the same windows. Megapixels of tile core per
# second per core, from CPU time.
#   bench/speed.sh BUILD_DIR [SLIDE] [PIXEL_SIZE_UM] [MAX_TILES]
set -eu
build=${1:?usage: bench/speed.sh BUILD_DIR [SLIDE] [PIXEL_SIZE_UM] [MAX_TILES]}
dir=$(mktemp -d "${TMPDIR:-/tmp}/tessera-speed.XXXXXX")
trap 'rm -rf "$dir"' EXIT
slide=${2:-}
if [ -z "$slide" ]; then
    slide=$dir/bench.tiff
    "$build/tessera" demo-slide "$slide" --size 16384x12288 --seed 2 > /dev/null
fi
px=${3:-0.5}
"$build/bench/image_bench" --tiles "$dir/tiles.txt" "$slide" "$px" "${4:-32}" | tee "$dir/tessera.txt"
if /usr/bin/python3 -c 'import cv2, openslide' 2>/dev/null; then
    /usr/bin/python3 "$(dirname "$0")/refs/speed.py" "$slide" "$dir/tiles.txt" "$px" | tee "$dir/ref.txt"
    # The goal of issue 15: tessera's throughput over the OpenCV pipeline's,
    # both reading included, on the same windows in this run.
    tess=$(sed -n 's/^read + cell segmentation: *\([0-9.]*\) .*/\1/p' "$dir/tessera.txt")
    ocv=$(sed -n 's/^read + OpenCV pipeline: *\([0-9.]*\) .*/\1/p' "$dir/ref.txt")
    awk -v t="$tess" -v o="$ocv" 'BEGIN { if (o > 0) printf "tessera / OpenCV pipeline:  %8.2f x (goal >= 2)\n", t / o }'
else
    echo "OpenCV reference: skipped (python3-opencv or python3-openslide missing; scripts/install-deps.sh)"
fi
