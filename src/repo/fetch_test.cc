#include "repo/fetch.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <thread>

#include "core/testing.h"
#include "repo/repository.h"
#include "store/manifest.h"

namespace depot::repo {
namespace {

using core::Status;

// A source that injects faults in front of a real repository directory.
class FaultySource final : public core::RepoSource {
 public:
  explicit FaultySource(core::RepoSource* base) : base_(base) {}
  std::string Describe() const override { return "faulty:" + base_->Describe(); }
  core::Result<std::string> Fetch(const std::string& path, std::uint64_t max) override {
    bool chunk = path.rfind("chunks/", 0) == 0;
    if (chunk) {
      if (++chunk_requests == 1 && on_first_chunk) on_first_chunk();
      if (stall_chunks_after >= 0 && chunk_requests > stall_chunks_after) {
        std::unique_lock lock(stall_mu);
        ++stalled;
        stall_cv.notify_all();
        stall_cv.wait(lock, [this] { return released; });
        return Status::Unavailable(path + ": stalled, then reset (injected)");
      }
      if (fail_chunks_after >= 0 && chunk_requests > fail_chunks_after) {
        return Status::Unavailable(path + ": connection refused (injected)");
      }
      if (corrupt_first_n > 0) {
        --corrupt_first_n;
        auto r = base_->Fetch(path, max);
        if (r.ok() && !r->empty()) (*r)[r->size() / 2] ^= 0x55;
        return r;
      }
      if (fail_chunk && fail_chunk(path))
        return Status::Unavailable(path + ": reset by peer (injected)");
      if (endless) return Status::Corruption(path + ": response longer than expected");
    }
    auto r = base_->Fetch(path, max);
    if (r.ok()) CountBytes(r->size());
    return r;
  }
  std::atomic<int> chunk_requests{0};
  int fail_chunks_after = -1;
  // Chunk requests after the first `stall_chunks_after` hang until `released`; each
  // hanging request counts in `stalled` (all under stall_mu, signalled on stall_cv).
  int stall_chunks_after = -1;
  std::mutex stall_mu;
  std::condition_variable stall_cv;
  int stalled = 0;
  bool released = false;
  std::atomic<int> corrupt_first_n{0};
  bool endless = false;
  std::function<bool(const std::string&)> fail_chunk;  // chunks it answers Unavailable for
  std::function<void()> on_first_chunk;                // runs before the first chunk is served

 private:
  core::RepoSource* base_;
};

class FetchTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(Repository::Init(env_, clock_, dir_.Sub("repo"), {}).ok());
    repo_ = std::move(*Repository::Open(env_, clock_, dir_.Sub("repo")));
    testing::WriteFileOrDie(src_ + "/bin/tool", testing::RandomData(3 << 20, 1), 0755);
    testing::WriteFileOrDie(src_ + "/etc/conf", "a=1\n", 0600);
    testing::WriteFileOrDie(src_ + "/empty", "");
    ::mkdir((src_ + "/var").c_str(), 0750);
    ::symlink("../bin/tool", (src_ + "/etc/tool").c_str());
    ASSERT_TRUE(AddVersion().ok());
    trust_ = *repo_->TrustedRoot();
  }

  core::Result<AddResult> AddVersion() {
    AddRequest req;
    req.package = "tools";
    req.source_dir = src_;
    return repo_->AddVersion(req);
  }

  FetchRequest Request(const std::string& dest, bool cache = true) {
    FetchRequest r;
    r.package = "tools";
    r.dest = dir_.Sub(dest);
    r.trusted_root = trust_;
    if (cache) r.cache_dir = dir_.Sub("cache");
    r.first_backoff = std::chrono::milliseconds(1);
    return r;
  }

  // Fetches through a source that refuses every chunk after the first 20, one
  // transfer at a time, so exactly 20 chunks are verified before the fetch fails.
  core::Result<FetchResult> FetchCutAfter20Chunks(FetchRequest req) {
    FaultySource faulty(&source_);
    faulty.fail_chunks_after = 20;
    req.parallel = 1;
    req.max_rounds = 2;
    return FetchVersion(env_, clock_, &faulty, req);
  }

