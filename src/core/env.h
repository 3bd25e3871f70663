// The disk seam. Everything in depot that touches the filesystem goes through an Env,
// so tests can substitute one that fails (a full disk, an I/O error at the Nth write).
// Only standard types appear in the signatures.
//
// Thread safety: Env methods may be called from any thread concurrently. The file
// objects it returns are used by one thread at a time.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"

namespace depot::core {

enum class FileType {
  kRegular,
  kDirectory,
  kSymlink,
  kFifo,
  kSocket,
  kCharDevice,
  kBlockDevice,
  kUnknown
};

// Human name of a file type ("regular file", "FIFO", ...) for error messages.
std::string_view FileTypeName(FileType t);

struct FileInfo {
  FileType type = FileType::kUnknown;
  std::uint32_t mode = 0;  // permission bits only (07777)
  std::uint64_t size = 0;
  std::uint64_t device = 0;
  std::uint64_t inode = 0;
  std::int64_t mtime_ns = 0;
  std::int64_t ctime_ns = 0;

  // True when two observations describe the same, unchanged file contents.
  bool SameContentVersion(const FileInfo& o) const {
    return type == o.type && size == o.size && device == o.device && inode == o.inode &&
           mtime_ns == o.mtime_ns && ctime_ns == o.ctime_ns;
  }
};

struct DirEntry {
  std::string name;
  FileType type = FileType::kUnknown;  // from d_type; kUnknown means "lstat it"
};

// A file opened for reading, sequentially or at offsets.
class ReadableFile {
 public:
  virtual ~ReadableFile() = default;
  // Reads up to `n` bytes at the current position; returns 0 at end of file.
  virtual Result<std::size_t> Read(char* buf, std::size_t n) = 0;
  // Reads up to `n` bytes at `offset` without moving the position.
  virtual Result<std::size_t> ReadAt(std::uint64_t offset, char* buf, std::size_t n) = 0;
  // Describes the open file (fstat): detects a file replaced or changed while read.
  virtual Result<FileInfo> Stat() = 0;
  // The file as it was when opened, before any byte was read. Implementations that
  // looked at the file while opening it answer without another fstat (a snapshot
  // opens tens of thousands of files); the default asks Stat().
  virtual Result<FileInfo> StatAtOpen() { return Stat(); }
};

// A file opened for writing. Close() must be called to learn of deferred errors;
// the destructor closes silently.
class WritableFile {
 public:
  virtual ~WritableFile() = default;
  virtual Status Append(std::string_view data) = 0;
  virtual Status WriteAt(std::uint64_t offset, std::string_view data) = 0;
  // Sets the file size (allocating nothing); used to pre-size assembled files.
  virtual Status Truncate(std::uint64_t size) = 0;
  virtual Status Sync() = 0;  // fdatasync
  // Sets the permission bits exactly (fchmod; not subject to the umask).
  virtual Status SetMode(std::uint32_t mode) = 0;
  virtual Status Close() = 0;
};

// An exclusive advisory lock on a file (flock); released on destruction.
class FileLock {
 public:
  virtual ~FileLock() = default;
};

class Env {
 public:
  virtual ~Env() = default;

  // The process-wide POSIX implementation. Never null; not owned by the caller.
  static Env* Default();

  // Opens `path` for reading. With `no_follow`, a symlink at `path` fails
  // (InvalidArgument) instead of being followed. NotFound when absent.
  virtual Result<std::unique_ptr<ReadableFile>> OpenForRead(const std::string& path,
                                                            bool no_follow) = 0;
  enum class WriteMode {
    kCreateNew,  // fail (InvalidArgument) if `path` exists
    kTruncate,   // create or truncate
    kUpdate,     // create or open as is, for writes at offsets
  };
  // Opens `path` for writing, creating it with `mode` (subject to the umask). Never
  // follows a symlink at `path`.
  virtual Result<std::unique_ptr<WritableFile>> OpenForWrite(const std::string& path,
                                                             std::uint32_t mode, WriteMode how) = 0;

