# bench/wrk.sh - sourced by the HTTP benchmarks (http_bench.sh, http_ab.sh,
# metrics_bench.sh): one way to start the server they measure and one way
# to run wrk and read its figures.
# Uses the caller's $conns (connections) and $secs (duration).

# wrk's requests/s, p50 and p99 (ms) as "RPS P50 P99".
run_wrk() {
    wrk -t2 -c"$conns" -d"${secs}s" --latency "$@" 2>&1 | awk '
        function ms(v) { if (v ~ /us$/) return v / 1000; if (v ~ /ms$/) return v + 0; if (v ~ /s$/) return v * 1000; return v }
        /Requests\/sec/ { rps = $2 }
        $1 == "50%" { p50 = ms($2) }
        $1 == "99%" { p99 = ms($2) }
        END { printf "%s %s %s\n", rps, p50, p99 }'
}

# start_seeded BINARY STATE WORKERS: starts `BINARY serve` on a free
# loopback port with its state under STATE (output in STATE.out, log in
# STATE.log), in the background;
# sets $server_pid at once (so a caller's trap can stop it); waits until it answers,
# then gives user "bench" a long job that takes the only slot, so what is
# submitted after it stays queued, and the 21-job workflow 2 to read (four
# branches). Sets $url.
start_seeded() {
    "$1" serve --listen 127.0.0.1:0 --state-dir "$2/var" --workers "$3" \
        --concurrency-limit 1 --log "$2.log" >"$2.out" 2>&1 &
    server_pid=$!
    for i in $(seq 100); do grep -q 'http://' "$2.out" 2>/dev/null && break; sleep 0.1; done
    url=$(sed -n 's|.*\(http://[0-9.]*:[0-9]*\)/.*|\1|p' "$2.out" | head -n 1)
    for i in $(seq 100); do curl -fs "$url/healthz" >/dev/null && break; sleep 0.1; done
    curl -fs -H 'X-User-ID: bench' -H 'Content-Type: application/json' \
        -d '{"name":"hold","jobs":[{"job_id":"s","job_type":"sleep","params":{"seconds":3600}}]}' \
        "$url/api/workflows" >/dev/null
    jobs=$(awk 'BEGIN { for (i = 0; i < 21; i++) printf "%s{\"job_id\":\"j%d\",\"job_type\":\"noop\",\"branch\":\"b%d\"}", (i ? "," : ""), i, i % 4 }')
    curl -fs -H 'X-User-ID: bench' -H 'Content-Type: application/json' \
        -d "{\"name\":\"read me\",\"jobs\":[$jobs]}" "$url/api/workflows" >/dev/null
}
