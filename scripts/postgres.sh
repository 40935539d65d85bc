#!/usr/bin/env bash
# Start a throwaway PostgreSQL server on 127.0.0.1 for the test suite and print its URL.
#   url=$(bash scripts/postgres.sh start)   ...   bash scripts/postgres.sh stop
# Installs Debian's postgresql package when no server binaries are present (needs root).
set -euo pipefail
PORT=${SCALER_PG_PORT:-55432}
DATA=${SCALER_PG_DATA:-/tmp/scaler-test-pg}

bin_dir() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1; }

as_owner() {  # the server refuses to run as root: use the postgres account then
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

case "${1:-start}" in
start)
  if [ -z "$(bin_dir)" ]; then
    [ "$(id -u)" = 0 ] || { echo "postgres.sh: no PostgreSQL server installed and not root" >&2; exit 1; }
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >&2
  fi
  BIN=$(bin_dir)
  if [ -f "$DATA/postmaster.pid" ]; then as_owner "$BIN/pg_ctl" -D "$DATA" -m immediate stop >&2 || true; fi
  rm -rf "$DATA"
  mkdir -p "$DATA"
  [ "$(id -u)" = 0 ] && chown postgres "$DATA"
  as_owner "$BIN/initdb" -D "$DATA" -A trust -U postgres >/dev/null
  as_owner "$BIN/pg_ctl" -D "$DATA" -l "$DATA/server.log" -w \
    -o "-p $PORT -k $DATA -c listen_addresses=127.0.0.1 -c max_connections=200 -c fsync=off" start >&2
  as_owner "$BIN/createdb" -h 127.0.0.1 -p "$PORT" -U postgres scaler_test
  echo "postgresql+psycopg2://postgres@127.0.0.1:$PORT/scaler_test"
  ;;
stop)
  BIN=$(bin_dir)
  [ -n "$BIN" ] && [ -f "$DATA/postmaster.pid" ] && as_owner "$BIN/pg_ctl" -D "$DATA" -m fast stop >&2
  rm -rf "$DATA"
  ;;
*)
  echo "usage: postgres.sh start|stop" >&2; exit 2 ;;
esac
