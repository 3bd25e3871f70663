#!/usr/bin/env bash
# Builds the libFuzzer targets (fuzz/: clang, every library instrumented, ASan +
# UBSan) into build-fuzz/ and runs each for SECONDS (default 60) starting from its
# corpus in fuzz/corpus/<target>/. Inputs it adds go to build-fuzz/corpus/<target>/
# (copy good ones into fuzz/corpus/ by hand); a crash leaves its input in
# build-fuzz/artifacts/ and makes this script fail. Prints executions per target.
#   scripts/fuzz.sh [--seconds N] [targets...]     (CI runs --seconds 15)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
seconds=60
targets=()
while (($#)); do
  case "$1" in
    --seconds) seconds="$2"; shift ;;
    *) targets+=("$1") ;;
  esac
  shift
done
build="$root/build-fuzz"
source "$root/scripts/ccache-env.sh"
CC=clang CXX=clang++ cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DDEPOT_FUZZ=ON -DDEPOT_BUILD_TESTS=OFF >/dev/null
ninja -C "$build" fuzzers
if ((${#targets[@]} == 0)); then
  targets=($(cd "$root/fuzz" && ls *_fuzz.cc | sed 's/_fuzz\.cc$//; s/^/fuzz_/'))
fi
mkdir -p "$build/artifacts"
failed=0
for t in "${targets[@]}"; do
  name="${t#fuzz_}"
  mkdir -p "$build/corpus/$name" "$root/fuzz/corpus/$name"
  log="$build/$t.log"
  if ! "$build/fuzz/$t" -max_total_time="$seconds" -timeout=60 -rss_limit_mb=2048 \
      -print_final_stats=1 -artifact_prefix="$build/artifacts/$t-" \
      "$build/corpus/$name" "$root/fuzz/corpus/$name" >"$log" 2>&1; then
    echo "FAIL $t: a finding (see $log and $build/artifacts/)"
    tail -n 30 "$log"
    failed=1
    continue
  fi
  runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo "?")
  echo "ok   $t: $runs executions in ${seconds}s"
done
exit "$failed"
