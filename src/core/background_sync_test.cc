#include "core/background_sync.h"

#include <gtest/gtest.h>

#include <chrono>
#include <thread>

#include "core/testing.h"

namespace depot::core {
namespace {

// Waits (briefly) until `sync` has done `n` syncs.
bool WaitForSyncs(const BackgroundSync& sync, std::uint64_t n) {
  for (int i = 0; i < 500 && sync.syncs() < n; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return sync.syncs() >= n;
}

TEST(BackgroundSyncTest, SyncsOnceEnoughBytesAreReported) {
  testing::TempDir dir;
  BackgroundSync sync(Env::Default(), dir.path(), 1000);
  sync.Wrote(600);
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_EQ(sync.syncs(), 0u);
  sync.Wrote(600);
  EXPECT_TRUE(WaitForSyncs(sync, 1));
  EXPECT_TRUE(sync.Stop().ok());
  EXPECT_TRUE(sync.Stop().ok());  // idempotent
}

TEST(BackgroundSyncTest, StopReportsAFailedBackgroundSync) {
  testing::TempDir dir;
  testing::FaultyEnv env(Env::Default());
  env.fail_sync = true;
  BackgroundSync sync(&env, dir.path(), 10);
  sync.Wrote(100);
  ASSERT_TRUE(WaitForSyncs(sync, 1));
  env.fail_sync = false;
  Status s = sync.Stop();
  EXPECT_TRUE(s.IsIOError()) << s.ToString();
  EXPECT_NE(s.message().find("background sync"), std::string::npos) << s.message();
}

TEST(BackgroundSyncTest, StopWithoutWritesDoesNotSync) {
  testing::TempDir dir;
  BackgroundSync sync(Env::Default(), dir.path(), 1 << 20);
  EXPECT_TRUE(sync.Stop().ok());
  EXPECT_EQ(sync.syncs(), 0u);
}

}  // namespace
}  // namespace depot::core
