#include "core/env.h"

#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstdlib>

#include "core/errors.h"
#include "core/random.h"

namespace depot::core {
namespace {

FileType TypeFromMode(mode_t m) {
  if (S_ISREG(m)) return FileType::kRegular;
  if (S_ISDIR(m)) return FileType::kDirectory;
  if (S_ISLNK(m)) return FileType::kSymlink;
  if (S_ISFIFO(m)) return FileType::kFifo;
  if (S_ISSOCK(m)) return FileType::kSocket;
  if (S_ISCHR(m)) return FileType::kCharDevice;
  if (S_ISBLK(m)) return FileType::kBlockDevice;
  return FileType::kUnknown;
}

FileInfo InfoFromStat(const struct stat& st) {
  FileInfo info;
  info.type = TypeFromMode(st.st_mode);
  info.mode = st.st_mode & 07777;
  info.size = static_cast<std::uint64_t>(st.st_size);
  info.device = st.st_dev;
  info.inode = st.st_ino;
  info.mtime_ns = static_cast<std::int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
  info.ctime_ns = static_cast<std::int64_t>(st.st_ctim.tv_sec) * 1000000000 + st.st_ctim.tv_nsec;
  return info;
}

class PosixReadableFile final : public ReadableFile {
 public:
  PosixReadableFile(int fd, std::string path, const struct stat& at_open)
      : fd_(fd), path_(std::move(path)), at_open_(InfoFromStat(at_open)) {}
  ~PosixReadableFile() override { ::close(fd_); }

  Result<std::size_t> Read(char* buf, std::size_t n) override {
    for (;;) {
      ssize_t r = ::read(fd_, buf, n);
      if (r >= 0) return static_cast<std::size_t>(r);
      if (errno != EINTR) return ErrnoStatus(errno, "read " + path_);
    }
  }
  Result<std::size_t> ReadAt(std::uint64_t offset, char* buf, std::size_t n) override {
    for (;;) {
      ssize_t r = ::pread(fd_, buf, n, static_cast<off_t>(offset));
      if (r >= 0) return static_cast<std::size_t>(r);
      if (errno != EINTR) return ErrnoStatus(errno, "read " + path_);
    }
  }
  Result<FileInfo> Stat() override {
    struct stat st;
    if (::fstat(fd_, &st) != 0) return ErrnoStatus(errno, "fstat " + path_);
    return InfoFromStat(st);
  }
  Result<FileInfo> StatAtOpen() override { return at_open_; }

 private:
  int fd_;
  std::string path_;
  FileInfo at_open_;
};

class PosixWritableFile final : public WritableFile {
 public:
  PosixWritableFile(int fd, std::string path) : fd_(fd), path_(std::move(path)) {}
  ~PosixWritableFile() override {
    if (fd_ >= 0) ::close(fd_);
  }

  Status Append(std::string_view data) override {
    while (!data.empty()) {
      ssize_t w = ::write(fd_, data.data(), data.size());
      if (w < 0) {
        if (errno == EINTR) continue;
        return ErrnoStatus(errno, "write " + path_);
      }
      data.remove_prefix(static_cast<std::size_t>(w));
    }
    return Status::Ok();
  }
  Status WriteAt(std::uint64_t offset, std::string_view data) override {
    while (!data.empty()) {
      ssize_t w = ::pwrite(fd_, data.data(), data.size(), static_cast<off_t>(offset));
      if (w < 0) {
        if (errno == EINTR) continue;
        return ErrnoStatus(errno, "write " + path_);
      }
      data.remove_prefix(static_cast<std::size_t>(w));
      offset += static_cast<std::uint64_t>(w);
    }
    return Status::Ok();
  }
  Status Truncate(std::uint64_t size) override {
    if (::ftruncate(fd_, static_cast<off_t>(size)) != 0) {
      return ErrnoStatus(errno, "truncate " + path_);
    }
    return Status::Ok();
  }
  Status Sync() override {
    if (::fdatasync(fd_) != 0) return ErrnoStatus(errno, "fsync " + path_);
    return Status::Ok();
  }
  Status SetMode(std::uint32_t mode) override {
    if (::fchmod(fd_, static_cast<mode_t>(mode)) != 0) return ErrnoStatus(errno, "chmod " + path_);
    return Status::Ok();
  }
  Status Close() override {
    if (fd_ < 0) return Status::Ok();
    int fd = fd_;
    fd_ = -1;
    if (::close(fd) != 0) return ErrnoStatus(errno, "close " + path_);
    return Status::Ok();
  }

