#include "core/atomic_batch.h"

#include <algorithm>
#include <atomic>
#include <set>

#include "core/parallel.h"

namespace depot::core {
namespace {
// Below this many files, per-file fdatasync is cheaper than syncing the whole
// filesystem (which also flushes other writers' dirty pages).
constexpr std::size_t kPerFileSyncLimit = 16;
}  // namespace

AtomicBatch::AtomicBatch(Env* env, std::string sync_root)
    : env_(env), sync_root_(std::move(sync_root)) {}

AtomicBatch::~AtomicBatch() { Abort(); }

Result<std::string> AtomicBatch::WriteTemp(Env* env, const std::string& final_path,
                                           std::string_view data, std::uint32_t mode) {
  std::string tmp = TempPathFor(final_path);
  auto file = env->OpenForWrite(tmp, mode, Env::WriteMode::kCreateNew);
  if (!file.ok()) return file.status();
  Status s = (*file)->Append(data);
  if (s.ok()) s = (*file)->Close();
  if (!s.ok()) {
    env->Remove(tmp).IgnoreError();
    return s;
  }
  return tmp;
}

Status AtomicBatch::Add(const std::string& final_path, std::string_view data, std::uint32_t mode) {
  DEPOT_ASSIGN_OR_RETURN(std::string tmp, WriteTemp(env_, final_path, data, mode));
  AddWritten(std::move(tmp), final_path);
  return Status::Ok();
}

void AtomicBatch::AddWritten(std::string temp_path, std::string final_path) {
  std::lock_guard<std::mutex> lock(mu_);
  pending_.push_back(Pending{std::move(temp_path), std::move(final_path)});
}

std::size_t AtomicBatch::size() const {
  std::lock_guard<std::mutex> lock(mu_);
  return pending_.size();
}

Status AtomicBatch::Commit() {
  std::vector<Pending> pending;
  {
    std::lock_guard<std::mutex> lock(mu_);
    pending.swap(pending_);
  }
  if (pending.empty()) return Status::Ok();

  auto fail = [&](Status s, std::size_t from) {
    for (std::size_t i = from; i < pending.size(); ++i) env_->Remove(pending[i].temp).IgnoreError();
    return s;
  };

  const bool small = pending.size() <= kPerFileSyncLimit;
  // Durability of the contents before any rename.
  if (small) {
    for (std::size_t i = 0; i < pending.size(); ++i) {
      Status s = env_->SyncFile(pending[i].temp);
      if (!s.ok()) return fail(std::move(s), 0);
    }
  } else {
    Status s = env_->SyncFilesystem(sync_root_);
    if (!s.ok()) return fail(std::move(s), 0);
  }
  if (small) {
    std::set<std::string> dirs;
    for (std::size_t i = 0; i < pending.size(); ++i) {
      Status s = env_->Rename(pending[i].temp, pending[i].final_path);
      if (!s.ok()) return fail(std::move(s), i);
      dirs.insert(std::string(Dirname(pending[i].final_path)));
    }
    for (const auto& d : dirs) DEPOT_RETURN_IF_ERROR(env_->SyncDir(d));
    return Status::Ok();
  }
  // Tens of thousands of renames: spread them over the cores. Renames into
  // different directories do not contend in the kernel, and a batch's files are
  // usually spread over many (a chunk store has 256). The order does not matter:
  // every file is already durable, and each rename is atomic on its own.
  std::vector<char> renamed(pending.size(), 0);
  std::atomic<std::size_t> next{0};
  std::atomic<bool> stop{false};
  std::mutex error_mu;
  Status first_error;
  const unsigned threads = static_cast<unsigned>(
      std::min<std::size_t>(DefaultConcurrency(), (pending.size() + 1023) / 1024));
  RunParallel(std::max(1u, threads), [&](unsigned) {
    for (;;) {
      std::size_t i = next++;
      if (i >= pending.size() || stop) return;
      Status s = env_->Rename(pending[i].temp, pending[i].final_path);
      if (s.ok()) {
        renamed[i] = 1;
        continue;
      }
      std::lock_guard<std::mutex> lock(error_mu);
      if (first_error.ok()) first_error = std::move(s);
      stop = true;
      return;
    }
  });
  if (!first_error.ok()) {
    for (std::size_t i = 0; i < pending.size(); ++i) {
      if (!renamed[i]) env_->Remove(pending[i].temp).IgnoreError();
    }
    return first_error;
  }
  return env_->SyncFilesystem(sync_root_);
}

void AtomicBatch::Abort() {
  std::vector<Pending> pending;
  {
    std::lock_guard<std::mutex> lock(mu_);
    pending.swap(pending_);
  }
  for (const auto& p : pending) env_->Remove(p.temp).IgnoreError();
}

}  // namespace depot::core
