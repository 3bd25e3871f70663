#!/usr/bin/env bash
# Installs everything depot needs to build, run and test on Debian 12.
# Idempotent: when every package is already present it only checks and returns.
#   scripts/install-deps.sh          build + runtime dependencies
#   scripts/install-deps.sh --test   also the tools the test suite uses (nginx, tuf-js, ...)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(dirname "$here")"

build_pkgs=(
  build-essential cmake ninja-build ccache pkg-config
  libboost1.81-dev libcurl4-openssl-dev libssl-dev libzstd-dev libsqlite3-dev
  libpq-dev nlohmann-json3-dev libspdlog-dev libfmt-dev libcli11-dev libtomlplusplus-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  tzdata  # the agent reads maintenance-window time zones from /usr/share/zoneinfo
)
test_pkgs=(nginx-light curl zstd sqlite3 postgresql python3 clang-format
  clang libclang-rt-14-dev  # libFuzzer (scripts/fuzz.sh)
  chromium fonts-liberation)  # the console's browser tests (driven by playwright-core from npm)
bench_pkgs=(casync rsync wrk hyperfine vmtouch)

want=("${build_pkgs[@]}")
case "${1:-}" in
  --test) want+=("${test_pkgs[@]}") ;;
  --bench) want+=("${test_pkgs[@]}" "${bench_pkgs[@]}") ;;
esac
# Node.js/npm only for the conformance tests; a machine may already carry a
# non-Debian Node.js that bundles npm, which a Debian npm would conflict with.
if [[ "${1:-}" == --test || "${1:-}" == --bench ]]; then
  command -v node >/dev/null || want+=(nodejs)
  command -v npm >/dev/null || want+=(npm)
fi

missing=()
for p in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "install-deps: installing ${missing[*]}" >&2
  sudo=""; [[ $(id -u) -ne 0 ]] && sudo=sudo
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if [[ "${1:-}" == --test || "${1:-}" == --bench ]]; then
  # npm packages for tests live in a project-local folder, pinned by its lockfile.
  npm_dir="$root/tests/node"
  if [[ ! -d "$npm_dir/node_modules/tuf-js" || ! -d "$npm_dir/node_modules/playwright-core" ]]; then
    echo "install-deps: npm packages into $npm_dir" >&2
    (cd "$npm_dir" && npm ci --no-audit --no-fund --loglevel=error 2>/dev/null \
      || npm install --no-audit --no-fund --loglevel=error)
  fi
fi