  bool SameTree(const std::string& dest) {
    std::string cmd = "diff -r --no-dereference '" + src_ + "' '" + dir_.Sub(dest) + "' >&2";
    return std::system(cmd.c_str()) == 0;
  }

  core::Env* env_ = core::Env::Default();
  core::Clock* clock_ = core::Clock::Real();
  testing::TempDir dir_;
  std::string src_ = dir_.Sub("src");
  std::unique_ptr<Repository> repo_;
  std::string trust_;
  core::DirSource source_{env_, dir_.Sub("repo/repo")};
};

TEST_F(FetchTest, FetchesNewestVersionByteForByte) {
  auto r = FetchVersion(env_, clock_, &source_, Request("out", /*cache=*/false));
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->version, 1);
  EXPECT_EQ(r->files, 3u);
  EXPECT_TRUE(SameTree("out"));
  struct stat st;
  ASSERT_EQ(::stat(dir_.Sub("out/etc/conf").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  ASSERT_EQ(::stat(dir_.Sub("out/var").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0750u);
}

TEST_F(FetchTest, UpdateTransfersOnlyChangedChunks) {
  ASSERT_TRUE(FetchVersion(env_, clock_, &source_, Request("v1")).ok());
  // Edit 4 KiB in the middle of the big file; add version 2.
  std::string tool = testing::ReadFileOrDie(src_ + "/bin/tool");
  for (int i = 0; i < 4096; ++i) tool[(1 << 20) + i] ^= 0x1;
  testing::WriteFileOrDie(src_ + "/bin/tool", tool, 0755);
  ASSERT_EQ(AddVersion()->version, 2);
  std::uint64_t before = source_.BytesFetched();
  auto r = FetchVersion(env_, clock_, &source_, Request("v2"));
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->version, 2);
  EXPECT_TRUE(SameTree("v2"));
  EXPECT_GE(r->fetched_chunks, 1u);
  EXPECT_LE(r->fetched_chunks, 2u);
  EXPECT_GT(r->cache_bytes, 2u << 20);
  // Metadata + manifest + the changed chunk(s): far less than the 3 MiB file.
  EXPECT_LT(source_.BytesFetched() - before, 600u * 1024);
  // Version 1 can still be fetched by number.
  auto old = Request("old");
  old.version = 1;
  auto r1 = FetchVersion(env_, clock_, &source_, old);
  ASSERT_TRUE(r1.ok());
  EXPECT_EQ(r1->fetched_chunks, 0u);
}

TEST_F(FetchTest, UnknownPackageOrVersionListsWhatExists) {
  auto req = Request("out");
  req.version = 7;
  auto r = FetchVersion(env_, clock_, &source_, req);
  EXPECT_TRUE(r.status().IsNotFound());
  EXPECT_NE(r.status().message().find("signed versions: 1"), std::string::npos)
      << r.status().message();
  req.package = "nope";
  req.version = 0;
  EXPECT_TRUE(FetchVersion(env_, clock_, &source_, req).status().IsNotFound());
  EXPECT_FALSE(*env_->Exists(dir_.Sub("out")));
}

TEST_F(FetchTest, ExistingDestinationIsRefusedUntouched) {
  testing::WriteFileOrDie(dir_.Sub("out/keep"), "mine");
  auto r = FetchVersion(env_, clock_, &source_, Request("out"));
  EXPECT_TRUE(r.status().IsInvalidArgument());
  EXPECT_EQ(testing::ReadFileOrDie(dir_.Sub("out/keep")), "mine");
}

TEST_F(FetchTest, CorruptChunkOnSourceFailsAndLeavesNothing) {
  // Damage one stored chunk in the repository itself.
  std::string victim;
  ASSERT_TRUE(repo_->chunks()
                  ->ForEach([&](const store::ChunkId& id, std::uint64_t size) {
                    if (size > 10000) victim = repo_->chunks()->PathOf(id);
                    return victim.empty();
                  })
                  .ok());
  std::string bytes = testing::ReadFileOrDie(victim);
  bytes[bytes.size() / 2] ^= 0x20;
  testing::WriteFileOrDie(victim, bytes);
  auto r = FetchVersion(env_, clock_, &source_, Request("out"));
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(r.status().IsCorruption()) << r.status().ToString();
  EXPECT_NE(r.status().message().find(std::string(core::Basename(victim))), std::string::npos)
      << r.status().message();
  EXPECT_FALSE(*env_->Exists(dir_.Sub("out")));
  // No staging directory is left behind.
  for (const auto& e : *env_->ListDir(dir_.path())) {
    EXPECT_EQ(e.name.find("depot-staging"), std::string::npos) << e.name;
  }
  // The damaged chunk never reached the cache.
  store::ChunkStore cache(env_, dir_.Sub("cache/chunks"), 1);
  auto id = core::ParseDigestHex(core::Basename(victim));
  EXPECT_FALSE(*cache.Has(*id));
}

TEST_F(FetchTest, FailuresSayWhetherThisMachineOrTheSourceIsToBlame) {
  // The directory the tree is assembled in vanishes while chunks arrive: this
  // machine's failure (it reads as NotFound), which another source would share.
  ASSERT_TRUE(env_->CreateDirs(dir_.Sub("work")).ok());
  FaultySource faulty(&source_);
  faulty.on_first_chunk = [&] { ASSERT_TRUE(env_->RemoveAll(dir_.Sub("work")).ok()); };
  FetchDiagnostics diag;
  FetchRequest req = Request("work/out", /*cache=*/false);
  req.diagnostics = &diag;
  auto r = FetchVersion(env_, clock_, &faulty, req);
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(diag.local_failure) << r.status().ToString();
  EXPECT_FALSE(diag.version_missing);

  // A chunk the source does not have: the source's failure.
  std::string victim;
  ASSERT_TRUE(repo_->chunks()
                  ->ForEach([&](const store::ChunkId& id, std::uint64_t) {
                    victim = repo_->chunks()->PathOf(id);
                    return false;
                  })
                  .ok());
  ASSERT_TRUE(env_->Remove(victim).ok());
  FetchDiagnostics diag2;
  FetchRequest req2 = Request("out2", /*cache=*/false);
  req2.diagnostics = &diag2;
  r = FetchVersion(env_, clock_, &source_, req2);
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(r.status().IsNotFound()) << r.status().ToString();
  EXPECT_FALSE(diag2.local_failure) << r.status().ToString();
}

TEST_F(FetchTest, TransientCorruptionIsRetried) {
  FaultySource faulty(&source_);
  faulty.corrupt_first_n = 3;
  auto r = FetchVersion(env_, clock_, &faulty, Request("out"));
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_TRUE(SameTree("out"));
}

TEST_F(FetchTest, InterruptedFetchKeepsVerifiedChunksInCache) {
  auto r = FetchCutAfter20Chunks(Request("out"));
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(r.status().IsUnavailable()) << r.status().ToString();
  EXPECT_FALSE(*env_->Exists(dir_.Sub("out")));
  // Second attempt against a healthy source fetches only what is still missing.
  auto again = FetchVersion(env_, clock_, &source_, Request("out"));
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_EQ(again->cache_chunks, 20u);
  EXPECT_EQ(again->cache_chunks + again->fetched_chunks, again->chunks);
  EXPECT_TRUE(SameTree("out"));
}

// A manual clock that signals every timed wait begun on it, so a test can wait for
// a background thread to come round again.
class SignallingClock final : public core::Clock {
 public:
  core::TimePoint Now() override { return manual_.Now(); }
  core::MonoTime Monotonic() override { return manual_.Monotonic(); }
  void SleepFor(core::Duration d) override { manual_.Advance(d); }
  bool WaitFor(std::unique_lock<std::mutex>& lock, std::condition_variable& cv,
               core::Duration timeout, const std::function<bool()>& pred) override {
    // The deadline is fixed before the wait is signalled: an Advance made once the
    // test has seen this wait begin must count against it (taken after the signal,
    // it could land past the Advance, and the wait would outlast it by a whole
    // timeout while the test waited for the next one).
    const core::MonoTime deadline = manual_.Monotonic() + timeout;
    {
      std::lock_guard seen(mu_);
      ++waits_;
    }
    begun_.notify_all();
    return manual_.WaitFor(lock, cv, deadline - manual_.Monotonic(), pred);
  }
  void Advance(core::Duration d) { manual_.Advance(d); }
  // Returns once a timed wait has begun after the `seen`th; false after a minute.
  bool WaitBegunAfter(int seen) {
    std::unique_lock lock(mu_);
    return begun_.wait_for(lock, std::chrono::minutes(1), [&] { return waits_ > seen; });
  }
  int waits() {
    std::lock_guard lock(mu_);
    return waits_;
  }

 private:
  core::ManualClock manual_{core::Clock::Real()->Now()};
  std::mutex mu_;
  std::condition_variable begun_;
  int waits_ = 0;
};

// A source that stalls after some chunks must not keep what was verified out of the
// cache: within the commit interval it is there, while the fetch still hangs, so a
// kill at that point loses nothing.
TEST_F(FetchTest, ChunksVerifiedBeforeTheSourceStallsReachTheCacheWhileTheFetchHangs) {
  SignallingClock clock;
  FaultySource faulty(&source_);
  faulty.stall_chunks_after = 20;
  auto req = Request("out");
  req.parallel = 1;
  req.max_rounds = 1;
  core::Result<FetchResult> r = Status::NotFound("not run");
  std::thread fetch([&] { r = FetchVersion(env_, &clock, &faulty, req); });
  {
    std::unique_lock lock(faulty.stall_mu);
    faulty.stall_cv.wait(lock, [&] { return faulty.stalled > 0; });
  }
  store::ChunkStore cache(env_, dir_.Sub("cache/chunks"), 1);
  store::ChunkIdSet cached;
  for (int round = 0; round < 10 && cached.empty(); ++round) {
    const int seen = clock.waits();
    clock.Advance(std::chrono::seconds(1));
    ASSERT_TRUE(clock.WaitBegunAfter(seen));
    ASSERT_TRUE(cache.ListIds(&cached).ok());
  }
  EXPECT_FALSE(cached.empty()) << "nothing verified reached the cache while the source stalled";
  EXPECT_LE(cached.size(), 20u);
  {
    std::lock_guard lock(faulty.stall_mu);
    faulty.released = true;
  }
  faulty.stall_cv.notify_all();
  fetch.join();
  EXPECT_TRUE(r.status().IsUnavailable()) << r.status().ToString();
  auto again = FetchVersion(env_, clock_, &source_, Request("out"));
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_EQ(again->cache_chunks, 20u);
  EXPECT_TRUE(SameTree("out"));
}

// The retry schedule, on a manual clock: a chunk that keeps failing is tried max_rounds
// times in all, with a backoff between rounds (each within its cap), then the fetch
// fails saying so; everything else arrived in the first round.
TEST_F(FetchTest, AChunkThatKeepsFailingIsTriedMaxRoundsTimesThenTheFetchFails) {
  core::ManualClock clock(core::Clock::Real()->Now());
  FaultySource faulty(&source_);
  std::mutex mu;
  std::string victim;
  int victim_requests = 0;
  faulty.fail_chunk = [&](const std::string& path) {
    std::lock_guard<std::mutex> lock(mu);
    if (victim.empty()) victim = path;
    if (path != victim) return false;
    ++victim_requests;
    return true;
  };
  auto req = Request("out");
  req.max_rounds = 3;
  req.first_backoff = std::chrono::seconds(10);
  const core::MonoTime start = clock.Monotonic();
  auto r = FetchVersion(env_, &clock, &faulty, req);
  ASSERT_TRUE(r.status().IsUnavailable()) << r.status().ToString();
  EXPECT_NE(r.status().message().find("1 chunks still failing after 3 attempts"), std::string::npos)
      << r.status().message();
  EXPECT_EQ(victim_requests, 3);
  // Two backoffs, the first within [0, 10 s], the second within [0, 20 s].
  EXPECT_LE(clock.Monotonic() - start, std::chrono::seconds(30));
  int chunks = 0;
  ASSERT_TRUE(repo_->chunks()
                  ->ForEach([&](const store::ChunkId&, std::uint64_t) { return ++chunks, true; })
                  .ok());
  EXPECT_EQ(faulty.chunk_requests.load(), chunks + 2)
      << "only the failing chunk is asked for again";
}

TEST_F(FetchTest, EndlessChunkResponsesFail) {
  FaultySource faulty(&source_);
  faulty.endless = true;
  auto req = Request("out");
  req.max_rounds = 2;
  auto r = FetchVersion(env_, clock_, &faulty, req);
  EXPECT_TRUE(r.status().IsCorruption()) << r.status().ToString();
}

TEST_F(FetchTest, WrongTrustRootIsRejected) {
  ASSERT_TRUE(Repository::Init(env_, clock_, dir_.Sub("other"), {}).ok());
  auto other = Repository::Open(env_, clock_, dir_.Sub("other"));
  auto req = Request("out");
  req.trusted_root = *(*other)->TrustedRoot();
  auto r = FetchVersion(env_, clock_, &source_, req);
  ASSERT_FALSE(r.ok());
  EXPECT_FALSE(*env_->Exists(dir_.Sub("out")));
}

TEST_F(FetchTest, DamagedCacheEntryIsRefetched) {
  ASSERT_TRUE(FetchVersion(env_, clock_, &source_, Request("first")).ok());
  // Corrupt every cached chunk.
  store::ChunkStore cache(env_, dir_.Sub("cache/chunks"), 1);
  std::vector<std::string> paths;
  ASSERT_TRUE(cache
                  .ForEach([&](const store::ChunkId& id, std::uint64_t) {
                    paths.push_back(cache.PathOf(id));
                    return true;
                  })
                  .ok());
  for (const auto& p : paths) testing::WriteFileOrDie(p, "garbage");
  auto r = FetchVersion(env_, clock_, &source_, Request("second"));
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->cache_chunks, 0u);
  EXPECT_TRUE(SameTree("second"));
}

