#include "core/testing.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <cstring>
#include <random>

namespace depot::testing {

using core::Status;

TempDir::TempDir() {
  const char* base = std::getenv("TMPDIR");
  std::string tmpl = std::string(base && *base ? base : "/tmp") + "/depot-test-XXXXXX";
  if (::mkdtemp(tmpl.data()) == nullptr) {
    ADD_FAILURE() << "mkdtemp failed: " << std::strerror(errno);
    std::abort();
  }
  path_ = tmpl;
}

TempDir::~TempDir() {
  if (std::getenv("DEPOT_KEEP_TEST_DIRS") != nullptr) return;
  // Tests may leave read-only directories behind; make them writable first.
  std::string cmd = "chmod -R u+rwx '" + path_ + "' 2>/dev/null; rm -rf '" + path_ + "'";
  if (std::system(cmd.c_str()) != 0) {
    std::fprintf(stderr, "warning: could not remove %s\n", path_.c_str());
  }
}

void WriteFileOrDie(const std::string& path, std::string_view data, std::uint32_t mode) {
  auto* env = core::Env::Default();
  Status s = env->CreateDirs(std::string(core::Dirname(path)));
  if (s.ok()) {
    auto f = env->OpenForWrite(path, mode, core::Env::WriteMode::kTruncate);
    s = f.ok() ? (*f)->Append(data) : f.status();
    if (s.ok()) s = (*f)->Close();
    if (s.ok()) s = env->Chmod(path, mode);
  }
  if (!s.ok()) {
    ADD_FAILURE() << "writing " << path << ": " << s.ToString();
    std::abort();
  }
}

std::string ReadFileOrDie(const std::string& path) {
  auto r = core::Env::Default()->ReadFile(path, 1ull << 32);
  if (!r.ok()) {
    ADD_FAILURE() << r.status().ToString();
    std::abort();
  }
  return *r;
}

std::string RandomData(std::size_t n, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::string out(n, '\0');
  std::size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    std::uint64_t v = rng();
    std::memcpy(out.data() + i, &v, 8);
  }
  for (; i < n; ++i) out[i] = static_cast<char>(rng());
  return out;
}

namespace {
class FaultyWritableFile final : public core::WritableFile {
 public:
  FaultyWritableFile(FaultyEnv* env, std::unique_ptr<core::WritableFile> base)
      : env_(env), base_(std::move(base)) {}
  Status Append(std::string_view d) override {
    if (!env_->Charge(d.size())) return Status::IOError("write: No space left on device");
    return base_->Append(d);
  }
  Status WriteAt(std::uint64_t off, std::string_view d) override {
    if (!env_->Charge(d.size())) return Status::IOError("write: No space left on device");
    return base_->WriteAt(off, d);
  }
  Status Truncate(std::uint64_t size) override { return base_->Truncate(size); }
  Status Sync() override {
    if (env_->fail_sync) return Status::IOError("fsync: Input/output error (injected)");
    return base_->Sync();
  }
  Status SetMode(std::uint32_t mode) override { return base_->SetMode(mode); }
  Status Close() override { return base_->Close(); }

 private:
  FaultyEnv* env_;
  std::unique_ptr<core::WritableFile> base_;
};

// Appends to its own file at the first read, as a process writing to it would.
class AppendingReadableFile final : public core::ReadableFile {
 public:
  AppendingReadableFile(FaultyEnv* env, std::string path, std::unique_ptr<core::ReadableFile> base)
      : env_(env), path_(std::move(path)), base_(std::move(base)) {}
  core::Result<std::size_t> Read(char* buf, std::size_t n) override {
    AppendOnce();
    return base_->Read(buf, n);
  }
  core::Result<std::size_t> ReadAt(std::uint64_t offset, char* buf, std::size_t n) override {
    AppendOnce();
    return base_->ReadAt(offset, buf, n);
  }
  core::Result<core::FileInfo> Stat() override { return base_->Stat(); }
  core::Result<core::FileInfo> StatAtOpen() override { return base_->StatAtOpen(); }

 private:
  void AppendOnce() {
    if (appended_) return;
    appended_ = true;
    int fd = ::open(path_.c_str(), O_WRONLY | O_APPEND | O_CLOEXEC);
    if (fd < 0) return;
    const std::string& data = env_->append_when_read_data;
    if (::write(fd, data.data(), data.size()) == static_cast<ssize_t>(data.size())) ++env_->appends;
    ::close(fd);
  }

  FaultyEnv* env_;
  std::string path_;
  std::unique_ptr<core::ReadableFile> base_;
  bool appended_ = false;
};
}  // namespace

core::Result<std::unique_ptr<core::ReadableFile>> FaultyEnv::OpenForRead(const std::string& path,
                                                                         bool no_follow) {
  if (!deny_read.empty() && path.find(deny_read) != std::string::npos) {
    return core::Status::PermissionDenied("open " + path + ": Permission denied (injected)");
  }
  auto f = base_->OpenForRead(path, no_follow);
  if (!f.ok() || append_when_read.empty() || path.find(append_when_read) == std::string::npos) {
    return f;
  }
  return std::unique_ptr<core::ReadableFile>(new AppendingReadableFile(this, path, std::move(*f)));
}

bool FaultyEnv::Charge(std::size_t n) {
  std::int64_t budget = write_budget.load();
  while (budget >= 0) {
    if (static_cast<std::int64_t>(n) > budget) return false;
    if (write_budget.compare_exchange_weak(budget, budget - static_cast<std::int64_t>(n))) break;
  }
  return true;
}

core::Result<std::unique_ptr<core::WritableFile>> FaultyEnv::OpenForWrite(const std::string& path,
                                                                          std::uint32_t mode,
                                                                          WriteMode how) {
  auto f = base_->OpenForWrite(path, mode, how);
  if (!f.ok()) return f.status();
  return std::unique_ptr<core::WritableFile>(new FaultyWritableFile(this, std::move(*f)));
}

Status FaultyEnv::Rename(const std::string& from, const std::string& to) {
  if (fail_rename) return Status::IOError("rename " + from + ": Input/output error (injected)");
  ++renames;
  return base_->Rename(from, to);
}
Status FaultyEnv::SyncFile(const std::string& p) {
  if (fail_sync) return Status::IOError("fsync " + p + ": Input/output error (injected)");
  return base_->SyncFile(p);
}
Status FaultyEnv::SyncDir(const std::string& p) {
  if (fail_sync) return Status::IOError("fsync " + p + ": Input/output error (injected)");
  return base_->SyncDir(p);
}
Status FaultyEnv::SyncFilesystem(const std::string& p) {
  if (fail_sync) return Status::IOError("syncfs " + p + ": Input/output error (injected)");
  return base_->SyncFilesystem(p);
}

}  // namespace depot::testing
