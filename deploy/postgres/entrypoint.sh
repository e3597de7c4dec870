#!/bin/sh
# The entry point of deploy/postgres/Containerfile: on the first start (no
# cluster in PGDATA) initdb with POSTGRES_USER as the superuser and
# POSTGRES_PASSWORD for it (SCRAM over the network; on the local socket the
# container's user postgres may be that user), then the database POSTGRES_DB
# owned by it; then, and on every later start,
# the server in the foreground as PID 1 (it gets the stop signal itself and
# shuts down cleanly).
#
# The cluster is made in PGDATA.init and renamed to PGDATA when complete, so
# a first start that was interrupted is begun again rather than leaving a
# cluster without its database. PGDATA is a directory inside the volume (as
# the official image recommends) for that rename.
set -eu
: "${PGDATA:=/var/lib/postgresql/data/pgdata}"
user=${POSTGRES_USER:-postgres}
db=${POSTGRES_DB:-$user}
die() { echo "tessera-postgres: $*" >&2; exit 1; }

if [ ! -s "$PGDATA/PG_VERSION" ]; then
    [ -n "${POSTGRES_PASSWORD:-}" ] || die "POSTGRES_PASSWORD must be set for the first start"
    final=$PGDATA
    PGDATA=$final.init
    rm -rf "$PGDATA"
    pwfile=$(mktemp)
    printf '%s\n' "$POSTGRES_PASSWORD" >"$pwfile"
    # Checksums: a corrupt page is an error, not wrong data.
    initdb -D "$PGDATA" -U "$user" --pwfile="$pwfile" --auth=scram-sha-256 \
        --encoding=UTF8 --locale=C.UTF-8 --data-checksums >/dev/null
    rm -f "$pwfile"
    # Other containers reach it over the compose network (initdb allows
    # only loopback); the durability settings tessera relies on, explicitly.
    echo "host all all all scram-sha-256" >>"$PGDATA/pg_hba.conf"
    # On the socket inside the container (podman exec ... pg_dump), the
    # container's user postgres may be $user without the password.
    sed -i 's/^local\([[:space:]]\{1,\}all[[:space:]]\{1,\}all[[:space:]]\{1,\}\)scram-sha-256$/local\1peer map=container/' \
        "$PGDATA/pg_hba.conf"
    echo "container postgres $user" >>"$PGDATA/pg_ident.conf"
    cat >>"$PGDATA/postgresql.conf" <<EOF
listen_addresses = '*'
unix_socket_directories = '/run/postgresql'
fsync = on
synchronous_commit = on
full_page_writes = on
max_connections = ${POSTGRES_MAX_CONNECTIONS:-200}
EOF
    if [ "$db" != postgres ]; then
        # A private server on the socket only, to create the database.
        pg_ctl -D "$PGDATA" -o "-c listen_addresses=''" -w start >/dev/null
        PGPASSWORD=$POSTGRES_PASSWORD psql -v ON_ERROR_STOP=1 -q -h /run/postgresql \
            -U "$user" -d postgres -c "CREATE DATABASE \"$db\" OWNER \"$user\"" >/dev/null
        pg_ctl -D "$PGDATA" -m fast -w stop >/dev/null
    fi
    mv "$PGDATA" "$final"
    PGDATA=$final
    echo "tessera-postgres: initialised $PGDATA (user $user, database $db)"
fi
exec postgres -D "$PGDATA"
