# Shared helpers for the depot benchmark scripts; sourced, never run.
#
# Environment knobs (all optional):
#   DEPOT_BIN   depot binary to measure (default: build/src/cli/depot of this checkout).
#               It is copied into the run's work dir at start, so a rebuild during the
#               run cannot change what is measured.
#   BENCH_DATA  data dir (default /work/bench-data); tree1g (the 1 GiB make-tree.py tree)
#               is made there once and reused. Work dirs of runs are made there too.
#   MAKE_TREE   make-tree.py (default ../shared/bench/make-tree.py next to this checkout,
#               then /work/shared/bench/make-tree.py).
#   TREE_MIB    tree size (default 1024 = tree1g); smaller only to smoke-test the scripts.
#   RUNS        timed runs per command (default 3, at least 3 are advised).
#   QUIET_MAX   % of the machine's CPU other processes may use before a timed phase
#               starts (default 25); the script waits up to QUIET_WAIT s (default 600)
#               for the machine to calm down, then goes on and says so.
#   KEEP_WORK=1 keep the work dir (outputs, repositories, logs) instead of deleting it.
# shellcheck shell=bash

bench_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo_root="$(dirname "$bench_dir")"
BENCH_DATA="${BENCH_DATA:-/work/bench-data}"
RUNS="${RUNS:-3}"
QUIET_MAX="${QUIET_MAX:-25}"
QUIET_WAIT="${QUIET_WAIT:-600}"
TREE_MIB="${TREE_MIB:-1024}"   # smaller trees (e.g. 64) only for smoke tests of the scripts
# Files deleted on this no-journal ext4 slow down file creation for a while: the inode
# allocator passes over inodes deleted less than 60 s ago (RECENTCY_MIN in
# fs/ext4/ialloc.c), or less than 360 s ago while their inode-table block is dirty
# (which new files in the same block make it again). So the scripts sync after a bulk
# deletion, and timed phases wait DELETE_SETTLE_S after any bulk deletion made by these
# scripts (recorded in $BENCH_DATA/.last-bulk-delete); DELETE_SETTLE_S=380 is the
# strict setting.
DELETE_SETTLE_S="${DELETE_SETTLE_S:-65}"

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# ---------------------------------------------------------------- tools and data

ensure_deps() {
  "$repo_root/scripts/install-deps.sh" --bench >&2
  local t
  for t in casync nginx curl openssl python3 /usr/bin/time; do
    command -v "$t" >/dev/null || die "$t is missing after scripts/install-deps.sh --bench"
  done
}

find_make_tree() {
  local c
  for c in "${MAKE_TREE:-}" "$repo_root/../shared/bench/make-tree.py" /work/shared/bench/make-tree.py; do
    [[ -n "$c" && -f "$c" ]] && { (cd "$(dirname "$c")" && printf '%s/%s\n' "$(pwd)" "$(basename "$c")"); return; }
  done
  die "make-tree.py not found (set MAKE_TREE)"
}

# Makes $BENCH_DATA/tree1g once (deterministic), sets TREE and TREE_BYTES/TREE_FILES.
ensure_tree() {
  MAKE_TREE_PY="$(find_make_tree)"
  mkdir -p "$BENCH_DATA"
  TREE="$BENCH_DATA/tree1g"
  [[ "$TREE_MIB" == 1024 ]] || TREE="$BENCH_DATA/tree${TREE_MIB}m"
  if [[ -e "$TREE" ]]; then
    # Made by an earlier run: make-tree.py --size-mib 1024 --seed 1 makes 37036 files.
    local n
    n=$(find "$TREE" -type f | wc -l)
    [[ "$TREE_MIB" != 1024 || "$n" == 37036 ]] ||
      die "$TREE exists but is not the standard tree ($n files, want 37036); remove it"
  else
    log "making $TREE with $MAKE_TREE_PY (once, ~40 s)"
    rm -rf "$TREE.part"
    python3 "$MAKE_TREE_PY" "$TREE.part" --size-mib "$TREE_MIB" --seed 1 >&2
    mv "$TREE.part" "$TREE"
  fi
  read -r TREE_BYTES TREE_FILES < <(find "$TREE" -type f -printf '%s\n' | awk '{s+=$1} END {print s, NR}')
  log "tree: $TREE, $TREE_FILES files, $TREE_BYTES bytes"
}

# Copies the depot binary (DEPOT_BIN or this checkout's build) into the work dir.
snapshot_depot() {
  local src="${DEPOT_BIN:-$repo_root/build/src/cli/depot}"
  [[ -x "$src" ]] || die "depot binary not found at $src (build it with scripts/build.sh or set DEPOT_BIN)"
  DEPOT="$WORK/bin/depot"
  mkdir -p "$WORK/bin"
  cp "$src" "$DEPOT"
  DEPOT_ID="$(sha256sum "$DEPOT" | cut -c1-12), built $(date -r "$src" '+%F %T')"
  log "depot: copied $src ($DEPOT_ID)"
}

