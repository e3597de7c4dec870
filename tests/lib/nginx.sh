#!/bin/sh
# nginx.sh - deploy/nginx.conf run on loopback for tests, benchmarks and
# `make run-cluster`: the same file with its marked lines replaced (upstreams,
# listen address, the paths of its pid, logs and temporary files), in a
# directory of its own, on a free port.
#
#   tests/lib/nginx.sh start DIR HOST:PORT [HOST:PORT...]
#        start nginx in DIR (created) in front of the given instances; prints
#        its URL (http://127.0.0.1:PORT), also kept in DIR/url
#   tests/lib/nginx.sh stop DIR      stop it and remove DIR
#
# On loopback the instances run in header mode, so this copy passes the
# client's X-User-ID through (deploy/nginx.conf clears it: a real proxy sets
# it from its own authentication).
set -eu

root=$(cd "$(dirname "$0")/../.." && pwd)
NGINX=${TESSERA_NGINX:-/usr/sbin/nginx}

die() { echo "nginx.sh: $*" >&2; exit 1; }

free_port() {
    perl -MIO::Socket::INET -e \
        'my $s = IO::Socket::INET->new(Listen => 1, LocalAddr => "127.0.0.1:0") or die; print $s->sockport, "\n"'
}

# The loopback copy of deploy/nginx.conf.
render() {
    dir=$1 port=$2
    shift 2
    servers=""
    for u in "$@"; do servers="$servers        server $u max_fails=2 fail_timeout=5s;\n"; done
    awk -v dir="$dir" -v port="$port" -v servers="$servers" '
        /# @upstreams-begin/ { printf "%s", servers; skip = 1; next }
        /# @upstreams-end/ { skip = 0; next }
        skip { next }
        /^pid .*# @prefix/ { print "pid " dir "/nginx.pid;"; next }
        /^error_log .*# @prefix/ { print "error_log " dir "/error.log warn;"; next }
        /access_log .*# @prefix/ {
            print "    access_log " dir "/access.log;"
            print "    fastcgi_temp_path " dir "/tmp/fastcgi;"
            print "    uwsgi_temp_path " dir "/tmp/uwsgi;"
            print "    scgi_temp_path " dir "/tmp/scgi;"
            next
        }
        /client_body_temp_path .*# @prefix/ { print "    client_body_temp_path " dir "/tmp/body;"; next }
        /proxy_temp_path .*# @prefix/ { print "    proxy_temp_path " dir "/tmp/proxy;"; next }
        /listen .*# @listen/ { print "        listen 127.0.0.1:" port ";"; next }
        /X-User-ID .*# @identity/ { print "            proxy_set_header X-User-ID $http_x_user_id;"; next }
        { print }
    ' "$root/deploy/nginx.conf" | sed 's/\\n/\n/g' >"$dir/nginx.conf"
}

cmd_start() {
    dir=$1
    shift
    [ $# -ge 1 ] || die "usage: nginx.sh start DIR HOST:PORT [HOST:PORT...]"
    [ -x "$NGINX" ] || die "no $NGINX: install nginx (scripts/install-deps.sh)"
    mkdir -p "$dir/tmp"
    chmod 755 "$dir" "$dir/tmp"
    # workers run as nobody when the master runs as root
    [ "$(id -u)" = 0 ] && chown nobody "$dir/tmp"
    tries=0
    while :; do
        port=$(free_port)
        render "$dir" "$port" "$@"
        if "$NGINX" -p "$dir" -c "$dir/nginx.conf" -e "$dir/error.log" >"$dir/start.log" 2>&1; then break; fi
        tries=$((tries + 1))
        [ "$tries" -lt 5 ] || { cat "$dir/start.log" "$dir/error.log" >&2 2>/dev/null; die "nginx did not start"; }
    done
    echo "http://127.0.0.1:$port" >"$dir/url"
    cat "$dir/url"
}

cmd_stop() {
    dir=$1
    if [ -f "$dir/nginx.pid" ]; then
        pid=$(cat "$dir/nginx.pid")
        kill -TERM "$pid" 2>/dev/null || true
        for _ in 1 2 3 4 5 6 7 8 9 10; do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
        kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -rf "$dir"
}

case "${1:-}" in
start) shift; [ $# -ge 2 ] || die "usage: nginx.sh start DIR HOST:PORT [HOST:PORT...]"; cmd_start "$@" ;;
stop) [ $# -eq 2 ] || die "usage: nginx.sh stop DIR"; cmd_stop "$2" ;;
*) die "usage: nginx.sh start DIR HOST:PORT [HOST:PORT...] | stop DIR" ;;
esac
