#!/bin/sh
# HTTP throughput of tessera serve, measured with wrk on loopback:
#   GET /healthz               baseline: the server's floor (no store access)
#   GET /api/workflows/{id}    one workflow of 21 jobs with its jobs, from SQLite
#   POST /api/workflows        submit a 10-job workflow (validation + one durable commit)
#   GET of a 10,000-job workflow: the compact form (?jobs=none), a page of 100
#                                  jobs (?jobs_offset=5000&jobs_limit=100), whole
# Prints requests/s for each with p50/p99 latency and the ratio to /healthz
# of the same server, in the same run. With BASELINE_BINARY, the same
# measurements of that build follow (an older build answers the page and
# compact queries with the whole workflow), and the ratios between the two.
#   bench/http_bench.sh BUILD/tessera [SECONDS] [CONNECTIONS] [BASELINE_BINARY]
set -eu
bin=$(realpath "${1:?usage: bench/http_bench.sh TESSERA_BINARY [SECONDS] [CONNECTIONS] [BASELINE_BINARY]}")
secs=${2:-5}
conns=${3:-32}
baseline=${4:+$(realpath "$4")}
command -v wrk >/dev/null || { echo "http_bench: wrk is not installed (scripts/install-deps.sh)"; exit 1; }
dir=$(mktemp -d /tmp/tessera-httpbench.XXXXXX)
pid=""
server_pid=""
trap 'for p in $pid $server_pid; do kill $p 2>/dev/null; wait $p 2>/dev/null; done; rm -rf "$dir"' EXIT
workers=$(nproc)

post_lua=$(cd "$(dirname "$0")" && pwd)/post_workflow.lua

. "$(dirname "$0")/wrk.sh"

# Waits until requests left over from the previous wrk run (the server
# still works through what closed connections had sent) are done: a small
# GET answers quickly again.
drain() {
    for i in $(seq 60); do
        t=$(curl -s -o /dev/null -w '%{time_total}' -H 'X-User-ID: bench' "$1/api/workflows/2?jobs=none")
        [ "$(echo "$t" | awk '{print ($1 < 0.05)}')" = 1 ] && return 0
        sleep 0.5
    done
}

# measure BINARY LABEL: starts a server, prints its figures, stops it; the
# requests/s of each line also go to $dir/LABEL.rps for the ratios.
measure() {
    state="$dir/$2"
    # A long job first takes the only slot: what is read below stays queued.
    start_seeded "$1" "$state" "$workers"
    pid=$server_pid
    awk 'BEGIN { printf "{\"name\":\"big\",\"jobs\":["; for (i = 0; i < 10000; i++) printf "%s{\"job_id\":\"j%d\",\"job_type\":\"noop\",\"branch\":\"b%d\"}", (i ? "," : ""), i, i % 20; print "]}" }' > "$dir/big.json"
    curl -fs -H 'X-User-ID: bench' -H 'Content-Type: application/json' \
        --data-binary @"$dir/big.json" "$url/api/workflows" >/dev/null
    echo "$2: $1, $workers workers, wrk -t2 -c$conns -d${secs}s on loopback"
    rps_file="$dir/$2.rps"
    : > "$rps_file"
    base=""
    for what in "GET /healthz|$url/healthz" \
        "GET /api/workflows/{id} (21 jobs)|-H|X-User-ID: bench|$url/api/workflows/2" \
        "POST /api/workflows (10 jobs)|-s|$post_lua|$url/api/workflows" \
        "GET 10,000-job workflow, ?jobs=none|-H|X-User-ID: bench|$url/api/workflows/3?jobs=none" \
        "GET 10,000-job workflow, page of 100|-H|X-User-ID: bench|$url/api/workflows/3?jobs_offset=5000&jobs_limit=100" \
        "GET 10,000-job workflow, whole|-H|X-User-ID: bench|$url/api/workflows/3"; do
        label=${what%%|*}
        drain "$url"
        args=${what#*|}
        old_ifs=$IFS; IFS='|'; set -- $args; IFS=$old_ifs
        set -- $(run_wrk "$@")
        [ -n "$base" ] || base=$1
        printf '  %-40s %9.0f req/s  p50 %7.2f ms  p99 %7.2f ms  (%.3f of /healthz)\n' "$label" "$1" "$2" "$3" \
            "$(echo "$1 $base" | awk '{print $1/$2}')"
        echo "$label|$1" >> "$rps_file"
    done
    kill $pid; wait $pid 2>/dev/null || true; pid=""; server_pid=""
}

measure "$bin" new
if [ -n "$baseline" ]; then
    measure "$baseline" baseline
    echo "new / baseline, requests/s:"
    paste -d'|' "$dir/new.rps" "$dir/baseline.rps" | awk -F'|' '{ printf "  %-40s %.2fx\n", $1, $2 / $4 }'
fi
