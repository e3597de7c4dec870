#!/bin/sh
# tests/deploy/run.sh - the deployment test (make test-deploy): what a site
# does, for real, with podman and podman-compose on this machine.
#
#   1. a clean checkout of HEAD (git archive: committed files only, none of
#      the working tree's build directories);
#   2. the base image from the Debian mirror (scripts/make-base-image.sh;
#      kept between runs), then the tessera, PostgreSQL and nginx images
#      built from the checkout (without the layer cache unless
#      TESSERA_DEPLOY_CACHE=1);
#   3. deploy/tessera.service checked by systemd-analyze verify (offline, in
#      a scratch root holding the image's binary) and its exposure score;
#   4. deploy/compose.yaml up on a free loopback port: both instances
#      healthy (the image's HEALTHCHECK), the demo slide made, /readyz
#      through nginx;
#   5. tests/deploy/stack.mjs through nginx: sign in, the demo workflow and
#      two more followed over WebSockets, the leading instance restarted
#      mid-run, nothing lost;
#   6. down: no container, volume or network of the project left, the test
#      images removed (the base image stays).
#
# Prints TAP ("ok N - ...", "not ok N - ...", "1..N"), then the time taken
# and the image's size. Exit status 0 iff every check passed. Needs root, the
# packages of deps/deploy-packages.txt (scripts/install-deps.sh --deploy),
# node with the npm packages (ws), and the Debian and npm registries.
#
# CONTAINERS_CONF is used when set; otherwise a containers.conf for hosts
# like this one is written (runc, cgroupfs without systemd, default ulimits
# no higher than this process's hard limits). TESSERA_DEPLOY_BASE picks
# another base image (e.g. debian:12 where a registry is reachable).
set -u
root=$(cd "$(dirname "$0")/../.." && pwd)
started=$(date +%s)
base=${TESSERA_DEPLOY_BASE:-localhost/debian:bookworm}
proj=tessera-deploy-$$
tag=deploy-test-$$
image=localhost/tessera:$tag
pg_image=localhost/tessera-postgres:15
nginx_image=localhost/tessera-nginx:latest
n=0
failed=0
ok() { n=$((n + 1)); echo "ok $n - $*"; }
not_ok() { n=$((n + 1)); failed=$((failed + 1)); echo "not ok $n - $*"; }
diag() { sed 's/^/# /'; }
elapsed() { echo $(($(date +%s) - started)); }

summary() {
    echo "1..$n"
    echo "# $((n - failed)) passed, $failed failed"
    echo "# time: $(elapsed) s"
    [ -n "${size:-}" ] && echo "# image: $image $size MB ($size_bytes bytes; base $base $base_size MB)"
}

for tool in podman podman-compose git curl node systemd-analyze; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        echo "Bail out! $tool is missing: scripts/install-deps.sh --deploy installs the container tools"
        exit 1
    fi
done
[ "$(id -u)" -eq 0 ] || { echo "Bail out! run as root (rootful podman, debootstrap)"; exit 1; }
[ -d "$root/node_modules/ws" ] || { echo "Bail out! no node_modules/ws: scripts/install-deps.sh (npm ci)"; exit 1; }

work=$(mktemp -d /var/tmp/tessera-deploy.XXXXXX)
log=$work/log
compose_file=$work/src/deploy/compose.yaml
images_before=$(podman images -q --filter dangling=true | sort)
podman volume ls -q | sort >"$work/volumes_before"

# Everything of the run goes, whatever happened: the stack, its network
# (podman-compose 1.0.3's down leaves it), the images built, the checkout.
teardown_done=0
teardown() {
    [ "$teardown_done" = 0 ] || return 0
    teardown_done=1
    if [ -f "$compose_file" ]; then
        (cd "$work/src/deploy" && podman-compose -p "$proj" -f "$compose_file" down -v) >>"$log" 2>&1
    fi
    for net in $(podman network ls -q --filter "label=io.podman.compose.project=$proj"); do
        podman network rm -f "$net" >>"$log" 2>&1
    done
    podman rmi -f "$image" >>"$log" 2>&1
    if [ "${TESSERA_DEPLOY_CACHE:-0}" != 1 ]; then
        podman rmi -f "$pg_image" "$nginx_image" >>"$log" 2>&1
        # Intermediate stage images of this run's builds only.
        for img in $(podman images -q --filter dangling=true | sort); do
            echo "$images_before" | grep -qx "$img" || podman rmi -f "$img" >>"$log" 2>&1
        done
    fi
}
trap 'teardown; exit 130' INT TERM
trap 'teardown; rm -rf "$work"' EXIT

