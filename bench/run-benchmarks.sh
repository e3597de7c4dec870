#!/bin/sh
# Runs every benchmark under bench/ and prints what each measured.
#   bench/run-benchmarks.sh BUILD_DIR
set -eu
build=${1:?usage: bench/run-benchmarks.sh BUILD_DIR}
"$build/bench/sched_bench" "$build/tessera"
# What an fsync per commit costs: submits on this disk against the same on tmpfs.
"$build/bench/commit_bench" 500 .
bench/dag_vs_make.sh "$build"
bench/http_bench.sh "$build/tessera" 5 32
bench/metrics_bench.sh "$build/tessera" 5 16
if command -v node >/dev/null 2>&1 && [ -d node_modules/ws ]; then
    node bench/ws_latency.mjs "$build/tessera" 1000
    node bench/ws_burst.mjs "$build/tessera"
    # One tenant reading a 10,000-job workflow in a loop beside another's small GETs.
    node bench/noisy_neighbour.mjs "$build/tessera" 300
else
    echo "ws_latency: skipped (node or node_modules/ws missing; scripts/install-deps.sh)"
fi
# Image analysis: cell segmentation against OpenSlide's raw reads of the
# same tiles and the OpenCV reference pipeline, at 0.5 um/px, one core.
bench/speed.sh "$build" "" 0.5 64
# The viewer: Deep Zoom tiles drawn vs served from the worker's cache.
bench/tile_bench.sh "$build/tessera" 16384x12288 100
# The viewer's overlay in Chromium: indexing and drawing 100,000 cells.
if command -v node >/dev/null 2>&1 && [ -d node_modules/playwright-core ] && [ -x /usr/bin/chromium ]; then
    node bench/overlay_bench.mjs "$build/tessera" 100000
else
    echo "overlay_bench: skipped (node, playwright-core or chromium missing; scripts/install-deps.sh)"
fi
bench/accuracy.sh "$build/tessera"
bench/other_sources.sh "$build/tessera"
# The store backends and several instances: SQLite vs PostgreSQL, one instance vs two.
if command -v node >/dev/null 2>&1 && [ -d node_modules/ws ] && [ -x /usr/lib/postgresql/15/bin/initdb ] && [ -x "$(command -v psql)" ]; then
    node bench/cluster_bench.mjs "$build/tessera" 5
else
    echo "cluster_bench: skipped (node, node_modules/ws or postgresql-15 missing; scripts/install-deps.sh)"
fi