  // Whole-file read, failing with InvalidArgument when the file exceeds `max_bytes`.
  virtual Result<std::string> ReadFile(const std::string& path, std::uint64_t max_bytes);
  // Durable replace: writes a temp file in the same directory, fsyncs it, renames it
  // over `path`, fsyncs the directory. Readers see the old or the new file, never a mix.
  virtual Status WriteFileAtomic(const std::string& path, std::string_view data,
                                 std::uint32_t mode = 0644);
  // WriteFileAtomic unless `path` already holds exactly `data`: a process that saves
  // its settings at every start still starts on a full disk (or a read-only one).
  Status WriteFileIfChanged(const std::string& path, std::string_view data,
                            std::uint32_t mode = 0644);

  virtual Result<FileInfo> Stat(const std::string& path) = 0;   // follows symlinks
  virtual Result<FileInfo> Lstat(const std::string& path) = 0;  // does not
  virtual Result<std::vector<DirEntry>> ListDir(const std::string& path) = 0;
  // ListDir plus an Lstat of every entry. The default does exactly that; the POSIX
  // Env looks entries up relative to the open directory (fstatat), sparing a path
  // walk from the root per entry -- most of a tree walk's system time.
  struct StatEntry {
    std::string name;
    FileInfo info;
    bool vanished = false;  // removed between the listing and its lstat; no info
  };
  virtual Result<std::vector<StatEntry>> ListDirStat(const std::string& path);
  virtual Result<std::string> ReadLink(const std::string& path) = 0;

  // Creates one directory; OK if it already exists as a directory.
  virtual Status CreateDir(const std::string& path, std::uint32_t mode = 0755) = 0;
  // Creates `path` and any missing parents.
  Status CreateDirs(const std::string& path, std::uint32_t mode = 0755);
  virtual Status CreateSymlink(const std::string& target, const std::string& path) = 0;
  virtual Status Chmod(const std::string& path, std::uint32_t mode) = 0;
  // Removes a file, a symlink or an empty directory. NotFound when absent.
  virtual Status Remove(const std::string& path) = 0;
  // Removes a tree (does not follow symlinks), making read-only directories in it
  // writable first. OK when absent.
  Status RemoveAll(const std::string& path);
  virtual Status Rename(const std::string& from, const std::string& to) = 0;
  // Makes an existing file's contents durable (fdatasync), e.g. a temp file written
  // and closed earlier.
  virtual Status SyncFile(const std::string& path) = 0;
  // Makes a directory's entries durable (fsync on the directory).
  virtual Status SyncDir(const std::string& path) = 0;
  // Makes everything written on the filesystem holding `path` durable (syncfs). One
  // call replaces thousands of per-file fsyncs; see AtomicBatch.
  virtual Status SyncFilesystem(const std::string& path) = 0;
  // Bytes available to unprivileged writers on the filesystem holding `path`.
  virtual Result<std::uint64_t> FreeSpace(const std::string& path) = 0;

  // Takes an exclusive lock on `path` (created if absent), waiting for other holders
  // (processes or threads) to release it. Serialises writers of one repository.
  virtual Result<std::unique_ptr<FileLock>> LockFile(const std::string& path) = 0;

  // Convenience: Lstat that maps NotFound to false.
  Result<bool> Exists(const std::string& path);
};

// Reads exactly `n` bytes at `offset` of `file`, over as many reads as it takes.
// IOError when a read fails or the file ends first (the message says where).
Status ReadExactlyAt(ReadableFile* file, std::uint64_t offset, char* buf, std::size_t n);

// Joins path pieces with '/', skipping empty pieces.
std::string JoinPath(std::string_view a, std::string_view b);
// "a/b/c" -> "a/b"; "c" -> "".
std::string_view Dirname(std::string_view path);
// "a/b/c" -> "c".
std::string_view Basename(std::string_view path);

// A unique temp-file name for `final_path` in its own directory:
// "<dir>/.<base>.tmp.<pid>-<16 hex>". Names starting with '.' are skipped by stores;
// the pid lets sweepers tell a crashed writer's leftovers from a live writer's work.
std::string TempPathFor(std::string_view final_path);

// True when `name` (a file name, not a path) is a temp file whose writing process no
// longer exists, so it can be removed without disturbing anyone.
bool IsAbandonedTemp(std::string_view name);

}  // namespace depot::core
