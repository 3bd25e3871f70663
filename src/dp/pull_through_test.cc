// Pull-through against a real upstream (an http::Server on loopback) that holds every
// chunk request until the test lets it go: how many fetches run at once, how many
// wait, and that one chunk is fetched once however many ask.
#include "dp/pull_through.h"

#include <gtest/gtest.h>

#include <condition_variable>
#include <map>
#include <mutex>

#include "core/sha256.h"
#include "core/testing.h"
#include "store/compress.h"
#include "store/manifest.h"

namespace depot::dp {
namespace {

class HeldUpstream : public http::Handler {
 public:
  http::Admission Admit(const http::Request&) override { return {0, std::nullopt}; }
  void Handle(http::Request& req, http::Response* resp) override {
    std::unique_lock lock(mu);
    ++asked[req.path];
    ++in_flight;
    peak = std::max(peak, in_flight);
    changed.notify_all();
    changed.wait(lock, [&] { return released; });
    --in_flight;
    auto it = frames.find(req.path);
    if (it == frames.end()) {
      *resp = http::Response::Text(404, "no");
      return;
    }
    *resp = http::Response::Text(200, it->second);
  }
  // Waits until `n` requests are held at once (false after a minute).
  bool WaitHeld(int n) {
    std::unique_lock lock(mu);
    return changed.wait_for(lock, std::chrono::minutes(1), [&] { return in_flight >= n; });
  }
  // Waits until `n` requests have arrived in all (false after a minute).
  bool WaitAsked(int n) {
    std::unique_lock lock(mu);
    return changed.wait_for(lock, std::chrono::minutes(1), [&] {
      int total = 0;
      for (const auto& [path, count] : asked) total += count;
      return total >= n;
    });
  }
  void Release() {
    std::lock_guard lock(mu);
    released = true;
    changed.notify_all();
  }

  std::mutex mu;
  std::condition_variable changed;
  std::map<std::string, std::string> frames;  // by request path
  std::map<std::string, int> asked;
  int in_flight = 0, peak = 0;
  bool released = false;
};

TEST(PullThroughTest, ABoundedPoolFetchesEachChunkOnceAndRefusesPastItsQueue) {
  HeldUpstream upstream;
  std::vector<store::ChunkRef> chunks;
  for (int i = 0; i < 6; ++i) {
    std::string data = depot::testing::RandomData(20000, 40 + i);
    store::ChunkRef c{core::Sha256::Hash(data), static_cast<std::uint32_t>(data.size())};
    upstream.frames["/repo/chunks/" + store::ChunkRelPath(c.id)] = *store::CompressFrame(data, 1);
    chunks.push_back(c);
  }
  http::ServerOptions opts;
  opts.threads = 4;  // held requests block their thread: more than the pool's 2 workers
  auto server = http::Server::Start(&upstream, opts);
  ASSERT_TRUE(server.ok()) << server.status().ToString();
  depot::testing::TempDir dir;
  DpConfig cfg;
  cfg.site = (*server)->url();
  cfg.token = "t";
  DpContext ctx(core::Env::Default(), core::Clock::Real(), dir.Sub("dp"), cfg);
  ASSERT_TRUE(ctx.Open().ok());
  {
    PullThrough pull(&ctx, /*workers=*/2, /*max_queued=*/2);
    EXPECT_EQ(pull.Pull(chunks[0].id, chunks[0].size), PullThrough::Queued::kQueued);
    EXPECT_EQ(pull.Pull(chunks[1].id, chunks[1].size), PullThrough::Queued::kQueued);
    ASSERT_TRUE(upstream.WaitHeld(2));  // both workers busy upstream
    EXPECT_EQ(pull.Pull(chunks[0].id, chunks[0].size), PullThrough::Queued::kAlreadyGoing);
    EXPECT_EQ(pull.Pull(chunks[2].id, chunks[2].size), PullThrough::Queued::kQueued);
    EXPECT_EQ(pull.Pull(chunks[3].id, chunks[3].size), PullThrough::Queued::kQueued);
    EXPECT_EQ(pull.Pull(chunks[4].id, chunks[4].size), PullThrough::Queued::kRefused)
        << "two fetching, two waiting: the queue is full";
    EXPECT_EQ(pull.Pull(chunks[2].id, chunks[2].size), PullThrough::Queued::kAlreadyGoing);
    upstream.Release();
    ASSERT_TRUE(upstream.WaitAsked(4));  // every queued chunk taken by a worker
    pull.Stop();                         // waits for the fetches in progress
  }
  std::lock_guard lock(upstream.mu);
  EXPECT_EQ(upstream.peak, 2) << "never more fetches at once than workers";
  int fetched = 0;
  for (int i = 0; i < 4; ++i) {
    EXPECT_EQ(upstream.asked["/repo/chunks/" + store::ChunkRelPath(chunks[i].id)], 1) << i;
    fetched += *ctx.chunks.Has(chunks[i].id) ? 1 : 0;
  }
  EXPECT_EQ(fetched, 4);
  EXPECT_FALSE(*ctx.chunks.Has(chunks[4].id));
}

}  // namespace
}  // namespace depot::dp
