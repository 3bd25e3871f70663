#include "repo/chunk_download.h"

#include <algorithm>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <thread>

#include "core/log.h"
#include "core/parallel.h"
#include "core/rate_limiter.h"
#include "repo/layout.h"
#include "store/compress.h"

namespace depot::repo {

using core::Status;

namespace {

struct Work {
  std::size_t index = 0;
  core::Result<std::string> frame = Status::Unavailable("not fetched");
};

// What one round came to.
struct Round {
  std::vector<std::size_t> retry;
  Status last_transient;
  Status hard;  // the first error that stops the download
  bool cancelled = false;
};

// One round over `todo`: transfers on this thread, Deliver on the workers. Frames are
// handed over kHandOff at a time (core::BatchPusher): one hand-off per chunk cost
// ~36 k context switches per 1 GiB tree.
Round RunRound(core::RepoSource* source, const std::vector<store::ChunkRef>& chunks,
               const std::vector<std::size_t>& todo, const DownloadOptions& o,
               core::RateLimiter* limiter, const DeliverFn& deliver) {
  constexpr std::size_t kHandOff = 8;
  const unsigned threads = std::max(1u, o.threads);
  Round round;
  std::mutex mu;  // guards round
  std::vector<core::FetchRequest> requests;
  requests.reserve(todo.size());
  for (std::size_t i : todo) {
    requests.push_back({std::string(kChunksDir) + "/" + store::ChunkRelPath(chunks[i].id),
                        store::MaxFrameSize(chunks[i].size)});
  }
  std::vector<std::unique_ptr<core::BlockingQueue<std::vector<Work>>>> queues;
  std::vector<core::BatchPusher<Work>> pushers;
  for (unsigned w = 0; w < threads; ++w) {
    queues.push_back(std::make_unique<core::BlockingQueue<std::vector<Work>>>(128 / kHandOff));
    pushers.emplace_back(queues.back().get(), kHandOff);
  }
  auto stopped = [&] {
    std::lock_guard<std::mutex> lock(mu);
    return !round.hard.ok();
  };
  std::vector<std::thread> workers;
  for (unsigned w = 0; w < threads; ++w) {
    workers.emplace_back([&, w] {
      std::string scratch;
      while (auto batch = queues[w]->Pop()) {
        for (Work& work : *batch) {
          if (stopped()) continue;
          Status s = deliver(work.index, work.frame, &scratch);
          if (s.ok()) continue;
          std::lock_guard<std::mutex> lock(mu);
          if (s.IsUnavailable() || s.IsCorruption()) {
            round.retry.push_back(work.index);
            round.last_transient = std::move(s);
          } else if (round.hard.ok()) {
            round.hard = std::move(s);
          }
        }
      }
    });
  }
  auto cancelled = [&] { return o.cancelled && o.cancelled(); };
  Status fs =
      source->FetchMany(requests, o.parallel, [&](std::size_t k, core::Result<std::string> frame) {
        // Ahead of the allowed rate: pause (staying cancellable).
        limiter->Throttle(frame.ok() ? frame->size() : 0, cancelled);
        if (cancelled()) {
          round.cancelled = true;
          return false;
        }
        if (stopped()) return false;
        const std::size_t i = todo[k];
        const std::size_t w = (o.worker_of ? o.worker_of(i) : i) % threads;
        return pushers[w].Push(Work{i, std::move(frame)});
      });
  for (unsigned w = 0; w < threads; ++w) {
    pushers[w].Flush();
    queues[w]->Close();
  }
  for (auto& t : workers) t.join();
  if (round.hard.ok() && !fs.ok()) round.hard = fs;
  return round;
}

// Runs `tick` every `interval` on `clock` until destroyed (nothing when `tick` is
// empty).
class Ticker {
 public:
  Ticker(core::Clock* clock, std::function<void()> tick, core::Duration interval)
      : clock_(clock), tick_(std::move(tick)), interval_(interval) {
    if (tick_) thread_ = std::thread([this] { Run(); });
  }
  ~Ticker() {
    if (!thread_.joinable()) return;
    {
      std::lock_guard lock(mu_);
      done_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }

 private:
  void Run() {
    std::unique_lock lock(mu_);
    while (!clock_->WaitFor(lock, cv_, interval_, [this] { return done_; })) {
      lock.unlock();
      tick_();
      lock.lock();
    }
  }

  core::Clock* clock_;
  std::function<void()> tick_;
  core::Duration interval_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool done_ = false;  // under mu_
  std::thread thread_;
};

}  // namespace

Status DownloadChunks(core::Clock* clock, core::RepoSource* source,
                      const std::vector<store::ChunkRef>& chunks, std::vector<std::size_t> todo,
                      const DownloadOptions& o, const DeliverFn& deliver) {
  core::RateLimiter own(clock, o.max_rate);
  core::RateLimiter& limiter = o.limiter != nullptr ? *o.limiter : own;
  core::Backoff backoff(clock, o.backoff);
  Ticker ticker(clock, o.tick, o.tick_interval);
  for (int round = 1; !todo.empty(); ++round) {
    Round r = RunRound(source, chunks, todo, o, &limiter, deliver);
    if (!r.hard.ok()) return r.hard;
    if (r.cancelled) return Status::Unavailable("cancelled");
    if (r.retry.empty()) return Status::Ok();
    if (o.cancelled && o.cancelled()) return Status::Unavailable("cancelled");
    if (round >= o.max_rounds) {
      return r.last_transient.WithContext(std::to_string(r.retry.size()) +
                                          " chunks still failing after " + std::to_string(round) +
                                          " attempts");
    }
    core::Log(core::LogLevel::kWarn, std::string(o.log_name) + ".retry",
              {{"chunks", std::to_string(r.retry.size())},
               {"round", std::to_string(round)},
               {"error", r.last_transient.message()}});
    clock->SleepFor(backoff.Failed());
    std::sort(r.retry.begin(), r.retry.end());
    todo = std::move(r.retry);
  }
  return Status::Ok();
}

}  // namespace depot::repo
