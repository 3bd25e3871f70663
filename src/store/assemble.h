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
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "core/env.h"
#include "core/sha256.h"
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
  //
  // A multi-chunk file whose chunks are placed in file order, or nearly (a fetch
  // requests them in that order; parallel transfers finish a little out of it), is
  // hashed from the bytes as they are written: a chunk that comes early is kept in
  // memory (kMaxEarlyBytes for all files together) until the bytes before it are
  // hashed. Place returns Corruption naming the file when its last chunk completes a
  // file whose SHA-256 differs from the manifest's.
  core::Status Place(std::size_t chunk_index, std::string_view data);

  // Checks every chunk was placed, verifies the SHA-256 of every multi-chunk file that
  // Place could not hash in order by reading it back (a single-chunk file's hash is
  // its verified chunk id), applies the manifest's modes, and makes everything
  // durable. Corruption names the file.
  core::Status Finish(unsigned threads);

  // Multi-chunk files verified while being written, and by reading back in Finish.
  std::uint64_t files_hashed_in_order() const { return hashed_in_order_.load(); }
  std::uint64_t files_read_back() const { return read_back_.load(); }
  // Bytes of early chunks held in memory right now (see Place).
  std::uint64_t early_bytes() const { return early_bytes_.load(); }

  // Renames the staging directory to `dest`, which must not exist (InvalidArgument
  // otherwise), and makes the rename durable.
  core::Status CommitTo(const std::string& dest);

  // Renames the unfinished staging directory to `path` (which must not exist) and
  // gives it up: nothing in it is verified or durable, so whoever reads it later
  // must verify what it takes (a fetch resuming from it does). No-op when not
  // prepared or already committed.
  core::Status KeepUnfinished(const std::string& path);

  // Removes the staging directory. Idempotent.
  void Discard();

  std::uint64_t bytes_placed() const { return bytes_placed_.load(); }

 private:
  struct Placement {
    std::uint32_t entry;
    std::uint64_t offset;
  };
  // In-order hashing of one multi-chunk file (see Place).
  enum class HashState : std::uint8_t {
    kInOrder,   // every byte before next_offset_[e] was hashed, in order
    kReadBack,  // a chunk came out of order: Finish reads the file back
    kVerified,  // hashed completely, matches the manifest
    kMismatch,  // hashed completely, does not match (Place reported it)
  };
  // Locks guard the hash states of the entries with the same index modulo kStripes;
  // `active` holds the files partly hashed: the hasher, and chunks that came early
  // (by offset).
  static constexpr std::size_t kStripes = 64;
  struct Partial {
    core::Sha256 hasher;
    std::map<std::uint64_t, std::string> early;
  };
  struct Stripe {
    std::mutex mu;
    std::unordered_map<std::uint32_t, std::unique_ptr<Partial>> active;
  };
  std::string FilePath(std::uint32_t entry) const;
  core::Status HashInOrder(std::uint32_t entry, std::uint64_t offset, std::string_view data);
  // Drops a file's partial hash (its early chunks too): Finish reads it back.
  void GiveUpHashing(Stripe& stripe, std::uint32_t entry);
  void DropPartial(Stripe& stripe, std::uint32_t entry);  // frees it, keeps the state

  core::Env* env_;
  const Manifest* manifest_;
  std::string staging_;
  std::vector<ChunkRef> chunks_;
  std::vector<std::uint32_t> first_placement_;  // per chunk, index into placements_
  std::vector<Placement> placements_;           // grouped by chunk
  std::unique_ptr<std::atomic<bool>[]> placed_;
  std::atomic<std::uint64_t> bytes_placed_{0};
  std::vector<std::uint64_t> next_offset_;  // per entry, guarded by its stripe
  std::vector<HashState> hash_state_;       // per entry, guarded by its stripe
  std::unique_ptr<Stripe[]> stripes_;
  std::atomic<std::uint64_t> hashed_in_order_{0}, read_back_{0};
  std::atomic<std::uint64_t> early_bytes_{0};  // held in Partial::early, all files

 public:
  // Memory for chunks that came early, all files together; beyond it a file is read
  // back instead. A fetch's reordering window is about its parallel transfers.
  static constexpr std::uint64_t kMaxEarlyBytes = 64ull << 20;
  bool prepared_ = false;
  bool committed_ = false;
};

}  // namespace depot::store