 private:
  int fd_;
  std::string path_;
};

class PosixFileLock final : public FileLock {
 public:
  explicit PosixFileLock(int fd) : fd_(fd) {}
  ~PosixFileLock() override {
    ::flock(fd_, LOCK_UN);
    ::close(fd_);
  }

 private:
  int fd_;
};

class PosixEnv final : public Env {
 public:
  Result<std::unique_ptr<FileLock>> LockFile(const std::string& path) override {
    int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) return ErrnoStatus(errno, "open lock file " + path);
    while (::flock(fd, LOCK_EX) != 0) {
      if (errno == EINTR) continue;
      int err = errno;
      ::close(fd);
      return ErrnoStatus(err, "lock " + path);
    }
    return std::unique_ptr<FileLock>(new PosixFileLock(fd));
  }

  Result<std::unique_ptr<ReadableFile>> OpenForRead(const std::string& path,
                                                    bool no_follow) override {
    int flags = O_RDONLY | O_CLOEXEC | O_NOCTTY | (no_follow ? O_NOFOLLOW : 0);
    // O_NONBLOCK keeps a FIFO from blocking the open; callers reject non-regular
    // files by Stat() before reading.
    int fd = ::open(path.c_str(), flags | O_NONBLOCK);
    if (fd < 0) {
      if (errno == ELOOP && no_follow) {
        return Status::InvalidArgument(path + ": is a symlink (not followed)");
      }
      return ErrnoStatus(errno, "open " + path);
    }
    // Callers look at the file before reading it anyway; taking that look here
    // (StatAtOpen) also tells whether O_NONBLOCK matters. open(2): it "has no effect
    // for regular files and block devices", so only other files get it cleared --
    // which spares two fcntl calls per file when a snapshot opens tens of thousands.
    struct stat st;
    if (::fstat(fd, &st) != 0) {
      int err = errno;
      ::close(fd);
      return ErrnoStatus(err, "fstat " + path);
    }
    if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode)) ::fcntl(fd, F_SETFL, 0);
    return std::unique_ptr<ReadableFile>(new PosixReadableFile(fd, path, st));
  }

  Result<std::unique_ptr<WritableFile>> OpenForWrite(const std::string& path, std::uint32_t mode,
                                                     WriteMode how) override {
    int flags = O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW;
    if (how == WriteMode::kCreateNew) flags |= O_EXCL;
    if (how == WriteMode::kTruncate) flags |= O_TRUNC;
    int fd = ::open(path.c_str(), flags, static_cast<mode_t>(mode));
    if (fd < 0) return ErrnoStatus(errno, "create " + path);
    return std::unique_ptr<WritableFile>(new PosixWritableFile(fd, path));
  }

  Result<FileInfo> Stat(const std::string& path) override {
    struct stat st;
    if (::stat(path.c_str(), &st) != 0) return ErrnoStatus(errno, "stat " + path);
    return InfoFromStat(st);
  }
  Result<FileInfo> Lstat(const std::string& path) override {
    struct stat st;
    if (::lstat(path.c_str(), &st) != 0) return ErrnoStatus(errno, "lstat " + path);
    return InfoFromStat(st);
  }

  Result<std::vector<DirEntry>> ListDir(const std::string& path) override {
    DIR* d = ::opendir(path.c_str());
    if (d == nullptr) return ErrnoStatus(errno, "open directory " + path);
    std::vector<DirEntry> out;
    for (;;) {
      errno = 0;
      struct dirent* e = ::readdir(d);
      if (e == nullptr) {
        int err = errno;
        ::closedir(d);
        if (err != 0) return ErrnoStatus(err, "read directory " + path);
        return out;
      }
      std::string_view name = e->d_name;
      if (name == "." || name == "..") continue;
      DirEntry de;
      de.name = std::string(name);
      switch (e->d_type) {
        case DT_REG:
          de.type = FileType::kRegular;
          break;
        case DT_DIR:
          de.type = FileType::kDirectory;
          break;
        case DT_LNK:
          de.type = FileType::kSymlink;
          break;
        case DT_FIFO:
          de.type = FileType::kFifo;
          break;
        case DT_SOCK:
          de.type = FileType::kSocket;
          break;
        case DT_CHR:
          de.type = FileType::kCharDevice;
          break;
        case DT_BLK:
          de.type = FileType::kBlockDevice;
          break;
        default:
          de.type = FileType::kUnknown;
          break;
      }
      out.push_back(std::move(de));
    }
  }

  Result<std::vector<StatEntry>> ListDirStat(const std::string& path) override {
    int dfd = ::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0) return ErrnoStatus(errno, "open directory " + path);
    DIR* d = ::fdopendir(dfd);
    if (d == nullptr) {
      int err = errno;
      ::close(dfd);
      return ErrnoStatus(err, "open directory " + path);
    }
    std::vector<StatEntry> out;
    for (;;) {
      errno = 0;
      struct dirent* e = ::readdir(d);
      if (e == nullptr) {
        int err = errno;
        ::closedir(d);  // closes dfd
        if (err != 0) return ErrnoStatus(err, "read directory " + path);
        return out;
      }
      std::string_view name = e->d_name;
      if (name == "." || name == "..") continue;
      struct stat st;
      if (::fstatat(dfd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0) {
        if (errno == ENOENT) {
          out.push_back(StatEntry{std::string(name), FileInfo{}, /*vanished=*/true});
          continue;
        }
        int err = errno;
        ::closedir(d);
        return ErrnoStatus(err, "lstat " + JoinPath(path, name));
      }
      out.push_back(StatEntry{std::string(name), InfoFromStat(st)});
    }
  }

  Result<std::string> ReadLink(const std::string& path) override {
    std::string buf(256, '\0');
    for (;;) {
      ssize_t n = ::readlink(path.c_str(), buf.data(), buf.size());
      if (n < 0) return ErrnoStatus(errno, "readlink " + path);
      if (static_cast<std::size_t>(n) < buf.size()) {
        buf.resize(static_cast<std::size_t>(n));
        return buf;
      }
      if (buf.size() >= 65536) return Status::InvalidArgument(path + ": symlink target too long");
      buf.resize(buf.size() * 2);
    }
  }

  Status CreateDir(const std::string& path, std::uint32_t mode) override {
    if (::mkdir(path.c_str(), static_cast<mode_t>(mode)) == 0) return Status::Ok();
    int err = errno;
    if (err == EEXIST) {
      struct stat st;
      if (::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) return Status::Ok();
      return Status::InvalidArgument(path + ": exists and is not a directory");
    }
    return ErrnoStatus(err, "mkdir " + path);
  }
  Status CreateSymlink(const std::string& target, const std::string& path) override {
    if (::symlink(target.c_str(), path.c_str()) != 0) return ErrnoStatus(errno, "symlink " + path);
    return Status::Ok();
  }
  Status Chmod(const std::string& path, std::uint32_t mode) override {
    if (::chmod(path.c_str(), static_cast<mode_t>(mode)) != 0) {
      return ErrnoStatus(errno, "chmod " + path);
    }
    return Status::Ok();
  }
  Status Remove(const std::string& path) override {
    if (::unlink(path.c_str()) == 0) return Status::Ok();
    if (errno == EISDIR || errno == EPERM) {
      if (::rmdir(path.c_str()) == 0) return Status::Ok();
    }
    return ErrnoStatus(errno, "remove " + path);
  }
  Status Rename(const std::string& from, const std::string& to) override {
    if (::rename(from.c_str(), to.c_str()) != 0) {
      return ErrnoStatus(errno, "rename " + from + " to " + to);
    }
    return Status::Ok();
  }
  Status SyncFile(const std::string& path) override {
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) return ErrnoStatus(errno, "open " + path);
    int rc = ::fdatasync(fd);
    int err = errno;
    ::close(fd);
    if (rc != 0) return ErrnoStatus(err, "fsync " + path);
    return Status::Ok();
  }
  Status SyncDir(const std::string& path) override {
    int fd = ::open(path.empty() ? "." : path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return ErrnoStatus(errno, "open directory " + path);
    int rc = ::fsync(fd);
    int err = errno;
    ::close(fd);
    if (rc != 0) return ErrnoStatus(err, "fsync directory " + path);
    return Status::Ok();
  }
  Status SyncFilesystem(const std::string& path) override {
    int fd = ::open(path.empty() ? "." : path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return ErrnoStatus(errno, "open " + path);
    int rc = ::syncfs(fd);
    int err = errno;
    ::close(fd);
    if (rc != 0) return ErrnoStatus(err, "syncfs " + path);
    return Status::Ok();
  }
  Result<std::uint64_t> FreeSpace(const std::string& path) override {
    struct statvfs v;
    if (::statvfs(path.c_str(), &v) != 0) return ErrnoStatus(errno, "statvfs " + path);
    return static_cast<std::uint64_t>(v.f_bavail) * v.f_frsize;
  }
};

}  // namespace

