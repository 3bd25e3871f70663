#!/usr/bin/env bash
# Builds depot into build/ (CMake + Ninja + ccache). Installs build dependencies
# first when they are missing.
#   scripts/build.sh [--werror] [--sanitize] [--dir DIR] [--test-deps] [targets...]
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build_dir="$root/build"
cmake_args=(-G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo)
deps=()
targets=()
while (($#)); do
  case "$1" in
    --werror) cmake_args+=(-DDEPOT_WERROR=ON) ;;
    --sanitize) cmake_args+=(-DDEPOT_SANITIZE=ON) ;;
    --dir) build_dir="$2"; shift ;;
    --test-deps) deps=(--test) ;;
    *) targets+=("$1") ;;
  esac
  shift
done
"$root/scripts/install-deps.sh" "${deps[@]}"
# Paths under the checkout are hashed relative to it, so clones in other places
# (CI's clean clone) reuse the compiler cache.
export CCACHE_BASEDIR="$root"
# The two configurations (normal, ASan+UBSan) with debug info are ~1.3 GB of objects
# per state of the sources; with ccache's default 5 GB, a day of other builds on the
# machine evicted them and a clean CI clone compiled everything twice (~40 min, not ~17).
export CCACHE_MAXSIZE="${CCACHE_MAXSIZE:-12G}"
cmake -S "$root" -B "$build_dir" "${cmake_args[@]}" >/dev/null
ninja -C "$build_dir" "${targets[@]}"
