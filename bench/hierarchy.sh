#!/usr/bin/env bash
# A tree of sites (docs/hierarchy.md), side by side with a DP of the same site on the
# same machine (the sites, the DP and the CLI share the 2 cores).
#
#   bench/hierarchy.sh        CHILDREN=50 IDLE_S=60 (0 children skips part 3)
#
# 1. Replication of the 1 GiB tree from a top site to a fresh child, vs a fresh DP's
#    sync from the same site: MB/s, child/DP (target >= 0.9x). Alternated RUNS times.
# 2. The standard 1 % edit (make-tree.py --mutate) as version 2: bytes the child
#    received (message 6006) vs bytes the DP received (its dp.synced log line)
#    (target <= 1.05x).
# 3. CHILDREN idle children long-polling the top: the top's CPU per second over
#    IDLE_S seconds, and the p99 of 1000 policy polls of an agent at one child meanwhile.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
CHILDREN="${CHILDREN:-50}"
IDLE_S="${IDLE_S:-60}"

ensure_deps
ensure_tree
make_workdir hier
snapshot_depot
PIDS=()
trap 'kill ${PIDS[*]:-} 2>/dev/null; cleanup' EXIT

log "top site with the tree as package 'tree'"
"$DEPOT" --json site init --data "$WORK/top" --code TOP --listen 127.0.0.1:0 >"$WORK/top-init.json"
serve_start top site serve --data "$WORK/top"
PIDS+=("$SERVE_PID"); TOP_PID=$SERVE_PID; TOP_URL=$SERVE_URL
export DEPOT_SITE=$TOP_URL DEPOT_TOKEN=$(json_field "$WORK/top-init.json" admin_token)
"$DEPOT" --json package create tree --source "$TREE" >/dev/null

# state_of_dp NAME -> the state of its first version record ("none" without one)
state_of_dp() {
  "$DEPOT" --json dp show "$1" | python3 -c 'import json,sys; v=json.load(sys.stdin)["versions"]; print(v[-1]["state"] if v else "none")'
}
# active_at URL TOKEN VERSION -> 0 when version VERSION of 'tree' is active there
active_at() {
  DEPOT_SITE=$1 DEPOT_TOKEN=$2 "$DEPOT" --json package show tree 2>/dev/null |
    python3 -c 'import json,sys; d=json.load(sys.stdin); sys.exit(0 if any(v["version"]==int(sys.argv[1]) and v["state"]=="active" for v in d["versions"]) else 1)' "$3"
}

