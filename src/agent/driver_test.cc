// The driver over the real parts, on a manual clock: the happy path and its
// messages, retries on the backoff schedule until the attempts run out, programs
// over their timeout killed, maintenance windows and deadlines, and the purge grace.
#include "agent/driver.h"

#include <gtest/gtest.h>

#include <chrono>
#include <thread>

#include "agent/parts_fixture.h"
#include "agent/program.h"
#include "core/messages.h"

namespace depot::agent {
namespace {

using testing::Fault;
using testing::Json;

class DriverTest : public testing::PartsFixture {
 protected:
  std::vector<int> Codes() {
    std::vector<int> out;
    for (const auto& m : Outbox()) out.push_back(m["code"]);
    return out;
  }
  // Steps until deployment `id` is in `state` (downloads awaited), at most `passes`.
  void StepUntil(std::int64_t id, State state, int passes = 50) {
    for (int i = 0; i < passes && Get(id).state != state; ++i) {
      Activity a = Step();
      if (downloader_->Running()) WaitForDownload();
      (void)a;
    }
    ASSERT_EQ(StateName(Get(id).state), StateName(state));
  }
  // A daily window opening `from_now` from now (whole minutes), lasting `length`.
  Json WindowIn(std::chrono::minutes from_now,
                std::chrono::seconds length = std::chrono::hours(1)) {
    const std::int64_t minute = (NowMs() / 60'000 + from_now.count()) % 1440;
    char hhmm[16];
    std::snprintf(hhmm, sizeof(hhmm), "%02d:%02d", static_cast<int>(minute / 60),
                  static_cast<int>(minute % 60));
    return Json::array({{{"start", hhmm}, {"duration_s", length.count()}, {"tz", "UTC"}}});
  }
};

TEST_F(DriverTest, ADeploymentGoesFromWaitingToSucceededWithItsMessages) {
  repo::AddResult v = AddVersion("tools", {{"a.txt", "one"}}, "test -f a.txt");
  Insert(Item(1, v));
  Settle();
  Deployment d = Get(1);
  EXPECT_EQ(StateName(d.state), "succeeded") << d.last_error;
  EXPECT_EQ(d.exit_code, 0);
  EXPECT_EQ(*state_->InstalledVersion("tools"), 1);
  EXPECT_EQ(Codes(),
            (std::vector<int>{core::msg::kAgentDownloadStarted, core::msg::kAgentDownloaded,
                              core::msg::kAgentInstallStarted, core::msg::kAgentInstallSucceeded}));
  EXPECT_TRUE(driver_->any_succeeded());
  EXPECT_FALSE(driver_->any_failed());
}

TEST_F(DriverTest, OnePassAppliesAtMostOneTransitionPerDeployment) {
  repo::AddResult v = AddVersion("tools", {{"a.txt", "one"}});
  Insert(Item(1, v));
  const std::uint64_t before = driver_->transitions();
  Step();
  EXPECT_EQ(driver_->transitions(), before + 1);
  EXPECT_EQ(Get(1).state, State::kDownloading);
}

TEST_F(DriverTest, AFailedDownloadIsRetriedOnlyAfterItsBackoff) {
  repo::AddResult v = AddVersion("tools", {{"a.txt", "one"}});
  Insert(Item(1, v));
  SetFault("good", Fault::kUnavailable);
  Settle();
  Deployment d = Get(1);
  ASSERT_EQ(d.state, State::kFailedRetry) << d.last_error;
  EXPECT_EQ(d.attempts, 1);
  EXPECT_NE(d.last_error.find("download failed"), std::string::npos) << d.last_error;
  ASSERT_EQ(OutboxOf(core::msg::kAgentInstallFailedRetry).size(), 1u);
  // Full jitter: the retry is somewhere in the first hour (retry_base).
  const std::int64_t wait_ms = d.next_try_ms - NowMs();
  ASSERT_GE(wait_ms, 0);
  ASSERT_LE(wait_ms, 3600 * 1000);
  if (wait_ms > 1000) {
    clock_.Advance(std::chrono::milliseconds(wait_ms - 1000));
    Settle();
    EXPECT_EQ(Get(1).state, State::kFailedRetry) << "not due yet";
  }
  SetFault("good", Fault::kNone);
  clock_.Advance(std::chrono::seconds(2));
  Step();
  EXPECT_EQ(Get(1).state, State::kWaiting) << "due: one pass, one transition";
  Settle();
  d = Get(1);
  EXPECT_EQ(StateName(d.state), "succeeded") << d.last_error;
}

TEST_F(DriverTest, WhenTheAttemptsAreUsedUpTheDeploymentFailsFinally) {
  config_.max_attempts = 2;
  repo::AddResult v = AddVersion("tools", {{"a.txt", "one"}});
  Insert(Item(1, v));
  SetFault("good", Fault::kUnavailable);
  Settle();
  ASSERT_EQ(Get(1).state, State::kFailedRetry);
  clock_.Advance(std::chrono::milliseconds(Get(1).next_try_ms - NowMs() + 1000));
  const std::uint64_t before = driver_->transitions();
  Settle();
  // waiting -> downloading -> failed_final: the last failure gives up in one move,
  // with one message, and no retry is announced for it.
  EXPECT_EQ(driver_->transitions(), before + 3);
  EXPECT_EQ(OutboxOf(core::msg::kAgentInstallFailedRetry).size(), 1u);
  Deployment d = Get(1);
  EXPECT_EQ(StateName(d.state), "failed_final");
  EXPECT_EQ(d.attempts, 2);
  EXPECT_NE(d.last_error.find("gave up after 2 attempts"), std::string::npos) << d.last_error;
  auto final = OutboxOf(core::msg::kAgentInstallFailed);
  ASSERT_EQ(final.size(), 1u);
  EXPECT_NE(final[0]["params"]["error"].get<std::string>().find("gave up"), std::string::npos);
  // Nothing more happens, whatever the time.
  SetFault("good", Fault::kNone);
  clock_.Advance(std::chrono::hours(24));
  Settle();
  EXPECT_EQ(Get(1).state, State::kFailedFinal);
}

TEST_F(DriverTest, AProgramAskingForARetryRunsAgainAfterTheBackoff) {
  const std::string marker = dir_.Sub("second");
  repo::AddResult v =
      AddVersion("tools", {{"a.txt", "one"}},
                 "if [ -e " + marker + " ]; then exit 0; fi; touch " + marker + "; exit 75",
                 [](store::Program* p) { p->retry_codes = {75}; });
  Insert(Item(1, v));
  Settle();
  Deployment d = Get(1);
  ASSERT_EQ(d.state, State::kFailedRetry) << d.last_error;
  EXPECT_EQ(d.exit_code, 75);
  clock_.Advance(std::chrono::milliseconds(d.next_try_ms - NowMs() + 1000));
  Settle();
  d = Get(1);
  EXPECT_EQ(StateName(d.state), "succeeded") << d.last_error;
  EXPECT_EQ(d.attempts, 1) << "the success does not count as an attempt";
}

TEST_F(DriverTest, AProgramOverItsTimeoutIsKilledAndRetried) {
  repo::AddResult v = AddVersion("tools", {{"a.txt", "one"}}, "exec sleep 600",
                                 [](store::Program* p) { p->timeout_s = 120; });
  Insert(Item(1, v));
  StepUntil(1, State::kInstalling);
  const std::string run_dir = Get(1).run_dir;
  ASSERT_NE(run_dir, "");
  EXPECT_TRUE(Step().program);
  ASSERT_EQ(CheckProgram(run_dir)->state, RunState::kRunning);
  clock_.Advance(std::chrono::seconds(119));
  Step();
  EXPECT_EQ(Get(1).state, State::kInstalling);
  clock_.Advance(std::chrono::seconds(2));
  Step();
  Deployment d = Get(1);
  EXPECT_EQ(d.state, State::kFailedRetry);
  EXPECT_NE(d.last_error.find("timed out"), std::string::npos) << d.last_error;
  // Killed: its process is gone, without an exit code.
  RunState st = WaitUntilStopped(run_dir);
  EXPECT_NE(st, RunState::kRunning);
  EXPECT_NE(st, RunState::kExited);
}

TEST_F(DriverTest, InstallWaitsForTheMaintenanceWindow) {
  repo::AddResult v = AddVersion("tools", {{"a.txt", "one"}});
  Insert(Item(1, v, {{"windows", WindowIn(std::chrono::minutes(120))}}));
  Settle();
  EXPECT_EQ(Get(1).state, State::kDownloaded);
  clock_.Advance(std::chrono::minutes(118));
  Settle();
  EXPECT_EQ(Get(1).state, State::kDownloaded);
  clock_.Advance(std::chrono::minutes(3));
  Settle();
  EXPECT_EQ(StateName(Get(1).state), "succeeded") << Get(1).last_error;
}

TEST_F(DriverTest, ADownloadWhoseManifestWentMissingBeforeTheInstallIsFetchedAgain) {
  repo::AddResult v = AddVersion("tools", {{"a.txt", "one"}});
  // The window outlasts the retry (up to retry_base, an hour, by its jitter): an hour
  // long, a late draw would leave the refetched download waiting for tomorrow's.
  Insert(Item(1, v, {{"windows", WindowIn(std::chrono::minutes(120), std::chrono::hours(3))}}));
  Settle();
  ASSERT_EQ(Get(1).state, State::kDownloaded);
  // Lost while the agent was down: the restarted agent cannot know the program.
  Close();
  ASSERT_TRUE(env_->Remove(data_dir_ + "/manifests/" + v.manifest_id + ".json").ok());
  Open();
  clock_.Advance(std::chrono::minutes(121));
  const std::uint64_t before = driver_->transitions();
  Step();
  EXPECT_EQ(driver_->transitions(), before + 1);
  Deployment d = Get(1);
  EXPECT_EQ(StateName(d.state), "failed_retry") << d.last_error;
  EXPECT_NE(d.last_error.find("manifest of the download is missing"), std::string::npos);
  clock_.Advance(std::chrono::milliseconds(d.next_try_ms - NowMs() + 1000));
  Settle();
  EXPECT_EQ(StateName(Get(1).state), "succeeded") << Get(1).last_error;
}

TEST_F(DriverTest, ADeadlinePassedOutsideEveryWindowFailsFinally) {
  repo::AddResult v = AddVersion("tools", {{"a.txt", "one"}});
  Insert(Item(
      1, v,
      {{"windows", WindowIn(std::chrono::minutes(180))}, {"deadline_ms", NowMs() + 3600'000}}));
  Settle();
  EXPECT_EQ(Get(1).state, State::kDownloaded);
  clock_.Advance(std::chrono::minutes(59));
  Settle();
  EXPECT_EQ(Get(1).state, State::kDownloaded);
  clock_.Advance(std::chrono::minutes(2));
  Settle();
  Deployment d = Get(1);
  EXPECT_EQ(StateName(d.state), "failed_final");
  EXPECT_NE(d.last_error.find("deadline passed"), std::string::npos) << d.last_error;
  EXPECT_EQ(OutboxOf(core::msg::kAgentInstallFailed).size(), 1u);
}

TEST_F(DriverTest, ADeadlineBeforeTheStartFailsTheWaitingDeployment) {
  repo::AddResult v = AddVersion("tools", {{"a.txt", "one"}});
  Insert(Item(1, v, {{"start_ms", NowMs() + 2 * 3600'000}, {"deadline_ms", NowMs() + 3600'000}}));
  Settle();
  EXPECT_EQ(Get(1).state, State::kWaiting) << "not started yet";
  clock_.Advance(std::chrono::minutes(61));
  Settle();
  EXPECT_EQ(StateName(Get(1).state), "failed_final");
}

TEST_F(DriverTest, AnAvailableDeploymentWaitsUntilRequested) {
  repo::AddResult v = AddVersion("tools", {{"a.txt", "one"}});
  Insert(Item(1, v, {{"kind", "available"}}));
  Settle();
  EXPECT_EQ(Get(1).state, State::kWaiting);
  ASSERT_EQ(*state_->Request("tools"), 1);
  Settle();
  EXPECT_EQ(StateName(Get(1).state), "succeeded");
}

TEST_F(DriverTest, AWindowInAnUnknownZoneIsUnschedulable) {
  repo::AddResult v = AddVersion("tools", {{"a.txt", "one"}});
  Insert(Item(
      1, v,
      {{"windows",
        Json::array({{{"start", "01:00"}, {"duration_s", 60}, {"tz", "Nowhere/Atlantis"}}})}}));
  Settle();
  Deployment d = Get(1);
  EXPECT_EQ(StateName(d.state), "failed_final");
  EXPECT_NE(d.last_error.find("Atlantis"), std::string::npos) << d.last_error;
}

TEST_F(DriverTest, ContentIsPurgedOnlyAfterThePurgeGrace) {
  repo::AddResult v = AddVersion("tools", {{"a.txt", "one"}});
  Insert(Item(1, v));
  Settle();
  ASSERT_EQ(Get(1).state, State::kSucceeded);
  const std::string dir = content_->Dir("tools", 1);
  ASSERT_TRUE(env_->Exists(dir).value());
  ASSERT_TRUE(
      state_->MarkRemoved(1, {core::msg::kAgentDeploymentRemoved, NowMs(), "tools", 1, 1, {}})
          .ok());
  clock_.Advance(config_.purge_grace - std::chrono::seconds(1));
  ASSERT_TRUE(driver_->Purge().ok());
  EXPECT_TRUE(env_->Exists(dir).value());
  EXPECT_TRUE(state_->Get(1)->has_value());
  EXPECT_TRUE(OutboxOf(core::msg::kAgentContentPurged).empty());
  clock_.Advance(std::chrono::seconds(2));
  ASSERT_TRUE(driver_->Purge().ok());
  EXPECT_FALSE(env_->Exists(dir).value());
  EXPECT_FALSE(state_->Get(1)->has_value());
  EXPECT_EQ(*state_->InstalledVersion("tools"), std::nullopt);
  EXPECT_TRUE(state_->Held()->empty());
  EXPECT_FALSE(env_->Exists(content_->ManifestPath(v.manifest_id)).value());
  auto purged = OutboxOf(core::msg::kAgentContentPurged);
  ASSERT_EQ(purged.size(), 1u);
  EXPECT_EQ(purged[0]["package"], "tools");
  EXPECT_EQ(purged[0]["version"], 1);
}

TEST_F(DriverTest, ARunningProgramIsNotPurged) {
  const std::string go = dir_.Sub("go");
  repo::AddResult v =
      AddVersion("tools", {{"a.txt", "one"}}, "while [ ! -e " + go + " ]; do sleep 0.01; done");
  Insert(Item(1, v));
  StepUntil(1, State::kInstalling);
  ASSERT_TRUE(
      state_->MarkRemoved(1, {core::msg::kAgentDeploymentRemoved, NowMs(), "tools", 1, 1, {}})
          .ok());
  clock_.Advance(config_.purge_grace + std::chrono::seconds(1));
  ASSERT_TRUE(driver_->Purge().ok());
  EXPECT_TRUE(state_->Get(1)->has_value());
  EXPECT_TRUE(env_->Exists(content_->Dir("tools", 1)).value());
  depot::testing::WriteFileOrDie(go, "");
  for (int i = 0; i < 500 && installer_->Running(Get(1)); ++i) {
    ReapChildren();
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ASSERT_TRUE(driver_->Purge().ok());
  EXPECT_FALSE(state_->Get(1)->has_value());
  EXPECT_FALSE(env_->Exists(content_->Dir("tools", 1)).value());
}

}  // namespace
}  // namespace depot::agent
