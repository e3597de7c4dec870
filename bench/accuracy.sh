#!/bin/sh
# Segmentation quality on demo slides of several seeds and densities:
# tissue_mask -> cell_segmentation through `tessera run`, scored against the
# slides' ground truth with `tessera evaluate` (nucleus F1 at IoU 0.5, PQ,
# AJI; tissue Dice). Goals (issue 5): F1 >= 0.90, Dice >= 0.95.
#   bench/accuracy.sh TESSERA_BIN [SIZE]
set -eu
bin=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
size=${2:-8192x6144}
examples=$(cd "$(dirname "$0")/../examples" && pwd)
dir=$(mktemp -d "${TMPDIR:-/tmp}/tessera-accuracy.XXXXXX")
trap 'rm -rf "$dir"' EXIT
cd "$dir"
printf '%-6s %-8s %8s %8s %8s %8s %8s %8s\n' seed density truth found F1 PQ AJI Dice
n=0
for density in 0.5 1 2; do
    for seed in 1 2 3; do
        n=$((n + 1))
        rm -rf var
        "$bin" demo-slide var/data/demo.tiff --size "$size" --seed "$seed" --density "$density" > /dev/null
        "$bin" run "$examples/demo-analysis.json" --user bench --concurrency-limit 2 --quiet
        "$bin" evaluate cells --truth var/data/demo.nuclei.geojson --pred var/results/1/cells/cells.geojson --json > c.json
        "$bin" evaluate tissue --truth var/data/demo.tissue.geojson --pred var/results/1/tissue/tissue.geojson --json > t.json
        printf '%-6s %-8s %8s %8s %8.3f %8.3f %8.3f %8.3f\n' "$seed" "$density" \
            "$(jq .truth_count c.json)" "$(jq .pred_count c.json)" "$(jq .f1 c.json)" \
            "$(jq .pq c.json)" "$(jq .aji c.json)" "$(jq .dice t.json)"
    done
done
