#!/usr/bin/env bash
# Agent install speed, update size and idle footprint, on the 1 GiB standard tree:
#   agent        `depot agent run --once` of a fresh agent: enroll, poll, download the
#                version from a DP on loopback (TUF, every chunk and file verified,
#                chunks written to its cache), assemble into content/, run the program
#                (`true`), report. Timed from start to exit.
#   curl         curl -s -o FILE of one 1 GiB file from nginx (the same bytes as one file)
#   casync       casync extract --store=URL/S.castr URL/X.caidx OUT over HTTP from nginx
# alternated RUNS times (default 3), medians. Then:
#   update       the standard 1 % edit (make-tree.py --mutate) as version 2, and the
#                bytes the agent received to install it (metadata, manifest, chunks:
#                message 4002's bytes_transferred) vs the bytes a seeded casync
#                extract fetches (the .cacnk files of chunks v1 lacks, plus the index).
#   idle RSS     VmRSS of `depot agent run` idling after the install (10 s, 1 s polls).
# Targets: agent/curl >= 0.4x, agent/casync >= 20x, update <= 0.5x, idle RSS <= 16 MiB.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

CHUNKS=16384:65536:262144

ensure_deps
ensure_tree
make_workdir agent
snapshot_depot

BIG="$BENCH_DATA/big${TREE_MIB}m.bin"
[[ "$TREE_MIB" == 1024 ]] && BIG="$BENCH_DATA/big1g.bin"
if [[ ! -f "$BIG" ]]; then
  log "making $BIG (the tree's bytes as one file)"
  (cd "$TREE" && find . -type f -print0 | sort -z | xargs -0 cat 2>/dev/null | head -c "$TREE_BYTES") >"$BIG.part" || true
  mv "$BIG.part" "$BIG"
fi
BIG_BYTES=$(stat -c %s "$BIG")

