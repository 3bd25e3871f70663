// FailoverSource: one repository served by several sources that hold the same bytes
// (the site processes of one site, docs/scale-out.md) -- fetches go to the current
// one, and when it cannot be reached (Unavailable) it backs off (core::Backoff, 1 s
// doubling to 1 min) and the next source not backing off takes over, for the failed
// requests and everything after. Fetches are reads, so sending one again elsewhere
// is always safe; results are verified by the caller as from any source.
//
// Thread safety: like the sources it wraps (Fetch and FetchMany from any thread when
// theirs may be).
#pragma once

#include <memory>
#include <mutex>
#include <vector>

#include "core/backoff.h"
#include "core/clock.h"
#include "core/source.h"

namespace depot::core {

class FailoverSource final : public RepoSource {
 public:
  // `sources` (at least one) in order of preference; `clock` must outlive this.
  FailoverSource(std::vector<std::unique_ptr<RepoSource>> sources, Clock* clock);

  std::string Describe() const override;
  Result<std::string> Fetch(const std::string& path, std::uint64_t max_bytes) override;
  Status FetchMany(const std::vector<FetchRequest>& requests, unsigned parallel,
                   const std::function<bool(std::size_t, Result<std::string>)>& on_done) override;
  void Recycle(std::string buffer) override;

 private:
  // The current source's index.
  std::size_t Current() const;
  // Marks `failed` as failing and moves to the next source not backing off; false
  // when there is none (the caller returns the error).
  bool FailOver(std::size_t failed, const Status& why);

  std::vector<std::unique_ptr<RepoSource>> sources_;
  mutable std::mutex mu_;
  std::vector<Backoff> backoffs_;  // under mu_
  std::size_t current_ = 0;        // under mu_
};

}  // namespace depot::core