# Runs "$@" with its output in the log; ok/not ok DESCRIPTION; on failure
# the log's end as a diagnostic.
step() {
    desc=$1
    shift
    echo "== $desc" >>"$log"
    if "$@" >>"$log" 2>&1; then
        ok "$desc"
    else
        not_ok "$desc"
        tail -n 25 "$log" | diag
        return 1
    fi
}
fatal() { teardown; summary; exit 1; }

# ---- containers.conf, the checkout ---------------------------------------
if [ -z "${CONTAINERS_CONF:-}" ]; then
    nofile=$(awk '/^Max open files/ { print $5 }' /proc/self/limits)
    nproc=$(awk '/^Max processes/ { print $4 }' /proc/self/limits)
    [ "$nproc" = unlimited ] || [ "$nproc" -gt 32768 ] && nproc=32768
    manager=cgroupfs
    [ -d /run/systemd/system ] && manager=systemd
    cat >"$work/containers.conf" <<EOF
[containers]
default_ulimits = ["nofile=$nofile:$nofile", "nproc=$nproc:$nproc"]
[engine]
runtime = "runc"
cgroup_manager = "$manager"
EOF
    export CONTAINERS_CONF="$work/containers.conf"
fi
export BUILDAH_FORMAT=docker
echo "# podman $(podman --version | awk '{print $3}'), $(podman-compose version 2>/dev/null | awk '/^podman-compose/ { v = $NF } END { print "podman-compose " v }')"

commit=$(git -C "$root" rev-parse --short HEAD)
[ -z "$(git -C "$root" status --porcelain --untracked-files=no)" ] ||
    echo "# the working tree has uncommitted changes: this tests HEAD ($commit) only"
mkdir -p "$work/src"
step "clean checkout of HEAD ($commit) by git archive" \
    sh -c "git -C '$root' archive --format=tar HEAD | tar -x -C '$work/src'" || fatal
