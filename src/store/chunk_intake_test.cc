#include "store/chunk_intake.h"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>

#include "core/clock.h"
#include "core/testing.h"
#include "store/compress.h"

namespace depot::store {
namespace {

// Polls `done` until it holds (true) or a minute passes (false): for what the
// committer thread does on its own, with nothing to wait on but its effects.
template <typename Pred>
bool Eventually(Pred done) {
  for (auto end = std::chrono::steady_clock::now() + std::chrono::minutes(1); !done();) {
    if (std::chrono::steady_clock::now() > end) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return true;
}

// A manual clock that also shows what the committer does with it: how many timed
// waits it has begun, and how many times it has looked at the time within them and
// found it too early.
class WatchedClock final : public core::Clock {
 public:
  WatchedClock() : manual_(core::Clock::Real()->Now()) {}
  core::TimePoint Now() override { return manual_.Now(); }
  core::MonoTime Monotonic() override { return manual_.Monotonic(); }
  void SleepFor(core::Duration d) override { manual_.Advance(d); }
  bool WaitFor(std::unique_lock<std::mutex>& lock, std::condition_variable& cv,
               core::Duration timeout, const std::function<bool()>& pred) override {
    const core::MonoTime deadline = Monotonic() + timeout;
    ++waits;
    while (!pred()) {
      if (Monotonic() >= deadline) return false;
      ++looks;
      cv.wait_for(lock, std::chrono::milliseconds(1));
    }
    return true;
  }
  void Advance(core::Duration d) { manual_.Advance(d); }
  // Returns once the waiter has looked at the time after this call (a look counted
  // right after the call may have read the time before it; the one after cannot) or
  // `instead` holds (it stopped waiting).
  template <typename Pred>
  bool LookedAgainOr(Pred instead) {
    const std::uint64_t now = looks.load();
    return Eventually([&] { return looks.load() >= now + 2 || instead(); });
  }

  std::atomic<int> waits{0};
  std::atomic<std::uint64_t> looks{0};

 private:
  core::ManualClock manual_;
};

struct Chunk {
  std::string data;
  ChunkId id;
  std::string frame;
};

Chunk MakeChunk(std::size_t n, std::uint64_t seed) {
  Chunk c;
  c.data = testing::RandomData(n, seed);
  c.id = core::Sha256::Hash(c.data);
  c.frame = *CompressFrame(c.data);
  return c;
}

// Temp files ("." names) under the store's fan-out directories.
std::size_t TempFiles(core::Env* env, const std::string& root) {
  std::size_t n = 0;
  for (const auto& sub : *env->ListDir(root)) {
    for (const auto& f : *env->ListDir(root + "/" + sub.name)) n += f.name[0] == '.';
  }
  return n;
}

class ChunkIntakeTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(store_.Create().ok()); }
  testing::TempDir dir_;
  testing::FaultyEnv env_{core::Env::Default()};
  ChunkStore store_{&env_, dir_.Sub("chunks"), 1};
  std::string scratch_;
};

TEST_F(ChunkIntakeTest, ChunksAppearOnlyAtACommitAndFlushCoversEveryPutBeforeIt) {
  // A delay no test waits for: only Flush commits.
  ChunkIntake intake(&store_, {1ull << 40, std::chrono::hours(1)});
  Chunk a = MakeChunk(40000, 1), b = MakeChunk(70000, 2);
  EXPECT_TRUE(*intake.Put(a.id, a.data.size(), a.frame, &scratch_));
  EXPECT_TRUE(*intake.Put(b.id, b.data.size(), b.frame, &scratch_));
  // Staged: not under its final name, but known (a second upload of it is skipped).
  EXPECT_FALSE(*store_.Has(a.id));
  EXPECT_TRUE(intake.Staged(a.id));
  EXPECT_FALSE(*intake.Put(a.id, a.data.size(), a.frame, &scratch_));
  EXPECT_EQ(TempFiles(&env_, store_.root()), 2u);

  ASSERT_TRUE(intake.Flush().ok());
  EXPECT_FALSE(intake.Staged(a.id));
  EXPECT_EQ(*store_.Get(a.id, a.data.size(), true), a.data);
  EXPECT_EQ(*store_.Get(b.id, b.data.size(), true), b.data);
  EXPECT_EQ(TempFiles(&env_, store_.root()), 0u);
  EXPECT_EQ(intake.stats().commits, 1u);
  EXPECT_EQ(intake.stats().committed_chunks, 2u);
  // Committed chunks are vouched for, with their size, for the caller's version commit.
  EXPECT_TRUE(intake.Verified(a.id, a.data.size()));
  EXPECT_FALSE(intake.Verified(a.id, a.data.size() + 1));
  Chunk never = MakeChunk(100, 9);
  EXPECT_FALSE(intake.Verified(never.id, never.data.size()));
  // Sent again (a client that did not ask first): rewritten with the same bytes.
  EXPECT_TRUE(*intake.Put(b.id, b.data.size(), b.frame, &scratch_));
  ASSERT_TRUE(intake.Flush().ok());
  EXPECT_EQ(intake.stats().commits, 2u);
  EXPECT_EQ(*store_.Get(b.id, b.data.size(), true), b.data);
}

TEST_F(ChunkIntakeTest, VerifiedForgetsAfterItsTimeAndFailedChunksAreNeverVouchedFor) {
  core::ManualClock clock(core::Clock::Real()->Now());
  ChunkIntake intake(&store_,
                     {1ull << 40, std::chrono::hours(1), std::chrono::milliseconds(30), &clock});
  Chunk a = MakeChunk(10000, 10);
  ASSERT_TRUE(intake.Put(a.id, a.data.size(), a.frame, &scratch_).ok());
  EXPECT_FALSE(intake.Verified(a.id, a.data.size()));  // staged, not committed
  ASSERT_TRUE(intake.Flush().ok());
  EXPECT_TRUE(intake.Verified(a.id, a.data.size()));
  clock.Advance(std::chrono::milliseconds(30));
  EXPECT_TRUE(intake.Verified(a.id, a.data.size())) << "for remember_for, to the end";
  clock.Advance(std::chrono::nanoseconds(1));
  EXPECT_FALSE(intake.Verified(a.id, a.data.size())) << "and not a moment longer";

  std::vector<Chunk> chunks;
  for (int i = 0; i < 20; ++i) chunks.push_back(MakeChunk(5000, 400 + i));
  for (const Chunk& c : chunks)
    ASSERT_TRUE(intake.Put(c.id, c.data.size(), c.frame, &scratch_).ok());
  env_.fail_sync = true;
  EXPECT_FALSE(intake.Flush().ok());
  env_.fail_sync = false;
  for (const Chunk& c : chunks) EXPECT_FALSE(intake.Verified(c.id, c.data.size()));
}

TEST_F(ChunkIntakeTest, BytesThatDoNotMatchTheIdAreNeverWritten) {
  ChunkIntake intake(&store_, {1ull << 40, std::chrono::hours(1)});
  Chunk a = MakeChunk(30000, 3), other = MakeChunk(30000, 4);
  EXPECT_TRUE(intake.Put(a.id, a.data.size(), other.frame, &scratch_).status().IsCorruption());
  EXPECT_TRUE(intake.Put(a.id, a.data.size() + 1, a.frame, &scratch_).status().IsCorruption());
  std::string truncated = a.frame.substr(0, a.frame.size() / 2);
  EXPECT_TRUE(intake.Put(a.id, a.data.size(), truncated, &scratch_).status().IsCorruption());
  EXPECT_FALSE(intake.Staged(a.id));
  EXPECT_EQ(TempFiles(&env_, store_.root()), 0u);
  ASSERT_TRUE(intake.Flush().ok());
  EXPECT_FALSE(*store_.Has(a.id));
}

TEST_F(ChunkIntakeTest, TheCommitterCommitsBySizeByDelayAndOnRequest) {
  {
    // By size: the first chunk crosses the bound; no Flush is called.
    // (On a clock that never moves: the delay cannot be what commits it.)
    core::ManualClock clock(core::Clock::Real()->Now());
    ChunkIntake intake(&store_, {1, std::chrono::hours(1), std::chrono::minutes(10), &clock});
    Chunk a = MakeChunk(20000, 5);
    ASSERT_TRUE(intake.Put(a.id, a.data.size(), a.frame, &scratch_).ok());
    // The count once the commit has returned (the file appears at the rename).
    EXPECT_TRUE(Eventually([&] { return intake.stats().commits == 1; }));
    EXPECT_TRUE(*store_.Has(a.id));
  }
  {
    // By delay: not a moment before it is over, and then without being asked.
    WatchedClock clock;
    ChunkIntake intake(
        &store_, {1ull << 40, std::chrono::milliseconds(20), std::chrono::minutes(10), &clock});
    Chunk b = MakeChunk(20000, 6);
    ASSERT_TRUE(intake.Put(b.id, b.data.size(), b.frame, &scratch_).ok());
    ASSERT_TRUE(Eventually([&] { return clock.waits.load() >= 1 || intake.stats().commits > 0; }));
    EXPECT_EQ(intake.stats().commits, 0u) << "committed without waiting for the delay";
    clock.Advance(std::chrono::milliseconds(19));
    ASSERT_TRUE(clock.LookedAgainOr([&] { return intake.stats().commits > 0; }));
    EXPECT_EQ(intake.stats().commits, 0u) << "committed before the delay was over";
    clock.Advance(std::chrono::milliseconds(1));
    EXPECT_TRUE(Eventually([&] { return intake.stats().commits == 1; }));
    EXPECT_TRUE(*store_.Has(b.id));
  }
  {
    // On request: CommitSoon() does not wait for the delay or the size, and returns
    // before the commit is done; with nothing staged it does nothing.
    WatchedClock clock;  // never advanced: the delay never ends
    ChunkIntake intake(&store_,
                       {1ull << 40, std::chrono::hours(1), std::chrono::minutes(10), &clock});
    intake.CommitSoon();
    Chunk d = MakeChunk(20000, 8);
    ASSERT_TRUE(intake.Put(d.id, d.data.size(), d.frame, &scratch_).ok());
    // The committer has seen d staged and settled down to wait for the delay, instead
    // of committing: the earlier request did not carry over.
    ASSERT_TRUE(Eventually([&] { return clock.waits.load() >= 1 || intake.stats().commits > 0; }));
    EXPECT_EQ(intake.stats().commits, 0u);
    intake.CommitSoon();
    EXPECT_TRUE(Eventually([&] { return intake.stats().commits == 1; }));
    EXPECT_TRUE(*store_.Has(d.id));
  }
  {
    // At destruction: what is staged is committed, not dropped.
    Chunk c = MakeChunk(20000, 7);
    {
      ChunkIntake intake(&store_, {1ull << 40, std::chrono::hours(1)});
      ASSERT_TRUE(intake.Put(c.id, c.data.size(), c.frame, &scratch_).ok());
    }
    EXPECT_EQ(*store_.Get(c.id, c.data.size(), true), c.data);
  }
}

TEST_F(ChunkIntakeTest, AFailedCommitDropsItsChunksAndTheNextFlushSaysWhy) {
  ChunkIntake intake(&store_, {1ull << 40, std::chrono::hours(1)});
  // Enough chunks for the batch to sync the filesystem (the path that fails here).
  std::vector<Chunk> chunks;
  for (int i = 0; i < 20; ++i) chunks.push_back(MakeChunk(5000, 100 + i));
  for (const Chunk& c : chunks)
    ASSERT_TRUE(intake.Put(c.id, c.data.size(), c.frame, &scratch_).ok());
  env_.fail_sync = true;
  core::Status s = intake.Flush();
  EXPECT_TRUE(s.IsIOError()) << s.ToString();
  EXPECT_NE(s.message().find("storing 20 uploaded chunks"), std::string::npos) << s.ToString();
  env_.fail_sync = false;
  for (const Chunk& c : chunks) {
    EXPECT_FALSE(*store_.Has(c.id));
    EXPECT_FALSE(intake.Staged(c.id));
  }
  EXPECT_EQ(TempFiles(&env_, store_.root()), 0u);
  EXPECT_EQ(intake.stats().failed_commits, 1u);
  // They can be uploaded again.
  for (const Chunk& c : chunks) EXPECT_TRUE(*intake.Put(c.id, c.data.size(), c.frame, &scratch_));
  ASSERT_TRUE(intake.Flush().ok());
  for (const Chunk& c : chunks) EXPECT_TRUE(*store_.Has(c.id));
}

TEST_F(ChunkIntakeTest, ABackgroundFailureIsReportedByTheNextFlushOnce) {
  ChunkIntake intake(&store_, {1, std::chrono::hours(1)});
  std::vector<Chunk> chunks;
  for (int i = 0; i < 20; ++i) chunks.push_back(MakeChunk(5000, 200 + i));
  env_.fail_sync = true;
  for (const Chunk& c : chunks)
    ASSERT_TRUE(intake.Put(c.id, c.data.size(), c.frame, &scratch_).ok());
  // Wait for the committer to have tried (and failed) everything.
  ASSERT_TRUE(Eventually([&] {
    bool any = false;
    for (const Chunk& c : chunks) any = any || intake.Staged(c.id);
    return !any;
  }));
  env_.fail_sync = false;
  EXPECT_GE(intake.stats().failed_commits, 1u);
  core::Status s = intake.Flush();
  EXPECT_TRUE(s.IsIOError()) << s.ToString();
  EXPECT_TRUE(intake.Flush().ok());
}

TEST_F(ChunkIntakeTest, ConcurrentPutsOfTheSameChunksStoreEachOnce) {
  // No commit while the threads race: a chunk already committed may be sent (and
  // rewritten) again by design, so "once" is about puts that overlap in staging.
  ChunkIntake intake(&store_, {1ull << 40, std::chrono::hours(1)});
  std::vector<Chunk> chunks;
  for (int i = 0; i < 64; ++i) chunks.push_back(MakeChunk(9000, 300 + i));
  std::atomic<int> staged{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      std::string scratch;
      for (const Chunk& c : chunks) {
        auto r = intake.Put(c.id, c.data.size(), c.frame, &scratch);
        ASSERT_TRUE(r.ok()) << r.status().ToString();
        staged += *r;
      }
    });
  }
  for (auto& t : threads) t.join();
  ASSERT_TRUE(intake.Flush().ok());
  EXPECT_EQ(staged.load(), 64);
  for (const Chunk& c : chunks) EXPECT_EQ(*store_.Get(c.id, c.data.size(), true), c.data);
  EXPECT_EQ(TempFiles(&env_, store_.root()), 0u);
}

}  // namespace
}  // namespace depot::store