# Work dir for one script run, on the same filesystem as the tree; removed at exit.
make_workdir() {
  local name="$1"
  mkdir -p "$BENCH_DATA"
  WORK="$(mktemp -d "$BENCH_DATA/work-$name.XXXXXX")"
  NGINX_DIRS=()
  trap cleanup EXIT
  trap 'exit 130' INT TERM
  log "work dir: $WORK"
}

cleanup() {
  local rc=$?
  local d
  unpin
  for d in "${NGINX_DIRS[@]:-}"; do [[ -n "$d" ]] && nginx_stop "$d"; done
  if [[ -n "${WORK:-}" && -d "$WORK" ]]; then
    if [[ "${KEEP_WORK:-0}" == 1 ]]; then
      log "kept $WORK (KEEP_WORK=1)"
    else
      log "removing $WORK"
      rm -rf "$WORK"
      bulk_deleted
    fi
  fi
  exit "$rc"
}

# ---------------------------------------------------------------- machine state

# Records a bulk deletion (thousands of files) just made, so the next settle waits.
bulk_deleted() {
  sync   # clean inode-table blocks: the 60 s rule, not the 360 s one
  date +%s >"$BENCH_DATA/.last-bulk-delete"
}

# Waits until DELETE_SETTLE_S seconds have passed since the last bulk deletion made
# by a benchmark script (see DELETE_SETTLE_S above).
wait_after_deletions() {
  local f="$BENCH_DATA/.last-bulk-delete" last now left
  [[ -f "$f" ]] || return 0
  last=$(cat "$f"); now=$(date +%s); left=$((last + DELETE_SETTLE_S - now))
  if ((left > 0)); then
    log "waiting ${left}s after the last bulk deletion (ext4 without journal)"
    sleep "$left"
  fi
}

# Busy and total jiffies of the whole machine: "busy total steal".
cpu_jiffies() {
  awk '/^cpu /{busy=$2+$3+$4+$7+$8; tot=busy+$5+$6+$9; print busy, tot, $9; exit}' /proc/stat
}

# % of all cores busy over the next $1 seconds (default 3).
cpu_busy_pct() {
  local b0 t0 s0 b1 t1 s1
  read -r b0 t0 s0 < <(cpu_jiffies)
  sleep "${1:-3}"
  read -r b1 t1 s1 < <(cpu_jiffies)
  awk -v b=$((b1 - b0)) -v t=$((t1 - t0)) 'BEGIN{printf "%d", t ? 100*b/t : 0}'
}

BUSY_NOTES=()
# Waits (up to QUIET_WAIT s) until other processes use less than QUIET_MAX % of the CPU.
wait_quiet() {
  local waited=0 pct
  while :; do
    pct=$(cpu_busy_pct 3)
    ((pct < QUIET_MAX)) && return 0
    if ((waited == 0)); then
      log "machine busy (${pct}% CPU used by others); waiting up to ${QUIET_WAIT}s for quiet"
      ps -eo pcpu=,pid=,comm= --sort=-pcpu | sed -n '1,5s/^/    /p' >&2
    fi
    if ((waited >= QUIET_WAIT)); then
      log "still busy (${pct}%); measuring anyway"
      BUSY_NOTES+=("$(date +%T): ${pct}% CPU used by others before a timed phase")
      return 0
    fi
    sleep 7; waited=$((waited + 10))
  done
}

# Reads every file under the given paths so the timed run finds them in the page cache
# (this machine empties the cache within a minute or two of a file's last read).
# warm PATH...   reads PATH (files, or every file under a directory) into the page
# cache and keeps it there (vmtouch -l) until the next warm or the script's end.
# This machine's page cache does not keep what was read once: idle, a warmed 1 GiB
# tree lost ~220 MB within 30 s, and during a timed run the readers of a tree warmed
# seconds before spent ~0.9 s each waiting for the disk. "Warm" must hold for the
# whole run, for depot and its anchor alike.
# The pins' pids go to a file, not a variable: warm is also called inside command
# substitutions (subshells), whose variables the script never sees -- a pid kept in
# a variable went stale there, and killing a stale pid on a machine with
# pid_max 32768 can hit an unrelated process. Only processes named vmtouch are killed.
pin_file() { printf '%s/.vmtouch.pins' "${WORK:-/tmp}"; }
warm() {
  unpin
  local p
  for p in "$@"; do
    if [[ -d "$p" ]]; then
      find "$p" -type f -exec cat {} + >/dev/null
    else
      cat "$p" >/dev/null
    fi
  done
  command -v vmtouch >/dev/null || return 0
  local pidfile="${WORK:-/tmp}/.vmtouch.pid"
  rm -f "$pidfile"
  if vmtouch -q -d -l -w -P "$pidfile" "$@" 2>/dev/null && [[ -s "$pidfile" ]]; then
    cat "$pidfile" >>"$(pin_file)"
  else
    log "warning: vmtouch could not lock $* in memory; it stays warm only as long as the kernel keeps it"
  fi
}
is_pin() { [[ -n "$1" && "$(cat "/proc/$1/comm" 2>/dev/null)" == vmtouch ]]; }
unpin() {
  local f pid i killed=()
  f=$(pin_file)
  [[ -f "$f" ]] || return 0
  while read -r pid; do
    if is_pin "$pid"; then
      kill "$pid" 2>/dev/null || true
      killed+=("$pid")
    fi
  done <"$f"
  : >"$f"
  # Unlocking takes vmtouch a moment; the next timed run should not share it.
  for pid in "${killed[@]}"; do
    for i in $(seq 40); do is_pin "$pid" || break; sleep 0.05; done
  done
  return 0
}

