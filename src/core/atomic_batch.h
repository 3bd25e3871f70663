// AtomicBatch writes many files so that each appears under its final name only
// complete and durable -- temp file, sync, rename -- while paying for one filesystem
// sync per batch instead of one fsync per file. A snapshot of 50,000 chunks would
// otherwise spend most of its time in fsync.
//
// Order per batch: write every temp file; make them durable (syncfs, or fdatasync
// each when the batch is small); rename each into place; make the renames durable.
// A crash at any point leaves final names that are complete, plus stray temp files
// ("." prefix) that stores sweep.
//
// Thread safety: Add() and AddWritten() may be called concurrently; Commit() and
// Abort() by one thread once all adds are done.
#pragma once

#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "core/env.h"

namespace depot::core {

class AtomicBatch {
 public:
  // `env` is not owned and must outlive the batch. `sync_root` is a directory on the
  // filesystem every final path lives on.
  AtomicBatch(Env* env, std::string sync_root);
  ~AtomicBatch();  // Abort() unless committed
  AtomicBatch(const AtomicBatch&) = delete;
  AtomicBatch& operator=(const AtomicBatch&) = delete;

  // Writes `data` to a fresh temp file next to `final_path` (whose directory must
  // exist). The final name appears at Commit().
  Status Add(const std::string& final_path, std::string_view data, std::uint32_t mode = 0644);
  // Writes `data` to a fresh temp file next to `final_path` (the name Add() uses) and
  // returns its path; nothing is synced. For callers that collect temp files over time
  // and commit them in a later batch with AddWritten(). Errors: IOError.
  static Result<std::string> WriteTemp(Env* env, const std::string& final_path,
                                       std::string_view data, std::uint32_t mode = 0644);
  // Adopts a temp file the caller wrote and closed itself; it is renamed to
  // `final_path` at Commit() (or removed by Abort()).
  void AddWritten(std::string temp_path, std::string final_path);

  // Syncs, renames into place, syncs the renames. On error the files not yet renamed
  // are removed and the error says which rename or sync failed.
  Status Commit();
  // Removes every temp file not yet renamed. Idempotent.
  void Abort();

  std::size_t size() const;

 private:
  struct Pending {
    std::string temp;
    std::string final_path;
  };
  Env* env_;
  std::string sync_root_;
  mutable std::mutex mu_;
  std::vector<Pending> pending_;
};

}  // namespace depot::core
