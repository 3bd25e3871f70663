// Policy sync against the fixture's real site: deployments added, moved to a new
// version (not while a program runs), removed; polls scheduled on the manual clock;
// and the policy document's parsing.
#include "agent/policy_sync.h"

#include <gtest/gtest.h>

#include "agent/agent_fixture.h"
#include "core/messages.h"
#include "http/client.h"

namespace depot::agent {
namespace {

using testing::AgentFixture;
using testing::Json;

class PolicySyncTest : public AgentFixture {
 protected:
  void SetUp() override {
    AgentFixture::SetUp();
    if (HasFatalFailure()) return;
    ASSERT_NE(OpenAgent(), nullptr);  // enrolled; closed again at once
    Identity id;
    ASSERT_TRUE(LoadAgentConfig(core::Env::Default(), agent_dir_, &config_, &id).ok());
    config_.poll_interval = std::chrono::minutes(5);
    http::ClientOptions o;
    o.bearer_token = id.token;
    auto client = http::Client::Create(site_->url(), o);
    ASSERT_TRUE(client.ok());
    client_http_ = std::move(*client);
    auto state = StateStore::Open(&clock_, dir_.Sub("sync-state.db"));
    ASSERT_TRUE(state.ok()) << state.status().ToString();
    state_ = std::move(*state);
    sync_ = std::make_unique<PolicySync>(state_.get(), &clock_, &config_);
    std::string src = dir_.Sub("src");
    depot::testing::WriteFileOrDie(src + "/a.txt", "one\n", 0644);
    Publish("tools", src, true);
  }

  std::int64_t Deploy(const std::string& package = "tools") {
    Json d = Api("POST", "/api/v1/deployments",
                 {{"package", package},
                  {"program", "install"},
                  {"collection", "all"},
                  {"kind", "required"}});
    return d["id"].get<std::int64_t>();
  }
  void PublishNext() {
    std::string src = dir_.Sub("src");
    depot::testing::WriteFileOrDie(src + "/a.txt", "next " + std::to_string(++versions_) + "\n",
                                   0644);
    Publish("tools", src, false);
  }
  std::vector<std::int64_t> Poll(bool force = true) {
    std::vector<std::int64_t> stop;
    core::Status s = sync_->MaybePoll(client_http_.get(), force, &stop);
    EXPECT_TRUE(s.ok()) << s.ToString();
    return stop;
  }
  std::vector<Deployment> Live() { return *state_->Live(); }
  Deployment Get(std::int64_t id) { return **state_->Get(id); }
  void Move(std::int64_t id, std::initializer_list<Event> events) {
    for (Event e : events) {
      auto to = state_->Transition(id, e, {}, {});
      ASSERT_TRUE(to.ok() && to->has_value()) << EventName(e);
    }
  }

