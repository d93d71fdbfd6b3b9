#!/usr/bin/env bash
# A private PostgreSQL 15 cluster for tests and benchmarks (Debian's postgresql package, which
# scripts/setup.sh installs without starting its service). Loopback only, trust auth for the
# `slipway` role, fsync off: a throwaway cluster whose speed matters and whose data does not.
#
#   scripts/pg-test-server.sh start DIR PORT   initdb (once) and start; prints the URL
#   scripts/pg-test-server.sh stop DIR         fast shutdown, then removes DIR
#
# The server runs as the `postgres` user (it refuses to run as root); DIR is made for it.
set -euo pipefail
cmd=${1:?start|stop}
dir=${2:?DIR}
bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
[ -x "$bin/pg_ctl" ] || { echo "pg-test-server: PostgreSQL is not installed (scripts/setup.sh installs it)" >&2; exit 1; }
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }

case "$cmd" in
  start)
    port=${3:?PORT}
    mkdir -p "$dir"
    [ "$(id -u)" = 0 ] && chown postgres:postgres "$dir"
    if [ ! -f "$dir/data/PG_VERSION" ]; then
      as_pg "$bin/initdb" -D "$dir/data" -U slipway --auth=trust --no-sync -E UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 \
        || { cat "$dir/initdb.log" >&2; exit 1; }
    fi
    # max_connections: the fleet benchmark's coordinators and the suite's parallel test files.
    opts="-c listen_addresses=127.0.0.1 -c port=$port -c unix_socket_directories=$dir -c fsync=off"
    opts="$opts -c synchronous_commit=off -c full_page_writes=off -c max_connections=300 -c shared_buffers=128MB"
    as_pg "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -o "$opts" -w -t 30 start >/dev/null \
      || { tail -n 20 "$dir/server.log" >&2; exit 1; }
    echo "postgres://slipway@127.0.0.1:$port/postgres"
    ;;
  stop)
    if [ -f "$dir/data/postmaster.pid" ]; then
      as_pg "$bin/pg_ctl" -D "$dir/data" -m fast -w -t 30 stop >/dev/null 2>&1 \
        || as_pg "$bin/pg_ctl" -D "$dir/data" -m immediate -w -t 10 stop >/dev/null 2>&1 || true
    fi
    rm -rf "$dir"
    ;;
  *) echo "usage: $0 start DIR PORT | stop DIR" >&2; exit 2 ;;
esac
