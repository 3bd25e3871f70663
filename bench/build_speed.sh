#!/usr/bin/env bash
# Build speed: `depot repo add` of the 1 GiB standard tree into a fresh repository vs
# `casync make --digest=sha256` of the same tree into a fresh store (same chunk sizes).
# Alternates depot, casync, depot, casync ... (RUNS each, default 3), page cache warmed
# right before each run, medians. Also measures the single-core SHA-256 rate with
# `openssl speed` in the same run: depot hashes every byte, so 2 x that rate is the
# ceiling on this 2-core machine. Targets: depot/casync >= 10x. See bench/README.md.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

CHUNKS=16384:65536:262144

ensure_deps
ensure_tree
make_workdir build
snapshot_depot

# Fresh repositories and store dirs for every run, made up front: nothing is deleted
# or re-created between timed runs (see DELETE_SETTLE_S in common.sh).
for i in $(seq 0 "$RUNS"); do
  "$DEPOT" repo init "$WORK/depot-$i" --chunk-sizes "$CHUNKS" >/dev/null
  mkdir -p "$WORK/casync-$i"
done

# One untimed run of each first (run 0): the first run after a quiet spell is often
# slower (fresh memory, filesystem state); it is not what we want to measure.
log "warm-up runs (not timed)"
settle; warm "$TREE"
"$DEPOT" --json repo add "$WORK/depot-0" --package bench --source "$TREE" >/dev/null
warm "$TREE"
casync make --digest=sha256 --chunk-size="$CHUNKS" --store="$WORK/casync-0/S.castr" "$WORK/casync-0/X.caidx" "$TREE" >/dev/null

sha_rates=()
for i in $(seq "$RUNS"); do
  log "round $i/$RUNS"
  settle
  sha_rates+=("$(sha256_rate 2)")
  warm "$TREE"
  time_run depot "$i" "$DEPOT" --json repo add "$WORK/depot-$i" --package bench --source "$TREE"
  settle
  warm "$TREE"
  time_run casync "$i" casync make --digest=sha256 --chunk-size="$CHUNKS" \
    --store="$WORK/casync-$i/S.castr" "$WORK/casync-$i/X.caidx" "$TREE"
done

# Sanity: every depot run snapshotted the whole tree.
for i in $(seq "$RUNS"); do
  b=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["bytes"])' "$WORK/log/depot.$i.out")
  [[ "$b" == "$TREE_BYTES" ]] || die "depot run $i snapshotted $b bytes, the tree has $TREE_BYTES"
done
read -r d_chunks d_stored < <(python3 -c 'import json,sys; j=json.load(open(sys.argv[1])); print(j["new_chunks"], j["stored_bytes"])' "$WORK/log/depot.1.out")
read -r c_chunks c_stored < <(find "$WORK/casync-1/S.castr" -type f -name '*.cacnk' -printf '%s\n' | awk '{s+=$1} END {print NR, s}')

sha=$(printf '%s\n' "${sha_rates[@]}" | sort -g | awk '{a[NR]=$1} END{print a[int((NR+1)/2)]}')
dw=$(median depot 3); cw=$(median casync 3)
dmb=$(mbps "$TREE_BYTES" "$dw")
shamb=$(mbps "$sha" 1)

echo
echo "================ build_speed summary ================"
print_machine
printf '%-22s %8s %9s %8s %8s %8s  %s\n' "" "wall s" "MB/s" "user s" "sys s" "others s" "all walls"
for l in depot casync; do
  w=$(median $l 3)
  printf '%-22s %8s %9s %8s %8s %8s  %s\n' "$([[ $l == depot ]] && echo "depot repo add" || echo "casync make sha256")" \
    "$w" "$(mbps "$TREE_BYTES" "$w")" "$(median $l 4)" "$(median $l 5)" "$(median $l 6)" "$(all_walls $l)"
done
echo "new chunks stored:     depot $d_chunks chunks, $d_stored bytes (zstd -1); casync $c_chunks chunks, $c_stored bytes"
echo "sha256 one core:       $shamb MB/s (openssl speed -evp sha256 -bytes 65536; runs: $(for r in "${sha_rates[@]}"; do printf '%s ' "$(mbps "$r" 1)"; done))"
echo "RATIO depot/casync:    $(calc "$cw / $dw")x   (target >= 10x)"
echo "depot CPU/casync CPU:  $(calc "($(cpu_of depot)) / ($(cpu_of casync))")"
echo "depot vs 2-core SHA:   $(calc "100 * $dmb / (2 * $shamb)") % of 2 x $shamb MB/s = $(calc "2 * $shamb") MB/s (fraction $(awk "BEGIN{printf \"%.3f\", $dmb / (2 * $shamb)}"))"
echo "(depot uses both cores; casync make is single-threaded; depot syncs what it wrote"
echo " before it returns, casync does not; 'others' = CPU used by other processes meanwhile)"
echo "====================================================="
