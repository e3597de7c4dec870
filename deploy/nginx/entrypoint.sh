#!/bin/sh
# The entry point of deploy/nginx/Containerfile: deploy/nginx.conf with its
# upstream block filled from UPSTREAMS ("tessera1:8080 tessera2:8080") and its
# logs on stdout/stderr, then nginx in the foreground.
#
# Why it watches names: nginx 1.22 resolves upstream names once, at start,
# and a container that restarts gets a new address on the compose network,
# so nginx would keep sending that instance's share to its old address. The
# upstreams are written as addresses instead, looked up every WATCH_SECONDS
# (2), and nginx reloads gracefully (open WebSockets stay on the old workers)
# when one changes. A name that does not resolve for now (its container is
# restarting) keeps its last address: nginx fails over to the other
# instances meanwhile (proxy_next_upstream).
set -eu
template=/etc/tessera/nginx.conf.in
conf=/etc/nginx/tessera.conf
upstreams=${UPSTREAMS:?set UPSTREAMS to the instances, e.g. "tessera1:8080 tessera2:8080"}
watch=${WATCH_SECONDS:-2}
log() { echo "tessera-nginx: $*" >&2; }

# The addresses of $upstreams, in order, as "IP:PORT ..."; $1 holds the
# previous answer, whose entry stands in for a name that does not resolve.
# Fails when a name has neither.
lookup() {
    prev=$1 out="" i=0
    for u in $upstreams; do
        i=$((i + 1))
        ip=$(getent ahostsv4 "${u%:*}" 2>/dev/null | awk 'NR == 1 { print $1 }')
        if [ -n "$ip" ]; then
            out="$out $ip:${u##*:}"
        else
            old=$(echo "$prev" | awk -v i="$i" '{ print $i }')
            [ -n "$old" ] || return 1
            out="$out $old"
        fi
    done
    echo "${out# }"
}

# deploy/nginx.conf with these servers, checked by nginx -t before it
# replaces the configuration in use.
render() {
    servers=""
    for a in $1; do servers="$servers        server $a max_fails=2 fail_timeout=5s;\n"; done
    awk -v servers="$servers" '
        /# @upstreams-begin/ { printf "%s", servers; skip = 1; next }
        /# @upstreams-end/ { skip = 0; next }
        skip { next }
        /^error_log .*# @prefix/ { print "error_log /dev/stderr warn;"; next }
        /access_log .*# @prefix/ { print "    access_log /dev/stdout;"; next }
        { print }
    ' "$template" | sed 's/\\n/\n/g' >"$conf.new"
    nginx -q -t -c "$conf.new" && mv "$conf.new" "$conf"
}

addrs=""
waited=0
until addrs=$(lookup ""); do
    [ $((waited % 30)) -ne 0 ] || log "waiting for the names of: $upstreams"
    sleep 1
    waited=$((waited + 1))
done
render "$addrs"
log "upstreams $addrs"
nginx -c "$conf" -g 'daemon off;' &
pid=$!
# SIGTERM: nginx's graceful stop (QUIT) lets requests in flight finish.
trap 'kill -QUIT "$pid" 2>/dev/null || true' TERM INT
while kill -0 "$pid" 2>/dev/null; do
    sleep "$watch" &
    wait $! || true
    kill -0 "$pid" 2>/dev/null || break
    new=$(lookup "$addrs") || continue
    if [ "$new" != "$addrs" ] && render "$new"; then
        log "upstreams $new (were $addrs): reloading"
        addrs=$new
        kill -HUP "$pid"
    fi
done
status=0
wait "$pid" || status=$?
exit "$status"