# Everything the timed run must not inherit: dirty pages of earlier outputs.
settle() {
  sync
  wait_after_deletions
  wait_quiet
}

# ---------------------------------------------------------------- timing

# time_run LABEL RUN_NO CMD...   runs CMD with stdout to $WORK/log/LABEL.RUN_NO.out,
# stderr to .err; appends "LABEL RUN wall user sys others steal server" to
# $WORK/results.txt, where others = CPU seconds other processes used meanwhile
# (both cores; nginx included), steal = CPU time the hypervisor took, and server =
# CPU seconds of the nginx workers (SERVER_PIDS) when set.
SERVER_PIDS=()
time_run() {
  local label="$1" run="$2"; shift 2
  mkdir -p "$WORK/log"
  local out="$WORK/log/$label.$run.out" err="$WORK/log/$label.$run.err" tf="$WORK/log/$label.$run.time"
  local b0 t0 s0 b1 t1 s1 srv0 srv1 rc=0
  read -r b0 t0 s0 < <(cpu_jiffies)
  srv0=$(server_jiffies)
  /usr/bin/time -f '%e %U %S' -o "$tf" "$@" >"$out" 2>"$err" || rc=$?
  read -r b1 t1 s1 < <(cpu_jiffies)
  srv1=$(server_jiffies)
  if ((rc != 0)); then
    log "FAILED ($rc): $*"; tail -5 "$err" >&2; return 1
  fi
  local wall user sys
  read -r wall user sys < <(tail -1 "$tf")
  local hz; hz=$(getconf CLK_TCK)
  local line
  line=$(awk -v l="$label" -v r="$run" -v w="$wall" -v u="$user" -v s="$sys" \
    -v busy=$((b1 - b0)) -v st=$((s1 - s0)) -v srv=$((srv1 - srv0)) -v hz="$hz" \
    'BEGIN{o=busy/hz-u-s; if(o<0)o=0; printf "%s %s %.2f %.2f %.2f %.2f %.2f %.2f", l, r, w, u, s, o, st/hz, srv/hz}')
  echo "$line" >>"$WORK/results.txt"
  log "  $label #$run: wall ${wall}s user ${user}s sys ${sys}s (others $(echo "$line" | cut -d' ' -f6)s)"
}

server_jiffies() {
  local p sum=0 f
  for p in "${SERVER_PIDS[@]:-}"; do
    [[ -n "$p" && -r /proc/$p/stat ]] || continue
    # utime+stime are fields 14 and 15; the comm field (2) has no spaces for nginx.
    f=$(awk '{print $14+$15}' "/proc/$p/stat")
    sum=$((sum + f))
  done
  echo "$sum"
}

# median LABEL FIELD -> median of that column over the runs of LABEL
# (fields: 3 wall, 4 user, 5 sys, 6 others, 7 steal, 8 server).
median() {
  awk -v l="$1" -v f="$2" '$1==l{print $f}' "$WORK/results.txt" | sort -g |
    awk '{a[NR]=$1} END{if(NR==0){print "nan"; exit} if(NR%2)print a[(NR+1)/2]; else printf "%.2f\n", (a[NR/2]+a[NR/2+1])/2}'
}

# cpu_of LABEL -> median of user+sys per run
cpu_of() {
  awk -v l="$1" '$1==l{print $4+$5}' "$WORK/results.txt" | sort -g |
    awk '{a[NR]=$1} END{if(NR%2)print a[(NR+1)/2]; else printf "%.2f\n", (a[NR/2]+a[NR/2+1])/2}'
}

