// FastCDC content-defined chunking (Xia et al., USENIX ATC 2016) with a 64-bit gear
// hash and normalized chunking (level 2). Cut points depend only on the bytes near
// them, so an insertion or deletion moves the boundaries around it and leaves the
// others where they were: an edited file re-uses all its unchanged chunks.
//
// The gear table and masks are part of the content format (docs/formats.md): the same
// bytes must cut at the same places in every depot release, or dedup breaks.
//
// Thread safety: a Chunker is immutable after construction; share it freely.
#pragma once

#include <cstddef>
#include <cstdint>

#include "core/status.h"

namespace depot::store {

struct ChunkerParams {
  std::uint32_t min_size = 16 * 1024;
  std::uint32_t avg_size = 64 * 1024;
  std::uint32_t max_size = 256 * 1024;
};

// Largest max_size any manifest may declare; bounds memory per chunk everywhere.
inline constexpr std::uint32_t kMaxChunkSizeLimit = 4 * 1024 * 1024;

class Chunker {
 public:
  // InvalidArgument unless 64 <= min < avg < max <= kMaxChunkSizeLimit and avg is a
  // power of two.
  static core::Result<Chunker> Create(const ChunkerParams& params);

  const ChunkerParams& params() const { return params_; }

  // Returns the length of the chunk starting at data[0]. `n` is how many bytes are
  // available; `eof` says no more bytes follow them. The result is in [1, n] when n > 0.
  // When it equals n, n < max_size and !eof, the boundary is not known yet: call again
  // with more data. Returns 0 only for n == 0.
  std::size_t NextCut(const std::uint8_t* data, std::size_t n, bool eof) const;

  // True when NextCut's answer `cut` for `n` available bytes is final.
  bool CutIsFinal(std::size_t cut, std::size_t n, bool eof) const {
    return eof || cut < n || n >= params_.max_size;
  }

 private:
  explicit Chunker(const ChunkerParams& p);
  ChunkerParams params_;
  std::uint64_t mask_small_;  // harder to match: used before avg_size
  std::uint64_t mask_large_;  // easier to match: used after avg_size
};

// The gear table (256 pseudo-random 64-bit values from SplitMix64 seeded with
// kGearSeed); exposed for the format documentation test.
inline constexpr std::uint64_t kGearSeed = 0x6465706f74636463ULL;  // "depotcdc"
const std::uint64_t* GearTable();

}  // namespace depot::store
