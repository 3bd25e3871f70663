#!/usr/bin/env bash
# Fetch speed over HTTP from one local nginx (sendfile on, access_log off, 2 workers):
#   depot        depot repo fetch URL --package P --dest D --trust root.json   (no cache)
#   depot-cache  the same with an empty --cache DIR (chunks also written to the cache)
#   casync       casync extract --store=URL/S.castr URL/X.caidx OUT   (casync-http helper)
#   curl         curl -s -o FILE of one 1 GiB file (head -c 1G of the tree's files)
#   curl-null    the same to /dev/null (reference only: the cost of writing the file)
# alternated RUNS times (default 3), server files warmed right before each run, medians.
# Every output is checked against its source after the timed runs (diff -r / cmp), so
# a broken fetch cannot look fast. Client and server share the same 2 cores.
# Targets: depot/casync >= 20x, depot/curl >= 0.4x. See bench/README.md.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

CHUNKS=16384:65536:262144

ensure_deps
ensure_tree
make_workdir fetch
snapshot_depot

# The 1 GiB single file for curl, made once next to the tree.
BIG="$BENCH_DATA/big1g.bin"
if [[ ! -f "$BIG" ]]; then
  log "making $BIG (head -c 1G of the tree's files in sorted order)"
  # head closes the pipe after 1 GiB: cat's SIGPIPE is expected, the size is checked.
  (cd "$TREE" && find . -type f -print0 | sort -z | xargs -0 cat 2>/dev/null | head -c 1G) >"$BIG.part" || true
  [[ $(stat -c %s "$BIG.part") == $((1 << 30)) || "$TREE_MIB" != 1024 ]] || die "could not make $BIG"
  mv "$BIG.part" "$BIG"
fi
BIG_BYTES=$(stat -c %s "$BIG")

log "preparing the depot repository and the casync store (not timed)"
R="$WORK/depot"
"$DEPOT" repo init "$R" --chunk-sizes "$CHUNKS" >/dev/null
warm "$TREE"
"$DEPOT" --json repo add "$R" --package bench --source "$TREE" >"$WORK/add.json"
WWW="$WORK/www"
mkdir -p "$WWW/casync"
ln -s "$R/repo" "$WWW/depot"
ln -s "$BIG" "$WWW/big1g.bin"
warm "$TREE"
casync make --digest=sha256 --chunk-size="$CHUNKS" --store="$WWW/casync/S.castr" "$WWW/casync/X.caidx" "$TREE" >/dev/null
nginx_start "$WWW"
U="$NGINX_URL"
TRUST="$R/repo/metadata/root.json"

curl -sf -o /dev/null "$U/depot/metadata/timestamp.json" || die "nginx does not serve the depot tree"
curl -sf -o /dev/null "$U/casync/X.caidx" || die "nginx does not serve the casync index"

# One untimed run of each kind first: checks the set-up, and the first run after the
# set-up (often slower: fresh memory, filesystem state) is not what we measure.
mkdir -p "$WORK/out"
log "warm-up runs (not timed)"
settle; warm "$R/repo"
"$DEPOT" --json repo fetch "$U/depot" --package bench --dest "$WORK/out/warm-depot" --trust "$TRUST" >/dev/null
warm "$WWW/casync"
casync extract --store="$U/casync/S.castr" "$U/casync/X.caidx" "$WORK/out/warm-casync"
warm "$BIG"
curl -s -f -o "$WORK/out/warm-curl" "$U/big1g.bin"

for i in $(seq "$RUNS"); do
  log "round $i/$RUNS"
  settle; warm "$R/repo"
  time_run depot "$i" "$DEPOT" --json repo fetch "$U/depot" --package bench \
    --dest "$WORK/out/depot-$i" --trust "$TRUST"
  mkdir -p "$WORK/out/cache-$i"
  settle; warm "$R/repo"
  time_run depot-cache "$i" "$DEPOT" --json repo fetch "$U/depot" --package bench \
    --dest "$WORK/out/depot-cache-$i" --trust "$TRUST" --cache "$WORK/out/cache-$i"
  settle; warm "$WWW/casync"
  time_run casync "$i" casync extract --store="$U/casync/S.castr" "$U/casync/X.caidx" "$WORK/out/casync-$i"
  bulk_deleted  # casync-http passes chunks through ~117 k temporary files it deletes
  settle; warm "$BIG"
  time_run curl "$i" curl -s -f -o "$WORK/out/curl-$i" "$U/big1g.bin"
  # For reference only (not in the ratios): the same transfer without writing a file.
  settle; warm "$BIG"
  time_run curl-null "$i" curl -s -f -o /dev/null "$U/big1g.bin"
