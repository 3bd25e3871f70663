#!/usr/bin/env bash
# A throwaway PostgreSQL server for tests: Debian's initdb + pg_ctl in a new directory
# under $TMPDIR (which the `postgres` user can reach, unlike many checkouts), listening
# only on a Unix socket there (no TCP port to collide with), trust authentication.
# ctest starts it before the tests that need it and stops it after them (the
# `postgres` fixture in CMakeLists.txt); the tests read DIR/conninfo.
#   scripts/pg-temp.sh start DIR | stop DIR
# As root the server runs as the `postgres` user (PostgreSQL refuses to run as root).
# Durability is off (fsync, synchronous_commit): the tests check depot, not the disk.
set -euo pipefail
cmd="${1:?usage: pg-temp.sh start|stop DIR}"
dir="${2:?usage: pg-temp.sh start|stop DIR}"
bin="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)"
[[ -x "$bin/pg_ctl" ]] || {
  echo "pg-temp: PostgreSQL is missing; run scripts/install-deps.sh --test" >&2
  exit 2
}
as_owner=()
if [[ $(id -u) == 0 ]]; then as_owner=(runuser -u postgres --); fi
case "$cmd" in
  start)
    "$0" stop "$dir"
    mkdir -p "$dir"
    srv="$(mktemp -d "${TMPDIR:-/tmp}/depot-pg.XXXXXX")"
    chmod 755 "$srv"
    echo "$srv" >"$dir/server-dir"
    if ((${#as_owner[@]})); then chown postgres "$srv"; fi
    "${as_owner[@]}" "$bin/initdb" -D "$srv/data" -U postgres --auth=trust -E UTF8 \
      --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 || { cat "$dir/initdb.log" >&2; exit 1; }
    "${as_owner[@]}" "$bin/pg_ctl" -D "$srv/data" -l "$srv/server.log" -w -t 60 \
      -o "-k $srv -c listen_addresses= -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=300" \
      start >/dev/null || { cat "$srv/server.log" >&2; exit 1; }
    echo "host=$srv user=postgres dbname=postgres" >"$dir/conninfo"
    ;;
  stop)
    [[ -f "$dir/server-dir" ]] || exit 0
    srv="$(cat "$dir/server-dir")"
    if [[ -d "$srv/data" ]]; then
      "${as_owner[@]}" "$bin/pg_ctl" -D "$srv/data" -m immediate -w stop >/dev/null 2>&1 || true
    fi
    rm -rf "$srv" "$dir/server-dir" "$dir/conninfo"
    ;;
  *)
    echo "usage: pg-temp.sh start|stop DIR" >&2
    exit 2
    ;;
esac
