#!/bin/sh
# pgserver.sh - a throw-away PostgreSQL server for tests, benchmarks and
# `make run-cluster`: Debian's postgresql-15 started with initdb/pg_ctl in a
# temporary directory, on a free loopback port, as an unprivileged user
# (initdb and pg_ctl refuse to run as root: when run as root the server runs
# as the `postgres` user that the Debian package creates).
#
#   tests/lib/pgserver.sh start DIR    start a server whose files live in DIR
#                                      (created; must not exist or be empty);
#                                      prints its URL, also kept in DIR/url
#   tests/lib/pgserver.sh stop DIR     stop it (fast) and remove DIR
#   tests/lib/pgserver.sh restart DIR  stop and start again on the same port
#   tests/lib/pgserver.sh kill DIR     stop it the hard way (immediate mode)
#   tests/lib/pgserver.sh run CMD ...  start one in a fresh temporary directory,
#                                      run CMD with TESSERA_TEST_PG_URL set to its
#                                      URL, then stop it and remove the directory
#                                      (also when CMD fails or is interrupted);
#                                      exits with CMD's status
#
# The server is the durable kind the service promises on (fsync and
# synchronous_commit on); only trust authentication on loopback and the
# socket in DIR make it a test server. Its log is DIR/log.
set -eu

PGBIN=${TESSERA_PGBIN:-/usr/lib/postgresql/15/bin}

die() { echo "pgserver.sh: $*" >&2; exit 1; }

# Runs a PostgreSQL program as the server's owner.
as_owner() {
    if [ "$(id -u)" = 0 ]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

free_port() {
    perl -MIO::Socket::INET -e \
        'my $s = IO::Socket::INET->new(Listen => 1, LocalAddr => "127.0.0.1:0") or die; print $s->sockport, "\n"'
}

# initdb into DIR/data as a superuser "tessera" with a database "tessera".
init_cluster() {
    dir=$1
    [ -x "$PGBIN/initdb" ] || die "no $PGBIN/initdb: install postgresql-15 (scripts/install-deps.sh)"
    mkdir -p "$dir"
    if [ "$(id -u)" = 0 ]; then
        chown postgres "$dir"
        # the owner must reach DIR: temporary parents are often mode 0700
        chmod o+x "$(dirname "$dir")"
    fi
    chmod 700 "$dir"
    as_owner "$PGBIN/initdb" -D "$dir/data" -U tessera --auth=trust --no-sync -E UTF8 \
        --locale=C >"$dir/initdb.log" 2>&1 || { cat "$dir/initdb.log" >&2; die "initdb failed"; }
}

# Starts the cluster of DIR on PORT; fails if the port is taken.
start_on() {
    dir=$1 port=$2
    as_owner "$PGBIN/pg_ctl" -D "$dir/data" -l "$dir/log" -w -t 60 -o \
        "-c listen_addresses=127.0.0.1 -c port=$port -c unix_socket_directories='$dir' \
         -c max_connections=300 -c fsync=on -c synchronous_commit=on \
         -c log_min_messages=warning -c log_line_prefix='%m [%p] '" start >/dev/null 2>&1
}

cmd_start() {
    dir=$1
    if [ -d "$dir/data" ]; then die "$dir already holds a cluster"; fi
    init_cluster "$dir"
    tries=0
    while :; do
        port=$(free_port)
        if start_on "$dir" "$port"; then break; fi
        tries=$((tries + 1))
        [ "$tries" -lt 5 ] || { tail -n 20 "$dir/log" >&2 2>/dev/null; die "the server did not start"; }
    done
    echo "$port" >"$dir/port"
    as_owner "$PGBIN/psql" -h "$dir" -p "$port" -U tessera -d postgres -qAt \
        -c "CREATE DATABASE tessera" >/dev/null
    url="postgresql://tessera@127.0.0.1:$port/tessera"
    echo "$url" >"$dir/url"
    echo "$url"
}

cmd_stop() {
    dir=$1 mode=${2:-fast}
    if [ -f "$dir/data/postmaster.pid" ]; then
        as_owner "$PGBIN/pg_ctl" -D "$dir/data" -m "$mode" -w -t 60 stop >/dev/null 2>&1 || true
    fi
}

cmd_restart() {
    dir=$1
    cmd_stop "$dir"
    start_on "$dir" "$(cat "$dir/port")" || die "the server did not start again"
}

cmd_run() {
    dir=$(mktemp -d "${TMPDIR:-/tmp}/tessera-pg.XXXXXX")
    trap 'cmd_stop "$dir" immediate; rm -rf "$dir"' EXIT
    trap 'exit 130' INT TERM
    TESSERA_TEST_PG_URL=$(cmd_start "$dir/pg")
    export TESSERA_TEST_PG_URL
    set +e
    "$@"
    rc=$?
    set -e
    return $rc
}

case "${1:-}" in
start) [ $# -eq 2 ] || die "usage: pgserver.sh start DIR"; cmd_start "$2" ;;
stop) [ $# -eq 2 ] || die "usage: pgserver.sh stop DIR"; cmd_stop "$2"; rm -rf "$2" ;;
restart) [ $# -eq 2 ] || die "usage: pgserver.sh restart DIR"; cmd_restart "$2" ;;
kill) [ $# -eq 2 ] || die "usage: pgserver.sh kill DIR"; cmd_stop "$2" immediate ;;
run) shift; [ $# -ge 1 ] || die "usage: pgserver.sh run CMD [ARG...]"; cmd_run "$@" ;;
*) die "usage: pgserver.sh start|stop|restart|kill DIR | run CMD [ARG...]" ;;
esac
