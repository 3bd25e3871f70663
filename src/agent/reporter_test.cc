// The reporter against the fixture's real site: messages and deployment states are
// delivered and then forgotten; a delivery that fails keeps all of them.
#include "agent/reporter.h"

#include <gtest/gtest.h>

#include "agent/agent_fixture.h"
#include "core/messages.h"
#include "http/client.h"

namespace depot::agent {
namespace {

using testing::AgentFixture;
using testing::Json;

class ReporterTest : public AgentFixture {
 protected:
  void SetUp() override {
    AgentFixture::SetUp();
    if (HasFatalFailure()) return;
    ASSERT_NE(OpenAgent(), nullptr);  // enrolled; closed again at once
    AgentConfig config;
    ASSERT_TRUE(LoadAgentConfig(core::Env::Default(), agent_dir_, &config, &identity_).ok());
    site_http_ = Connect(site_->url(), identity_.token);
    auto state = StateStore::Open(&clock_, dir_.Sub("reporter-state.db"));
    ASSERT_TRUE(state.ok()) << state.status().ToString();
    state_ = std::move(*state);
    std::string src = dir_.Sub("src");
    depot::testing::WriteFileOrDie(src + "/a.txt", "one\n", 0644);
    Publish("tools", src, true);
    Json d = Api("POST", "/api/v1/deployments",
                 {{"package", "tools"},
                  {"program", "install"},
                  {"collection", "all"},
                  {"kind", "required"}});
    deployment_ = d["id"].get<std::int64_t>();
  }

  static std::unique_ptr<http::Client> Connect(const std::string& url, const std::string& token) {
    http::ClientOptions o;
    o.bearer_token = token;
    o.connect_timeout_s = 5;
    auto c = http::Client::Create(url, o);
    EXPECT_TRUE(c.ok());
    return c.ok() ? std::move(*c) : nullptr;
  }

  // The agent's row for the site's deployment, moved to downloading, with messages.
  void Work(int messages) {
    PolicyItem p;
    p.id = deployment_;
    p.package = "tools";
    p.version = 1;
    p.program = "install";
    p.kind = "required";
    p.policy_json = "{}";
    ASSERT_TRUE(state_->Insert(p).ok());
    ASSERT_TRUE(state_->Transition(deployment_, Event::kStart, {}, {}).ok());
    for (int i = 0; i < messages; ++i) {
      ASSERT_TRUE(state_
                      ->Post({core::msg::kAgentSourceFailed,
                              core::UnixMillis(clock_.Now()),
                              "tools",
                              1,
                              deployment_,
                              {{"source", "http://dp" + std::to_string(i)}, {"error", "down"}}})
                      .ok());
    }
  }
  Json SiteReports() { return Api("GET", "/api/v1/clients/" + client_)["deployments"]; }

  Identity identity_;
  std::unique_ptr<http::Client> site_http_;
  std::unique_ptr<StateStore> state_;
  std::int64_t deployment_ = 0;
};

TEST_F(ReporterTest, MessagesAndStatesAreDeliveredThenForgotten) {
  Work(3);
  ASSERT_EQ(*state_->OutboxDepth(), 3);
  ASSERT_EQ(state_->PendingReports(10)->size(), 1u);
  core::Status s = SendReports(state_.get(), site_http_.get());
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(*state_->OutboxDepth(), 0);
  EXPECT_TRUE(state_->PendingReports(10)->empty());
  Json messages = Messages(core::msg::kAgentSourceFailed);
  EXPECT_EQ(messages.size(), 3u) << messages.dump();
  Json reports = SiteReports();
  ASSERT_EQ(reports.size(), 1u) << reports.dump();
  EXPECT_EQ(reports[0]["deployment"], deployment_);
  EXPECT_EQ(reports[0]["state"], "downloading");
  // Nothing pending: nothing sent, nothing wrong.
  EXPECT_TRUE(SendReports(state_.get(), site_http_.get()).ok());
}

TEST_F(ReporterTest, AFailedRetryIsReportedWithItsRetryTime) {
  Work(0);
  Changes c;
  c.set_error = true;
  c.error = "download failed: down";
  c.next_try_ms = core::UnixMillis(clock_.Now()) + 3600'000;
  ASSERT_TRUE(state_->Transition(deployment_, Event::kDownloadFailed, c, {}).ok());
  ASSERT_TRUE(SendReports(state_.get(), site_http_.get()).ok());
  Json reports = SiteReports();
  ASSERT_EQ(reports.size(), 1u);
  EXPECT_EQ(reports[0]["state"], "failed");
  std::string detail = reports[0]["detail"];
  EXPECT_NE(detail.find("download failed: down; retry at " +
                        core::FormatUtc(core::FromUnixMillis(*c.next_try_ms))),
            std::string::npos)
      << detail;
}

TEST_F(ReporterTest, ADeliveryThatFailsKeepsEverything) {
  Work(2);
  // The site cannot be reached.
  auto nowhere = Connect("http://127.0.0.1:1", identity_.token);
  EXPECT_FALSE(SendReports(state_.get(), nowhere.get()).ok());
  EXPECT_EQ(*state_->OutboxDepth(), 2);
  EXPECT_EQ(state_->PendingReports(10)->size(), 1u);
  // The site refuses the request.
  auto refused = Connect(site_->url(), "not-a-token");
  EXPECT_FALSE(SendReports(state_.get(), refused.get()).ok());
  EXPECT_EQ(*state_->OutboxDepth(), 2);
  EXPECT_EQ(state_->PendingReports(10)->size(), 1u);
  EXPECT_EQ(Messages(core::msg::kAgentSourceFailed).size(), 0u);
  // Delivered once the site answers.
  ASSERT_TRUE(SendReports(state_.get(), site_http_.get()).ok());
  EXPECT_EQ(*state_->OutboxDepth(), 0);
  EXPECT_EQ(Messages(core::msg::kAgentSourceFailed).size(), 2u);
}

TEST_F(ReporterTest, AnOutboxLargerThanABatchIsDeliveredWhole) {
  Work(1201);
  ASSERT_TRUE(SendReports(state_.get(), site_http_.get()).ok());
  EXPECT_EQ(*state_->OutboxDepth(), 0);
  Json all = Api("GET", "/api/v1/messages?limit=5000&client=" + client_ +
                            "&code=" + std::to_string(core::msg::kAgentSourceFailed))["messages"];
  EXPECT_EQ(all.size(), 1201u);
}

}  // namespace
}  // namespace depot::agent
