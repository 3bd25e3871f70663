// The agent's state database on a real SQLite file: only legal transitions apply,
// a transition and its messages are committed together, and the queries the driver
// and the content store decide by.
#include "agent/state_store.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "core/messages.h"
#include "core/testing.h"

namespace depot::agent {
namespace {

using Json = nlohmann::json;

class StateStoreTest : public ::testing::Test {
 protected:
  void SetUp() override { Reopen(); }

  void Reopen() {
    state_.reset();
    auto s = StateStore::Open(&clock_, path_);
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    state_ = std::move(*s);
  }

  static PolicyItem Item(std::int64_t id, const std::string& package, std::int64_t version,
                         const std::string& kind = "required") {
    PolicyItem p;
    p.id = id;
    p.package = package;
    p.package_id = "pid-" + package;
    p.version = version;
    p.manifest_id = "m-" + package + "-" + std::to_string(version);
    p.program = "install";
    p.kind = kind;
    p.policy_json = Json{{"id", id}, {"start_ms", 5}, {"deadline_ms", 99}}.dump();
    return p;
  }

  Deployment Get(std::int64_t id) {
    auto d = state_->Get(id);
    EXPECT_TRUE(d.ok() && d->has_value()) << id;
    return d.ok() && d->has_value() ? **d : Deployment{};
  }

  std::optional<State> Move(std::int64_t id, Event e, const Changes& c = {},
                            const std::vector<catalog::OutboxMessage>& messages = {}) {
    auto to = state_->Transition(id, e, c, messages);
    EXPECT_TRUE(to.ok()) << to.status().ToString();
    return to.ok() ? *to : std::nullopt;
  }

  std::int64_t Depth() {
    auto n = state_->OutboxDepth();
    EXPECT_TRUE(n.ok());
    return n.ok() ? *n : -1;
  }

  // A deployment moved to `downloaded` (its version held).
  void Downloaded(std::int64_t id) {
    ASSERT_EQ(Move(id, Event::kStart), State::kDownloading);
    Changes c;
    c.downloaded = Changes::Downloaded{Get(id).manifest_id, 10};
    ASSERT_EQ(Move(id, Event::kDownloaded, c), State::kDownloaded);
  }
  void Succeed(std::int64_t id) {
    Downloaded(id);
    ASSERT_EQ(Move(id, Event::kInstallAllowed), State::kInstalling);
    Changes c;
    c.installed = true;
    ASSERT_EQ(Move(id, Event::kProgramSucceeded, c), State::kSucceeded);
  }