std::string_view FileTypeName(FileType t) {
  switch (t) {
    case FileType::kRegular:
      return "regular file";
    case FileType::kDirectory:
      return "directory";
    case FileType::kSymlink:
      return "symlink";
    case FileType::kFifo:
      return "FIFO";
    case FileType::kSocket:
      return "socket";
    case FileType::kCharDevice:
      return "character device";
    case FileType::kBlockDevice:
      return "block device";
    case FileType::kUnknown:
      break;
  }
  return "unknown file type";
}

Env* Env::Default() {
  static PosixEnv env;
  return &env;
}

Result<std::string> Env::ReadFile(const std::string& path, std::uint64_t max_bytes) {
  DEPOT_ASSIGN_OR_RETURN(auto file, OpenForRead(path, false));
  DEPOT_ASSIGN_OR_RETURN(FileInfo info, file->Stat());
  if (info.type != FileType::kRegular) {
    return Status::InvalidArgument(path + ": is a " + std::string(FileTypeName(info.type)) +
                                   ", not a regular file");
  }
  if (info.size > max_bytes) {
    return Status::InvalidArgument(path + ": " + std::to_string(info.size) +
                                   " bytes exceeds the limit of " + std::to_string(max_bytes));
  }
  std::string out;
  out.resize(static_cast<std::size_t>(info.size));
  std::size_t got = 0;
  for (;;) {
    if (got == out.size()) {
      // The file may have grown since fstat; read on, within the limit.
      if (out.size() >= max_bytes) {
        char probe;
        DEPOT_ASSIGN_OR_RETURN(std::size_t n, file->Read(&probe, 1));
        if (n == 0) break;
        return Status::InvalidArgument(path + ": exceeds the limit of " +
                                       std::to_string(max_bytes) + " bytes");
      }
      out.resize(std::min<std::uint64_t>(max_bytes, out.size() * 2 + 4096));
    }
    DEPOT_ASSIGN_OR_RETURN(std::size_t n, file->Read(out.data() + got, out.size() - got));
    if (n == 0) break;
    got += n;
  }
  out.resize(got);
  return out;
}

