#include "core/atomic_batch.h"

#include <gtest/gtest.h>

#include "core/parallel.h"
#include "core/testing.h"

namespace depot::core {
namespace {

std::vector<std::string> Names(Env* env, const std::string& dir) {
  std::vector<std::string> out;
  for (auto& e : *env->ListDir(dir)) out.push_back(e.name);
  std::sort(out.begin(), out.end());
  return out;
}

TEST(AtomicBatchTest, NothingVisibleBeforeCommit) {
  testing::TempDir dir;
  Env* env = Env::Default();
  AtomicBatch batch(env, dir.path());
  ASSERT_TRUE(batch.Add(dir.Sub("a"), "alpha").ok());
  EXPECT_FALSE(*env->Exists(dir.Sub("a")));
  ASSERT_TRUE(batch.Commit().ok());
  EXPECT_EQ(testing::ReadFileOrDie(dir.Sub("a")), "alpha");
  EXPECT_EQ(Names(env, dir.path()), std::vector<std::string>{"a"});
}

TEST(AtomicBatchTest, LargeConcurrentBatchUsesFilesystemSync) {
  testing::TempDir dir;
  Env* env = Env::Default();
  AtomicBatch batch(env, dir.path());
  RunParallel(4, [&](unsigned w) {
    for (int i = 0; i < 50; ++i) {
      std::string name = "f" + std::to_string(w) + "_" + std::to_string(i);
      ASSERT_TRUE(batch.Add(dir.Sub(name), name).ok());
    }
  });
  EXPECT_EQ(batch.size(), 200u);
  ASSERT_TRUE(batch.Commit().ok());
  EXPECT_EQ(Names(env, dir.path()).size(), 200u);
  EXPECT_EQ(testing::ReadFileOrDie(dir.Sub("f3_49")), "f3_49");
}

TEST(AtomicBatchTest, AbortAndDestructorRemoveTemps) {
  testing::TempDir dir;
  Env* env = Env::Default();
  {
    AtomicBatch batch(env, dir.path());
    ASSERT_TRUE(batch.Add(dir.Sub("a"), "alpha").ok());
    ASSERT_TRUE(batch.Add(dir.Sub("b"), "beta").ok());
  }
  EXPECT_TRUE(Names(env, dir.path()).empty());
}

TEST(AtomicBatchTest, FailedSyncRenamesNothing) {
  testing::TempDir dir;
  testing::FaultyEnv env(Env::Default());
  for (int n : {3, 40}) {  // the per-file path and the syncfs path
    AtomicBatch batch(&env, dir.path());
    for (int i = 0; i < n; ++i) ASSERT_TRUE(batch.Add(dir.Sub("f" + std::to_string(i)), "x").ok());
    env.fail_sync = true;
    Status s = batch.Commit();
    env.fail_sync = false;
    EXPECT_TRUE(s.IsIOError()) << s.ToString();
    EXPECT_TRUE(Names(&env, dir.path()).empty()) << n;
  }
}

TEST(AtomicBatchTest, FailedRenameInLargeBatchLeavesNoTemps) {
  testing::TempDir dir;
  Env* env = Env::Default();
  AtomicBatch batch(env, dir.path());
  // One final name is taken by a non-empty directory, so its rename fails while
  // others (on other threads) may already have succeeded.
  ASSERT_TRUE(env->CreateDir(dir.Sub("f1500")).ok());
  testing::WriteFileOrDie(dir.Sub("f1500/inside"), "x");
  for (int i = 0; i < 3000; ++i) {
    ASSERT_TRUE(batch.Add(dir.Sub("f" + std::to_string(i)), std::to_string(i)).ok());
  }
  Status s = batch.Commit();
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("f1500"), std::string::npos) << s.ToString();
  std::size_t files = 0;
  for (const auto& name : Names(env, dir.path())) {
    EXPECT_NE(name[0], '.') << "temp file left behind: " << name;
    if (name != "f1500") {
      ++files;
      EXPECT_EQ(testing::ReadFileOrDie(dir.Sub(name)), name.substr(1));  // complete
    }
  }
  EXPECT_LT(files, 3000u);
  EXPECT_EQ(batch.size(), 0u);
}

TEST(AtomicBatchTest, FullDiskFailsAddCleanly) {
  testing::TempDir dir;
  testing::FaultyEnv env(Env::Default());
  env.write_budget = 4;
  AtomicBatch batch(&env, dir.path());
  EXPECT_TRUE(batch.Add(dir.Sub("a"), "0123456789").IsIOError());
  EXPECT_EQ(batch.size(), 0u);
  EXPECT_TRUE(Names(&env, dir.path()).empty());
}

}  // namespace
}  // namespace depot::core