TEST_F(FetchTest, SeedTreeSuppliesUnchangedChunksAndDamageThereIsOnlyAMiss) {
  auto v1 = FetchVersion(env_, clock_, &source_, Request("v1", /*cache=*/false));
  ASSERT_TRUE(v1.ok()) << v1.status().ToString();
  auto m1 = store::ParseManifest(v1->manifest);
  ASSERT_TRUE(m1.ok());
  std::string tool = testing::ReadFileOrDie(src_ + "/bin/tool");
  for (int i = 0; i < 4096; ++i) tool[(1 << 20) + i] ^= 0x1;
  testing::WriteFileOrDie(src_ + "/bin/tool", tool, 0755);
  ASSERT_EQ(AddVersion()->version, 2);

  auto req = Request("v2", /*cache=*/false);
  req.seeds = {{dir_.Sub("v1"), &*m1}};
  auto r = FetchVersion(env_, clock_, &source_, req);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_TRUE(SameTree("v2"));
  EXPECT_GE(r->fetched_chunks, 1u);
  EXPECT_LE(r->fetched_chunks, 2u);
  EXPECT_GT(r->seed_bytes, 2u << 20);
  EXPECT_EQ(r->cache_bytes, r->seed_bytes);

  // The seed changed since it was assembled (a program edited it): its bytes fail
  // verification there and are fetched instead; the result is still exact.
  std::string seeded = testing::ReadFileOrDie(dir_.Sub("v1/bin/tool"));
  for (std::size_t i = 0; i < seeded.size(); i += 4096) seeded[i] ^= 0x40;
  ASSERT_EQ(::chmod(dir_.Sub("v1/bin").c_str(), 0755), 0);
  testing::WriteFileOrDie(dir_.Sub("v1/bin/tool"), seeded, 0755);
  req.dest = dir_.Sub("v2b");
  auto again = FetchVersion(env_, clock_, &source_, req);
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_TRUE(SameTree("v2b"));
  EXPECT_GT(again->fetched_bytes, 2u << 20);
  EXPECT_EQ(again->cache_chunks + again->fetched_chunks, again->chunks);
}

