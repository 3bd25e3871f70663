#!/usr/bin/env bash
# Distribution point serving and sync, side by side with nginx serving the same
# directory on the same machine (client and servers share the 2 cores).
#
#   bench/dp_serve.sh        DURATION=20 CONNS=64 OBJECTS=4096 SYNC=1 (1 GiB sync; 0 skips it)
#
# 1. wrk -t2 -cCONNS, random URLs over OBJECTS 64 KiB chunk files: req/s, DP vs nginx
#    (target >= 1.0x); the same over 1 KiB objects.
# 2. One 256 MiB object with curl: MB/s, DP vs nginx (target >= 0.9x).
# 3. RSS of the DP holding 1,000 idle keep-alive connections (target <= 64 MiB).
# 4. Sync of the 1 GiB standard tree from a site to a fresh DP on loopback: MB/s, and
#    as a fraction of curl's MB/s for one 1 GiB file from nginx.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
DURATION="${DURATION:-20}"
CONNS="${CONNS:-64}"
OBJECTS="${OBJECTS:-4096}"
SYNC="${SYNC:-1}"

ensure_deps
command -v wrk >/dev/null || die "wrk missing"
[[ "$SYNC" == 1 ]] && ensure_tree
[[ "$SYNC" == 1 ]] || { TREE="(not used)"; TREE_FILES=0; TREE_BYTES=0; }
make_workdir dp
snapshot_depot

log "site and DP"
"$DEPOT" --json site init --data "$WORK/site" --code BDP --listen 127.0.0.1:0 >"$WORK/init.json"
serve_start site site serve --data "$WORK/site"
SITE_PID=$SERVE_PID
DP_PID=""
trap 'kill $SITE_PID ${DP_PID:-} 2>/dev/null; cleanup' EXIT
DEPOT_SITE=$SERVE_URL
DEPOT_TOKEN=$(json_field "$WORK/init.json" admin_token)
export DEPOT_SITE DEPOT_TOKEN

log "objects: $OBJECTS x 64 KiB, $OBJECTS x 1 KiB, one 256 MiB (named by their SHA-256, like chunks)"
python3 - "$WORK/dp/repo" "$OBJECTS" "$WORK" <<'PY'
import hashlib, os, sys
root, n, work = sys.argv[1], int(sys.argv[2]), sys.argv[3]
for size, name in ((65536, "urls64k.lua"), (1024, "urls1k.lua")):
    paths = []
    for i in range(n):
        data = os.urandom(size)
        h = hashlib.sha256(data).hexdigest()
        d = os.path.join(root, "chunks", h[:2])
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, h), "wb") as f:
            f.write(data)
        paths.append(f"/repo/chunks/{h[:2]}/{h}")
    with open(os.path.join(work, name), "w") as f:
        f.write("paths = {\n" + ",\n".join('"%s"' % p for p in paths) + "}\n")
        f.write("request = function() return wrk.format('GET', paths[math.random(#paths)]) end\n")
os.makedirs(os.path.join(root, "big"), exist_ok=True)
with open(os.path.join(root, "big", "object256m"), "wb") as f:
    for _ in range(256):
        f.write(os.urandom(1 << 20))
