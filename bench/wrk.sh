# bench/wrk.sh - sourced by the HTTP benchmarks (http_bench.sh,
# metrics_bench.sh): one way to run wrk and read its figures.
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
