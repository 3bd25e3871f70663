// The chunk store: content-addressed, immutable chunk files.
//
//   <root>/<first 2 hex of id>/<64 hex id>
//
// Each file is one zstd frame of the chunk's uncompressed bytes, whose SHA-256 is the
// id. A file appears under its name only complete and durable (temp + sync + rename),
// so a reader -- this process, another depot, nginx -- never sees a partial chunk, and
// nothing is ever rewritten in place. Names starting with '.' are temp files.
//
// Thread safety: all methods may be called concurrently, also by several processes
// on the same directory. Concurrent writers of the same chunk are safe: each writes
// its own temp file and the renames are atomic; the bytes are the same.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <unordered_set>

#include "core/atomic_batch.h"
#include "core/env.h"
#include "core/sha256.h"
#include "core/status.h"

namespace depot::store {

using ChunkId = core::Digest;

struct ChunkIdHash {
  std::size_t operator()(const ChunkId& id) const {
    std::size_t h;
    static_assert(sizeof(h) <= sizeof(ChunkId));
    __builtin_memcpy(&h, id.data(), sizeof(h));
    return h;
  }
};
using ChunkIdSet = std::unordered_set<ChunkId, ChunkIdHash>;

// "ab/ab12...": a chunk's path relative to the store root (and, under "chunks/", to a
// repository root).
std::string ChunkRelPath(const ChunkId& id);

struct GcStats {
  std::uint64_t kept = 0;
  std::uint64_t removed = 0;
  std::uint64_t removed_bytes = 0;  // stored (compressed) bytes
  std::uint64_t temp_removed = 0;
};

// Decompresses `frame` into `*buffer` (grown as needed) and checks that it holds
// exactly `size` bytes whose SHA-256 is `id`; returns a view of those bytes, valid
// until the buffer is next used. Corruption naming the chunk otherwise. The one check
// every received frame passes before it is stored or used.
core::Result<std::string_view> VerifyFrameInto(const ChunkId& id, std::uint64_t size,
                                               std::string_view frame, std::string* buffer);

class ChunkStore {
 public:
  // `env` is not owned and must outlive the store.
  ChunkStore(core::Env* env, std::string root, int compression_level);

  // Creates the root and its 256 fan-out directories (idempotent).
  core::Status Create();

  const std::string& root() const { return root_; }
  core::Env* env() const { return env_; }
  std::string PathOf(const ChunkId& id) const;

  // Whether the chunk file exists (not whether its bytes are right; see Get).
  core::Result<bool> Has(const ChunkId& id);

  // Stores `data` under `id` after checking SHA-256(data) == id (Corruption
  // otherwise, nothing written). Idempotent: an existing chunk is left as is.
  // With `batch`, the file becomes visible at batch->Commit(); without, it is durable
  // on return.
  core::Status Put(const ChunkId& id, std::string_view data, core::AtomicBatch* batch = nullptr);

  // Stores a frame received from elsewhere after checking that it decompresses to
  // exactly `size` bytes whose SHA-256 is `id`. Returns the uncompressed bytes (the
  // caller usually needs them). The frame is stored as received.
  core::Result<std::string> PutFrame(const ChunkId& id, std::uint64_t size, std::string_view frame,
                                     core::AtomicBatch* batch = nullptr);

  // Writes a frame the caller has verified itself, without checking again or
  // looking for an existing copy: one it just made from bytes it just hashed (the
  // snapshot), or one it just decompressed to bytes whose SHA-256 is `id` (a fetch
  // filling its cache). Hashing and decompressing everything twice would otherwise
  // double the CPU of both. A chunk already present is replaced by the same bytes
  // (atomically, by rename).
  core::Status PutFrameTrusted(const ChunkId& id, std::string_view frame, core::AtomicBatch* batch);

  // Reads a chunk's uncompressed bytes. NotFound when absent. `expected_size` (or
  // UINT64_MAX when unknown, then bounded by kMaxChunkSizeLimit) and, with `verify`,
  // the SHA-256 are checked: Corruption on any mismatch.
  core::Result<std::string> Get(const ChunkId& id, std::uint64_t expected_size, bool verify);

  // The uncompressed size a stored chunk's frame declares, read from its header only
  // (the bytes were verified when the chunk was put). NotFound when absent.
  core::Result<std::uint64_t> StoredSize(const ChunkId& id);

  // Reads the stored frame as is (what a server sends). NotFound when absent.
  core::Result<std::string> GetFrame(const ChunkId& id);

  // Removes a chunk; NotFound when absent.
  core::Status Remove(const ChunkId& id);

  // Adds the id of every chunk file present to `out`: one pass over the 256
  // directories instead of one lookup per chunk (Has), which is what storing tens of
  // thousands of new chunks would otherwise cost. A snapshot of the moment: chunks
  // stored or removed afterwards by others are not reflected.
  core::Status ListIds(ChunkIdSet* out);

  // Roughly how many directory entries ListIds would have to read, judged from the
  // sizes of the fan-out directories (which grow with their entries and never
  // shrink, like the cost of reading them). Lets callers choose between ListIds and
  // per-chunk Has. Cheap: 256 stat calls.
  core::Result<std::uint64_t> EstimateEntries();

  // Calls fn(id, stored_bytes) for every chunk; stops early if fn returns false.
  // Files whose names are not chunk ids (other than temp files) are reported through
  // `on_stray` when given.
  core::Status ForEach(const std::function<bool(const ChunkId&, std::uint64_t)>& fn,
                       const std::function<void(const std::string&)>& on_stray = nullptr);

  // Removes every chunk not in `live` whose file was last modified at or before
  // `keep_modified_after_ns` (ns since the epoch; the default removes regardless of
  // age), and temp files left by crashed writers. Concurrent writers must not run
  // unless the age bound covers them: a chunk put during collection may be removed
  // unless it is in `live` or younger than the bound.
  core::Result<GcStats> CollectGarbage(const ChunkIdSet& live,
                                       std::int64_t keep_modified_after_ns = INT64_MIN);

  // Removes only temp files whose writer process is gone (safe while other
  // processes write). Returns how many were removed. With `on_chunk`, the same pass
  // over the store also calls it with the id of every chunk file it sees (a start-up
  // that wants both lists the store once).
  core::Result<std::uint64_t> SweepAbandonedTemps(
      const std::function<void(const ChunkId&)>& on_chunk = nullptr);

 private:
  core::Status WriteFrame(const ChunkId& id, std::string_view frame, core::AtomicBatch* batch);

  core::Env* env_;
  std::string root_;
  int level_;
};

}  // namespace depot::store
