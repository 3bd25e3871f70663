#include "dp/versions.h"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>

namespace depot::dp {
namespace {

using Json = nlohmann::json;

const std::string kManifest(64, 'a');
const std::string kChunk(64, 'b');

Json Entry(const std::string& target, std::int64_t version) {
  return {{"target", target},   {"package", "tools"},       {"package_id", "p1"},
          {"version", version}, {"manifest_id", kManifest}, {"manifest_bytes", 100},
          {"bytes", 1000}};
}

std::map<std::string, Assigned> Assignment(std::initializer_list<Json> entries) {
  return ParseAssignment(Json{{"versions", Json(entries)}});
}

class VersionBookTest : public ::testing::Test {
 protected:
  core::ManualClock clock_{core::TimePoint(std::chrono::seconds(1'800'000'000))};
  VersionBook book_{&clock_, {std::chrono::seconds(10), std::chrono::minutes(30)}};
};

TEST(ParseAssignmentTest, SkipsMalformedEntriesAndBoundsVerifyChunks) {
  Json bad_target = Entry("../etc/passwd", 1);
  Json bad_manifest = Entry("tools/2.json", 2);
  bad_manifest["manifest_id"] = "xyz";
  Json missing = Entry("tools/3.json", 3);
  missing.erase("package_id");
  Json verify = Entry("tools/4.json", 4);
  Json chunks = Json::array();
  for (int i = 0; i < 100; ++i) chunks.push_back(kChunk);
  chunks.push_back("not hex");
  chunks.push_back(17);
  verify["verify"] = {{"seq", 5}, {"chunks", chunks}};
  auto out =
      ParseAssignment(Json{{"versions", {bad_target, bad_manifest, missing, verify, "junk"}}});
  ASSERT_EQ(out.size(), 1u);
  const Assigned& a = out.at("tools/4.json");
  EXPECT_EQ(a.version, 4);
  EXPECT_EQ(a.verify_seq, 5);
  EXPECT_EQ(a.verify_chunks.size(), 64u);
  EXPECT_TRUE(ParseAssignment(Json::array()).empty());
  EXPECT_TRUE(ParseAssignment(Json{{"versions", 3}}).empty());
}

TEST(VersionStateTest, TheTableAllowsOnlyItsMoves) {
  using S = VersionState;
  using E = VersionEvent;
  EXPECT_EQ(NextVersionState(S::kPending, E::kStart), S::kSyncing);
  EXPECT_EQ(NextVersionState(S::kSyncing, E::kSynced), S::kReady);
  EXPECT_EQ(NextVersionState(S::kSyncing, E::kFailed), S::kFailed);
  EXPECT_EQ(NextVersionState(S::kFailed, E::kStart), S::kSyncing);
  EXPECT_EQ(NextVersionState(S::kReady, E::kDamaged), S::kPending);
  EXPECT_EQ(NextVersionState(S::kPending, E::kFoundPublished), S::kReady);
  // Nothing becomes ready without a sync or a complete published copy.
  EXPECT_EQ(NextVersionState(S::kPending, E::kSynced), std::nullopt);
  EXPECT_EQ(NextVersionState(S::kFailed, E::kSynced), std::nullopt);
  EXPECT_EQ(NextVersionState(S::kFailed, E::kFoundPublished), std::nullopt);
  EXPECT_EQ(NextVersionState(S::kReady, E::kSynced), std::nullopt);
  EXPECT_EQ(NextVersionState(S::kSyncing, E::kDamaged), std::nullopt);
}

TEST_F(VersionBookTest, ApplyReportsWhatChangedAndDropsLocalStateOfRemovedVersions) {
  auto d = book_.Apply(Assignment({Entry("tools/1.json", 1), Entry("tools/2.json", 2)}));
  EXPECT_EQ(d.added, (std::vector<std::string>{"tools/1.json", "tools/2.json"}));
  EXPECT_TRUE(d.removed.empty());
  ASSERT_TRUE(book_.Move("tools/1.json", VersionEvent::kStart));
  ASSERT_TRUE(book_.Move("tools/1.json", VersionEvent::kSynced));
  d = book_.Apply(Assignment({Entry("tools/2.json", 2)}));
  EXPECT_EQ(d.removed, (std::vector<std::string>{"tools/1.json"}));
  EXPECT_FALSE(book_.StillAssigned("tools/1.json"));
  EXPECT_FALSE(book_.Move("tools/1.json", VersionEvent::kDamaged)) << "not assigned any more";
  // Assigned again: it starts over as pending.
  book_.Apply(Assignment({Entry("tools/1.json", 1), Entry("tools/2.json", 2)}));
  EXPECT_EQ(book_.CountByState()["pending"], 2);
}

TEST_F(VersionBookTest, AFailedVersionWaitsForItsBackoffOnTheMonotonicClock) {
  book_.Apply(Assignment({Entry("tools/1.json", 1)}));
  auto pick = book_.NextWork();
  ASSERT_TRUE(pick);
  ASSERT_TRUE(book_.Move(pick->a.target, VersionEvent::kStart));
  EXPECT_EQ(book_.Failed("tools/1.json", "upstream down"), "") << "its first failure";
  EXPECT_EQ(book_.CountByState()["failed"], 1);
  // Full jitter: the first retry comes within base (10 s), not at once.
  EXPECT_FALSE(book_.NextWork());
  clock_.Advance(std::chrono::seconds(10));
  EXPECT_TRUE(book_.NextWork()) << "due within the first cap (10 s)";
  // A wall clock set back a day changes nothing: the delay runs on the monotonic clock.
  ASSERT_TRUE(book_.Move("tools/1.json", VersionEvent::kStart));
  EXPECT_EQ(book_.Failed("tools/1.json", "again"), "upstream down") << "the error it replaces";
  clock_.Set(clock_.Now() - std::chrono::hours(24));
  clock_.Advance(std::chrono::seconds(21));
  EXPECT_TRUE(book_.NextWork()) << "due within the second cap (20 s)";
}

TEST_F(VersionBookTest, AVerifyRequestDoesNotWaitForABackoff) {
  book_.Apply(Assignment({Entry("tools/1.json", 1)}));
  ASSERT_TRUE(book_.Move("tools/1.json", VersionEvent::kStart));
  for (int i = 0; i < 8; ++i) book_.Failed("tools/1.json", "upstream down");  // up to 21 min away
  clock_.Advance(std::chrono::seconds(1));
  Json e = Entry("tools/1.json", 1);
  e["verify"] = {{"seq", 1}};
  book_.Apply(Assignment({e}));
  auto pick = book_.NextWork();
  ASSERT_TRUE(pick);
  EXPECT_TRUE(pick->check);
  // Picked and failed again: the request no longer jumps the backoff.
  ASSERT_TRUE(book_.Move("tools/1.json", VersionEvent::kStart));
  book_.Failed("tools/1.json", "still down");
  EXPECT_FALSE(book_.NextWork());
}

TEST_F(VersionBookTest, TheSitesRetryTimeIsAuthoritativeWhenLater) {
  Json e = Entry("tools/1.json", 1);
  e["retry_at_ms"] = core::UnixMillis(clock_.Now() + std::chrono::minutes(5));
  book_.Apply(Assignment({e}));
  EXPECT_FALSE(book_.NextWork());
  clock_.Advance(std::chrono::minutes(4));
  EXPECT_FALSE(book_.NextWork());
  clock_.Advance(std::chrono::minutes(2));
  EXPECT_TRUE(book_.NextWork());
}

TEST_F(VersionBookTest, AVerifyRequestIsWorkedOnAtOnceAndAnsweredOnlyByItsReady) {
  book_.Apply(Assignment({Entry("tools/1.json", 1)}));
  ASSERT_TRUE(book_.Move("tools/1.json", VersionEvent::kStart));
  ASSERT_TRUE(book_.Move("tools/1.json", VersionEvent::kSynced));
  EXPECT_FALSE(book_.NextWork()) << "ready and nothing asked";
  Json e = Entry("tools/1.json", 1);
  e["verify"] = {{"seq", 7}, {"chunks", {kChunk}}};
  auto d = book_.Apply(Assignment({e}));
  ASSERT_EQ(d.to_verify.size(), 1u);
  EXPECT_EQ(d.to_verify[0].verify_chunks.size(), 1u);
  auto pick = book_.NextWork();
  ASSERT_TRUE(pick);
  EXPECT_TRUE(pick->check);
  // The same request again (the next poll) is not a new one.
  EXPECT_TRUE(book_.Apply(Assignment({e})).to_verify.empty());
  ASSERT_TRUE(book_.Move("tools/1.json", VersionEvent::kStart));
  ASSERT_TRUE(
      book_.Move("tools/1.json", VersionEvent::kSynced, [](Local& l) { l.verified_seq = 7; }));
  EXPECT_FALSE(book_.NextWork());
  auto rows = book_.DueReports();
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0].json["verified"], 7);
  EXPECT_EQ(rows[0].json["state"], "ready");
}

TEST_F(VersionBookTest, ReportsAreDueAfterAChangeAndPendingIsNeverReported) {
  book_.Apply(Assignment({Entry("tools/1.json", 1), Entry("tools/2.json", 2)}));
  EXPECT_TRUE(book_.DueReports().empty()) << "pending versions are not reported";
  ASSERT_TRUE(
      book_.Move("tools/1.json", VersionEvent::kStart, [](Local& l) { l.bytes_total = 1000; }));
  book_.SetSyncing("tools/1.json");
  book_.sync_bytes() = 400;
  auto rows = book_.DueReports();
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0].json["bytes_done"], 400) << "live progress of the version syncing";
  book_.Reported(rows);
  EXPECT_EQ(book_.DueReports().size(), 1u) << "the syncing version is always reported";
  book_.sync_bytes() = 1000;
  book_.SetSyncing("");
  ASSERT_TRUE(book_.Move("tools/1.json", VersionEvent::kSynced));
  rows = book_.DueReports();
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0].json["bytes_done"], 1000);
  book_.Reported(rows);
  EXPECT_TRUE(book_.DueReports().empty());
}

