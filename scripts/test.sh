#!/usr/bin/env bash
# Builds depot with warnings as errors and runs every test: unit tests (GoogleTest,
# one executable per component) and cross-process tests (real depot processes,
# nginx, tuf-js) -- first on the normal build, then again on a build with
# AddressSanitizer and UndefinedBehaviorSanitizer (DEPOT_SANITIZE), then each libFuzzer
# target briefly (scripts/fuzz.sh). Installs what it
# needs first and checks the C++ format (scripts/format.sh).
#   scripts/test.sh [--no-sanitize]
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
sanitize=1
[[ "${1:-}" == --no-sanitize ]] && sanitize=0
jobs=$(nproc)
start=$SECONDS
stage() { echo "== $1   [$(((SECONDS - start) / 60)) min $(((SECONDS - start) % 60)) s so far]"; }

"$root/scripts/build.sh" --werror --test-deps
stage "format (.clang-format)"
"$root/scripts/format.sh"
if ((sanitize)); then
  stage "tests (build/)"
  (cd "$root/build" && ctest --output-on-failure --timeout 900 -j "$jobs")
  stage "tests under ASan + UBSan (build-asan/)"
  "$root/scripts/build.sh" --werror --sanitize --dir "$root/build-asan"
  cd "$root/build-asan"
  # The cross-process suite once, on SQLite: its PostgreSQL run (label catalog_pg)
  # drives the same depot code, and ran on the normal build above.
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    ctest --output-on-failure --timeout 900 -j "$jobs" -LE catalog_pg
  stage "fuzzing (scripts/fuzz.sh: each target 15 s from fuzz/corpus)"
  "$root/scripts/fuzz.sh" --seconds 15
else
  cd "$root/build"
  ctest --output-on-failure --timeout 900 -j "$jobs"
fi
stage "done"