# A re-signing HTTPS proxy's authority, for the image build's npm download
# (deploy/ca-certificates/README.md); node's packages for stack.mjs.
cp /usr/local/share/ca-certificates/*.crt "$work/src/deploy/ca-certificates/" 2>/dev/null || true
ln -s "$root/node_modules" "$work/src/node_modules"

# ---- images ----------------------------------------------------------------
if [ "$base" = localhost/debian:bookworm ]; then
    t0=$(date +%s)
    step "base image $base (debootstrap from apt's mirror, or kept from an earlier run)" \
        nice "$work/src/scripts/make-base-image.sh" "$base" || fatal
    echo "# base image: $(($(date +%s) - t0)) s"
fi
cache="--no-cache"
[ "${TESSERA_DEPLOY_CACHE:-0}" = 1 ] && cache=""
t0=$(date +%s)
# shellcheck disable=SC2086
step "tessera image built from the checkout (multi-stage Containerfile, BASE=$base)" \
    nice podman build $cache --format docker --build-arg BASE="$base" -t "$image" "$work/src" || fatal
echo "# tessera image build: $(($(date +%s) - t0)) s"
t0=$(date +%s)
# shellcheck disable=SC2086
step "PostgreSQL and nginx images built (deploy/postgres, deploy/nginx)" sh -c "
    nice podman build $cache --format docker --build-arg BASE='$base' -t '$pg_image' '$work/src/deploy/postgres' &&
    nice podman build $cache --format docker --build-arg BASE='$base' -t '$nginx_image' \
        -f '$work/src/deploy/nginx/Containerfile' '$work/src/deploy'" || fatal
echo "# PostgreSQL and nginx image builds: $(($(date +%s) - t0)) s"
size_bytes=$(podman image inspect --format '{{.Size}}' "$image")
size=$(awk -v b="$size_bytes" 'BEGIN { printf "%.0f", b / 1e6 }')
base_size=$(podman image inspect --format '{{.Size}}' "$base" | awk '{ printf "%.0f", $1 / 1e6 }')

# What the runtime image is: a non-root user, the volumes, the health check,
# no compiler.
check_image() {
    podman image inspect --format '{{.Config.User}} {{json .Config.Volumes}} {{json .Config.Healthcheck.Test}}' "$image"
    podman image inspect --format '{{.Config.User}}' "$image" | grep -qx 'tessera:tessera' &&
    podman image inspect --format '{{json .Config.Volumes}}' "$image" | grep -q '"/var/lib/tessera"' &&
    podman image inspect --format '{{json .Config.Volumes}}' "$image" | grep -q '"/data"' &&
    podman image inspect --format '{{json .Config.Healthcheck.Test}}' "$image" | grep -q healthz &&
    podman run --rm --entrypoint /bin/sh "$image" -c \
        'id -u | grep -qvx 0 && ! command -v cc && ! command -v make && ! ls /usr/include/openslide'
}
step "runtime image: non-root user, state and data volumes, HEALTHCHECK, no compiler or headers" check_image

# ---- the systemd unit --------------------------------------------------------
# verify resolves the unit's dependencies and ExecStart in a root: this
# machine's units, the image's binary where the unit expects it.
check_unit() {
    r=$work/unitroot
    mkdir -p "$r/usr/lib/systemd" "$r/etc/systemd/system" "$r/usr/local/bin" "$r/etc/tessera"
    cp -a /lib/systemd/system "$r/usr/lib/systemd/"
    cp "$work/src/deploy/tessera.service" "$r/etc/systemd/system/"
    : >"$r/etc/tessera/tessera.env"
    c=$(podman create "$image") || return 1
    podman cp "$c:/opt/tessera/bin/tessera" "$r/usr/local/bin/tessera"
    podman rm -v "$c" >/dev/null
    # verify exits 0 on settings it ignores: any message is a failure.
    out=$(systemd-analyze verify --root="$r" tessera.service 2>&1)
    echo "$out"
    [ -z "$out" ] || return 1
    for k in NoNewPrivileges=yes ProtectSystem=strict ReadWritePaths=/var/lib/tessera PrivateTmp=yes \
             Restart=on-failure EnvironmentFile=; do
        grep -q "^$k" "$work/src/deploy/tessera.service" || { echo "no $k"; return 1; }
    done
    systemd-analyze security --offline=yes --root="$r" --threshold=50 tessera.service >"$work/security" 2>&1
    rc=$?
    tail -n 1 "$work/security"
    return $rc
}
step "deploy/tessera.service: systemd-analyze verify clean, hardening set, exposure at most 5.0" check_unit &&
    tail -n 1 "$work/security" | diag

# ---- the compose stack ---------------------------------------------------------
port=$(perl -MIO::Socket::INET -e \
    'my $s = IO::Socket::INET->new(Listen => 1, LocalAddr => "127.0.0.1:0") or die; print $s->sockport')
url=http://127.0.0.1:$port
export TESSERA_IMAGE="$image" BASE_IMAGE="$base" TESSERA_PUBLISH="127.0.0.1:$port"
TESSERA_DB_PASSWORD=$(head -c 18 /dev/urandom | od -An -tx1 | tr -d ' \n')
TESSERA_SESSION_SECRET=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
export TESSERA_DB_PASSWORD TESSERA_SESSION_SECRET
compose() { (cd "$work/src/deploy" && podman-compose -p "$proj" -f "$compose_file" "$@"); }
# docker-compose is not run here (that needs dockerd), but its schema
# check says the file is one it accepts too.
if command -v docker-compose >/dev/null 2>&1; then
    step "docker-compose config accepts deploy/compose.yaml (its schema check; not run with dockerd)" \
        sh -c "cd '$work/src/deploy' && TESSERA_TRUSTED_PROXIES= docker-compose -f '$compose_file' config -q"
else
    ok "docker-compose config accepts deploy/compose.yaml # SKIP docker-compose is not installed"
fi
t0=$(date +%s)
step "podman-compose up -d (project $proj, nginx on $url)" compose up -d || fatal

# Condition-based waits with generous limits (a loaded machine).
wait_for() { # SECONDS COMMAND...: until COMMAND succeeds
    limit=$1
    shift
    end=$(($(date +%s) + limit))
    until "$@"; do
        [ "$(date +%s)" -lt "$end" ] || return 1
        sleep 1
    done
}
exited_zero() { [ "$(podman inspect --format '{{.State.Status}} {{.State.ExitCode}}' "$1")" = "exited 0" ]; }
healthy() { podman healthcheck run "$1" >/dev/null 2>&1; }
both_healthy() { healthy "${proj}_tessera1_1" && healthy "${proj}_tessera2_1"; }
ready() { curl -fsS "$url/readyz" >/dev/null 2>&1; }
step "the demo slide made in the data volume (the init step)" wait_for 300 exited_zero "${proj}_demo-data_1"
step "both instances healthy (the image's HEALTHCHECK: /healthz)" wait_for 300 both_healthy || fatal
step "GET /readyz through nginx on the published port" wait_for 120 ready || fatal
echo "# stack up: $(($(date +%s) - t0)) s"

# A store that is unavailable for a moment is retried, as an operator would:
# podman's DNS (aardvark-dns) has been seen to miss "postgres" for a new
# exec while the stack was still settling, though both instances were
# connected and ready (once in about ten runs).
tries=0
while :; do
    tries=$((tries + 1))
    token=$(podman exec "${proj}_tessera1_1" tessera user add alice 2>"$work/useradd.err")
    [ -n "$token" ] && break
    grep -q 'unavailable' "$work/useradd.err" && [ "$tries" -lt 15 ] || break
    echo "# tessera user add: $(grep -v 'systemd connection' "$work/useradd.err" | head -n 1); again in 2 s"
    sleep 2
done
if [ -n "$token" ]; then
    ok "tessera user add alice (in an instance's container)"
else
    not_ok "tessera user add alice (in an instance's container)"
    { grep -v 'systemd connection' "$work/useradd.err"
      podman ps -a --filter "label=io.podman.compose.project=$proj" --format '{{.Names}} {{.Status}}'
      podman logs --tail 15 "${proj}_tessera1_1" 2>&1; } | diag
    fatal
fi

echo "== stack.mjs" >>"$log"
restart="podman restart -t 60 \"${proj}_\$1_1\" >/dev/null"
node "$work/src/tests/deploy/stack.mjs" "$url" "$token" "$work/src/examples" "$restart" >"$work/stack.out" 2>>"$log"
stack_rc=$?
while IFS= read -r line; do
    case $line in
        "ok "*) ok "${line#ok }" ;;
        "not ok "*) not_ok "${line#not ok }" ;;
        *) echo "$line" ;;
    esac
done <"$work/stack.out"
[ "$stack_rc" = 0 ] || [ "$failed" -gt 0 ] || not_ok "stack.mjs exited $stack_rc"
step "both instances healthy again after the restart" wait_for 120 both_healthy
podman logs "${proj}_nginx_1" 2>&1 | grep 'tessera-nginx:' | diag

# Figures for sizing (docs/deployment.md): memory now, the state's size
# after these three workflows.
# shellcheck disable=SC2046
podman stats --no-stream --format '{{.Name}} {{.MemUsage}}' \
    $(podman ps -q --filter "label=io.podman.compose.project=$proj") 2>/dev/null | sed 's/^/memory: /' | diag
podman exec "${proj}_tessera1_1" du -sh /var/lib/tessera 2>/dev/null | sed 's/^/state volume: /' | diag

# The backup docs/deployment.md describes, of the running stack: a dump
# that pg_restore can read and that holds tessera's tables.
backup() {
    podman exec "${proj}_postgres_1" pg_dump -U tessera -Fc tessera >"$work/tessera.dump" || return 1
    # (the container's pg_restore: the host need not have PostgreSQL)
    podman exec -i "${proj}_postgres_1" pg_restore -l <"$work/tessera.dump" >"$work/dump.list" || return 1
    tables=$(grep -c ' TABLE ' "$work/dump.list")
    echo "dump: $(wc -c <"$work/tessera.dump") bytes, $tables tables"
    grep -q ' TABLE public workflows ' "$work/dump.list" && [ "$tables" -ge 5 ]
}
step "pg_dump of the running stack (pg_restore -l reads it: tessera's tables)" backup &&
    grep '^dump:' "$log" | tail -n 1 | diag

# ---- down ----------------------------------------------------------------------
t0=$(date +%s)
step "podman-compose down -v" compose down -v
for net in $(podman network ls -q --filter "label=io.podman.compose.project=$proj"); do
    podman network rm -f "$net" >>"$log" 2>&1
done
left() {
    c=$(podman ps -aq --filter "label=io.podman.compose.project=$proj")
    v=$(podman volume ls -q --filter "label=io.podman.compose.project=$proj")
    a=$(podman volume ls -q | sort | comm -13 "$work/volumes_before" -)
    nw=$(podman network ls -q --filter "label=io.podman.compose.project=$proj")
    echo "containers: $c volumes: $v new volumes: $a networks: $nw"
    [ -z "$c$v$a$nw" ]
}
step "nothing left: no container, volume or network of the project" left
teardown
echo "# down: $(($(date +%s) - t0)) s"
summary
[ "$failed" -eq 0 ]
