#!/usr/bin/env bash
# Scale-out (docs/scale-out.md): agent policy polls with CLIENTS enrolled clients on a
# PostgreSQL catalog served by two `site serve` processes, side by side with
# `pgbench -S` on the same PostgreSQL server (its read ceiling on this machine) and
# with the same polls on an SQLite catalog and one process; then STORM agents
# enrolling at once through both processes.
#
#   bench/scale_out.sh     CLIENTS=1000000 POLLED=20000 DURATION=20 CONNS=64 STORM=10000
#
# The PostgreSQL server is scripts/pg-temp.sh's (a Unix socket in the work dir,
# fsync off: the polls are reads, the storm's commits are not what is compared).
# wrk runs one instance per site process (-t1, CONNS/2 connections each), started
# together; their rates are summed, the higher p99 printed. Each mode runs ROUNDS
# times, alternated; the figures are medians. Clients, servers and
# PostgreSQL share the 2 cores.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
CLIENTS="${CLIENTS:-1000000}"
POLLED="${POLLED:-20000}"
DURATION="${DURATION:-20}"
CONNS="${CONNS:-64}"
STORM="${STORM:-10000}"
STORM_CONC="${STORM_CONC:-200}"

ensure_deps
command -v wrk >/dev/null || die "wrk missing"
command -v pgbench >/dev/null || die "pgbench missing (Debian postgresql-contrib / postgresql)"
make_workdir scale-out
snapshot_depot
fixture="$bench_dir/site_fixture.py"
TREE="(none: synthetic clients)" TREE_FILES=0 TREE_BYTES=0
PIDS=()
stop_all() {
  local p
  for p in "${PIDS[@]:-}"; do [[ -n "$p" ]] && kill "$p" 2>/dev/null && wait "$p" 2>/dev/null; done
  PIDS=()
  "$repo_root/scripts/pg-temp.sh" stop "$WORK/pg" || true
  cleanup
}
trap stop_all EXIT

log "PostgreSQL"
"$repo_root/scripts/pg-temp.sh" start "$WORK/pg"
server=$(cat "$WORK/pg/conninfo")
pg_host=$(cat "$WORK/pg/server-dir")
psql "$server" -qc "CREATE DATABASE depot_bench" -c "CREATE DATABASE pgbench_ceiling"
DB="$server dbname=depot_bench"