  AgentConfig config_;
  std::unique_ptr<http::Client> client_http_;
  std::unique_ptr<StateStore> state_;
  std::unique_ptr<PolicySync> sync_;
  int versions_ = 1;
};

TEST_F(PolicySyncTest, ANewDeploymentIsAddedWaitingWithItsSources) {
  EXPECT_TRUE(Poll().empty());
  EXPECT_TRUE(Live().empty());
  const std::int64_t id = Deploy();
  EXPECT_TRUE(Poll().empty());
  auto live = Live();
  ASSERT_EQ(live.size(), 1u);
  EXPECT_EQ(live[0].id, id);
  EXPECT_EQ(live[0].package, "tools");
  EXPECT_EQ(live[0].version, 1);
  EXPECT_EQ(live[0].state, State::kWaiting);
  EXPECT_EQ(live[0].program, "install");
  EXPECT_TRUE(live[0].required());
  ASSERT_FALSE(live[0].sources.empty());
  EXPECT_EQ(live[0].sources.back().url, site_->url() + "/repo");
  EXPECT_TRUE(sync_->site_clock_offset().has_value());
}

TEST_F(PolicySyncTest, ANewVersionStartsTheDeploymentOverAndStopsItsWork) {
  const std::int64_t id = Deploy();
  Poll();
  Changes failed;
  failed.attempts = 2;
  ASSERT_TRUE(state_->Transition(id, Event::kStart, {}, {}).ok());
  ASSERT_TRUE(state_->Transition(id, Event::kDownloadFailed, failed, {}).ok());
  PublishNext();
  EXPECT_EQ(Poll(), (std::vector<std::int64_t>{id}));
  Deployment d = Get(id);
  EXPECT_EQ(d.version, 2);
  EXPECT_EQ(d.state, State::kWaiting);
  EXPECT_EQ(d.attempts, 0);
  // The same version again: nothing to stop.
  EXPECT_TRUE(Poll().empty());
  EXPECT_EQ(Get(id).version, 2);
}

TEST_F(PolicySyncTest, ARunningProgramFinishesBeforeTheNewVersionIsTaken) {
  const std::int64_t id = Deploy();
  Poll();
  Move(id, {Event::kStart, Event::kDownloaded, Event::kInstallAllowed});
  PublishNext();
  EXPECT_TRUE(Poll().empty());
  EXPECT_EQ(Get(id).version, 1);
  EXPECT_EQ(Get(id).state, State::kInstalling);
  Move(id, {Event::kProgramSucceeded});
  // The site's policy has not changed since: the poll must not be answered 304.
  EXPECT_EQ(Poll(), (std::vector<std::int64_t>{id}));
  EXPECT_EQ(Get(id).version, 2);
  EXPECT_EQ(Get(id).state, State::kWaiting);
}

TEST_F(PolicySyncTest, ADeploymentThatLeftThePolicyIsStoppedAndMarkedRemoved) {
  const std::int64_t keep = Deploy();
  const std::int64_t gone = Deploy();
  Poll();
  ASSERT_EQ(Live().size(), 2u);
  Api("POST", "/api/v1/deployments/" + std::to_string(gone) + "/cancel", Json::object());
  EXPECT_EQ(Poll(), (std::vector<std::int64_t>{gone}));
  auto live = Live();
  ASSERT_EQ(live.size(), 1u);
  EXPECT_EQ(live[0].id, keep);
  EXPECT_TRUE(Get(gone).removed);
  auto batch = state_->PendingMessages(100);
  ASSERT_TRUE(batch.ok());
  Json messages = Json::parse(batch->json);
  ASSERT_EQ(messages.size(), 1u);
  EXPECT_EQ(messages[0]["code"], core::msg::kAgentDeploymentRemoved);
  EXPECT_EQ(messages[0]["deployment"], gone);
  // Polling again removes nothing twice.
  EXPECT_TRUE(Poll().empty());
  EXPECT_EQ(*state_->OutboxDepth(), 1);
}

TEST_F(PolicySyncTest, PollsComeAtThePollIntervalOnTheManualClock) {
  Poll();
  Deploy();  // the site's policy changes
  EXPECT_TRUE(Poll(/*force=*/false).empty());
  EXPECT_TRUE(Live().empty()) << "not due: not asked";
  clock_.Advance(std::chrono::minutes(4));
  Poll(false);
  EXPECT_TRUE(Live().empty()) << "not due: not asked";
  clock_.Advance(std::chrono::minutes(2));
  Poll(false);
  EXPECT_EQ(Live().size(), 1u);
  EXPECT_EQ(sync_->poll_interval(), std::chrono::minutes(5));
}

TEST_F(PolicySyncTest, AFailedPollChangesNothing) {
  Deploy();
  auto dead = http::Client::Create("http://127.0.0.1:1");
  ASSERT_TRUE(dead.ok());
  std::vector<std::int64_t> stop;
  EXPECT_FALSE(sync_->MaybePoll(dead->get(), true, &stop).ok());
  EXPECT_TRUE(stop.empty());
  EXPECT_TRUE(Live().empty());
  Poll();
  EXPECT_EQ(Live().size(), 1u);
}

TEST(ParsePolicyTest, SkipsMalformedItemsAndReadsThePollInterval) {
  core::Duration interval = std::chrono::seconds(60);
  auto items = ParsePolicy(R"({"poll_interval_s": 30, "deployments": [
      {"id": 1, "package": "tools", "version": 2, "program": "install", "kind": "available"},
      {"id": 2, "package": "../etc", "version": 1},
      {"id": 3, "package": "tools", "version": 0},
      {"package": "tools", "version": 1},
      {"id": 5, "version": 1},
      {"id": 6, "package": "other", "version": 1}]})",
                           &interval);
  ASSERT_TRUE(items.ok()) << items.status().ToString();
  ASSERT_EQ(items->size(), 2u);
  EXPECT_EQ((*items)[0].id, 1);
  EXPECT_EQ((*items)[0].kind, "available");
  EXPECT_EQ((*items)[0].version, 2);
  EXPECT_EQ((*items)[1].id, 6);
  EXPECT_EQ((*items)[1].kind, "required");
  EXPECT_EQ(interval, std::chrono::seconds(30));
  // Not a policy at all.
  EXPECT_TRUE(ParsePolicy("[]", &interval).status().IsCorruption());
  EXPECT_TRUE(ParsePolicy("{\"deployments\": 1}", &interval).status().IsCorruption());
  EXPECT_TRUE(ParsePolicy("not json", &interval).status().IsCorruption());
  // An interval below a second is a second.
  ASSERT_TRUE(ParsePolicy(R"({"poll_interval_s": 0, "deployments": []})", &interval).ok());
  EXPECT_EQ(interval, std::chrono::seconds(1));
}

}  // namespace
}  // namespace depot::agent
