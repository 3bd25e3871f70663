#!/usr/bin/env bash
# Builds depot with warnings as errors and runs every test: unit tests (GoogleTest,
# one executable per component) and cross-process tests (real depot processes,
# nginx, tuf-js). Installs what it needs first. Ends with CTest's summary.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$root/scripts/build.sh" --werror --test-deps
cd "$root/build"
jobs=$(nproc)
ctest --output-on-failure --timeout 900 -j "$jobs"