// The syncer finishes while a report of the syncing state is in flight: the site's
// answer to that report must not swallow the ready state (a DP stayed "syncing" at
// its site forever, all bytes done, when it did).
TEST_F(VersionBookTest, AChangeWhileAReportIsInFlightIsReportedNext) {
  book_.Apply(Assignment({Entry("tools/1.json", 1)}));
  ASSERT_TRUE(
      book_.Move("tools/1.json", VersionEvent::kStart, [](Local& l) { l.bytes_total = 1000; }));
  book_.SetSyncing("tools/1.json");
  book_.sync_bytes() = 1000;
  auto in_flight = book_.DueReports();
  ASSERT_EQ(in_flight.size(), 1u);
  EXPECT_EQ(in_flight[0].json["state"], "syncing");
  book_.SetSyncing("");
  ASSERT_TRUE(book_.Move("tools/1.json", VersionEvent::kSynced));
  book_.Reported(in_flight);
  auto next = book_.DueReports();
  ASSERT_EQ(next.size(), 1u);
  EXPECT_EQ(next[0].json["state"], "ready");
  book_.Reported(next);
  EXPECT_TRUE(book_.DueReports().empty());
}

TEST_F(VersionBookTest, DamageSendsReadyVersionsOfThePackageBackToPending) {
  Json other = Entry("lib/1.json", 1);
  other["package"] = "lib";
  book_.Apply(Assignment({Entry("tools/1.json", 1), other}));
  for (const char* t : {"tools/1.json", "lib/1.json"}) {
    ASSERT_TRUE(book_.Move(t, VersionEvent::kStart));
    ASSERT_TRUE(book_.Move(t, VersionEvent::kSynced));
  }
  book_.Damaged("lib");
  EXPECT_EQ(book_.CountByState()["ready"], 1);
  EXPECT_EQ(book_.Pending().size(), 1u);
  EXPECT_EQ(book_.Pending()[0].package, "lib");
  book_.Damaged();
  EXPECT_EQ(book_.CountByState()["pending"], 2);
}

