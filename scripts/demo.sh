#!/usr/bin/env bash
# depot's main job on embedded defaults (SQLite, local disk): builds depot, then runs
# `depot up --demo` -- a site, a DP and an agent in one process; a sample package
# created, distributed to the DP, deployed as required to the local agent and
# followed until it is installed -- and keeps serving until Ctrl-C. A second run
# reuses the data and publishes an update that moves only the changed chunks.
#   scripts/demo.sh [DATA_DIR [depot up flags...]]   (default: ./depot-up)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$root/scripts/build.sh" depot
data="${1:-$root/depot-up}"
shift || true
exec "$root/build/src/cli/depot" up --data "$data" --demo "$@"
