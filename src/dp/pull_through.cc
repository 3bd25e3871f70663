#include "dp/pull_through.h"

#include "core/hex.h"
#include "core/log.h"

namespace depot::dp {

using core::Status;

namespace {
constexpr std::size_t kFailuresKept = 1024;
}  // namespace

PullThrough::PullThrough(DpContext* ctx, unsigned workers, std::size_t max_queued)
    : ctx_(ctx), max_queued_(max_queued) {
  for (unsigned i = 0; i < std::max(1u, workers); ++i) workers_.emplace_back([this] { Work(); });
}

PullThrough::~PullThrough() { Stop(); }

std::string PullThrough::Topic(std::string_view hex_id) { return "pt:" + std::string(hex_id); }

PullThrough::Queued PullThrough::Pull(const store::ChunkId& id, std::uint32_t size) {
  {
    std::lock_guard lock(mu_);
    if (going_.count(id) != 0) return Queued::kAlreadyGoing;
    if (stopping_ || queue_.size() >= max_queued_) return Queued::kRefused;
    going_.insert(id);
    queue_.push_back({id, size});
  }
  wake_.notify_one();
  ctx_->metrics.pull_through->Inc();
  return Queued::kQueued;
}

std::optional<Status> PullThrough::LastFailure(const store::ChunkId& id) {
  std::lock_guard lock(mu_);
  auto it = failed_.find(id);
  if (it == failed_.end()) return std::nullopt;
  return it->second;
}

void PullThrough::Stop() {
  std::deque<Job> dropped;
  {
    std::lock_guard lock(mu_);
    if (stopping_ && workers_.empty()) return;
    stopping_ = true;
    dropped.swap(queue_);
  }
  wake_.notify_all();
  for (const Job& job : dropped) Finish(job.id, Status::Unavailable("the DP is stopping"));
  for (auto& t : workers_) t.join();
  std::lock_guard lock(mu_);
  workers_.clear();
}

void PullThrough::Work() {
  for (;;) {
    Job job;
    {
      std::unique_lock lock(mu_);
      wake_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
      if (queue_.empty()) return;  // stopping
      job = queue_.front();
      queue_.pop_front();
    }
    Status s = Fetch(job);
    if (!s.ok()) {
      core::Log(core::LogLevel::kWarn, "dp.pull_through_failed",
                {{"chunk", core::DigestHex(job.id)}, {"error", s.ToString()}});
    }
    Finish(job.id, s);
  }
}

// From upstream (within the sync's rate) unless the sync stored it meanwhile.
Status PullThrough::Fetch(const Job& job) {
  auto has = ctx_->chunks.Has(job.id);
  if (has.ok() && *has) return Status::Ok();
  return ctx_->Refetch(job.id, job.size);
}

void PullThrough::Finish(const store::ChunkId& id, const Status& s) {
  {
    std::lock_guard lock(mu_);
    going_.erase(id);
    if (s.ok()) {
      failed_.erase(id);
    } else {
      if (failed_.count(id) == 0) failed_order_.push_back(id);
      failed_[id] = s;
      while (failed_order_.size() > kFailuresKept) {
        failed_.erase(failed_order_.front());
        failed_order_.pop_front();
      }
    }
  }
  if (ctx_->server) ctx_->server->Notify(Topic(core::DigestHex(id)));
}

}  // namespace depot::dp
