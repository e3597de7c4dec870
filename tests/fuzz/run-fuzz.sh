#!/bin/sh
# Runs tessera's libFuzzer targets (tests/fuzz/README.md) and prints one
# summary line per target and a last line "N passed, N failed"; exits
# non-zero when any target crashed, leaked, hung or broke an oracle.
#
#   tests/fuzz/run-fuzz.sh BUILD_DIR fuzz   SECONDS [TARGET...]
#       each target for SECONDS, growing BUILD_DIR/corpus/TARGET (kept
#       between runs) from the seeds in tests/fuzz/corpus/TARGET
#   tests/fuzz/run-fuzz.sh BUILD_DIR replay SECONDS [TARGET...]
#       each target over its seeds, then fuzzed for the rest of SECONDS
#       from a fresh corpus (what CI runs: the seeds must never crash)
#
# TARGET is a name such as "spec" (fuzz_spec); default: all built targets.
# Crashes go to BUILD_DIR/artifacts/TARGET/; reproduce one with
# BUILD_DIR/fuzz/fuzz_TARGET FILE. Environment: FUZZ_NICE (default 10),
# FUZZ_TIMEOUT (seconds per input before a hang is a failure, default 60),
# FUZZ_QUARANTINE_MB (ASan's quarantine of freed memory, default 16: use
# after free is caught while the freed block is among the last 16 MB freed,
# which spans an input; the default 256 MB makes every target up to twice
# as slow here, from page faults as the quarantine cycles).
set -u
build=${1:?usage: tests/fuzz/run-fuzz.sh BUILD_DIR fuzz|replay SECONDS [TARGET...]}
mode=${2:?mode: fuzz or replay}
seconds=${3:?seconds per target}
shift 3
root=$(cd "$(dirname "$0")/../.." && pwd)
fuzzdir="$root/tests/fuzz"
nice_level=${FUZZ_NICE:-10}
timeout=${FUZZ_TIMEOUT:-60}
case "$mode" in fuzz|replay) ;; *) echo "run-fuzz: mode must be fuzz or replay" >&2; exit 2 ;; esac
ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}quarantine_size_mb=${FUZZ_QUARANTINE_MB:-16}"
export ASAN_OPTIONS

targets="$*"
if [ -z "$targets" ]; then
    for b in "$root/$build"/fuzz/fuzz_*; do
        [ -x "$b" ] && targets="$targets ${b##*/fuzz_}"
    done
fi
[ -n "$targets" ] || { echo "run-fuzz: no targets built in $build/fuzz" >&2; exit 2; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
passed=0
failed=0

# One stat from libFuzzer's output: the last "name: value" or "name value".
stat_of() { # $1 = log, $2 = pattern before the number
    sed -n "s/.*$2 *\([0-9][0-9]*\).*/\1/p" "$1" | tail -n 1
}

for t in $targets; do
    bin="$root/$build/fuzz/fuzz_$t"
    if [ ! -x "$bin" ]; then
        echo "fuzz_$t: not built ($bin)"; failed=$((failed + 1)); continue
    fi
    seeds="$fuzzdir/corpus/$t"
    if [ ! -d "$seeds" ]; then seeds="$tmp/no-seeds"; mkdir -p "$seeds"; fi
    if [ "$mode" = fuzz ]; then work="$root/$build/corpus/$t"; else work="$tmp/corpus-$t"; fi
    art="$root/$build/artifacts/$t"
    mkdir -p "$work" "$art"
    before=$(ls "$art" | wc -l)
    set -- -max_total_time="$seconds" -timeout="$timeout" -rss_limit_mb=2560 \
        -print_final_stats=1 -artifact_prefix="$art/"
    [ -f "$fuzzdir/fuzz_$t.dict" ] && set -- "$@" -dict="$fuzzdir/fuzz_$t.dict"
    # Per-target flags (e.g. -max_len=...), one line in fuzz_TARGET.args.
    if [ -f "$fuzzdir/fuzz_$t.args" ]; then
        # shellcheck disable=SC2046
        set -- "$@" $(cat "$fuzzdir/fuzz_$t.args")
    fi
    log="$tmp/$t.log"
    start=$(date +%s)
    (cd "$tmp" && nice -n "$nice_level" "$bin" "$@" "$work" "$seeds") >"$log" 2>&1
    rc=$?
    took=$(( $(date +%s) - start )); [ "$took" -gt 0 ] || took=1
    execs=$(stat_of "$log" 'stat::number_of_executed_units:'); execs=${execs:-0}
    cov=$(stat_of "$log" 'cov:'); ft=$(stat_of "$log" 'ft:'); corp=$(stat_of "$log" 'corp:')
    new=$(( $(ls "$art" | wc -l) - before ))
    crashes=0
    if [ "$rc" -ne 0 ] || [ "$new" -gt 0 ]; then crashes=1; fi
    printf 'fuzz_%-8s %10s executions in %4d s (%s/s), cov %s, ft %s, corpus %s, %d crashes\n' \
        "$t" "$execs" "$took" "$((execs / took))" "${cov:-?}" "${ft:-?}" "${corp:-?}" "$crashes"
    if [ "$crashes" -ne 0 ]; then
        failed=$((failed + 1))
        grep -E 'ERROR|FUZZ_CHECK|runtime error|SUMMARY|Test unit written|^    #[0-9]' "$log" | head -n 40
        echo "fuzz_$t: exit status $rc; artifacts in $art"
    else
        passed=$((passed + 1))
    fi
done
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
