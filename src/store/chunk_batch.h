// The chunk-batch upload format (docs/api.md, POST /api/v1/chunks): the one codec,
// used by the CLI's uploader to write batches and by the site to read them.
//
// A batch is records back to back, each
//   [32-byte chunk id][u32 LE uncompressed size][u32 LE frame length][zstd frame]
// The reader only frames records; verifying a frame against its id (and bounding its
// size) is the receiver's, before anything is stored.
//
// Thread safety: pure functions.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

#include "core/status.h"
#include "store/chunk_store.h"

namespace depot::store {

// The Content-Type of a chunk batch.
inline constexpr std::string_view kChunkBatchMediaType = "application/vnd.depot.chunks";
// Bytes of a record before its frame.
inline constexpr std::size_t kChunkRecordHeader = 40;

// Appends one record to `body`.
void AppendChunkRecord(std::string* body, const ChunkId& id, std::uint32_t size,
                       std::string_view frame);

struct ChunkRecord {
  ChunkId id;
  std::uint32_t size = 0;  // uncompressed, as the sender claims it
  std::string_view frame;  // points into the batch
};

// Calls `fn` for each record of `batch` in order, stopping at the first error it
// returns (passed on). InvalidArgument naming the record when one is truncated.
core::Status ForEachChunkRecord(std::string_view batch,
                                const std::function<core::Status(const ChunkRecord&)>& fn);

}  // namespace depot::store
