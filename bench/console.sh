#!/usr/bin/env bash
# Console live streams (docs/console.md): STREAMS open console tabs, each holding the
# one change stream a tab holds (GET /api/v1/changes), against one site; side by
# side with the same site and one stream (the anchor).
#
#   bench/console.sh      STREAMS=1000 CHANGES=50 IDLE=20
#
# Then the same with every stream also loading the overview (GET /api/v1/status)
# after each answer, as a tab on the overview does: the time to the last tab's
# reloaded overview.
#
# Figures: the site's RSS and CPU while every stream is parked and nothing changes,
# and the time from a change (POST /api/v1/tokens) to its answer at the last stream
# (p50, p99 over CHANGES changes). Client and site share the 2 cores.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
STREAMS="${STREAMS:-1000}"
CHANGES="${CHANGES:-50}"
IDLE="${IDLE:-20}"

make_workdir console
snapshot_depot
TREE="(none: the catalog only)" TREE_FILES=0 TREE_BYTES=0
RUNS_NOTE="one run of each; p50 and p99 over the CHANGES changes"
PIDS=()
stop_all() {
  local p
  for p in "${PIDS[@]:-}"; do [[ -n "$p" ]] && kill "$p" 2>/dev/null && wait "$p" 2>/dev/null; done
  cleanup
}
trap stop_all EXIT

"$DEPOT" --json site init --data "$WORK/site" --code BENCH --listen 127.0.0.1:0 >"$WORK/init.json"
ADMIN=$(json_field "$WORK/init.json" admin_token)
port=$(free_port)
serve_start site site serve --data "$WORK/site" --listen "127.0.0.1:$port"
PIDS+=("$SERVE_PID")
url="http://127.0.0.1:$port"
READ=$(DEPOT_SITE="$url" DEPOT_TOKEN="$ADMIN" "$DEPOT" --json token create --role read-only |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')
ulimit -n 65536 2>/dev/null || true

run() {  # run N [RELOAD] -> the JSON line of console_streams.py
  settle
  python3 "$bench_dir/console_streams.py" "$url" "$ADMIN" "$READ" "$1" "$CHANGES" "$IDLE" "$SERVE_PID" "${2:-0}"
}
log "anchor: 1 stream"
one=$(run 1)
log "  $one"
log "$STREAMS streams"
many=$(run "$STREAMS")
log "  $many"
log "anchor with reloads: 1 stream"
one_r=$(run 1 1)
log "  $one_r"
log "$STREAMS streams with reloads"
many_r=$(run "$STREAMS" 1)
log "  $many_r"

f() { python3 -c 'import json,sys; print(json.loads(sys.argv[1])[sys.argv[2]])' "$1" "$2"; }
print_machine
echo "console live streams (depot $(git -C "$repo_root" rev-parse --short HEAD)), $CHANGES changes, idle ${IDLE}s"
printf '%-12s %10s %12s %14s %14s %14s\n' streams rss_MiB idle_cpu_s/s first_p50_ms last_p50_ms last_p99_ms
for j in "$one" "$many"; do
  printf '%-12s %10.1f %12s %14s %14s %14s\n' "$(f "$j" streams)" "$(calc "$(f "$j" rss_kib) / 1024")" \
    "$(f "$j" idle_cpu_s_per_s)" "$(f "$j" first_p50_ms)" "$(f "$j" last_p50_ms)" "$(f "$j" last_p99_ms)"
done
echo "ratio $STREAMS/1: last-stream p99 $(calc "$(f "$many" last_p99_ms) / $(f "$one" last_p99_ms)")x," \
  "RSS $(calc "$(f "$many" rss_kib) / $(f "$one" rss_kib)")x"
echo "with each tab reloading the overview after each change:"
printf '%-12s %16s %16s\n' streams reloaded_p50_ms reloaded_p99_ms
for j in "$one_r" "$many_r"; do
  printf '%-12s %16s %16s\n' "$(f "$j" streams)" "$(f "$j" reloaded_p50_ms)" "$(f "$j" reloaded_p99_ms)"
done
echo "ratio $STREAMS/1: last reloaded overview p99 $(calc "$(f "$many_r" reloaded_p99_ms) / $(f "$one_r" reloaded_p99_ms)")x"