TEST_F(FetchTest, FailedFetchKeepsItsPartialTreeAndTheNextOneResumesFromIt) {
  auto req = Request("out");
  req.cache_fetched = false;
  req.keep_partial = true;
  auto r = FetchCutAfter20Chunks(req);
  ASSERT_FALSE(r.ok());
  EXPECT_FALSE(*env_->Exists(dir_.Sub("out")));
  EXPECT_TRUE(*env_->Exists(PartialPath(dir_.Sub("out"))));
  // Nothing went into the cache: the partial tree is the only copy.
  store::ChunkStore cache(env_, dir_.Sub("cache/chunks"), 1);
  ASSERT_TRUE(cache
                  .ForEach([](const store::ChunkId&, std::uint64_t) {
                    ADD_FAILURE() << "a chunk was cached";
                    return false;
                  })
                  .ok());

  auto again = FetchVersion(env_, clock_, &source_, req);
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_EQ(again->seed_chunks, 20u);
  EXPECT_EQ(again->seed_chunks + again->fetched_chunks, again->chunks);
  EXPECT_TRUE(SameTree("out"));
  EXPECT_FALSE(*env_->Exists(PartialPath(dir_.Sub("out"))));
}

TEST_F(FetchTest, StagingTreeOfAKilledFetchIsReusedThenRemoved) {
  ASSERT_TRUE(FetchVersion(env_, clock_, &source_, Request("whole", /*cache=*/false)).ok());
  // What a fetch killed at the very end leaves: a staging tree named after a pid
  // that no longer runs. One of a live process would be left alone.
  std::string abandoned = dir_.Sub(".out.depot-staging-999999999-abcdef");
  ASSERT_EQ(::rename(dir_.Sub("whole").c_str(), abandoned.c_str()), 0);
  std::string live = dir_.Sub(".out.depot-staging-" + std::to_string(::getpid()) + "-abcdef");
  ASSERT_EQ(::mkdir(live.c_str(), 0700), 0);
  auto r = FetchVersion(env_, clock_, &source_, Request("out", /*cache=*/false));
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->fetched_chunks, 0u);
  EXPECT_EQ(r->seed_chunks, r->chunks);
  EXPECT_TRUE(SameTree("out"));
  EXPECT_FALSE(*env_->Exists(abandoned));
  EXPECT_TRUE(*env_->Exists(live));
}

TEST(FetchLeftoverTest, NamesPartialAndStagingTreesByTheirDestination) {
  std::string dest = "/data/content/tools/3";
  EXPECT_EQ(LeftoverOf(core::Basename(PartialPath(dest))), "3");
  EXPECT_EQ(LeftoverOf(".3.depot-staging-4242-a1b2c3"), "3");
  EXPECT_EQ(LeftoverOf("3"), "");
  EXPECT_EQ(LeftoverOf(".depot-partial"), "");
  EXPECT_EQ(LeftoverOf("..depot-staging-1-x"), "");
  EXPECT_EQ(LeftoverOf(".tmp.3"), "");
}

}  // namespace
}  // namespace depot::repo
