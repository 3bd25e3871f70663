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
source "$root/scripts/ccache-env.sh"
cmake -S "$root" -B "$build_dir" "${cmake_args[@]}" >/dev/null
ninja -C "$build_dir" "${targets[@]}"