Status Env::WriteFileAtomic(const std::string& path, std::string_view data, std::uint32_t mode) {
  std::string tmp = TempPathFor(path);
  auto file = OpenForWrite(tmp, mode, WriteMode::kCreateNew);
  if (!file.ok()) return file.status();
  Status s = (*file)->Append(data);
  // OpenForWrite applied the umask; the caller asked for `mode` exactly.
  if (s.ok()) s = (*file)->SetMode(mode);
  if (s.ok()) s = (*file)->Sync();
  if (s.ok()) s = (*file)->Close();
  if (s.ok()) s = Rename(tmp, path);
  if (!s.ok()) {
    Remove(tmp).IgnoreError();
    return s;
  }
  return SyncDir(std::string(Dirname(path)));
}

Status Env::CreateDirs(const std::string& path, std::uint32_t mode) {
  if (path.empty()) return Status::Ok();
  Status s = CreateDir(path, mode);
  if (s.ok() || !s.IsNotFound()) return s;
  std::string_view parent = Dirname(path);
  if (!parent.empty() && parent != path) {
    DEPOT_RETURN_IF_ERROR(CreateDirs(std::string(parent), mode));
  }
  return CreateDir(path, mode);
}

Status Env::RemoveAll(const std::string& path) {
  auto info = Lstat(path);
  if (!info.ok()) return info.status().IsNotFound() ? Status::Ok() : info.status();
  if (info->type == FileType::kDirectory) {
    // A read-only directory (an assembled package may have them) cannot have its
    // entries removed until the owner may write it again.
    if ((info->mode & 0700) != 0700) Chmod(path, info->mode | 0700).IgnoreError();
    DEPOT_ASSIGN_OR_RETURN(auto entries, ListDir(path));
    for (const auto& e : entries) DEPOT_RETURN_IF_ERROR(RemoveAll(JoinPath(path, e.name)));
  }
  Status s = Remove(path);
  return s.IsNotFound() ? Status::Ok() : s;
}

