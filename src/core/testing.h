// Test helpers shared by every component's tests. Not linked into depot itself.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>

#include "core/env.h"

namespace depot::testing {

// A fresh directory under $TMPDIR (or /tmp), removed with its contents on
// destruction unless DEPOT_KEEP_TEST_DIRS is set.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  std::string Sub(std::string_view rel) const { return core::JoinPath(path_, rel); }

 private:
  std::string path_;
};

// Writes `data` to `path` (creating parents) with `mode`; aborts the test on error.
void WriteFileOrDie(const std::string& path, std::string_view data, std::uint32_t mode = 0644);
std::string ReadFileOrDie(const std::string& path);
// Deterministic pseudo-random bytes.
std::string RandomData(std::size_t n, std::uint64_t seed);

// An Env that forwards to another and injects faults, for "the disk fills up" and
// "the disk fails" tests. Counters are atomic so tests may flip them from any thread.
class FaultyEnv final : public core::Env {
 public:
  explicit FaultyEnv(core::Env* base) : base_(base) {}

  // After this many more bytes are written (Append/WriteAt), every write fails with
  // IOError "No space left on device". Negative: unlimited.
  std::atomic<std::int64_t> write_budget{-1};
  // When set, SyncFile/SyncDir/SyncFilesystem fail with IOError.
  std::atomic<bool> fail_sync{false};
  // When set, Rename fails with IOError.
  std::atomic<bool> fail_rename{false};
  std::atomic<std::uint64_t> renames{0};

  // Opening for read a path that contains this (non-empty) text fails with
  // PermissionDenied, as an unreadable file would even for root. Set before use.
  std::string deny_read;

  // A file opened for read whose path contains this (non-empty) text gets
  // `append_when_read_data` appended to it at its first read: a writer busy exactly
  // while the file is being read (source in use), on every attempt. Set before use.
  std::string append_when_read;
  std::string append_when_read_data;
  std::atomic<int> appends{0};

  core::Result<std::unique_ptr<core::ReadableFile>> OpenForRead(const std::string& path,
                                                                bool no_follow) override;
  core::Result<std::unique_ptr<core::WritableFile>> OpenForWrite(const std::string& path,
                                                                 std::uint32_t mode,
                                                                 WriteMode how) override;
  core::Result<core::FileInfo> Stat(const std::string& p) override { return base_->Stat(p); }
  core::Result<core::FileInfo> Lstat(const std::string& p) override { return base_->Lstat(p); }
  core::Result<std::vector<core::DirEntry>> ListDir(const std::string& p) override {
    return base_->ListDir(p);
  }
  core::Result<std::string> ReadLink(const std::string& p) override { return base_->ReadLink(p); }
  core::Status CreateDir(const std::string& p, std::uint32_t mode) override {
    return base_->CreateDir(p, mode);
  }
  core::Status CreateSymlink(const std::string& t, const std::string& p) override {
    return base_->CreateSymlink(t, p);
  }
  core::Status Chmod(const std::string& p, std::uint32_t mode) override {
    return base_->Chmod(p, mode);
  }
  core::Status Remove(const std::string& p) override { return base_->Remove(p); }
  core::Status Rename(const std::string& from, const std::string& to) override;
  core::Status SyncFile(const std::string& p) override;
  core::Status SyncDir(const std::string& p) override;
  core::Status SyncFilesystem(const std::string& p) override;
  core::Result<std::unique_ptr<core::FileLock>> LockFile(const std::string& p) override {
    return base_->LockFile(p);
  }
  core::Result<std::uint64_t> FreeSpace(const std::string& p) override {
    return base_->FreeSpace(p);
  }

  // Charges `n` bytes against the budget; false when the disk is "full".
  bool Charge(std::size_t n);

 private:
  core::Env* base_;
};

}  // namespace depot::testing
