#!/bin/sh
# Runs every benchmark under bench/ and prints what each measured.
#   bench/run-benchmarks.sh BUILD_DIR
set -eu
build=${1:?usage: bench/run-benchmarks.sh BUILD_DIR}
"$build/bench/sched_bench" "$build/tessera"