TEST_F(VersionBookTest, FindsAVersionByItsPublishedManifestPath) {
  book_.Apply(Assignment({Entry("tools/3.json", 3)}));
  auto hit = book_.FindByManifestPath("targets/tools/" + kManifest + ".3.json");
  ASSERT_TRUE(hit);
  EXPECT_EQ(hit->version, 3);
  EXPECT_FALSE(book_.FindByManifestPath("targets/tools/" + kManifest + ".4.json"));
  EXPECT_FALSE(book_.FindByManifestPath("targets/tools/3.json"));
}

TEST_F(VersionBookTest, WaitsEndOnTheClockOnWorkAndOnStop) {
  // On the manual clock a wait ends when the clock passes its deadline (advanced
  // until the sleeper, whenever it started waiting, has seen it pass).
  std::atomic<bool> done{false};
  std::thread sleeper([&] {
    EXPECT_FALSE(book_.Sleep(std::chrono::hours(24)));
    done = true;
  });
  while (!done) {
    clock_.Advance(std::chrono::hours(1));
    std::this_thread::yield();
  }
  sleeper.join();
  // New work ends the syncer's wait without the clock moving.
  std::thread waiter([&] { EXPECT_FALSE(book_.WaitForWork(std::chrono::hours(24))); });
  book_.Apply(Assignment({Entry("tools/1.json", 1)}));
  waiter.join();
  // Stop ends every wait.
  std::thread stopped([&] { EXPECT_TRUE(book_.Sleep(std::chrono::hours(24))); });
  book_.Stop();
  stopped.join();
  EXPECT_TRUE(book_.WaitForWork(std::chrono::hours(1)));
}

}  // namespace
}  // namespace depot::dp
