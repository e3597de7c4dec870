#!/bin/sh
# run-cluster.sh - the distributed setup on one machine, to try it: a
# PostgreSQL server (tests/lib/pgserver.sh), two `tessera serve` instances on
# it sharing one state directory and one session secret, and nginx in front
# (deploy/nginx.conf via tests/lib/nginx.sh), all on loopback with free ports
# and files under DIR (default ./var/cluster). Ctrl-C stops everything and
# removes the database and nginx's files (the state directory is kept).
#
#   scripts/run-cluster.sh [BUILD_DIR] [DIR]      (make run-cluster)
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-build}
dir=${2:-$root/var/cluster}
bin="$root/$build/tessera"
[ -x "$bin" ] || { echo "run-cluster: build $bin first (make)" >&2; exit 1; }
mkdir -p "$dir/state"
rm -rf "$dir/pg" "$dir/nginx"

pids=""
cleanup() {
    for p in $pids; do kill -TERM "$p" 2>/dev/null || true; done
    for p in $pids; do wait "$p" 2>/dev/null || true; done
    "$root/tests/lib/nginx.sh" stop "$dir/nginx" 2>/dev/null || true
    "$root/tests/lib/pgserver.sh" stop "$dir/pg" 2>/dev/null || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
    perl -MIO::Socket::INET -e \
        'my $s = IO::Socket::INET->new(Listen => 1, LocalAddr => "127.0.0.1:0") or die; print $s->sockport, "\n"'
}

url=$("$root/tests/lib/pgserver.sh" start "$dir/pg")
TESSERA_SESSION_SECRET=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
export TESSERA_SESSION_SECRET
test -e "$dir/state/data/demo.tiff" || "$bin" demo-slide "$dir/state/data/demo.tiff" >/dev/null
upstreams=""
for i in 1 2; do
    port=$(free_port)
    "$bin" serve --listen "127.0.0.1:$port" --db "$url" --state-dir "$dir/state" \
        --log "$dir/instance-$i.log" >"$dir/instance-$i.out" 2>&1 &
    pids="$pids $!"
    upstreams="$upstreams 127.0.0.1:$port"
done
for u in $upstreams; do
    for _ in $(seq 1 100); do curl -sf "http://$u/healthz" >/dev/null && break; sleep 0.1; done
done
# shellcheck disable=SC2086
front=$("$root/tests/lib/nginx.sh" start "$dir/nginx" $upstreams)
echo "run-cluster: PostgreSQL $url"
echo "run-cluster: instances$upstreams (logs $dir/instance-*.log)"
echo "run-cluster: open $front/ (nginx in front of both); Ctrl-C stops everything"
# shellcheck disable=SC2086
wait $pids
