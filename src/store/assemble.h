// Assembler: materialises a manifest's tree from verified chunks into a staging
// directory, verifies every file, and renames the whole tree into place. The
// destination never holds a partial or unverified tree.
//
// Usage: Prepare(); Place() every chunk (from any threads, in any order); Finish();
// CommitTo(dest). On any error, Discard() (or the destructor) removes the staging
// directory.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/env.h"
#include "store/manifest.h"

namespace depot::store {

class Assembler {
 public:
  // `env` and `manifest` are not owned and must outlive the assembler; `manifest`
  // must have passed ValidateManifest. `staging` must not exist; it should be on the
  // same filesystem as the final destination (a sibling of it).
  Assembler(core::Env* env, const Manifest* manifest, std::string staging);
  ~Assembler();  // Discard() unless committed
  Assembler(const Assembler&) = delete;
  Assembler& operator=(const Assembler&) = delete;

  // Creates the staging directory, every directory, symlink and empty file.
  core::Status Prepare();

  // The distinct chunks the tree needs; Place() takes an index into this list.
  const std::vector<ChunkRef>& chunks() const { return chunks_; }

  // The index of the entry a chunk is first written to: callers spreading Place()
  // calls over threads keep one file on one thread.
  std::uint32_t HomeFile(std::size_t chunk_index) const {
    return placements_[first_placement_[chunk_index]].entry;
  }

  // Writes a chunk's bytes at every offset of every file that uses them. The caller
  // must have verified `data` against the chunk id (size is re-checked here).
  // Thread-safe; each index should be placed once.
  core::Status Place(std::size_t chunk_index, std::string_view data);

  // Checks every chunk was placed, verifies the SHA-256 of every multi-chunk file by
  // reading it back (a single-chunk file's hash is its verified chunk id), applies
  // the manifest's modes, and makes everything durable. Corruption names the file.
  core::Status Finish(unsigned threads);

  // Renames the staging directory to `dest`, which must not exist (InvalidArgument
  // otherwise), and makes the rename durable.
  core::Status CommitTo(const std::string& dest);

  // Removes the staging directory. Idempotent.
  void Discard();

  std::uint64_t bytes_placed() const { return bytes_placed_.load(); }

 private:
  struct Placement {
    std::uint32_t entry;
    std::uint64_t offset;
  };
  std::string FilePath(std::uint32_t entry) const;

  core::Env* env_;
  const Manifest* manifest_;
  std::string staging_;
  std::vector<ChunkRef> chunks_;
  std::vector<std::uint32_t> first_placement_;  // per chunk, index into placements_
  std::vector<Placement> placements_;           // grouped by chunk
  std::unique_ptr<std::atomic<bool>[]> placed_;
  std::atomic<std::uint64_t> bytes_placed_{0};
  bool prepared_ = false;
  bool committed_ = false;
};

}  // namespace depot::store
