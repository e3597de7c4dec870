#!/bin/sh
# HTTP request-path cost of two builds, measured interleaved: both servers
# run at once (2 workers each, idle while the other is measured) and wrk
# alternates between them ROUNDS times, so a shared machine's changing load
# falls on both alike. Per run: requests/s, p50/p99 latency, and the
# server's own cost per request - CPU microseconds (utime+stime of every
# process of the server) and context switches - which depend far less on
# the load than requests/s do.
#   GET /healthz                 the floor of any request
#   GET /api/workflows/{id}      a 21-job workflow (cached view, one stamp query)
#   POST /api/workflows          a 10-job workflow (one durable commit per group)
#   bench/http_ab.sh NEW_BINARY BASELINE_BINARY [ROUNDS] [SECONDS] [CONNECTIONS]
set -eu
new=$(realpath "${1:?usage: bench/http_ab.sh NEW_BINARY BASELINE_BINARY [ROUNDS] [SECONDS] [CONNECTIONS]}")
base=$(realpath "${2:?usage: bench/http_ab.sh NEW_BINARY BASELINE_BINARY [ROUNDS] [SECONDS] [CONNECTIONS]}")
rounds=${3:-3}
secs=${4:-5}
conns=${5:-32}
command -v wrk >/dev/null || { echo "http_ab: wrk is not installed (scripts/install-deps.sh)"; exit 1; }
command -v pstree >/dev/null || { echo "http_ab: pstree is not installed (psmisc)"; exit 1; }
dir=$(mktemp -d /tmp/tessera-httpab.XXXXXX)
pids=""
server_pid=""
trap 'for p in $pids $server_pid; do kill $p 2>/dev/null; wait $p 2>/dev/null; done; rm -rf "$dir"' EXIT
. "$(dirname "$0")/wrk.sh"

post_lua=$(cd "$(dirname "$0")" && pwd)/post_workflow.lua

# start BINARY LABEL: a server whose only slot a long job holds, with the
# 21-job workflow 2 to read; its pid in $dir/LABEL.pid, url in $dir/LABEL.url.
start() {
    state="$dir/$2"
    start_seeded "$1" "$state" 2
    echo "$server_pid" > "$state.pid"
    pids="$pids $server_pid"
    echo "$url" > "$state.url"
}

# cost PID: "CPU_TICKS CONTEXT_SWITCHES" summed over the server's processes
# (pstree -T: processes only; a thread's /proc entry shows its process's CPU).
cost() {
    ticks=0; switches=0
    for p in $(pstree -pT "$1" | grep -o '([0-9]*)' | tr -d '()'); do
        t=$(awk '{ print $14 + $15 }' "/proc/$p/stat" 2>/dev/null || echo 0)
        c=$(cat /proc/"$p"/task/*/status 2>/dev/null | awk '/ctxt_switches/ { s += $2 } END { print s + 0 }')
        ticks=$((ticks + t)); switches=$((switches + c))
    done
    echo "$ticks $switches"
}

# one LABEL WHAT WRK_ARGS...: one wrk run, its line, and its figures appended
# to $dir/LABEL.WHAT for the medians.
one() {
    label=$1; what=$2; shift 2
    pid=$(cat "$dir/$label.pid")
    c0=$(cost "$pid"); fig=$(run_wrk "$@"); c1=$(cost "$pid")
    echo "$fig $c0 $c1" | awk -v secs="$secs" -v hz="$(getconf CLK_TCK)" '{
        n = $1 * secs; if (n <= 0) n = 1
        printf "%.0f %.2f %.2f %.1f %.2f\n", $1, $2, $3, ($6 - $4) / hz * 1e6 / n, ($7 - $5) / n }' \
        >> "$dir/$label.$what"
    tail -n 1 "$dir/$label.$what" | awk -v l="$label" -v w="$what" '{
        printf "  %-8s %-7s %7.0f req/s  p50 %6.2f ms  p99 %7.2f ms  %6.1f us CPU/req  %5.2f switches/req\n", l, w, $1, $2, $3, $4, $5 }'
}

start "$new" new
start "$base" baseline
echo "new: $new; baseline: $base; $rounds rounds, wrk -t2 -c$conns -d${secs}s, 2 workers each"
for r in $(seq "$rounds"); do
    echo "round $r"
    for label in new baseline; do
        url=$(cat "$dir/$label.url")
        one "$label" healthz "$url/healthz"
        one "$label" GET -H 'X-User-ID: bench' "$url/api/workflows/2"
        one "$label" POST -s "$post_lua" "$url/api/workflows"
    done
done
echo "medians, new / baseline (req/s; CPU and switches per request):"
for what in healthz GET POST; do
    n=$(sort -n "$dir/new.$what" | awk '{ a[NR] = $0 } END { print a[int((NR + 1) / 2)] }')
    b=$(sort -n "$dir/baseline.$what" | awk '{ a[NR] = $0 } END { print a[int((NR + 1) / 2)] }')
    cn=$(awk '{ print $4 }' "$dir/new.$what" | sort -n | awk '{ a[NR] = $0 } END { print a[int((NR + 1) / 2)] }')
    cb=$(awk '{ print $4 }' "$dir/baseline.$what" | sort -n | awk '{ a[NR] = $0 } END { print a[int((NR + 1) / 2)] }')
    sn=$(awk '{ print $5 }' "$dir/new.$what" | sort -n | awk '{ a[NR] = $0 } END { print a[int((NR + 1) / 2)] }')
    sb=$(awk '{ print $5 }' "$dir/baseline.$what" | sort -n | awk '{ a[NR] = $0 } END { print a[int((NR + 1) / 2)] }')
    echo "$what ${n%% *} ${b%% *} $cn $cb $sn $sb" | awk '{
        printf "  %-7s %7.0f vs %7.0f req/s (%.2fx)  %6.1f vs %6.1f us CPU/req (%.2fx)  %5.2f vs %5.2f switches/req\n",
            $1, $2, $3, $2 / $3, $4, $5, $4 / $5, $6, $7 }'
done
