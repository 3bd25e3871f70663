#!/usr/bin/env bash
# Checks (default) or applies (--fix) .clang-format on every C++ file under src/ and
# bench/. CI runs the check before building, so a change that breaks the format does
# not land; run `scripts/format.sh --fix` to apply it. Uses Debian 12's clang-format
# (14); another version may format a few constructs differently.
#   scripts/format.sh [--fix]
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
command -v clang-format >/dev/null || {
  echo "format: clang-format is missing; run scripts/install-deps.sh --test" >&2
  exit 2
}
mapfile -t files < <(git ls-files -- 'src/*.h' 'src/*.cc' 'bench/*.h' 'bench/*.cc' 'fuzz/*.cc')
if [[ "${1:-}" == --fix ]]; then
  clang-format -i "${files[@]}"
  exit 0
fi
if ! clang-format --dry-run -Werror "${files[@]}" 2>/tmp/depot-format.$$; then
  grep -E '^[^ ].*: error:' /tmp/depot-format.$$ | cut -d: -f1 | sort | uniq -c |
    awk '{print "format: " $2 ": " $1 " line(s) differ from .clang-format"}' >&2
  rm -f /tmp/depot-format.$$
  echo "format: run scripts/format.sh --fix and commit the result" >&2
  exit 1
fi
rm -f /tmp/depot-format.$$
