// The local half of a fetch (internal to the repo component): the chunks a version
// needs that are already on this machine -- in seed trees (installed versions), in
// the partial tree or abandoned staging trees of earlier fetches to the same place,
// in the cache. Everything found is re-verified against its id before it is placed:
// local copies are hints, never trusted.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "core/env.h"
#include "repo/fetch.h"
#include "store/chunk_store.h"
#include "store/manifest.h"

namespace depot::repo {

// Staging directories of fetches to the same destination whose process no longer
// exists (killed mid-fetch), named `prefix`<pid>-..., in `dir`.
std::vector<std::string> AbandonedStaging(core::Env* env, const std::string& dir,
                                          const std::string& prefix);

// Places a verified chunk (its index in `chunks`) into the tree being assembled.
using PlaceFn = std::function<void(std::size_t index, std::string_view data)>;

struct LocalTake {
  std::uint64_t chunks = 0, bytes = 0;
};

// Reads from `seeds` every chunk of `chunks` not yet marked in `hit` that they hold
// (at its first place in them), verifies and places it, and marks it. `stop` ends it
// early. `threads` readers.
LocalTake TakeFromSeeds(core::Env* env, const std::vector<FetchSeed>& seeds,
                        const std::vector<store::ChunkRef>& chunks, unsigned threads,
                        std::vector<char>* hit, const PlaceFn& place,
                        const std::function<bool()>& stop);

// The same from a chunk cache; a damaged cache entry is removed.
LocalTake TakeFromCache(store::ChunkStore* cache, const std::vector<store::ChunkRef>& chunks,
                        unsigned threads, std::vector<char>* hit, const PlaceFn& place,
                        const std::function<bool()>& stop);

}  // namespace depot::repo