  depot::testing::TempDir dir_;
  std::string path_ = dir_.Sub("state.db");
  core::ManualClock clock_{core::FromUnixMillis(1'700'000'000'000)};
  std::unique_ptr<StateStore> state_;
};

TEST_F(StateStoreTest, OpensARealFileAndKeepsWhatWasStoredAcrossReopening) {
  ASSERT_TRUE(state_->Insert(Item(1, "tools", 3)).ok());
  ASSERT_TRUE(state_->SetMeta("attributes", "{\"os\":\"linux\"}").ok());
  Reopen();  // migrating an already migrated file changes nothing
  Deployment d = Get(1);
  EXPECT_EQ(d.package, "tools");
  EXPECT_EQ(d.version, 3);
  EXPECT_EQ(d.state, State::kWaiting);
  EXPECT_EQ(d.start_ms, 5);  // read from the policy item
  EXPECT_EQ(d.deadline_ms, 99);
  EXPECT_EQ(*state_->Meta("attributes"), std::optional<std::string>("{\"os\":\"linux\"}"));
  EXPECT_EQ(*state_->Meta("nothing"), std::nullopt);
  EXPECT_FALSE(state_->Get(2)->has_value());
}

TEST_F(StateStoreTest, AnIllegalTransitionReturnsNulloptAndChangesNothing) {
  ASSERT_TRUE(state_->Insert(Item(1, "tools", 1)).ok());
  auto reports = *state_->PendingReports(10);
  ASSERT_EQ(reports.size(), 1u);
  const std::int64_t seq = reports[0].seq;
  Changes c;
  c.attempts = 5;
  c.set_error = true;
  c.error = "should not be written";
  c.installed = true;
  // Waiting has no Downloaded nor ProgramSucceeded event.
  for (Event e : {Event::kDownloaded, Event::kProgramSucceeded, Event::kRetryDue}) {
    auto to = state_->Transition(1, e, c,
                                 {DeploymentMessage(&clock_, core::msg::kAgentDownloaded, Get(1))});
    ASSERT_TRUE(to.ok()) << to.status().ToString();
    EXPECT_EQ(*to, std::nullopt) << EventName(e);
  }
  Deployment d = Get(1);
  EXPECT_EQ(d.state, State::kWaiting);
  EXPECT_EQ(d.attempts, 0);
  EXPECT_EQ(d.last_error, "");
  EXPECT_EQ(Depth(), 0) << "no message of a transition that did not happen";
  EXPECT_FALSE(*state_->Succeeded(1, 1));
  EXPECT_EQ(*state_->InstalledVersion("tools"), std::nullopt);
  EXPECT_EQ(state_->PendingReports(10)->at(0).seq, seq) << "nothing new to report";
}

TEST_F(StateStoreTest, ALegalTransitionStoresStateChangesAndMessagesTogether) {
  ASSERT_TRUE(state_->Insert(Item(1, "tools", 1)).ok());
  Changes c;
  c.attempts = 2;
  c.next_try_ms = 1234;
  c.set_error = true;
  c.error = "boom";
  auto m1 = DeploymentMessage(&clock_, core::msg::kAgentDownloadStarted, Get(1), {{"bytes", "7"}});
  auto m2 = DeploymentMessage(&clock_, core::msg::kAgentSourceFailed, Get(1), {{"source", "x"}});
  EXPECT_EQ(Move(1, Event::kStart, c, {m1, m2}), State::kDownloading);
  Deployment d = Get(1);
  EXPECT_EQ(d.state, State::kDownloading);
  EXPECT_EQ(d.attempts, 2);
  EXPECT_EQ(d.next_try_ms, 1234);
  EXPECT_EQ(d.last_error, "boom");
  auto batch = state_->PendingMessages(10);
  ASSERT_TRUE(batch.ok());
  ASSERT_EQ(batch->count, 2u);
  Json messages = Json::parse(batch->json);
  EXPECT_EQ(messages[0]["code"], core::msg::kAgentDownloadStarted);
  EXPECT_EQ(messages[0]["deployment"], 1);
  EXPECT_EQ(messages[0]["params"]["bytes"], "7");
  EXPECT_EQ(messages[1]["code"], core::msg::kAgentSourceFailed);
  auto reports = *state_->PendingReports(10);
  ASSERT_EQ(reports.size(), 1u);
  EXPECT_EQ(reports[0].state, State::kDownloading);
  EXPECT_EQ(reports[0].detail, "boom");
}

TEST_F(StateStoreTest, WhenItsMessagesCannotBeStoredTheTransitionDoesNotHappen) {
  ASSERT_TRUE(state_->Insert(Item(1, "tools", 1)).ok());
  // Another connection makes every append to the outbox fail.
  auto other = catalog::Db::OpenSqlite(path_);
  ASSERT_TRUE(other.ok());
  ASSERT_TRUE((*other)
                  ->Transaction([](catalog::Tx& tx) {
                    return tx.ExecScript(
                        "CREATE TRIGGER no_outbox BEFORE INSERT ON outbox BEGIN SELECT "
                        "RAISE(ABORT, 'injected'); END;");
                  })
                  .ok());
  Changes c;
  c.attempts = 1;
  auto to = state_->Transition(
      1, Event::kStart, c, {DeploymentMessage(&clock_, core::msg::kAgentDownloadStarted, Get(1))});
  EXPECT_FALSE(to.ok());
  EXPECT_EQ(Get(1).state, State::kWaiting);
  EXPECT_EQ(Get(1).attempts, 0);
  // Without messages the same transition goes through.
  EXPECT_EQ(Move(1, Event::kStart, c), State::kDownloading);
}

TEST_F(StateStoreTest, TransitionOfAnUnknownDeploymentIsAnError) {
  EXPECT_FALSE(state_->Transition(42, Event::kStart, {}, {}).ok());
}

TEST_F(StateStoreTest, SuccessIsRecordedAndTheInstalledVersionNeverGoesBack) {
  ASSERT_TRUE(state_->Insert(Item(1, "tools", 2)).ok());
  ASSERT_TRUE(state_->Insert(Item(2, "tools", 1)).ok());
  EXPECT_FALSE(*state_->Succeeded(1, 2));
  Succeed(1);
  EXPECT_TRUE(*state_->Succeeded(1, 2));
  EXPECT_FALSE(*state_->Succeeded(1, 1)) << "another version";
  EXPECT_FALSE(*state_->Succeeded(2, 2)) << "another deployment";
  EXPECT_EQ(*state_->InstalledVersion("tools"), 2);
  // An older version succeeding later does not replace the newer one.
  Succeed(2);
  EXPECT_TRUE(*state_->Succeeded(2, 1));
  EXPECT_EQ(*state_->InstalledVersion("tools"), 2);
  auto installed = *state_->Installed();
  ASSERT_EQ(installed.size(), 1u);
  EXPECT_EQ(installed[0], (std::pair<std::string, std::int64_t>("tools", 2)));
  // Downloads made both versions held.
  auto held = *state_->HeldOf("tools");
  EXPECT_EQ(held.size(), 2u);
}

TEST_F(StateStoreTest, ANewVersionStartsTheRowOver) {
  ASSERT_TRUE(state_->Insert(Item(1, "tools", 1)).ok());
  ASSERT_EQ(Move(1, Event::kStart), State::kDownloading);
  Changes fail;
  fail.attempts = 2;
  fail.next_try_ms = 777;
  fail.set_error = true;
  fail.error = "down";
  ASSERT_EQ(Move(1, Event::kDownloadFailed, fail), State::kFailedRetry);
  ASSERT_TRUE(state_->SetRun(1, "/runs/1", 5).ok());
  Changes c;
  c.new_version = Item(1, "tools", 2);
  EXPECT_EQ(Move(1, Event::kNewVersion, c), State::kWaiting);
  Deployment d = Get(1);
  EXPECT_EQ(d.version, 2);
  EXPECT_EQ(d.manifest_id, "m-tools-2");
  EXPECT_EQ(d.attempts, 0);
  EXPECT_EQ(d.next_try_ms, 0);
  EXPECT_EQ(d.last_error, "");
  EXPECT_EQ(d.run_dir, "");
}

TEST_F(StateStoreTest, ClampRetriesBringsOnlyLaterRetryTimesToTheLatest) {
  for (std::int64_t id : {1, 2, 3})
    ASSERT_TRUE(state_->Insert(Item(id, "p" + std::to_string(id), 1)).ok());
  ASSERT_TRUE(state_->SetNextTry(1, 5'000).ok());
  ASSERT_TRUE(state_->SetNextTry(2, 50'000).ok());
  ASSERT_TRUE(state_->ClampRetries(10'000).ok());
  EXPECT_EQ(Get(1).next_try_ms, 5'000);
  EXPECT_EQ(Get(2).next_try_ms, 10'000);
  EXPECT_EQ(Get(3).next_try_ms, 0);
}

TEST_F(StateStoreTest, RequestMarksOnlyLiveAvailableDeploymentsOfThePackage) {
  ASSERT_TRUE(state_->Insert(Item(1, "tools", 1, "available")).ok());
  ASSERT_TRUE(state_->Insert(Item(2, "tools", 1, "required")).ok());
  ASSERT_TRUE(state_->Insert(Item(3, "tools", 1, "available")).ok());
  ASSERT_TRUE(state_->Insert(Item(4, "other", 1, "available")).ok());
  ASSERT_TRUE(
      state_->MarkRemoved(3, {core::msg::kAgentDeploymentRemoved, 0, "tools", 1, 3, {}}).ok());
  EXPECT_EQ(*state_->Request("tools"), 1);
  EXPECT_TRUE(Get(1).requested);
  EXPECT_FALSE(Get(2).requested);
  EXPECT_FALSE(Get(3).requested);
  EXPECT_FALSE(Get(4).requested);
  EXPECT_EQ(*state_->Request("nothing"), 0);
}

TEST_F(StateStoreTest, ContentIsInUseWhenInstalledOrAnotherLiveDeploymentHasIt) {
  ASSERT_TRUE(state_->Insert(Item(1, "tools", 1)).ok());
  ASSERT_TRUE(state_->Insert(Item(2, "tools", 1)).ok());
  ASSERT_TRUE(state_->Insert(Item(3, "tools", 2)).ok());
  EXPECT_FALSE(*state_->ContentInUse(Get(1)));
  // Its own download does not count; another deployment's does.
  Downloaded(1);
  EXPECT_FALSE(*state_->ContentInUse(Get(1)));
  EXPECT_TRUE(*state_->ContentInUse(Get(2)));
  EXPECT_FALSE(*state_->ContentInUse(Get(3))) << "another version";
  // ...unless that deployment left the policy.
  ASSERT_TRUE(
      state_->MarkRemoved(1, {core::msg::kAgentDeploymentRemoved, 0, "tools", 1, 1, {}}).ok());
  EXPECT_FALSE(*state_->ContentInUse(Get(2)));
  // An installed version is in use whoever asks.
  Changes c;
  c.installed = true;
  ASSERT_EQ(Move(2, Event::kStart), State::kDownloading);
  ASSERT_EQ(Move(2, Event::kDownloaded), State::kDownloaded);
  ASSERT_EQ(Move(2, Event::kInstallAllowed), State::kInstalling);
  ASSERT_EQ(Move(2, Event::kProgramSucceeded, c), State::kSucceeded);
  EXPECT_TRUE(*state_->ContentInUse(Get(2)));
  EXPECT_TRUE(*state_->ContentInUse(Get(1)));
}

TEST_F(StateStoreTest, LiveLeavesOutRemovedDeploymentsAndAllKeepsThemUntilDeleted) {
  for (std::int64_t id : {3, 1, 2}) ASSERT_TRUE(state_->Insert(Item(id, "tools", 1)).ok());
  ASSERT_TRUE(
      state_->MarkRemoved(2, {core::msg::kAgentDeploymentRemoved, 0, "tools", 1, 2, {}}).ok());
  auto ids = [](const std::vector<Deployment>& v) {
    std::vector<std::int64_t> out;
    for (const auto& d : v) out.push_back(d.id);
    return out;
  };
  EXPECT_EQ(ids(*state_->Live()), (std::vector<std::int64_t>{1, 3}));
  EXPECT_EQ(ids(*state_->All()), (std::vector<std::int64_t>{1, 2, 3}));
  EXPECT_TRUE(Get(2).removed);
  EXPECT_EQ(Depth(), 1) << "the removal's message";
  // Removed "now": before a cutoff at or after now, not before an earlier one.
  const std::int64_t now = core::UnixMillis(clock_.Now());
  EXPECT_EQ(ids(*state_->RemovedBefore(now - 1)), (std::vector<std::int64_t>{}));
  EXPECT_EQ(ids(*state_->RemovedBefore(now)), (std::vector<std::int64_t>{2}));
  // Back in the policy (Refresh), it is live again.
  ASSERT_TRUE(state_->Refresh(Item(2, "tools", 1)).ok());
  EXPECT_EQ(ids(*state_->Live()), (std::vector<std::int64_t>{1, 2, 3}));
  ASSERT_TRUE(state_->Delete(3).ok());
  EXPECT_EQ(ids(*state_->All()), (std::vector<std::int64_t>{1, 2}));
  EXPECT_EQ(*state_->DeploymentsOf("tools"), 2);
}

TEST_F(StateStoreTest, TheOutboxKeepsMessagesUntilAcknowledged) {
  EXPECT_EQ(Depth(), 0);
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(state_->Post({core::msg::kAgentContentPurged, 1, "tools", i + 1, 0, {}}).ok());
  }
  EXPECT_EQ(Depth(), 3);
  auto batch = *state_->PendingMessages(2);
  EXPECT_EQ(batch.count, 2u);
  ASSERT_TRUE(state_->AckMessages(batch.last_seq).ok());
  EXPECT_EQ(Depth(), 1);
  Reopen();
  EXPECT_EQ(Depth(), 1);
  batch = *state_->PendingMessages(10);
  ASSERT_EQ(batch.count, 1u);
  EXPECT_EQ(Json::parse(batch.json)[0]["version"], 3);
}

TEST_F(StateStoreTest, AReportIsPendingUntilMarkedAndAnOlderMarkDoesNotHideANewerState) {
  ASSERT_TRUE(state_->Insert(Item(1, "tools", 1)).ok());
  auto first = *state_->PendingReports(10);
  ASSERT_EQ(first.size(), 1u);
  ASSERT_EQ(Move(1, Event::kStart), State::kDownloading);  // changes while the report is in flight
  ASSERT_TRUE(state_->MarkReported(first).ok());
  auto pending = *state_->PendingReports(10);
  ASSERT_EQ(pending.size(), 1u);
  EXPECT_EQ(pending[0].state, State::kDownloading);
  EXPECT_GT(pending[0].seq, first[0].seq);
  ASSERT_TRUE(state_->MarkReported(pending).ok());
  EXPECT_TRUE(state_->PendingReports(10)->empty());
}

TEST_F(StateStoreTest, PinnedAndVersionsInUseAreInstalledContentAndWorkUnderWay) {
  ASSERT_TRUE(state_->Insert(Item(1, "tools", 1)).ok());
  ASSERT_TRUE(state_->Insert(Item(2, "tools", 2)).ok());
  ASSERT_TRUE(state_->Insert(Item(3, "tools", 3)).ok());
  Succeed(1);
  ASSERT_EQ(Move(2, Event::kStart), State::kDownloading);
  ASSERT_EQ(Move(3, Event::kStart), State::kDownloading);
  ASSERT_EQ(Move(3, Event::kDownloadRefused), State::kFailedFinal);
  EXPECT_EQ(*state_->Pinned(), (std::set<std::string>{"m-tools-1", "m-tools-2"}));
  EXPECT_EQ(*state_->VersionsInUse("tools"), (std::set<std::int64_t>{1, 2}));
  ASSERT_TRUE(state_->Uninstall("tools").ok());
  EXPECT_EQ(*state_->VersionsInUse("tools"), (std::set<std::int64_t>{2}));
  EXPECT_EQ(*state_->Pinned(), (std::set<std::string>{"m-tools-2"}));
}

}  // namespace
}  // namespace depot::agent
