#!/usr/bin/env bash
# Package upload: `depot package create` of the 1 GiB standard tree to a site on
# loopback (snapshot, ask which chunks the site lacks, upload them, the site
# re-verifies every chunk and file hash and signs) vs the offline `depot repo add` of
# the same tree into a fresh repository. Alternated, RUNS each, page cache warmed,
# medians; a fresh site (and repository) per run so every run uploads everything.
# Target: package create throughput >= 0.8 x repo add. The site runs on the same 2
# cores: its CPU shows in the `others` column of package create.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

ensure_deps
ensure_tree
make_workdir upload
snapshot_depot

for i in $(seq 0 "$RUNS"); do
  "$DEPOT" repo init "$WORK/repo-$i" >/dev/null
  "$DEPOT" --json site init --data "$WORK/site-$i" --code B$i --listen 127.0.0.1:0 >"$WORK/site-$i.json"
done
SITE_PID=""
start_site() {
  local i="$1"
  serve_start "serve-$i" site serve --data "$WORK/site-$i"
  SITE_PID=$SERVE_PID
  DEPOT_SITE=$SERVE_URL
  DEPOT_TOKEN=$(json_field "$WORK/site-$i.json" admin_token)
  export DEPOT_SITE DEPOT_TOKEN
  SERVER_PIDS=("$SITE_PID")
}
stop_site() {
  [[ -n "$SITE_PID" ]] && { kill "$SITE_PID"; wait "$SITE_PID" || true; }
  SITE_PID=""
  SERVER_PIDS=()
}
trap 'stop_site; cleanup' EXIT

log "warm-up runs (not timed)"
settle; warm "$TREE"
"$DEPOT" --json repo add "$WORK/repo-0" --package bench --source "$TREE" >/dev/null
start_site 0; warm "$TREE"
"$DEPOT" --json package create bench --source "$TREE" >/dev/null
stop_site

for i in $(seq "$RUNS"); do
  log "round $i/$RUNS"
  settle; warm "$TREE"
  time_run repo_add "$i" "$DEPOT" --json repo add "$WORK/repo-$i" --package bench --source "$TREE"
  start_site "$i"
  settle; warm "$TREE"
  time_run package_create "$i" "$DEPOT" --json package create bench --source "$TREE"
  stop_site
done

for i in $(seq "$RUNS"); do
  b=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["bytes"])' "$WORK/log/package_create.$i.out")
  [[ "$b" == "$TREE_BYTES" ]] || die "package create run $i uploaded a version of $b bytes, the tree has $TREE_BYTES"
done
phases=$(python3 -c 'import json,sys; s=json.load(open(sys.argv[1]))["seconds"]; print("snapshot %.2f s, upload %.2f s, commit %.2f s" % (s["snapshot"], s["upload"], s["commit"]))' "$WORK/log/package_create.1.out")
aw=$(median repo_add 3); pw=$(median package_create 3)

echo
echo "================ upload summary ================"
print_machine
printf '%-22s %8s %9s %8s %8s %12s  %s\n' "" "wall s" "MB/s" "user s" "sys s" "site CPU s" "all walls"
for l in repo_add package_create; do
  w=$(median $l 3)
  printf '%-22s %8s %9s %8s %8s %12s  %s\n' "$l" "$w" "$(mbps "$TREE_BYTES" "$w")" "$(median $l 4)" "$(median $l 5)" \
    "$([[ $l == package_create ]] && median $l 8 || echo -)" "$(all_walls $l)"
done
echo "package create phases (run 1): $phases"
echo "RATIO package create / repo add throughput: $(calc "$aw / $pw")x   (target >= 0.8x)"
echo "(client and site share the 2 cores; both make what they wrote durable before returning)"
echo "================================================"
