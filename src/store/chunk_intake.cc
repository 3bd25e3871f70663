#include "store/chunk_intake.h"

#include "core/atomic_batch.h"
#include "core/log.h"

namespace depot::store {

namespace {
constexpr std::size_t kMaxRemembered = 1u << 20;
}  // namespace

ChunkIntake::ChunkIntake(ChunkStore* store, ChunkIntakeOptions options)
    : store_(store), options_(options) {
  committer_ = std::thread([this] { CommitterLoop(); });
}

ChunkIntake::~ChunkIntake() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (committer_.joinable()) committer_.join();
  core::Status s = Flush();
  if (!s.ok())
    core::Log(core::LogLevel::kError, "chunk_intake.final_commit_failed",
              {{"error", s.ToString()}});
}

core::Result<bool> ChunkIntake::Put(const ChunkId& id, std::uint32_t size, std::string_view frame,
                                    std::string* scratch) {
  DEPOT_RETURN_IF_ERROR(VerifyFrameInto(id, size, frame, scratch).status());
  {
    // Claimed before the write, so two requests carrying the same chunk write it once.
    std::lock_guard<std::mutex> lock(mu_);
    if (!known_.insert(id).second) return false;
  }
  auto temp = core::AtomicBatch::WriteTemp(store_->env(), store_->PathOf(id), frame);
  std::lock_guard<std::mutex> lock(mu_);
  if (!temp.ok()) {
    known_.erase(id);
    return std::move(temp).status().WithContext("chunk " + core::DigestHex(id));
  }
  if (staged_.empty()) first_staged_ = options_.clock->Monotonic();
  staged_.push_back(Pending{id, std::move(*temp), frame.size(), size});
  staged_bytes_ += frame.size();
  // The committer sleeps until the first chunk, then until the delay or the size bound.
  if (staged_.size() == 1 || staged_bytes_ >= options_.commit_bytes) cv_.notify_one();
  return true;
}

void ChunkIntake::CommitSoon() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (staged_.empty()) return;
    commit_soon_ = true;
  }
  cv_.notify_one();
}

bool ChunkIntake::Staged(const ChunkId& id) const {
  std::lock_guard<std::mutex> lock(mu_);
  return known_.count(id) != 0;
}

core::Status ChunkIntake::Flush() {
  std::lock_guard<std::mutex> commit(commit_mu_);
  core::Status s = CommitStaged();
  std::lock_guard<std::mutex> lock(mu_);
  // A failure of a background commit since the last Flush is reported here too: its
  // chunks are gone, and "storing uploaded chunks failed" names the cause better than
  // the missing chunk the caller would otherwise find.
  if (s.ok() && !background_error_.ok()) s = background_error_;
  background_error_ = core::Status::Ok();
  return s;
}

core::Status ChunkIntake::CommitStaged() {
  std::vector<Pending> batch;
  {
    std::lock_guard<std::mutex> lock(mu_);
    batch.swap(staged_);
    staged_bytes_ = 0;
    commit_soon_ = false;  // whoever commits takes what CommitSoon() asked for
  }
  if (batch.empty()) return core::Status::Ok();
  core::AtomicBatch atomic(store_->env(), store_->root());
  for (Pending& p : batch) atomic.AddWritten(std::move(p.temp), store_->PathOf(p.id));
  core::Status s = atomic.Commit();
  std::lock_guard<std::mutex> lock(mu_);
  for (const Pending& p : batch) known_.erase(p.id);
  if (s.ok()) {
    auto now = options_.clock->Monotonic();
    for (const Pending& p : batch) {
      auto [it, inserted] = remembered_.insert_or_assign(p.id, Remembered{p.size, now});
      (void)it;
      if (inserted) remembered_order_.push_back(p.id);
    }
    // Bounded: a few tens of MB at most, and only as long as the caller allows.
    while (!remembered_order_.empty()) {
      auto it = remembered_.find(remembered_order_.front());
      bool expired = it == remembered_.end() || now - it->second.committed > options_.remember_for;
      if (!expired && remembered_.size() <= kMaxRemembered) break;
      if (it != remembered_.end()) remembered_.erase(it);
      remembered_order_.pop_front();
    }
  }
  if (!s.ok()) {
    ++stats_.failed_commits;
    return s.WithContext("storing " + std::to_string(batch.size()) + " uploaded chunks");
  }
  ++stats_.commits;
  stats_.committed_chunks += batch.size();
  return core::Status::Ok();
}

void ChunkIntake::CommitterLoop() {
  std::unique_lock<std::mutex> lock(mu_);
  while (!stop_) {
    if (staged_.empty()) {
      cv_.wait(lock);
      continue;
    }
    if (staged_bytes_ < options_.commit_bytes && !commit_soon_) {
      auto left = first_staged_ + options_.max_delay - options_.clock->Monotonic();
      if (left > core::Duration::zero()) {
        // Until the delay is over, or whatever ends the wait sooner (a Put crossing the
        // size bound, CommitSoon, a Flush emptying the stage, the destructor).
        options_.clock->WaitFor(lock, cv_, left, [this] {
          return stop_ || commit_soon_ || staged_.empty() || staged_bytes_ >= options_.commit_bytes;
        });
        continue;
      }
    }
    lock.unlock();
    core::Status s;
    {
      // The failure is recorded before commit_mu_ is let go: a Flush waiting for
      // this commit must see it (lock order: commit_mu_, then mu_, as in Flush).
      std::lock_guard<std::mutex> commit(commit_mu_);
      s = CommitStaged();
      lock.lock();
      if (!s.ok() && background_error_.ok()) background_error_ = s;
    }
    if (!s.ok())
      core::Log(core::LogLevel::kError, "chunk_intake.commit_failed", {{"error", s.ToString()}});
  }
}

bool ChunkIntake::Verified(const ChunkId& id, std::uint64_t size) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = remembered_.find(id);
  return it != remembered_.end() && it->second.size == size &&
         options_.clock->Monotonic() - it->second.committed <= options_.remember_for;
}

ChunkIntakeStats ChunkIntake::stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  return stats_;
}

}  // namespace depot::store