# setup_site DIR [--db CONNINFO]: package, two DPs reporting it ready, the collection
# `all` and a deployment to it, as bench/policy.sh does; the site is stopped after.
setup_site() {
  local dir="$1"; shift
  # One public URL for every process, as behind a balancer: their policies, and so
  # their ETags, are the same.
  "$DEPOT" --json site init --data "$dir" --code BENCH --listen 127.0.0.1:0 \
    --public-url http://site.bench.example:8080 "$@" >"$dir.init.json"
  TOKEN=$(json_field "$dir.init.json" admin_token)
  local port; port=$(free_port)
  serve_start setup site serve --data "$dir" --listen "127.0.0.1:$port"
  local pid=$SERVE_PID url="http://127.0.0.1:$port" dp dtok
  export DEPOT_SITE="$url" DEPOT_TOKEN="$TOKEN"
  mkdir -p "$WORK/pkg"
  echo "echo installed" >"$WORK/pkg/install.sh"
  [[ -f "$WORK/pkg/payload.bin" ]] || head -c 2000000 /dev/urandom >"$WORK/pkg/payload.bin"
  "$DEPOT" package create app --source "$WORK/pkg" --program "install=sh install.sh" >/dev/null
  for dp in dp-east dp-west; do
    dtok=$("$DEPOT" --json dp add "$dp" --url "http://$dp.example:8081" --boundary 10.0.0.0/8 |
      python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')
    "$DEPOT" distribute app --to "$dp" >/dev/null
    curl -fsS -H "Authorization: Bearer $dtok" -H 'Content-Type: application/json' \
      -d '{"versions":[{"package":"app","version":1,"state":"ready"}]}' "$url/api/v1/dp/report" >/dev/null
  done
  "$DEPOT" collection create all --rule 'os == "linux"' >/dev/null
  "$DEPOT" deploy app --program install --to all --required --deadline +7d \
    --window '22:00+4h@Europe/Berlin' >/dev/null
  kill "$pid"; wait "$pid" || true
}

# polls LABEL URL... -> "rps p99_ms" of wrk against every URL at once (MODE env: 304|full)
polls() {
  local label="$1"; shift
  local n=$# i=0 url pids=() rps=0 p99=0 out r p bad
  local per=$((CONNS / n))
  settle
  for url in "$@"; do
    i=$((i + 1))
    POLL_MODE=$MODE wrk -t$((3 - n)) -c"$per" -d"${DURATION}s" --latency -s "$WORK/polls.lua" \
      "$url/api/v1/agent/policy" >"$WORK/wrk-$label-$i.txt" &
    pids+=($!)
  done
  wait "${pids[@]}"
  for i in $(seq "$n"); do
    out="$WORK/wrk-$label-$i.txt"
    r=$(awk '/^Requests\/sec/{print $2}' "$out")
    p=$(awk '$1=="99%"{v=$2; if (v ~ /us$/) {sub(/us/,"",v); v/=1000} else if (v ~ /ms$/) {sub(/ms/,"",v)} else if (v ~ /s$/) {sub(/s/,"",v); v*=1000}; print v}' "$out")
    bad=$(awk '/^unexpected_status/{print $2}' "$out")
    [[ -z "$bad" || "$bad" == 0 ]] || log "WARNING: $label had $bad unexpected statuses"
    rps=$(calc "$rps + $r")
    p99=$(awk -v a="$p99" -v b="$p" 'BEGIN{print (b > a ? b : a)}')
  done
  log "  $label: $rps req/s, p99 $p99 ms"
  echo "$rps $p99"
}

# rounds LABEL URL... -> "rps304 p99 rpsfull p99": ROUNDS alternated runs of each
# mode, medians (the first minute after a start is noisier than the rest).
ROUNDS="${ROUNDS:-3}"
RUNS_NOTE="$ROUNDS runs per poll mode, alternated; figures are medians"
med() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END{if(NR%2)print a[(NR+1)/2]; else printf "%.2f\n", (a[NR/2]+a[NR/2+1])/2}'; }
rounds() {
  local label="$1"; shift
  local r a b c d n304=() p304=() nfull=() pfull=()
  for r in $(seq "$ROUNDS"); do
    read -r a b < <(MODE=304 polls "$label-304-$r" "$@")
    read -r c d < <(MODE=full polls "$label-full-$r" "$@")
    n304+=("$a") p304+=("$b") nfull+=("$c") pfull+=("$d")
  done
  echo "$(med "${n304[@]}") $(med "${p304[@]}") $(med "${nfull[@]}") $(med "${pfull[@]}")"
}

log "PostgreSQL site with $CLIENTS clients"
setup_site "$WORK/site-pg" --db "$DB"
PG_TOKEN=$TOKEN
t0=$(date +%s.%N)
python3 "$fixture" populate-pg "$DB" "$CLIENTS" "$WORK"
log "  populated in $(calc "$(date +%s.%N) - $t0") s"
# serve NAME DIR: starts a process of the site on a free port; sets PID and URL.
serve() {
  local port; port=$(free_port)
  serve_start "$1" site serve --data "$2" --listen "127.0.0.1:$port"
  PID=$SERVE_PID URL="http://127.0.0.1:$port"
  PIDS+=("$PID")
}
serve pg-a "$WORK/site-pg"; A_PID=$PID A_URL=$URL
serve pg-b "$WORK/site-pg"; B_PID=$PID B_URL=$URL
size=$(python3 "$fixture" etags "$A_URL" "$WORK" "$POLLED")
log "policy size $size bytes; two processes at $A_URL and $B_URL"
# Warm both processes' caches (tokens, policies) once.
MODE=full wrk -t2 -c"$CONNS" -d3s -s "$WORK/polls.lua" "$A_URL/api/v1/agent/policy" >/dev/null
MODE=full wrk -t2 -c"$CONNS" -d3s -s "$WORK/polls.lua" "$B_URL/api/v1/agent/policy" >/dev/null
read -r pg304 pg304p pgfull pgfullp < <(rounds pg "$A_URL" "$B_URL")

log "pgbench -S on the same server (the read ceiling)"
pgbench -h "$pg_host" -U postgres -i -s 10 -q pgbench_ceiling >/dev/null 2>&1
settle
pgbench -h "$pg_host" -U postgres -S -c "$CONNS" -j 2 -T "$DURATION" pgbench_ceiling >"$WORK/pgbench.txt" 2>&1
pgtps=$(awk '/^tps = /{print $3; exit}' "$WORK/pgbench.txt")
pglat=$(awk '/^latency average = /{print $4; exit}' "$WORK/pgbench.txt")
log "  pgbench -S: $pgtps tps, mean latency $pglat ms"

log "enrollment storm: $STORM agents at once ($STORM_CONC in flight) through both processes"
etok=$(DEPOT_SITE="$A_URL" DEPOT_TOKEN="$PG_TOKEN" "$DEPOT" --json token create --role enroll --uses "$STORM" |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')
settle
storm=$(python3 "$fixture" enroll "$etok" "$STORM" "$STORM_CONC" "$A_URL" "$B_URL")
read -r storm_rows storm_names < <(psql "$DB" -At -F ' ' -c \
  "SELECT COUNT(*), COUNT(DISTINCT name) FROM clients WHERE name LIKE 'storm%'")
log "  $storm; clients: $storm_rows rows, $storm_names names"
a_rss=$(awk '/VmRSS/{print $2}' "/proc/$A_PID/status")
kill "$A_PID" "$B_PID"; wait "$A_PID" "$B_PID" || true
PIDS=()

log "SQLite site with $CLIENTS clients, one process"
setup_site "$WORK/site-sqlite"
python3 "$fixture" populate "$WORK/site-sqlite" "$CLIENTS" "$WORK"
serve sqlite "$WORK/site-sqlite"; S_PID=$PID S_URL=$URL
python3 "$fixture" etags "$S_URL" "$WORK" "$POLLED" >/dev/null
MODE=full wrk -t2 -c"$CONNS" -d3s -s "$WORK/polls.lua" "$S_URL/api/v1/agent/policy" >/dev/null
read -r sq304 sq304p sqfull sqfullp < <(rounds sqlite "$S_URL")
kill "$S_PID"; wait "$S_PID" || true
PIDS=()

cat <<SUMMARY

== scale-out ($(date -u +%FT%TZ))
$(print_machine)
clients:   $CLIENTS enrolled, $POLLED of them polled at random; policy $size bytes
load:      wrk, $CONNS connections in all for ${DURATION}s; clients, site processes and PostgreSQL share the 2 cores

| poll | PostgreSQL, 2 processes req/s | p99 ms | target | SQLite, 1 process req/s | p99 ms | PG/SQLite | pgbench -S tps | PG polls/pgbench |
|---|---|---|---|---|---|---|---|---|
| not modified (304) | $pg304 | $pg304p | >= 20000 | $sq304 | $sq304p | $(calc "$pg304 / $sq304") | $pgtps | $(calc "$pg304 / $pgtps") |
| full policy (200) | $pgfull | $pgfullp | >= 5000 | $sqfull | $sqfullp | $(calc "$pgfull / $sqfull") | $pgtps | $(calc "$pgfull / $pgtps") |

enrollment storm ($STORM agents, $STORM_CONC in flight, both processes): $storm
  catalog afterwards: $storm_rows client rows, $storm_names distinct names (each enrolled exactly once: both = $STORM)
site process RSS after the PostgreSQL run: $((a_rss / 1024)) MiB
SUMMARY
