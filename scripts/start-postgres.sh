#!/usr/bin/env bash
# Starts a throwaway PostgreSQL for the analytics tests on 127.0.0.1:${PGPORT:-5432}.
#
# Installs PostgreSQL from Debian's packages when missing (run as root), creates a cluster
# under ${RAILGUN_PG_DIR:-/tmp/railgun-pg} owned by `postgres` (trust auth, loopback only),
# starts it, creates the database `railgun_test`, and prints the line
#   RAILGUN_TEST_DATABASE_URL=postgres://postgres@127.0.0.1:5432/railgun_test
# (`eval "$(scripts/start-postgres.sh | tail -1 | sed 's/^/export /')"` sets it). Idempotent:
# a second run finds the server up and only prints the URL.
set -euo pipefail

PORT="${PGPORT:-5432}"
DIR="${RAILGUN_PG_DIR:-/tmp/railgun-pg}"
DB="${RAILGUN_PG_DB:-railgun_test}"

if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
    echo "installing postgresql from apt" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2
    apt-get install -y -qq postgresql >&2
    # Debian starts a default cluster on 5432; ours replaces it.
    if command -v pg_lsclusters >/dev/null; then
        pg_lsclusters -h 2>/dev/null | while read -r ver name _; do
            pg_ctlcluster "$ver" "$name" stop >&2 || true
        done
    fi
fi
VER="$(ls /usr/lib/postgresql | sort -V | tail -1)"
BIN="/usr/lib/postgresql/$VER/bin"
as_pg() { runuser -u postgres -- "$@"; }

if "$BIN/pg_isready" -q -h 127.0.0.1 -p "$PORT"; then
    echo "postgres already running on 127.0.0.1:$PORT" >&2
else
    if [ ! -f "$DIR/PG_VERSION" ]; then
        mkdir -p "$DIR"
        chown postgres:postgres "$DIR"
        chmod 700 "$DIR"
        as_pg "$BIN/initdb" -D "$DIR" -A trust -U postgres --no-sync >&2
    fi
    as_pg "$BIN/pg_ctl" -D "$DIR" -l "$DIR/server.log" -w \
        -o "-c listen_addresses=127.0.0.1 -p $PORT -k /tmp -c max_connections=200" start >&2
fi
if ! as_pg "$BIN/psql" -h 127.0.0.1 -p "$PORT" -U postgres -tAc \
    "SELECT 1 FROM pg_database WHERE datname = '$DB'" | grep -q 1; then
    as_pg "$BIN/createdb" -h 127.0.0.1 -p "$PORT" -U postgres "$DB" >&2
fi
URL="postgres://postgres@127.0.0.1:$PORT/$DB"
export RAILGUN_TEST_DATABASE_URL="$URL"
echo "RAILGUN_TEST_DATABASE_URL=$URL"
