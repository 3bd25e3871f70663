#include "store/chunker.h"

#include <algorithm>
#include <array>
#include <bit>

namespace depot::store {
namespace {

std::array<std::uint64_t, 256> MakeGear() {
  std::array<std::uint64_t, 256> t{};
  std::uint64_t x = kGearSeed;
  for (auto& v : t) {
    // SplitMix64.
    x += 0x9e3779b97f4a7c15ULL;
    std::uint64_t z = x;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    v = z ^ (z >> 31);
  }
  return t;
}

const std::array<std::uint64_t, 256> kGear = MakeGear();

// A mask of `bits` ones in the top of the word: the gear hash's high bits depend on
// the last 64 bytes, its low bits on only the last few.
std::uint64_t TopMask(int bits) { return bits <= 0 ? 0 : ~0ULL << (64 - bits); }

}  // namespace

const std::uint64_t* GearTable() { return kGear.data(); }

core::Result<Chunker> Chunker::Create(const ChunkerParams& p) {
  if (!(p.min_size >= 64 && p.min_size < p.avg_size && p.avg_size < p.max_size &&
        p.max_size <= kMaxChunkSizeLimit && std::has_single_bit(p.avg_size))) {
    return core::Status::InvalidArgument(
        "chunk sizes must satisfy 64 <= min < avg < max <= 4 MiB with avg a power of two (got " +
        std::to_string(p.min_size) + "/" + std::to_string(p.avg_size) + "/" +
        std::to_string(p.max_size) + ")");
  }
  return Chunker(p);
}

Chunker::Chunker(const ChunkerParams& p) : params_(p) {
  int bits = std::countr_zero(p.avg_size);
  // Normalized chunking, level 2: two more bits before the average, two fewer after,
  // which narrows the size distribution around avg_size.
  mask_small_ = TopMask(bits + 2);
  mask_large_ = TopMask(bits - 2);
}

std::size_t Chunker::NextCut(const std::uint8_t* data, std::size_t n, bool eof) const {
  (void)eof;
  if (n <= params_.min_size) return n;
  const std::size_t end = std::min<std::size_t>(n, params_.max_size);
  const std::size_t normal = std::min<std::size_t>(end, params_.avg_size);
  const std::uint64_t* gear = kGear.data();
  std::uint64_t fp = 0;
  // Hashing starts 64 bytes before min_size so that the fingerprint at the first
  // candidate cut already covers a full window: cut points then depend only on
  // content, not on where the previous chunk happened to start.
  std::size_t i = params_.min_size - 64;
  for (; i < params_.min_size; ++i) fp = (fp << 1) + gear[data[i]];
  for (; i < normal; ++i) {
    fp = (fp << 1) + gear[data[i]];
    if ((fp & mask_small_) == 0) return i + 1;
  }
  for (; i < end; ++i) {
    fp = (fp << 1) + gear[data[i]];
    if ((fp & mask_large_) == 0) return i + 1;
  }
  return end;
}

}  // namespace depot::store
