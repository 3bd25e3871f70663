#!/usr/bin/env bash
# Delta size: how many new chunk bytes an update stores. After a full `depot repo add`
# / `casync make` of the 1 GiB standard tree, copies the tree (cp -a), applies the
# standard 1 % edit (make-tree.py --mutate: ~370 files, 4 KiB each appended or
# overwritten), then adds the copy as version 2 to the same repository and makes it
# into the same casync store. Compares the chunk bytes each one added to its store:
# depot's --json new_bytes (uncompressed) and stored_bytes (as written, zstd), and the
# sizes of the .cacnk files casync added (compressed). Target: depot_stored /
# casync_stored <= 0.5x. Sizes are deterministic; the times are single runs.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

CHUNKS=16384:65536:262144

ensure_deps
ensure_tree
make_workdir delta
snapshot_depot
RUNS_NOTE="one run of each (sizes are deterministic; times are single runs)"

R="$WORK/depot"
S="$WORK/casync/S.castr"
mkdir -p "$WORK/casync"
"$DEPOT" repo init "$R" --chunk-sizes "$CHUNKS" >/dev/null

log "full build of the tree (version 1)"
settle; warm "$TREE"
time_run depot-v1 1 "$DEPOT" --json repo add "$R" --package bench --source "$TREE"
settle; warm "$TREE"
time_run casync-v1 1 casync make --digest=sha256 --chunk-size="$CHUNKS" --store="$S" "$WORK/casync/v1.caidx" "$TREE"

log "copy + mutate"
V2="$WORK/tree-v2"
cp -a "$TREE" "$V2"
mutated=$(python3 "$MAKE_TREE_PY" --mutate "$V2")
log "$mutated"

# "path size" of every chunk file in each store, before version 2.
store_list() { find "$1" -type f -printf '%P %s\n' | sort; }
store_list "$R/repo/chunks" >"$WORK/depot-chunks.before"
store_list "$S" >"$WORK/casync-chunks.before"

log "incremental build (version 2)"
settle; warm "$V2"
time_run depot-v2 1 "$DEPOT" --json repo add "$R" --package bench --source "$V2"
settle; warm "$V2"
time_run casync-v2 1 casync make --digest=sha256 --chunk-size="$CHUNKS" --store="$S" "$WORK/casync/v2.caidx" "$V2"

store_list "$R/repo/chunks" >"$WORK/depot-chunks.after"
store_list "$S" >"$WORK/casync-chunks.after"
# New files: lines only in "after" (comm on sorted lines), summed.
added() { comm -13 "$1.before" "$1.after" | awk '{s+=$2} END {print NR+0, s+0}'; }
read -r dfiles dfbytes < <(added "$WORK/depot-chunks")
read -r cfiles cbytes < <(added "$WORK/casync-chunks")

j() { python3 -c 'import json,sys; j=json.load(open(sys.argv[1])); print(*(j[k] for k in sys.argv[2:]))' "$@"; }
read -r d_new_chunks d_new_bytes d_stored d_manifest < \
  <(j "$WORK/log/depot-v2.1.out" new_chunks new_bytes stored_bytes manifest_bytes)
read -r d1_stored d1_manifest < <(j "$WORK/log/depot-v1.1.out" stored_bytes manifest_bytes)
[[ "$dfiles" == "$d_new_chunks" && "$dfbytes" == "$d_stored" ]] ||
  log "NOTE: depot reported $d_new_chunks chunks / $d_stored bytes, its store grew by $dfiles files / $dfbytes bytes"
caidx2=$(stat -c %s "$WORK/casync/v2.caidx")
cfull=$(awk '{s+=$2} END {print s}' "$WORK/casync-chunks.before")

echo
echo "================ delta summary ================"
print_machine
echo "edit:      $mutated (make-tree.py --mutate on a cp -a copy)"
echo "version 1 (full):  depot stored $d1_stored bytes + manifest $d1_manifest; casync store $cfull bytes + index $(stat -c %s "$WORK/casync/v1.caidx")"
echo "version 2 new chunks:"
printf '  %-34s %6s chunks %12s bytes\n' "depot new_bytes (uncompressed)" "$d_new_chunks" "$d_new_bytes"
printf '  %-34s %6s chunks %12s bytes\n' "depot stored_bytes (zstd, written)" "$d_new_chunks" "$d_stored"
printf '  %-34s %6s chunks %12s bytes\n' "casync .cacnk files added" "$cfiles" "$cbytes"
echo "  plus per-version metadata: depot manifest $d_manifest bytes; casync index $caidx2 bytes"
echo "RATIO depot_stored/casync_stored: $(calc "$d_stored / $cbytes")x   (target <= 0.5x)"
echo "RATIO incl. manifest/index:       $(calc "($d_stored + $d_manifest) / ($cbytes + $caidx2)")x"
echo "RATIO new chunks depot/casync:    $(calc "$d_new_chunks / $cfiles")x"
echo "times (single runs, wall / user+sys):"
for l in depot-v1 casync-v1 depot-v2 casync-v2; do
  printf '  %-10s %7ss  %7ss CPU\n' "$l" "$(median $l 3)" "$(cpu_of $l)"
done
echo "==============================================="
