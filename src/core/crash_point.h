// Named crash points, for crash tests that must kill a process at an exact step
// rather than at a random moment.
//
// With DEPOT_CRASH_AT=NAME (or NAME:N) in the environment, the first (or Nth) time the
// process passes CrashPoint("NAME") it sends itself SIGKILL -- what `kill -9` would
// do had it landed on that line: no destructors, no flush, no fsync beyond what the
// code already did. Without the variable a crash point costs one atomic load.
//
// Points are placed between the durable steps of a multi-step change (a chunk batch
// stored, a version signed but not recorded, a manifest staged but not published, a
// program exited but its result not recorded); docs/design-notes.md lists them.
//
// Thread safety: any thread.
#pragma once

#include <string_view>

namespace depot::core {

void CrashPoint(std::string_view name);

}  // namespace depot::core