log "site, package, DP (not timed)"
SITE_DATA="$WORK/site"
"$DEPOT" --json site init --data "$SITE_DATA" --code BEN --listen 127.0.0.1:0 >"$WORK/init.json"
serve_start site site serve --data "$SITE_DATA"
SITE_PID=$SERVE_PID
export DEPOT_SITE="$SERVE_URL" DEPOT_TOKEN
DEPOT_TOKEN=$(json_field "$WORK/init.json" admin_token)
warm "$TREE"
"$DEPOT" --json package create bench --source "$TREE" --program "install=true" >"$WORK/create.json"
DP_PORT=$(free_port)
DP_TOKEN=$("$DEPOT" --json dp add near --url "http://127.0.0.1:$DP_PORT" | python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')
serve_start dp dp serve --data "$WORK/dp" --site "$DEPOT_SITE" --token "$DP_TOKEN" --listen "127.0.0.1:$DP_PORT"
DP_PID=$SERVE_PID
trap 'kill $SITE_PID $DP_PID 2>/dev/null || true; cleanup' EXIT
"$DEPOT" distribute bench --to near >/dev/null
wait_ready() {  # VERSION
  for _ in $(seq 1200); do
    "$DEPOT" --json dp show near | python3 -c '
import json, sys
v = [r for r in json.load(sys.stdin)["versions"] if r["version"] == int(sys.argv[1])]
sys.exit(0 if v and v[0]["state"] == "ready" else 1)' "$1" && return 0
    sleep 0.5
  done
  die "the DP did not get version $1 ready"
}
wait_ready 1
"$DEPOT" collection create all --rule 'os == "linux"' >/dev/null
"$DEPOT" deploy bench --program install --to all --required >/dev/null
ENROLL=$("$DEPOT" --json token create --role enroll --uses 1000 | python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')

log "casync store and nginx (not timed)"
WWW="$WORK/www"
mkdir -p "$WWW/casync"
ln -s "$BIG" "$WWW/big.bin"
warm "$TREE"
casync make --digest=sha256 --chunk-size="$CHUNKS" --store="$WWW/casync/S.castr" "$WWW/casync/X.caidx" "$TREE" >/dev/null
nginx_start "$WWW"
U="$NGINX_URL"

AGENT_FLAGS=(--site "$DEPOT_SITE" --enroll-token "$ENROLL" --once --poll-interval 1 --cache-size $((4 << 30)))
agent_once() { "$DEPOT" --log-level warn agent run --data "$1" "${AGENT_FLAGS[@]}"; }

mkdir -p "$WORK/out"
log "warm-up runs (not timed)"
settle; warm "$WORK/dp/repo"
agent_once "$WORK/out/agent-warm" >/dev/null
rm -rf "$WORK/out/agent-warm"
bulk_deleted
warm "$BIG"
curl -s -f -o "$WORK/out/curl-warm" "$U/big.bin"
rm -f "$WORK/out/curl-warm"

for i in $(seq "$RUNS"); do
  log "round $i/$RUNS"
  settle; warm "$WORK/dp/repo"
  time_run agent "$i" "$DEPOT" --log-level warn agent run --data "$WORK/out/agent-$i" "${AGENT_FLAGS[@]}"
  settle; warm "$WWW/casync"
  time_run casync "$i" casync extract --store="$U/casync/S.castr" "$U/casync/X.caidx" "$WORK/out/casync-$i"
  bulk_deleted  # casync-http passes chunks through ~117 k temporary files it deletes
  settle; warm "$BIG"
  time_run curl "$i" curl -s -f -o "$WORK/out/curl-$i" "$U/big.bin"
done

log "checking every output against its source (not timed)"
for i in $(seq "$RUNS"); do
  diff -r --no-dereference -q "$TREE" "$WORK/out/agent-$i/content/bench/1" >/dev/null || die "agent-$i differs from the tree"
  diff -r --no-dereference -q "$TREE" "$WORK/out/casync-$i" >/dev/null || die "casync-$i differs from the tree"
  cmp -s "$BIG" "$WORK/out/curl-$i" || die "curl-$i differs from $BIG"
done
log "all outputs identical to their sources"

log "update: the 1 % edit as version 2 (sizes, not timed)"
V2="$WORK/tree-v2"
cp -a "$TREE" "$V2"
mutated=$(python3 "$MAKE_TREE_PY" --mutate "$V2")
"$DEPOT" --json package update bench --source "$V2" --program "install=true" >"$WORK/update.json"
wait_ready 2
KEEP="$WORK/out/agent-1"
for i in $(seq 2 "$RUNS"); do rm -rf "$WORK/out/agent-$i" "$WORK/out/casync-$i" "$WORK/out/curl-$i"; done
agent_once "$KEEP" >/dev/null
diff -r --no-dereference -q "$V2" "$KEEP/content/bench/2" >/dev/null || die "the updated agent's content differs from version 2"
CLIENT=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["client"])' "$KEEP/agent.json")
read -r a_xfer a_fetched a_cache < <("$DEPOT" --json messages --client "$CLIENT" --code 4002 | python3 -c '
import json, sys
m = [m for m in json.load(sys.stdin)["messages"] if m["version"] == 2][0]["params"]
print(m["bytes_transferred"], m["bytes_fetched"], m["bytes_from_cache"])')
store_list() { find "$1" -type f -printf '%P %s\n' | sort; }
store_list "$WWW/casync/S.castr" >"$WORK/casync.before"
casync make --digest=sha256 --chunk-size="$CHUNKS" --store="$WWW/casync/S.castr" "$WWW/casync/X2.caidx" "$V2" >/dev/null
store_list "$WWW/casync/S.castr" >"$WORK/casync.after"
read -r c_files c_bytes < <(comm -13 "$WORK/casync.before" "$WORK/casync.after" | awk '{s+=$2} END {print NR+0, s+0}')
c_index=$(stat -c %s "$WWW/casync/X2.caidx")
# The seeded extract itself, so its result is checked too (its bytes are the new chunks).
casync extract --store="$U/casync/S.castr" --seed="$WORK/out/casync-1" "$U/casync/X2.caidx" "$WORK/out/casync-v2" >/dev/null
diff -r --no-dereference -q "$V2" "$WORK/out/casync-v2" >/dev/null || die "casync's seeded extract differs from version 2"

log "idle RSS (10 s of 1 s polls)"
"$DEPOT" agent run --data "$KEEP" --poll-interval 1 2>"$WORK/idle.err" &
IDLE=$!
sleep 10
rss_kb=$(awk '/VmRSS/ {print $2}' "/proc/$IDLE/status")
hwm_kb=$(awk '/VmHWM/ {print $2}' "/proc/$IDLE/status")
# Most of the RSS is shared library pages (libcrypto, libstdc++, libc) every process
# on the machine shares; PSS and private pages say what the agent itself costs.
pss_kb=$(awk '/^Pss:/ {print $2}' "/proc/$IDLE/smaps_rollup")
priv_kb=$(awk '/^Private_(Clean|Dirty):/ {s+=$2} END {print s}' "/proc/$IDLE/smaps_rollup")
kill $IDLE; wait $IDLE 2>/dev/null || true

aw=$(median agent 3); cw=$(median casync 3); uw=$(median curl 3)
amb=$(mbps "$TREE_BYTES" "$aw"); umb=$(mbps "$BIG_BYTES" "$uw")
echo
echo "================ agent summary ================"
print_machine
echo "tree: $TREE_FILES files, $TREE_BYTES bytes; DP and nginx on 127.0.0.1, sharing the 2 cores with the client"
printf '%-36s %8s %8s %8s %8s  %s\n' "" "wall s" "MB/s" "user s" "sys s" "all walls"
for l in agent casync curl; do
  case $l in
    agent) name="depot agent run --once (from a DP)"; bytes=$TREE_BYTES ;;
    casync) name="casync extract (HTTP, nginx)"; bytes=$TREE_BYTES ;;
    curl) name="curl one file (nginx)"; bytes=$BIG_BYTES ;;
  esac
  w=$(median $l 3)
  printf '%-36s %8s %8s %8s %8s  %s\n' "$name" "$w" "$(mbps "$bytes" "$w")" "$(median $l 4)" "$(median $l 5)" "$(all_walls $l)"
done
echo "update: $mutated"
echo "  agent received $a_xfer bytes (chunks fetched $a_fetched uncompressed, $a_cache from its cache)"
echo "  casync seeded extract fetches $c_files new chunk files, $c_bytes bytes, + index $c_index bytes"
echo "idle agent: VmRSS $rss_kb KiB (PSS $pss_kb KiB, private $priv_kb KiB), peak during the idle run $hwm_kb KiB"
echo "RATIO agent/curl (MB/s):        $(calc "$amb / $umb")x   (target >= 0.4x)"
echo "RATIO agent/casync:             $(calc "$cw / $aw")x   (target >= 20x)"
echo "RATIO update bytes agent/casync: $(calc "$a_xfer / ($c_bytes + $c_index)")x   (target <= 0.5x)"
echo "idle RSS:                       $(calc "$rss_kb / 1024") MiB   (target <= 16 MiB)"
echo "==============================================="
