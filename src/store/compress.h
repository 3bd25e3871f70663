// zstd framing of chunks. Every stored chunk is exactly one zstd frame of the chunk's
// uncompressed bytes, with the content size in the frame header (zstd stores
// incompressible input as raw blocks, so there is one format for everything).
//
// Thread safety: the functions use per-thread zstd contexts and may be called from
// any thread.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "core/status.h"

namespace depot::store {

// The level chunk frames are written with unless configured otherwise; chosen by
// bench/build_speed (level 1 keeps up with two cores of hashing).
inline constexpr int kDefaultCompressionLevel = 1;
// zstd levels depot accepts.
inline constexpr int kMinCompressionLevel = -7;
inline constexpr int kMaxCompressionLevel = 19;

// Compresses `data` into one zstd frame that records its content size.
// IOError only if zstd itself fails (out of memory).
core::Result<std::string> CompressFrame(std::string_view data,
                                        int level = kDefaultCompressionLevel);

// The same frame, made in `*buffer` (grown as needed, never shrunk) and returned as a
// view into it, valid until the buffer is next used. For hot loops: a fresh
// compressBound-sized string per chunk costs an allocation and a page-zeroing pass.
core::Result<std::string_view> CompressFrameInto(std::string_view data, int level,
                                                 std::string* buffer);

// Decompresses one frame that must hold exactly `expected_size` bytes. Corruption if
// the frame is malformed, declares another size, is followed by trailing bytes, or
// decompresses to a different length.
core::Result<std::string> DecompressFrame(std::string_view frame, std::uint64_t expected_size);

// DecompressFrame into `*buffer` (grown as needed, never shrunk), returning a view of
// the `expected_size` bytes, valid until the buffer is next used. Same checks.
core::Result<std::string_view> DecompressFrameInto(std::string_view frame,
                                                   std::uint64_t expected_size,
                                                   std::string* buffer);

// Decompresses one frame of unknown size, refusing more than `max_size` bytes.
core::Result<std::string> DecompressFrameBounded(std::string_view frame, std::uint64_t max_size);

// The content size a frame's header declares, from the frame's first bytes (at least
// 18 of them, or the whole frame if shorter). Corruption when the header is malformed
// or declares no size.
core::Result<std::uint64_t> FrameContentSize(std::string_view frame_prefix);

// The largest frame a chunk of `size` bytes can legitimately compress to; a peer
// sending more is refused before reading further (download length cap).
std::uint64_t MaxFrameSize(std::uint64_t size);

}  // namespace depot::store
