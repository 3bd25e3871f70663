#include "core/failover_source.h"

#include "core/log.h"

namespace depot::core {

FailoverSource::FailoverSource(std::vector<std::unique_ptr<RepoSource>> sources, Clock* clock)
    : sources_(std::move(sources)) {
  for (std::size_t i = 0; i < sources_.size(); ++i)
    backoffs_.emplace_back(clock, BackoffPolicy{std::chrono::seconds(1), std::chrono::minutes(1)});
}

std::string FailoverSource::Describe() const { return sources_[Current()]->Describe(); }

std::size_t FailoverSource::Current() const {
  std::lock_guard<std::mutex> lock(mu_);
  return current_;
}

bool FailoverSource::FailOver(std::size_t failed, const Status& why) {
  std::lock_guard<std::mutex> lock(mu_);
  if (failed != current_) return true;  // another thread moved on already
  backoffs_[failed].Failed();
  for (std::size_t step = 1; step < sources_.size(); ++step) {
    const std::size_t i = (failed + step) % sources_.size();
    if (!backoffs_[i].Due()) continue;
    Log(LogLevel::kWarn, "source.failover",
        {{"from", sources_[failed]->Describe()},
         {"to", sources_[i]->Describe()},
         {"error", why.ToString()}});
    current_ = i;
    return true;
  }
  return false;
}

Result<std::string> FailoverSource::Fetch(const std::string& path, std::uint64_t max_bytes) {
  for (std::size_t tried = 0;; ++tried) {
    const std::size_t at = Current();
    auto r = sources_[at]->Fetch(path, max_bytes);
    if (r.ok() || !r.status().IsUnavailable()) {
      if (r.ok()) CountBytes(r->size());
      std::lock_guard<std::mutex> lock(mu_);
      backoffs_[at].Succeeded();
      return r;
    }
    if (tried + 1 >= sources_.size() || !FailOver(at, r.status())) return r;
  }
}

Status FailoverSource::FetchMany(
    const std::vector<FetchRequest>& requests, unsigned parallel,
    const std::function<bool(std::size_t, Result<std::string>)>& on_done) {
  // Indices into `requests` still to fetch.
  std::vector<std::size_t> pending(requests.size());
  for (std::size_t i = 0; i < pending.size(); ++i) pending[i] = i;
  for (std::size_t tried = 0;; ++tried) {
    const std::size_t at = Current();
    const bool last = tried + 1 >= sources_.size();
    std::vector<FetchRequest> batch;
    batch.reserve(pending.size());
    for (std::size_t i : pending) batch.push_back(requests[i]);
    std::vector<std::size_t> unreachable;
    Status first_error;
    bool stopped = false;
    Status s = sources_[at]->FetchMany(batch, parallel, [&](std::size_t k, Result<std::string> r) {
      if (!last && !r.ok() && r.status().IsUnavailable()) {
        // Held back for the next source (unless this is the last one to try).
        if (first_error.ok()) first_error = r.status();
        unreachable.push_back(pending[k]);
        return true;
      }
      if (r.ok()) CountBytes(r->size());
      if (!on_done(pending[k], std::move(r))) stopped = true;
      return !stopped;
    });
    if (unreachable.empty() || stopped) {
      if (s.ok() && !stopped) {
        std::lock_guard<std::mutex> lock(mu_);
        backoffs_[at].Succeeded();
      }
      return s;
    }
    if (!FailOver(at, first_error)) {
      // Nowhere else to go: the held-back requests get their errors now.
      for (std::size_t i : unreachable) {
        if (!on_done(i, first_error)) break;
      }
      return s;
    }
    pending = std::move(unreachable);
  }
}

void FailoverSource::Recycle(std::string buffer) {
  sources_[Current()]->Recycle(std::move(buffer));
}

}  // namespace depot::core