Result<std::vector<Env::StatEntry>> Env::ListDirStat(const std::string& path) {
  DEPOT_ASSIGN_OR_RETURN(auto names, ListDir(path));
  std::vector<StatEntry> out;
  out.reserve(names.size());
  for (auto& e : names) {
    auto info = Lstat(JoinPath(path, e.name));
    if (!info.ok()) {
      if (!info.status().IsNotFound()) return info.status();
      out.push_back(StatEntry{std::move(e.name), FileInfo{}, /*vanished=*/true});
      continue;
    }
    out.push_back(StatEntry{std::move(e.name), *info});
  }
  return out;
}

Status Env::WriteFileIfChanged(const std::string& path, std::string_view data, std::uint32_t mode) {
  Result<std::string> now = ReadFile(path, data.size());
  if (now.ok() && *now == data) return Status::Ok();
  return WriteFileAtomic(path, data, mode);
}

Result<bool> Env::Exists(const std::string& path) {
  auto info = Lstat(path);
  if (info.ok()) return true;
  if (info.status().IsNotFound()) return false;
  return info.status();
}

Status ReadExactlyAt(ReadableFile* file, std::uint64_t offset, char* buf, std::size_t n) {
  std::size_t done = 0;
  while (done < n) {
    DEPOT_ASSIGN_OR_RETURN(std::size_t got, file->ReadAt(offset + done, buf + done, n - done));
    if (got == 0) {
      return Status::IOError("the file ends at byte " + std::to_string(offset + done) +
                             ", before byte " + std::to_string(offset + n));
    }
    done += got;
  }
  return Status::Ok();
}

std::string JoinPath(std::string_view a, std::string_view b) {
  if (a.empty()) return std::string(b);
  if (b.empty()) return std::string(a);
  std::string out(a);
  if (out.back() != '/') out.push_back('/');
  out.append(b);
  return out;
}

std::string_view Dirname(std::string_view path) {
  auto pos = path.rfind('/');
  if (pos == std::string_view::npos) return {};
  if (pos == 0) return path.substr(0, 1);
  return path.substr(0, pos);
}

std::string_view Basename(std::string_view path) {
  auto pos = path.rfind('/');
  return pos == std::string_view::npos ? path : path.substr(pos + 1);
}

namespace {
// getpid() is a real system call (glibc stopped caching it), and a snapshot names
// tens of thousands of temp files. The cache is reset in a forked child, whose pid
// differs: a temp name must carry its writer's pid for IsAbandonedTemp to be right.
std::atomic<long> cached_pid{0};

long CurrentPid() {
  long pid = cached_pid.load(std::memory_order_relaxed);
  if (pid != 0) return pid;
  static const bool registered = [] {
    ::pthread_atfork(nullptr, nullptr, [] { cached_pid.store(0, std::memory_order_relaxed); });
    return true;
  }();
  (void)registered;
  pid = static_cast<long>(::getpid());
  cached_pid.store(pid, std::memory_order_relaxed);
  return pid;
}
}  // namespace

std::string TempPathFor(std::string_view final_path) {
  char suffix[48];
  std::snprintf(suffix, sizeof(suffix), ".tmp.%ld-%016llx", CurrentPid(),
                static_cast<unsigned long long>(FastRandom64()));
  std::string out(Dirname(final_path));
  if (!out.empty() && out != "/") out.push_back('/');
  out.push_back('.');
  out.append(Basename(final_path)).append(suffix);
  return out;
}

bool IsAbandonedTemp(std::string_view name) {
  auto pos = name.rfind(".tmp.");
  if (name.empty() || name[0] != '.' || pos == std::string_view::npos) return false;
  std::string rest(name.substr(pos + 5));
  char* end = nullptr;
  long pid = std::strtol(rest.c_str(), &end, 10);
  // Temp names without a pid come from older writers: treat them as abandoned.
  if (end == rest.c_str() || *end != '-' || pid <= 0) return true;
  return ::kill(static_cast<pid_t>(pid), 0) != 0 && errno == ESRCH;
}

}  // namespace depot::core
