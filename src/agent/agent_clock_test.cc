// The agent when its wall clock jumps: delays run on the monotonic clock, persisted
// retry times are clamped at start, and an expiry refusal says whose clock is off.
#include <gtest/gtest.h>

#include "agent/agent_fixture.h"
#include "core/messages.h"

namespace depot::agent {
namespace {

using testing::AgentFixture;
using testing::Json;

class AgentClockTest : public AgentFixture {
 protected:
  DeploymentStatus Deployment() {
    auto s = Agent::LocalStatus(core::Env::Default(), agent_dir_);
    EXPECT_TRUE(s.ok()) << s.status().ToString();
    if (!s.ok() || s->deployments.empty()) return {};
    return s->deployments.front();
  }
  // Publishes version 1 of "tools" (one file) and deploys it, required, to everyone;
  // from `start` when given.
  void PublishAndDeployTools(const std::string& start = "") {
    std::string src = dir_.Sub("src");
    depot::testing::WriteFileOrDie(src + "/a.txt", "one\n", 0644);
    Publish("tools", src, true);
    Json deployment = {
        {"package", "tools"}, {"program", "install"}, {"collection", "all"}, {"kind", "required"}};
    if (!start.empty()) deployment["start"] = start;
    Api("POST", "/api/v1/deployments", deployment);
  }
  std::int64_t WallMs() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(clock_.Now().time_since_epoch())
        .count();
  }
};

TEST_F(AgentClockTest, ARetryScheduledWhileTheClockRanAheadIsDueWhenItComesBack) {
  PublishAndDeployTools();
  AgentOverrides o;
  o.retry_base = std::chrono::seconds(1);
  o.retry_max = std::chrono::hours(6);
  auto agent = OpenAgent(o);
  ASSERT_NE(agent, nullptr);

  // The clock runs 8 days ahead: the signed metadata looks expired, the install fails.
  const core::TimePoint real = clock_.Now();
  clock_.Set(real + std::chrono::hours(24 * 8));
  auto out = agent->RunOnce();
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  EXPECT_EQ(*out, Agent::Outcome::kFailed);
  DeploymentStatus d = Deployment();
  EXPECT_EQ(d.state, "failed_retry");
  EXPECT_GT(d.next_try_ms, WallMs());  // persisted by the wrong clock: 8 days from the real now
  // The report says whose clock is off, not "re-sign the repository".
  Json failed = Messages(core::msg::kAgentInstallFailedRetry);
  ASSERT_EQ(failed.size(), 1u) << failed.dump();
  std::string error = failed[0]["params"]["error"];
  EXPECT_NE(error.find("this machine's clock is 8d 0h ahead"), std::string::npos) << error;
  EXPECT_EQ(error.find("repo resign"), std::string::npos) << error;
  std::string text = failed[0]["text"];
  EXPECT_NE(text.find("failed to install package tools version 1: download failed: "),
            std::string::npos)
      << text;
  EXPECT_EQ(text.find("exit code"), std::string::npos) << "no program ran: " << text;

  // The clock is corrected. The retry was due 1 s after the failure, whatever the
  // wall clock said then or says now.
  clock_.Set(real);
  clock_.Advance(std::chrono::seconds(2));
  out = agent->RunOnce();
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  EXPECT_EQ(*out, Agent::Outcome::kSucceeded);
  EXPECT_EQ(Deployment().state, "succeeded");
}

TEST_F(AgentClockTest, PersistedRetryTimesAreClampedAtStart) {
  PublishAndDeployTools();
  AgentOverrides o;
  o.retry_base = std::chrono::seconds(1);
  o.retry_max = std::chrono::hours(6);
  const core::TimePoint real = clock_.Now();
  {
    auto agent = OpenAgent(o);
    ASSERT_NE(agent, nullptr);
    clock_.Set(real + std::chrono::hours(24 * 8));
    ASSERT_TRUE(agent->RunOnce().ok());
    EXPECT_EQ(Deployment().state, "failed_retry");
  }
  // Restarted with the clock right again: the retry is due within the cap, not in 8 days.
  clock_.Set(real);
  auto agent = OpenAgent(o);
  ASSERT_NE(agent, nullptr);
  DeploymentStatus d = Deployment();
  EXPECT_LE(d.next_try_ms, WallMs() + 6 * 3600 * 1000);
  // 6 h later (the site signed its metadata at `real`, valid for days) it is retried.
  clock_.Advance(std::chrono::hours(6) + std::chrono::seconds(1));
  auto out = agent->RunOnce();
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  EXPECT_EQ(Deployment().state, "succeeded") << Deployment().last_error;
}

TEST_F(AgentClockTest, AWallClockSetBackDoesNotPostponeARetry) {
  // Started long ago, so the wall clock going back does not put the start ahead.
  PublishAndDeployTools("2020-01-01T00:00:00Z");
  AgentOverrides o;
  o.retry_base = std::chrono::seconds(10);
  auto agent = OpenAgent(o);
  ASSERT_NE(agent, nullptr);
  sources_fail_ = true;
  ASSERT_TRUE(agent->RunOnce().ok());
  EXPECT_EQ(Deployment().state, "failed_retry");
  sources_fail_ = false;
  // Full jitter: the retry comes within 10 s (retry_base), at the time persisted.
  const std::int64_t wait_ms = Deployment().next_try_ms - WallMs();
  ASSERT_GE(wait_ms, 0);
  ASSERT_LE(wait_ms, 10'000);
  // The wall clock goes back a week: the retry still comes when it was due.
  clock_.Set(clock_.Now() - std::chrono::hours(24 * 7));
  if (wait_ms > 1000) {
    clock_.Advance(std::chrono::milliseconds(wait_ms - 1000));
    ASSERT_TRUE(agent->RunOnce().ok());
    EXPECT_EQ(Deployment().state, "failed_retry") << "not due yet: 1 s to go";
  }
  clock_.Advance(std::chrono::seconds(2));
  auto out = agent->RunOnce();
  ASSERT_TRUE(out.ok());
  EXPECT_EQ(Deployment().state, "succeeded") << Deployment().last_error;
}

}  // namespace
}  // namespace depot::agent