# all_walls LABEL -> "w1 w2 w3" (in run order) for the summary
all_walls() { awk -v l="$1" '$1==l{printf "%s%s", sep, $3; sep=" "} END{print ""}' "$WORK/results.txt"; }

# calc EXPR -> awk arithmetic, 2 decimals unless the expression formats itself
calc() { awk "BEGIN{printf \"%.2f\", $1}"; }
mbps() { awk -v b="$1" -v s="$2" 'BEGIN{printf "%.1f", (s > 0 ? b/s/1e6 : 0)}'; }

# Single-core SHA-256 rate in bytes/s (openssl speed -evp sha256 -bytes 65536).
sha256_rate() {
  openssl speed -mr -seconds "${1:-3}" -evp sha256 -bytes 65536 2>/dev/null |
    awk -F: '/^\+F:/ && !done {print $4; done=1}'
}

print_machine() {
  echo "machine:   $(nproc) cores, $(awk '/model name/{sub(/.*: /,""); print; exit}' /proc/cpuinfo)"
  echo "depot:     $DEPOT_ID"
  echo "tree:      $TREE ($TREE_FILES files, $TREE_BYTES bytes)"
  echo "runs:      ${RUNS_NOTE:-$RUNS per command, alternated; figures are medians}"
  local n
  for n in "${BUSY_NOTES[@]:-}"; do [[ -n "$n" ]] && echo "WARNING:   $n"; done
  return 0
}

# ---------------------------------------------------------------- nginx

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# nginx_start ROOT -> sets NGINX_PORT, NGINX_URL and SERVER_PIDS (workers); the server's
# files live in $WORK/nginx-<port>.
nginx_start() {
  local root="$1" port dir
  for _ in 1 2 3 4 5; do
    port=$(free_port)
    dir="$WORK/nginx-$port"
    mkdir -p "$dir/tmp"
    {
      [[ $(id -u) -eq 0 ]] && echo "user root;"   # workers must read private temp dirs
      cat <<EOF
worker_processes 2;
daemon on;
pid $dir/nginx.pid;
error_log $dir/error.log;
events { worker_connections 1024; }
http {
  sendfile on;
  access_log off;
  keepalive_requests 100000;
  types { }
  default_type application/octet-stream;
  client_body_temp_path $dir/tmp; proxy_temp_path $dir/tmp; fastcgi_temp_path $dir/tmp;
  uwsgi_temp_path $dir/tmp; scgi_temp_path $dir/tmp;
  server {
    listen 127.0.0.1:$port;
    root $root;
    location / { }
  }
}
EOF
    } >"$dir/nginx.conf"
    if nginx -e "$dir/error.log" -p "$dir" -c "$dir/nginx.conf" 2>"$dir/start.err"; then
      NGINX_DIRS+=("$dir")
      NGINX_PORT=$port   # for callers
      export NGINX_PORT
      NGINX_URL="http://127.0.0.1:$port"
      local _k
      for _k in $(seq 50); do [[ -s "$dir/nginx.pid" ]] && break; sleep 0.1; done
      local master; master=$(cat "$dir/nginx.pid")
      sleep 0.3
      mapfile -t SERVER_PIDS < <(pgrep -P "$master")
      log "nginx on $NGINX_URL (master $master, workers ${SERVER_PIDS[*]}) serving $root"
      return 0
    fi
    log "nginx failed on port $port: $(cat "$dir/start.err")"
  done
  die "could not start nginx"
}

nginx_stop() {
  local dir="$1" pid
  [[ -s "$dir/nginx.pid" ]] || return 0
  pid=$(cat "$dir/nginx.pid")
  kill "$pid" 2>/dev/null || return 0
  for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
  kill -9 "$pid" 2>/dev/null || true
}

# ---------------------------------------------------------------- depot servers

# json_field FILE KEY [line] -> the value of KEY in the JSON document in FILE (with
# "line": of its first line, as `serve --json` prints).
json_field() {
  python3 -c 'import json,sys; f=open(sys.argv[1]); d=json.loads(f.readline()) if len(sys.argv) > 3 else json.load(f); print(d[sys.argv[2]])' "$@"
}

# serve_start NAME ARGS... -> runs `depot --json ARGS` (a `site serve` or `dp serve`)
# in the background with its output in $WORK/NAME.out/.err; sets SERVE_PID and
# SERVE_URL once it is listening.
serve_start() {
  local name="$1"; shift
  "$DEPOT" --json "$@" >"$WORK/$name.out" 2>"$WORK/$name.err" &
  SERVE_PID=$!
  local _k
  for _k in $(seq 100); do [[ -s "$WORK/$name.out" ]] && break; sleep 0.1; done
  [[ -s "$WORK/$name.out" ]] || die "$name did not start: $(tail -3 "$WORK/$name.err")"
  SERVE_URL=$(json_field "$WORK/$name.out" url line)
}
