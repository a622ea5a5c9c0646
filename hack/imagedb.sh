#!/usr/bin/env bash
# The local ImageDB for tests and the demo: Debian's PostgreSQL server in a
# private data directory on a free port of 127.0.0.1, with the lab's tables
# from hack/imagedb-schema.sql. No system service is touched.
#
#   hack/imagedb.sh up       start (reuses a running one in the same state dir)
#   hack/imagedb.sh down     stop it and remove its state
#   hack/imagedb.sh env      print `export` lines: PGHOST PGPORT PGUSER PGDATABASE
#                            PGPASSWORD PLATEOP_IMAGEDB_URI PLATEOP_IMAGEDB_PASSWORD_FILE
#                            PLATEOP_IMAGEDB_DATADIR PLATEOP_PG_CTL
#   hack/imagedb.sh restart  restart the server (tests of reconnection)
#   hack/imagedb.sh psql     a psql shell on it
#
# Env: PLATEOP_IMAGEDB_DIR  state directory (default /tmp/plateop-imagedb)
#      PLATEOP_PORT_RANGE  LOW-HIGH where the port is picked (hack/ports.sh)
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
dir=${PLATEOP_IMAGEDB_DIR:-/tmp/plateop-imagedb}
db=imagedb
user=plateop

say() { echo "imagedb: $*" >&2; }
die() { say "$*"; exit 1; }

# shellcheck source=hack/ports.sh
. "$here/ports.sh"

pgbin() {
    local b
    b=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1)
    [ -n "$b" ] && [ -x "$b/initdb" ] || die "PostgreSQL server not found: run 'make deps' (installs postgresql)"
    echo "$b"
}

# PostgreSQL refuses to run as root; as root, run it as the postgres account.
as_owner() {
    if [ "$(id -u)" -eq 0 ]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

running() {
    [ -f "$dir/data/postmaster.pid" ] && [ -x "$dir/pg_ctl" ] && "$dir/pg_ctl" status >/dev/null 2>&1
}

cmd_up() {
    local bin port i
    if [ -f "$dir/env" ] && running; then
        say "already running in $dir; reusing it"
        return 0
    fi
    [ -d "$dir" ] && { say "stale state in $dir: removing it"; cmd_down_quiet; }
    bin=$(pgbin)
    command -v ss >/dev/null || die "ss not found: run 'make deps' (installs iproute2)"
    pick_port port

    # Any failure from here on removes what was made (and stops the server if it started).
    trap '[ $? -eq 0 ] || cmd_down_quiet' EXIT
    mkdir -p "$dir/data" "$dir/sock"
    [ "$(id -u)" -eq 0 ] && chown -R postgres:postgres "$dir"
    chmod 700 "$dir/data"
    # The password the lab would keep in a Kubernetes Secret, as a file.
    head -c 18 /dev/urandom | base64 | tr -d '/+=' >"$dir/password"
    chmod 644 "$dir/password"
    cat >"$dir/pg_ctl" <<EOF
#!/bin/sh
# pg_ctl for the ImageDB in $dir, run as the data directory's owner. The
# server's output goes to its log, never to the caller's (a test's pipe).
if [ "\$(id -u)" -eq 0 ]; then exec runuser -u postgres -- $bin/pg_ctl -D $dir/data -l $dir/postgres.log "\$@"; fi
exec $bin/pg_ctl -D $dir/data -l $dir/postgres.log "\$@"
EOF
    chmod +x "$dir/pg_ctl"

    as_owner "$bin/initdb" -D "$dir/data" -U "$user" --pwfile="$dir/password" \
        --auth-local=trust --auth-host=scram-sha-256 -E UTF8 --locale=C.UTF-8 \
        >"$dir/initdb.log" 2>&1 || { tail -n 20 "$dir/initdb.log" >&2; die "initdb failed (its output is above)"; }
    # A throwaway test database: durability traded for speed.
    cat >>"$dir/data/postgresql.conf" <<EOF
port = $port
listen_addresses = '127.0.0.1'
unix_socket_directories = '$dir/sock'
max_connections = 200
fsync = off
synchronous_commit = off
full_page_writes = off
shared_buffers = 128MB
logging_collector = off
EOF
    # Another program may take the port between the check and the bind: try others.
    for i in 1 2 3; do
        "$dir/pg_ctl" -w -t 60 start >/dev/null 2>&1 && break
        if [ "$i" -lt 3 ] && grep -q 'Address already in use' "$dir/postgres.log"; then
            pick_port port
            sed -i "s/^port = .*/port = $port/" "$dir/data/postgresql.conf"
            continue
        fi
        tail -n 20 "$dir/postgres.log" >&2 || true
        die "PostgreSQL did not start (port $port)"
    done
    as_owner "$bin/createdb" -h "$dir/sock" -p "$port" -U "$user" "$db" ||
        die "createdb failed"
    as_owner "$bin/psql" -X -q -v ON_ERROR_STOP=1 -h "$dir/sock" -p "$port" -U "$user" -d "$db" \
        -f "$here/imagedb-schema.sql" >/dev/null ||
        die "loading hack/imagedb-schema.sql failed"

    cat >"$dir/env" <<EOF
export PGHOST=127.0.0.1
export PGPORT=$port
export PGUSER=$user
export PGDATABASE=$db
export PGPASSWORD=$(cat "$dir/password")
export PLATEOP_IMAGEDB_URI='host=127.0.0.1 port=$port user=$user dbname=$db'
export PLATEOP_IMAGEDB_PASSWORD_FILE=$dir/password
export PLATEOP_IMAGEDB_DATADIR=$dir/data
export PLATEOP_PG_CTL=$dir/pg_ctl
EOF
    trap - EXIT
    say "up: 127.0.0.1:$port database $db (state in $dir); use: eval \"\$($0 env)\""
}

cmd_down_quiet() {
    if [ -x "$dir/pg_ctl" ]; then
        "$dir/pg_ctl" -w -t 30 -m fast stop >/dev/null 2>&1 || true
    fi
    rm -rf "$dir"
}

cmd_down() {
    [ -d "$dir" ] || return 0
    cmd_down_quiet
    say "down"
}

cmd_env() {
    [ -f "$dir/env" ] || die "no ImageDB in $dir: run '$0 up' first"
    cat "$dir/env"
}

cmd_restart() {
    running || die "no running ImageDB in $dir"
    "$dir/pg_ctl" -w -t 60 -m fast -l "$dir/postgres.log" restart >/dev/null
}

cmd_psql() {
    # shellcheck disable=SC1091
    . "$dir/env" 2>/dev/null || die "no ImageDB in $dir: run '$0 up' first"
    exec psql "$@"
}

case "${1:-}" in
up) cmd_up ;;
down) cmd_down ;;
env) cmd_env ;;
restart) cmd_restart ;;
psql) shift; cmd_psql "$@" ;;
*) echo "usage: $0 up|down|env|restart|psql" >&2; exit 2 ;;
esac
