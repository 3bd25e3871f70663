#include "store/chunk_filter.h"

#include <algorithm>
#include <bit>
#include <cstring>

namespace depot::store {

ChunkFilter::ChunkFilter(std::uint64_t bits) {
  // Two 32-bit pieces index it, so more than 2^32 bits would go unused.
  bits = std::bit_ceil(std::clamp<std::uint64_t>(bits, 1u << 10, 1ull << 32));
  mask_ = bits - 1;
  words_ = std::make_unique<std::atomic<std::uint64_t>[]>(bits / 64);
}

std::uint64_t ChunkFilter::Piece(const ChunkId& id, int which) const {
  std::uint32_t v;
  std::memcpy(&v, id.data() + 16 + 4 * which, 4);  // bytes the store's hash tables do not use
  return v & mask_;
}

void ChunkFilter::Add(const ChunkId& id) {
  for (int i = 0; i < 2; ++i) {
    std::uint64_t bit = Piece(id, i);
    std::uint64_t want = 1ull << (bit & 63);
    std::atomic<std::uint64_t>& word = words_[bit >> 6];
    // Most adds of a growing store find the bit clear; a plain load first keeps
    // repeated adds of the same id from writing the cache line.
    if ((word.load(std::memory_order_relaxed) & want) == 0)
      word.fetch_or(want, std::memory_order_relaxed);
  }
}

bool ChunkFilter::MayContain(const ChunkId& id) const {
  if (!ready()) return true;
  for (int i = 0; i < 2; ++i) {
    std::uint64_t bit = Piece(id, i);
    if ((words_[bit >> 6].load(std::memory_order_relaxed) & (1ull << (bit & 63))) == 0)
      return false;
  }
  return true;
}

}  // namespace depot::store