# dp_run I: R_SECS = seconds for a fresh DP to sync the tree (run in this shell: it
# sets R_DP_PID and R_DP_NAME too)
dp_run() {
  local name="dp$1" tok pid t0 t1
  tok=$("$DEPOT" --json dp add "$name" --url http://127.0.0.1:9 | python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')
  serve_start "$name" dp serve --data "$WORK/$name" --site "$TOP_URL" --token "$tok" --listen 127.0.0.1:0 --scrub-every 24h
  pid=$SERVE_PID
  settle; warm "$WORK/top/library/repo"
  t0=$(date +%s.%N)
  "$DEPOT" distribute tree --to "$name" >/dev/null
  until [[ "$(state_of_dp "$name")" == ready ]]; do sleep 0.1; done
  t1=$(date +%s.%N)
  R_DP_PID=$pid; R_DP_NAME=$name
  R_SECS=$(calc "$t1 - $t0")
}

# child_run I: R_SECS = seconds for a fresh child to replicate the tree, from its start
child_run() {
  local code="C$1" tok t0 t1
  tok=$("$DEPOT" --json child add "$code" --all-packages | python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')
  "$DEPOT" --json site init --data "$WORK/$code" --code "$code" --listen 127.0.0.1:0 \
    --parent "$TOP_URL" --parent-token "$tok" >"$WORK/$code-init.json"
  settle; warm "$WORK/top/library/repo"
  t0=$(date +%s.%N)
  serve_start "$code" site serve --data "$WORK/$code"
  R_CHILD_PID=$SERVE_PID; R_CHILD_URL=$SERVE_URL; R_CHILD_CODE=$code
  R_CHILD_TOKEN=$(json_field "$WORK/$code-init.json" admin_token)
  until active_at "$R_CHILD_URL" "$R_CHILD_TOKEN" 1; do sleep 0.1; done
  t1=$(date +%s.%N)
  R_SECS=$(calc "$t1 - $t0")
}

log "1. replication of the 1 GiB tree: fresh DP vs fresh child, $RUNS rounds"
dp_s=(); child_s=()
for i in $(seq "$RUNS"); do
  dp_run "$i"; dp_s+=("$R_SECS")
  kill "$R_DP_PID"; wait "$R_DP_PID" 2>/dev/null || true
  if ((i < RUNS)); then "$DEPOT" dp remove "$R_DP_NAME" >/dev/null; rm -rf "$WORK/$R_DP_NAME"; fi
  child_run "$i"; child_s+=("$R_SECS")
  if ((i < RUNS)); then
    kill "$R_CHILD_PID"; wait "$R_CHILD_PID" 2>/dev/null || true
    "$DEPOT" child remove "$R_CHILD_CODE" >/dev/null; rm -rf "$WORK/$R_CHILD_CODE"
  else
    PIDS+=("$R_CHILD_PID")
  fi
  log "  round $i: DP ${dp_s[-1]} s, child ${child_s[-1]} s"
done
med() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END{print a[int((NR+1)/2)]}'; }
dp_med=$(med "${dp_s[@]}"); child_med=$(med "${child_s[@]}")

log "2. the 1 % edit as version 2: bytes to the last DP and the last child"
serve_start "dp$RUNS-b" --log-level info dp serve --data "$WORK/$R_DP_NAME" --listen 127.0.0.1:0 --scrub-every 24h
PIDS+=("$SERVE_PID"); DP_ERR="$WORK/dp$RUNS-b.err"
cp -a "$TREE" "$WORK/tree2"
python3 "$MAKE_TREE_PY" --mutate "$WORK/tree2" >/dev/null
"$DEPOT" --json package update tree --source "$WORK/tree2" >/dev/null
until [[ "$(state_of_dp "$R_DP_NAME")" == ready ]] && grep -q ' dp.synced ' "$DP_ERR" &&
  active_at "$R_CHILD_URL" "$R_CHILD_TOKEN" 2; do sleep 0.2; done
dp_bytes=$(grep ' dp.synced ' "$DP_ERR" | tail -1 | sed -n 's/.* transfer_bytes=\([0-9]*\).*/\1/p')
child_bytes=$(DEPOT_SITE=$R_CHILD_URL DEPOT_TOKEN=$R_CHILD_TOKEN "$DEPOT" --json messages --code 6006 |
  python3 -c 'import json,sys; print([m for m in json.load(sys.stdin)["messages"] if m.get("version") == 2][-1]["params"]["transfer_bytes"])')

idle_line="(skipped: CHILDREN=0)"
if ((CHILDREN > 0)); then
  log "3. $CHILDREN idle children polling the top"
  for i in $(seq "$CHILDREN"); do
    code="I$i"
    tok=$("$DEPOT" --json child add "$code" | python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')
    "$DEPOT" --json site init --data "$WORK/$code" --code "$code" --listen 127.0.0.1:0 \
      --parent "$TOP_URL" --parent-token "$tok" >"$WORK/$code-init.json"
    serve_start "$code" site serve --data "$WORK/$code"
    PIDS+=("$SERVE_PID")
  done
  # An agent's credential at the first idle child, for policy polls.
  I1_URL=$(json_field "$WORK/I1.out" url line)
  I1_TOKEN=$(json_field "$WORK/I1-init.json" admin_token)
  sleep 5  # every child has polled once and parked
  jiffies() { awk '{print $14 + $15}' "/proc/$TOP_PID/stat"; }
  j0=$(jiffies); t0=$(date +%s.%N)
  p99=$(python3 - "$I1_URL" "$I1_TOKEN" <<'PY'
import http.client, json, sys, time, urllib.parse
url, admin = sys.argv[1], sys.argv[2]
u = urllib.parse.urlparse(url)
def call(method, path, token, body=None):
    c = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
    c.request(method, path, body=json.dumps(body) if body is not None else None,
              headers={"Authorization": "Bearer " + token, "Content-Type": "application/json"})
    r = c.getresponse(); data = r.read(); c.close()
    return json.loads(data)
enroll = call("POST", "/api/v1/tokens", admin, {"role": "enroll", "uses": 1})["token"]
agent = call("POST", "/api/v1/agent/enroll", enroll, {"name": "bench-pc", "attributes": {"os": "linux"}})["token"]
c = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
lat = []
for i in range(1000):
    t = time.perf_counter()
    c.request("GET", "/api/v1/agent/policy", headers={"Authorization": "Bearer " + agent})
    c.getresponse().read()
    lat.append(time.perf_counter() - t)
    time.sleep(0.01)
lat.sort()
print("%.2f" % (lat[int(len(lat) * 0.99) - 1] * 1000))
PY
)
  left=$(calc "$IDLE_S - ($(date +%s.%N) - $t0)")
  awk -v l="$left" 'BEGIN{exit !(l > 0)}' && sleep "$left"
  j1=$(jiffies); t1=$(date +%s.%N)
  hz=$(getconf CLK_TCK)
  cpu=$(awk -v a="$j0" -v b="$j1" -v hz="$hz" -v s="$(calc "$t1 - $t0")" 'BEGIN{printf "%.4f", (b - a) / hz / s}')
  idle_line="top CPU $cpu s per second over $(calc "$t1 - $t0") s with $CHILDREN children parked in feed polls; p99 of 1000 policy polls at a child meanwhile: $p99 ms"
fi

cat <<SUMMARY

================ hierarchy summary ($(date -u +%FT%TZ)) ================
$(print_machine)

| benchmark | child | DP | child/DP | target |
|---|---|---|---|---|
| replication of the 1 GiB tree, MB/s (median of $RUNS) | $(mbps "$TREE_BYTES" "$child_med") | $(mbps "$TREE_BYTES" "$dp_med") | $(calc "$dp_med / $child_med") | >= 0.9x |
| bytes moved for the 1 % edit | $child_bytes | $dp_bytes | $(calc "$child_bytes / $dp_bytes") | <= 1.05x |

idle tree: $idle_line
(all runs, seconds: DP ${dp_s[*]}; child ${child_s[*]}; the child's time starts with its process)
=====================================================================
SUMMARY
