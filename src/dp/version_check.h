// Checking one version's chunks in a DP's store (internal to the dp component): what
// the DP does when its site asks it to re-verify a version an agent reported stale or
// corrupt (the reported chunks first), and what the scrubber does chunk by chunk.
// A damaged chunk is removed at once, so it is never served again and the next sync
// fetches (and verifies) it afresh.
//
// Thread safety: the functions are safe to run beside the server and the syncer (the
// store's reads, writes and removals are atomic renames and unlinks).
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "core/status.h"
#include "store/chunk_store.h"
#include "store/manifest.h"

namespace depot::dp {

enum class ChunkHealth { kGood, kMissing, kDamaged };

// Re-reads and re-hashes chunk `id`; a damaged one is removed and `*error` says why.
ChunkHealth CheckChunk(store::ChunkStore* chunks, const store::ChunkId& id, std::string* error);

struct VersionCheck {
  std::uint64_t checked = 0, missing = 0, damaged = 0;
  std::vector<std::string> damaged_objects;  // "chunks/ab/ab12...: why", at most 32
};

// Checks `refs` (a version's distinct chunks), those in `first` before the rest;
// stops early when `stop` returns true. Damaged chunks are removed.
VersionCheck CheckVersionChunks(store::ChunkStore* chunks, const std::vector<store::ChunkRef>& refs,
                                const std::vector<store::ChunkId>& first,
                                const std::function<bool()>& stop);

}  // namespace depot::dp
