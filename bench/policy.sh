#!/usr/bin/env bash
# Policy polls against a site with many enrolled clients, side by side with nginx
# serving a static JSON file of the same size (the ceiling for this machine).
#
#   bench/policy.sh            CLIENTS=100000 POLLED=20000 DURATION=20 CONNS=64 AGENTS=1000
#
# Prints, for wrk -t2 -cCONNS: requests/s and p99 of not-modified polls (If-None-Match
# matches: 304) and of full policies (200 with the body), and nginx's requests/s and
# p99 for the static file; then p99 of AGENTS simulated agents polling every second on
# their own keep-alive connections. Client and server share the 2 cores.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
CLIENTS="${CLIENTS:-100000}"
POLLED="${POLLED:-20000}"
DURATION="${DURATION:-20}"
CONNS="${CONNS:-64}"
AGENTS="${AGENTS:-1000}"

ensure_deps
command -v wrk >/dev/null || die "wrk missing"
make_workdir policy
snapshot_depot
fixture="$bench_dir/site_fixture.py"
TREE="(none: synthetic clients)" TREE_FILES=0 TREE_BYTES=0

log "site with $CLIENTS clients"
"$DEPOT" --json site init --data "$WORK/site" --code BENCH --listen 127.0.0.1:0 >"$WORK/init.json"
token=$(json_field "$WORK/init.json" admin_token)
start_site() {
  serve_start serve site serve --data "$WORK/site"
  SITE_PID=$SERVE_PID
  SITE_URL=$SERVE_URL
  export DEPOT_SITE="$SITE_URL" DEPOT_TOKEN="$token"
}
start_site
mkdir -p "$WORK/pkg"
echo "echo installed" >"$WORK/pkg/install.sh"
head -c 2000000 /dev/urandom >"$WORK/pkg/payload.bin"
"$DEPOT" package create app --source "$WORK/pkg" --program "install=sh install.sh" >/dev/null
for dp in dp-east dp-west; do
  dtok=$("$DEPOT" --json dp add "$dp" --url "http://$dp.example:8081" --boundary 10.0.0.0/8 | python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')
  "$DEPOT" distribute app --to "$dp" >/dev/null
  curl -fsS -H "Authorization: Bearer $dtok" -H 'Content-Type: application/json' \
    -d '{"versions":[{"package":"app","version":1,"state":"ready"}]}' "$SITE_URL/api/v1/dp/report" >/dev/null
done
"$DEPOT" collection create all --rule 'os == "linux"' >/dev/null
"$DEPOT" deploy app --program install --to all --required --deadline +7d --window '22:00+4h@Europe/Berlin' >/dev/null
kill "$SITE_PID"; wait "$SITE_PID" || true
python3 "$fixture" populate "$WORK/site" "$CLIENTS" "$WORK"
start_site
log "site at $SITE_URL (pid $SITE_PID); fetching $POLLED policies once"
t0=$(date +%s.%N)
size=$(python3 "$fixture" etags "$SITE_URL" "$WORK" "$POLLED")
t1=$(date +%s.%N)
cold_rate=$(calc "$POLLED / ($t1 - $t0)")
log "policy size $size bytes; first (uncached) fetch of $POLLED policies: $cold_rate/s on one connection"
cp "$WORK/policy.json" "$WORK/static.json"
nginx_start "$WORK"

# wrk_run LABEL URL_PATH MODE -> "rps p99_ms" (MODE: site-304, site-full, nginx)
wrk_run() {
  local label="$1" url="$2" mode="$3" out="$WORK/wrk-$1.txt"
  settle
  if [[ "$mode" == nginx ]]; then
    wrk -t2 -c"$CONNS" -d"${DURATION}s" --latency "$url" >"$out"
  else
    POLL_MODE=$mode wrk -t2 -c"$CONNS" -d"${DURATION}s" --latency -s "$WORK/polls.lua" "$url" >"$out"
  fi
  local rps p99 bad
  rps=$(awk '/^Requests\/sec/{print $2}' "$out")
  p99=$(awk '$1=="99%"{v=$2; if (v ~ /us$/) {sub(/us/,"",v); v/=1000} else if (v ~ /ms$/) {sub(/ms/,"",v)} else if (v ~ /s$/) {sub(/s/,"",v); v*=1000}; print v}' "$out")
  bad=$(awk '/^unexpected_status/{print $2}' "$out")
  [[ -z "$bad" || "$bad" == 0 ]] || log "WARNING: $label had $bad unexpected statuses"
  log "  $label: $rps req/s, p99 ${p99} ms"
  echo "$rps $p99"
}
# Warm both servers once.
POLL_MODE=full wrk -t2 -c"$CONNS" -d3s -s "$WORK/polls.lua" "$SITE_URL/api/v1/agent/policy" >/dev/null
wrk -t2 -c"$CONNS" -d3s "$NGINX_URL/static.json" >/dev/null
read -r r304 p304 < <(wrk_run site-304 "$SITE_URL/api/v1/agent/policy" 304)
read -r rfull pfull < <(wrk_run site-full "$SITE_URL/api/v1/agent/policy" full)
read -r rngx pngx < <(wrk_run nginx "$NGINX_URL/static.json" nginx)
settle
log "simulating $AGENTS agents polling every second for ${DURATION}s"
agents_json=$(python3 "$fixture" agents "$SITE_URL" "$WORK" "$AGENTS" 1 "$DURATION")
site_rss=$(awk '/VmRSS/{print $2}' "/proc/$SITE_PID/status")
kill "$SITE_PID"; wait "$SITE_PID" || true

cat <<SUMMARY

== policy polls ($(date -u +%FT%TZ))
$(print_machine)
clients:   $CLIENTS enrolled, $POLLED of them polled at random; policy $size bytes (1 deployment, 2 DPs + site)
load:      wrk -t2 -c$CONNS -d${DURATION}s; client and server share the 2 cores

| poll | depot req/s | p99 ms | target | nginx static req/s | p99 ms | depot/nginx |
|---|---|---|---|---|---|---|
| not modified (304) | $r304 | $p304 | >= 20000 | $rngx | $pngx | $(calc "$r304 / $rngx") |
| full policy (200) | $rfull | $pfull | >= 5000 | $rngx | $pngx | $(calc "$rfull / $rngx") |

first fetch (not cached, one connection): $cold_rate policies/s
$AGENTS agents polling every 1 s: $agents_json  (target p99 < 100 ms)
site RSS after the run: $((site_rss / 1024)) MiB
SUMMARY