PY
dtok=$("$DEPOT" --json dp add bench-dp --url http://127.0.0.1:9 | python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')
serve_start dp dp serve --data "$WORK/dp" --site "$DEPOT_SITE" --token "$dtok" --listen 127.0.0.1:0 --scrub-every 24h
DP_PID=$SERVE_PID
DP_URL=$SERVE_URL
nginx_start "$WORK/dp"
log "DP at $DP_URL (pid $DP_PID), nginx at $NGINX_URL"

# wrk_rps URL SCRIPT -> requests/s
wrk_rps() {
  settle
  wrk -t2 -c"$CONNS" -d"${DURATION}s" -s "$2" "$1" | awk '/^Requests\/sec/{print $2}'
}
declare -A R
for kind in 64k 1k; do
  warm "$WORK/dp/repo/chunks"
  wrk -t2 -c"$CONNS" -d3s -s "$WORK/urls$kind.lua" "$DP_URL" >/dev/null
  wrk -t2 -c"$CONNS" -d3s -s "$WORK/urls$kind.lua" "$NGINX_URL" >/dev/null
  for i in $(seq "$RUNS"); do
    R[dp-$kind-$i]=$(wrk_rps "$DP_URL" "$WORK/urls$kind.lua")
    R[ngx-$kind-$i]=$(wrk_rps "$NGINX_URL" "$WORK/urls$kind.lua")
    log "  $kind round $i: DP ${R[dp-$kind-$i]} req/s, nginx ${R[ngx-$kind-$i]} req/s"
  done
done
med() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END{print a[int((NR+1)/2)]}'; }
runs() { local i; for i in $(seq "$RUNS"); do printf '%s ' "${R[$1-$i]}"; done; }
dp64=$(med $(for i in $(seq "$RUNS"); do echo "${R[dp-64k-$i]}"; done))
ng64=$(med $(for i in $(seq "$RUNS"); do echo "${R[ngx-64k-$i]}"; done))
dp1=$(med $(for i in $(seq "$RUNS"); do echo "${R[dp-1k-$i]}"; done))
ng1=$(med $(for i in $(seq "$RUNS"); do echo "${R[ngx-1k-$i]}"; done))

curl_mbps() { settle; warm "$WORK/dp/repo/big/object256m"; curl -s -o /dev/null -w '%{speed_download}' "$1/repo/big/object256m" | awk '{printf "%.1f", $1/1e6}'; }
cd_runs=(); cn_runs=()
for i in $(seq "$RUNS"); do
  cd_runs+=("$(curl_mbps "$DP_URL")")
  cn_runs+=("$(curl_mbps "$NGINX_URL")")
  log "  256 MiB round $i: DP ${cd_runs[-1]} MB/s, nginx ${cn_runs[-1]} MB/s"
done
cdp=$(med "${cd_runs[@]}"); cngx=$(med "${cn_runs[@]}")

log "1000 idle keep-alive connections"
idle_rss=$(python3 - "$DP_URL" "$DP_PID" <<'PY'
import socket, sys, time, urllib.parse
u = urllib.parse.urlparse(sys.argv[1]); pid = sys.argv[2]
socks = []
for i in range(1000):
    s = socket.create_connection((u.hostname, u.port))
    s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    socks.append(s)
for s in socks:
    s.recv(4096)
time.sleep(1)
rss = [l for l in open(f"/proc/{pid}/status") if l.startswith("VmRSS")][0].split()[1]
print(int(rss) // 1024)
PY
)

sync_line="(skipped: SYNC=0)"
if [[ "$SYNC" == 1 ]]; then
  log "sync of the 1 GiB tree to a fresh DP"
  "$DEPOT" --json package create tree --source "$TREE" >/dev/null
  dtok2=$("$DEPOT" --json dp add sync-dp --url http://127.0.0.1:9 | python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')
  "$DEPOT" --json dp serve --data "$WORK/dp2" --site "$DEPOT_SITE" --token "$dtok2" --listen 127.0.0.1:0 \
    --scrub-every 24h >"$WORK/dp2.out" 2>"$WORK/dp2.err" &
  DP2_PID=$!
  sleep 1
  settle
  warm "$WORK/site/library/repo"
  t0=$(date +%s.%N)
  "$DEPOT" distribute tree --to sync-dp >/dev/null
  while :; do
    st=$("$DEPOT" --json dp show sync-dp | python3 -c 'import json,sys; v=json.load(sys.stdin)["versions"]; print(v[0]["state"] if v else "none")')
    [[ "$st" == ready ]] && break
    [[ "$st" == failed ]] && die "sync failed: $("$DEPOT" dp show sync-dp)"
    sleep 0.2
  done
  t1=$(date +%s.%N)
  kill "$DP2_PID"; wait "$DP2_PID" || true
  secs=$(calc "$t1 - $t0")
  sync_mbps=$(mbps "$TREE_BYTES" "$secs")
  big="$BENCH_DATA/big1g.bin"
  [[ -f "$big" ]] || { log "making $big"; find "$TREE" -type f | sort | xargs cat | head -c 1G >"$big"; }
  ln -sf "$big" "$WORK/dp/big1g.bin" 2>/dev/null || cp "$big" "$WORK/dp/big1g.bin"
  settle; warm "$big"
  curl1g=$(curl -s -o "$WORK/curl1g.out" -w '%{speed_download}' "$NGINX_URL/big1g.bin" | awk '{printf "%.1f", $1/1e6}')
  rm -f "$WORK/curl1g.out"
  sync_line="$secs s = $sync_mbps MB/s of tree bytes; curl -o FILE of 1 GiB from nginx: $curl1g MB/s; fraction $(calc "$sync_mbps / $curl1g")"
fi

cat <<SUMMARY

================ dp_serve summary ($(date -u +%FT%TZ)) ================
$(print_machine)
load: wrk -t2 -c$CONNS -d${DURATION}s, random URLs; client, DP and nginx share the 2 cores

| benchmark | DP | nginx | DP/nginx | target |
|---|---|---|---|---|
| 64 KiB objects, req/s | $dp64 | $ng64 | $(calc "$dp64 / $ng64") | >= 1.0x |
| 1 KiB objects, req/s | $dp1 | $ng1 | $(calc "$dp1 / $ng1") | - |
| one 256 MiB object, curl MB/s | $cdp | $cngx | $(calc "$cdp / $cngx") | >= 0.9x |

DP RSS holding 1000 idle keep-alive connections: $idle_rss MiB (target <= 64 MiB)
sync of the 1 GiB tree, site -> fresh DP on loopback: $sync_line
(all runs, in order: 64k DP $(runs dp-64k) / nginx $(runs ngx-64k); 1k DP $(runs dp-1k) / nginx $(runs ngx-1k);
 curl DP ${cd_runs[*]} / nginx ${cn_runs[*]})
=====================================================================
SUMMARY
