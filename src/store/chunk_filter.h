// ChunkFilter answers "might this chunk be stored?" from memory, so a site can
// answer that most chunks of a new upload are missing without a file lookup each.
//
// Why: a missing-chunk query costs one stat(2) per id, a negative directory lookup
// in the store (~5 us with its dentry); the ~47 k chunks of a new 1 GiB tree cost the
// site ~0.2 CPU-s, on the same cores that verify and write the upload.
//
// It is a Bloom filter with two bits per id (SHA-256 ids are uniform, so two
// independent 32-bit pieces of the id index it; no hashing). "No" is certain for
// every id that was added; "maybe" must be confirmed with the store. Removed chunks
// are not taken out (a Bloom filter cannot): their bits only turn a few later
// answers into "maybe", which costs a lookup, never a wrong answer. With the default
// 2^25 bits (4 MiB) a store of 1 M chunks answers "maybe" for ~0.3 % of absent ids,
// 5 M chunks for ~6 %.
//
// Not ready until the owner has added every stored chunk (MarkReady); until then
// every answer is "maybe". Chunks stored later must be added by whoever stores them
// before they can be asked about: one stored without being added is reported
// missing, and is then sent again (harmless, content-addressed), never lost.
//
// Thread safety: every method may be called from any thread; Add and MayContain are
// lock-free.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>

#include "store/chunk_store.h"

namespace depot::store {

class ChunkFilter {
 public:
  // `bits` is rounded up to a power of two, at least 2^10.
  explicit ChunkFilter(std::uint64_t bits = 1ull << 25);

  void Add(const ChunkId& id);

  // False only if `id` was never added and the filter is ready.
  bool MayContain(const ChunkId& id) const;

  // Called once every chunk stored before has been added.
  void MarkReady() { ready_.store(true, std::memory_order_release); }
  bool ready() const { return ready_.load(std::memory_order_acquire); }

 private:
  // The word and bit of the two pieces of `id` that index the filter.
  std::uint64_t Piece(const ChunkId& id, int which) const;

  std::uint64_t mask_;  // bits - 1
  std::unique_ptr<std::atomic<std::uint64_t>[]> words_;
  std::atomic<bool> ready_{false};
};

}  // namespace depot::store
