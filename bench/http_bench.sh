#!/bin/sh
# HTTP throughput of tessera serve, measured with wrk on loopback:
#   GET /healthz               baseline: the server's floor (no store access)
#   GET /api/workflows/{id}    one workflow with its jobs, from SQLite
#   POST /api/workflows        submit (validation + one write transaction)
# Prints requests/s for each and the ratio to the baseline, same run.
#   bench/http_bench.sh BUILD/tessera [SECONDS] [CONNECTIONS]
set -eu
bin=$(realpath "${1:?usage: bench/http_bench.sh TESSERA_BINARY [SECONDS] [CONNECTIONS]}")
secs=${2:-5}
conns=${3:-32}
command -v wrk >/dev/null || { echo "http_bench: wrk is not installed (scripts/install-deps.sh)"; exit 1; }
dir=$(mktemp -d /tmp/tessera-httpbench.XXXXXX)
workers=$(nproc)
"$bin" serve --listen 127.0.0.1:0 --state-dir "$dir/var" --workers "$workers" \
    --concurrency-limit 1 --log "$dir/log" >"$dir/serve.out" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$dir"' EXIT
# The port the kernel chose is in the first line serve prints.
for i in $(seq 100); do grep -q 'http://' "$dir/serve.out" 2>/dev/null && break; sleep 0.1; done
url=$(sed -n 's|.*\(http://[0-9.]*:[0-9]*\)/.*|\1|p' "$dir/serve.out" | head -n 1)
for i in $(seq 100); do curl -fs "$url/healthz" >/dev/null && break; sleep 0.1; done

# A workflow of 20 jobs to read back (they stay queued behind a long one).
jobs=$(awk 'BEGIN { for (i = 0; i < 20; i++) printf "%s{\"job_id\":\"j%d\",\"job_type\":\"noop\",\"branch\":\"b%d\"}", (i ? "," : ""), i, i % 4 }')
curl -fs -H 'X-User-ID: bench' -H 'Content-Type: application/json' \
    -d "{\"name\":\"read me\",\"jobs\":[$jobs]}" "$url/api/workflows" >/dev/null

cat > "$dir/post.lua" <<'LUA'
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["X-User-ID"] = "bench"
wrk.body = '{"name":"bench","jobs":[{"job_id":"a","job_type":"noop"},{"job_id":"b","job_type":"noop","depends_on":["a"]}]}'
LUA

rps() { # prints requests/s from wrk's output
    wrk -t2 -c"$conns" -d"${secs}s" "$@" 2>&1 | awk '/Requests\/sec/ { print $2 }'
}
echo "http benchmark: $workers workers, wrk -t2 -c$conns -d${secs}s on loopback"
base=$(rps "$url/healthz")
get=$(rps -H 'X-User-ID: bench' "$url/api/workflows/1")
post=$(rps -s "$dir/post.lua" "$url/api/workflows")
printf '  GET /healthz (baseline):     %10.0f req/s\n' "$base"
printf '  GET /api/workflows/{id}:     %10.0f req/s  (%.2f of baseline)\n' "$get" "$(echo "$get $base" | awk '{print $1/$2}')"
printf '  POST /api/workflows:         %10.0f req/s  (%.2f of baseline)\n' "$post" "$(echo "$post $base" | awk '{print $1/$2}')"