done

log "checking every output against its source (not timed)"
# Types, modes, sizes and link targets of everything, then the bytes of every file.
listing() { (cd "$1" && find . -printf '%p %y %m %s %l\n' | sort); }
listing "$TREE" >"$WORK/tree.listing"
for i in $(seq "$RUNS"); do
  for o in depot-$i depot-cache-$i casync-$i; do
    listing "$WORK/out/$o" | diff -q "$WORK/tree.listing" - >/dev/null ||
      die "$o: file list, types, modes or sizes differ from the tree"
    diff -r --no-dereference -q "$TREE" "$WORK/out/$o" >/dev/null || die "$o: contents differ from the tree"
  done
  cmp -s "$BIG" "$WORK/out/curl-$i" || die "curl-$i differs from $BIG"
  b=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["bytes"])' "$WORK/log/depot.$i.out")
  [[ "$b" == "$TREE_BYTES" ]] || die "depot run $i reports $b bytes, the tree has $TREE_BYTES"
done
log "all outputs identical to their sources"
read -r fchunks xfer < <(python3 -c 'import json,sys; j=json.load(open(sys.argv[1])); print(j["fetched_chunks"], j["transfer_bytes"])' "$WORK/log/depot.1.out")
cas_store=$(find "$WWW/casync/S.castr" -type f -printf '%s\n' | awk '{s+=$1} END {print s, NR}')

dw=$(median depot 3); kw=$(median depot-cache 3); cw=$(median casync 3); uw=$(median curl 3)
dmb=$(mbps "$TREE_BYTES" "$dw"); umb=$(mbps "$BIG_BYTES" "$uw")

echo
echo "================ fetch summary ================"
print_machine
echo "server:    nginx $(nginx -v 2>&1 | sed 's/.*\///') on 127.0.0.1, sendfile on, access_log off, 2 workers;"
echo "           client and server share the same 2 cores (server CPU shown separately)"
echo "depot:     $fchunks chunks, $xfer bytes transferred; casync store: $(echo "$cas_store" | cut -d' ' -f2) chunks, $(echo "$cas_store" | cut -d' ' -f1) bytes"
printf '%-32s %8s %8s %8s %8s %8s %8s  %s\n' "" "wall s" "MB/s" "user s" "sys s" "nginx s" "others s" "all walls"
for l in depot depot-cache casync curl curl-null; do
  case $l in
    depot) name="depot repo fetch (no cache)"; bytes=$TREE_BYTES ;;
    depot-cache) name="depot repo fetch (empty --cache)"; bytes=$TREE_BYTES ;;
    casync) name="casync extract (HTTP)"; bytes=$TREE_BYTES ;;
    curl) name="curl one 1 GiB file"; bytes=$BIG_BYTES ;;
    curl-null) name="  (curl -o /dev/null, reference)"; bytes=$BIG_BYTES ;;
  esac
  w=$(median $l 3)
  printf '%-32s %8s %8s %8s %8s %8s %8s  %s\n' "$name" "$w" "$(mbps "$bytes" "$w")" \
    "$(median $l 4)" "$(median $l 5)" "$(median $l 8)" "$(median $l 6)" "$(all_walls $l)"
done
echo "(MB/s of tree bytes, $TREE_BYTES, for depot and casync; of the file's $BIG_BYTES bytes for curl;"
echo " user/sys = client CPU incl. children (casync-http); nginx s = server workers' CPU;"
echo " others s = CPU of every other process meanwhile, nginx included)"
echo "RATIO depot/casync:             $(calc "$cw / $dw")x   (target >= 20x)"
echo "RATIO depot/curl (MB/s):        $(calc "$dmb / $umb")x   (target >= 0.4x)"
echo "RATIO depot --cache/casync:     $(calc "$cw / $kw")x"
echo "RATIO depot --cache/curl:       $(calc "$(mbps "$TREE_BYTES" "$kw") / $umb")x"
echo "==============================================="
