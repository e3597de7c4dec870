#!/bin/sh
# Deep Zoom tile latency of tessera serve (GET .../slide_files/{level}/{col}_{row}.jpeg)
# on a demo slide, one HTTP worker so every request meets the same cache:
#   uncached   first request of each tile: read from OpenSlide, area-average, JPEG-encode
#   cached     the same tiles again: the worker's tile cache (bytes copied out)
#   304        the same tiles with If-None-Match: no body at all
# Prints the median and 90th percentile of the server's own handling time (the
# "ms" of its request log: routing, auth, workflow lookup, drawing) and of curl's
# total time (connection included), per kind.
#   bench/tile_bench.sh BUILD/tessera [WIDTHxHEIGHT] [TILES]
set -eu
bin=$(realpath "${1:?usage: bench/tile_bench.sh TESSERA_BINARY [WIDTHxHEIGHT] [TILES]}")
size=${2:-16384x12288}
count=${3:-100}
dir=$(mktemp -d /tmp/tessera-tilebench.XXXXXX)
mkdir -p "$dir/data"
"$bin" demo-slide "$dir/data/bench.tiff" --size "$size" --seed 2 >/dev/null
"$bin" serve --listen 127.0.0.1:0 --state-dir "$dir/var" --workers 1 --data-root "$dir/data" \
    --log "$dir/log" >"$dir/serve.out" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$dir"' EXIT
for i in $(seq 100); do grep -q 'http://' "$dir/serve.out" 2>/dev/null && break; sleep 0.1; done
url=$(sed -n 's|.*\(http://[0-9.]*:[0-9]*\)/.*|\1|p' "$dir/serve.out" | head -n 1)
for i in $(seq 100); do curl -fs "$url/healthz" >/dev/null && break; sleep 0.1; done

id=$(curl -fs -H 'X-User-ID: bench' -H 'Content-Type: application/json' \
    -d "{\"name\":\"view\",\"jobs\":[{\"job_id\":\"v\",\"job_type\":\"noop\",\"image_path\":\"$dir/data/bench.tiff\"}]}" \
    "$url/api/workflows" | sed -n 's/^{"id":\([0-9]*\).*/\1/p')
base="$url/api/workflows/$id/jobs/v"
levels=$(curl -fs -H 'X-User-ID: bench' "$base/slide" | sed -n 's/.*"levels":\([0-9]*\).*/\1/p')
top=$((levels - 1))
curl -fs -o /dev/null -H 'X-User-ID: bench' "$base/slide.dzi" # opens the slide once

# A block of tiles around the slide's centre (where the demo's tissue is), at
# full resolution and at 1/4 (drawn from another pyramid level).
w=${size%x*}
h=${size#*x}
tiles=$(awk -v n="$count" -v top="$top" -v w="$w" -v h="$h" 'BEGIN {
    for (i = 0; i < n; i++) {
        l = i % 4 == 3 ? top - 2 : top; s = 2 ^ (top - l); k = int(i / 4) * 3 + i % 4;
        c = int(w / s / 254 / 2) - 5 + k % 10; r = int(h / s / 254 / 2) - 5 + int(k / 10) % 10;
        key = l "/" c "_" r; if (!(key in seen)) { seen[key] = 1; print key }
    } }')
n=$(echo "$tiles" | wc -l)

run() { # $1 = label, $2 = extra curl header or ""; prints curl times (ms), one per line
    for t in $tiles; do
        if [ -n "$2" ]; then
            etag=$(curl -fs -D - -o /dev/null -H 'X-User-ID: bench' "$base/slide_files/$t.jpeg" |
                   tr -d '\r' | sed -n 's/^[Ee][Tt][Aa][Gg]: //p')
            curl -s -o /dev/null -w '%{time_total}\n' -H 'X-User-ID: bench' \
                -H "If-None-Match: $etag" "$base/slide_files/$t.jpeg"
        else
            curl -fs -o /dev/null -w '%{time_total}\n' -H 'X-User-ID: bench' "$base/slide_files/$t.jpeg"
        fi
    done | awk '{ printf "%.3f\n", $1 * 1000 }' >"$dir/$1.curl"
}
stats() { # median and p90 of the numbers in file $1
    sort -n "$1" | awk '{ v[NR] = $1 } END { printf "median %7.2f ms  p90 %7.2f ms", v[int((NR + 1) / 2)], v[int(NR * 0.9 + 0.5)] }'
}
server_ms() { # the server's "ms" for tile requests with status $2 from log lines $1.. onwards
    tail -n +"$1" "$dir/log" | grep '"path":"[^"]*slide_files' | grep "\"status\":$2" |
        sed -n 's/.*"ms":\([0-9.e+-]*\).*/\1/p' >"$dir/srv"
    stats "$dir/srv"
}
from=$(($(wc -l <"$dir/log") + 1)); run uncached ""
s_unc=$(server_ms "$from" 200)
from=$(($(wc -l <"$dir/log") + 1)); run cached ""
s_cac=$(server_ms "$from" 200)
from=$(($(wc -l <"$dir/log") + 1)); run notmod "etag"
s_304=$(server_ms "$from" 304)
echo "tile benchmark: demo slide $size, $levels Deep Zoom levels, $n tiles (levels $((top - 2))..$top), 1 worker"
printf '  uncached  server %s   curl %s\n' "$s_unc" "$(stats "$dir/uncached.curl")"
printf '  cached    server %s   curl %s\n' "$s_cac" "$(stats "$dir/cached.curl")"
printf '  304       server %s   curl %s\n' "$s_304" "$(stats "$dir/notmod.curl")"
