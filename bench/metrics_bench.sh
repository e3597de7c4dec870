#!/bin/sh
# What watching tessera costs, measured with wrk on loopback against one
# `tessera serve` (token mode) holding 200 finished workflows of 10 users:
#   GET /healthz                the server's floor (no store access)
#   GET /metrics                a Prometheus scrape (two store reads, statvfs, the text)
#   GET /api/admin/overview     the Operations page's read (the same, as JSON, and the
#                               instances)
# Prints requests/s, p50/p99 latency, the ratio to /healthz of the same
# server in the same run, and the size of one scrape.
#   bench/metrics_bench.sh BUILD/tessera [SECONDS] [CONNECTIONS]
set -eu
bin=$(realpath "${1:?usage: bench/metrics_bench.sh TESSERA_BINARY [SECONDS] [CONNECTIONS]}")
secs=${2:-5}
conns=${3:-16}
command -v wrk >/dev/null || { echo "metrics_bench: wrk is not installed (scripts/install-deps.sh)"; exit 1; }
dir=$(mktemp -d /tmp/tessera-metricsbench.XXXXXX)
pid=""
trap 'if [ -n "$pid" ]; then kill $pid 2>/dev/null; wait $pid 2>/dev/null; fi; rm -rf "$dir"' EXIT

. "$(dirname "$0")/wrk.sh"

export TESSERA_STATE_DIR="$dir/var"
"$bin" serve --listen 127.0.0.1:0 --workers 2 --auth token --concurrency-limit 4 \
    --max-active-users 4 --log "$dir/log" >"$dir/out" 2>&1 &
pid=$!
for i in $(seq 100); do grep -q 'http://' "$dir/out" 2>/dev/null && break; sleep 0.1; done
url=$(sed -n 's|.*\(http://[0-9.]*:[0-9]*\)/.*|\1|p' "$dir/out" | head -n 1)
for i in $(seq 100); do curl -fs "$url/healthz" >/dev/null && break; sleep 0.1; done
admin=$("$bin" user add root --admin 2>/dev/null | grep -Eo '[0-9a-f]{64}' | head -n 1)
for u in $(seq 10); do
    tok=$("$bin" user add "u$u" 2>/dev/null | grep -Eo '[0-9a-f]{64}' | head -n 1)
    for w in $(seq 20); do
        curl -fs -H "Authorization: Bearer $tok" -H 'Content-Type: application/json' \
            -d '{"name":"w","jobs":[{"job_id":"a","job_type":"noop"},{"job_id":"b","job_type":"noop","depends_on":["a"]}]}' \
            "$url/api/workflows" >/dev/null
    done
done
# Until the line is empty: the figures then have every job type and route seen.
for i in $(seq 600); do
    curl -fs "$url/metrics" | grep -qx 'tessera_admission_queue_depth 0' &&
        curl -fs "$url/metrics" | grep -qx 'tessera_running_jobs 0' && break
    sleep 0.2
done
bytes=$(curl -fs "$url/metrics" | wc -c)
lines=$(curl -fs "$url/metrics" | wc -l)
echo "$bin, 2 workers, 200 workflows of 10 users, wrk -t2 -c$conns -d${secs}s on loopback"
echo "  one scrape: $bytes bytes, $lines lines"
base=""
for what in "GET /healthz|$url/healthz" \
    "GET /metrics|$url/metrics" \
    "GET /api/admin/overview|-H|Authorization: Bearer $admin|$url/api/admin/overview"; do
    label=${what%%|*}
    args=${what#*|}
    old_ifs=$IFS; IFS='|'; set -- $args; IFS=$old_ifs
    set -- $(run_wrk "$@")
    [ -n "$base" ] || base=$1
    printf '  %-28s %9.0f req/s  p50 %7.2f ms  p99 %7.2f ms  (%.3f of /healthz)\n' "$label" "$1" "$2" "$3" \
        "$(echo "$1 $base" | awk '{print $1/$2}')"
done
