// The downloader against a real repository in a temp dir, through sources that fail
// on purpose: the order of sources and their penalties on the manual clock, the
// message each kind of source failure becomes, local failures blamed on no source,
// cancelling, and one download at a time.
#include "agent/downloader.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <set>

#include "agent/parts_fixture.h"
#include "core/messages.h"
#include "core/sha256.h"
#include "repo/fetch.h"

namespace depot::agent {
namespace {

using testing::Fault;
using testing::Json;

class DownloaderTest : public testing::PartsFixture {
 protected:
  void SetUp() override {
    PartsFixture::SetUp();
    v1_ = AddVersion(
        "tools", {{"bin/tool", depot::testing::RandomData(300 << 10, 1)}, {"etc/conf", "a=1\n"}});
  }

  static Json Sources(const std::vector<std::string>& names) {
    Json out = Json::array();
    for (const auto& n : names) out.push_back({{"kind", "dp"}, {"name", n}, {"url", Url(n)}});
    return out;
  }
  // Deployment `id` of `v` from the named sources, in that order.
  Deployment Deploy(std::int64_t id, const repo::AddResult& v,
                    const std::vector<std::string>& sources) {
    Insert(Item(id, v, {{"sources", Sources(sources)}}));
    return Get(id);
  }
  std::vector<std::string> Order(const Deployment& d) {
    std::vector<std::string> out;
    for (const auto& s : downloader_->Order(d.sources)) out.push_back(s.name);
    return out;
  }
  // Downloads d to its content directory; the outcome.
  DownloadOutcome Download(const Deployment& d) {
    downloader_->Start(d, content_->Dir(d.package, d.version), {}, std::nullopt);
    WaitForDownload();
    auto o = downloader_->Take(d.id);
    EXPECT_TRUE(o.has_value());
    return o ? std::move(*o) : DownloadOutcome{};
  }
  static std::vector<int> Codes(const DownloadOutcome& o) {
    std::vector<int> out;
    for (const auto& m : o.events) out.push_back(m.code);
    return out;
  }
  // The ids (hex) of v's chunks.
  std::set<std::string> ChunksOf(const DownloadOutcome& o) {
    std::set<std::string> out;
    auto m = store::ParseManifest(o.result.manifest);
    EXPECT_TRUE(m.ok());
    if (m.ok()) {
      for (const auto& c : m->UniqueChunks()) out.insert(core::DigestHex(c.id));
    }
    return out;
  }
  void CopyRepo(const std::string& to) {
    ASSERT_EQ(std::system(("cp -a '" + RepoDir() + "' '" + to + "'").c_str()), 0);
  }

  repo::AddResult v1_;
};

TEST_F(DownloaderTest, AFailedSourceGoesLastUntilItsPenaltyExpires) {
  AddSource("down", RepoDir(), Fault::kUnavailable);
  Deployment d = Deploy(1, v1_, {"down", "good"});
  EXPECT_EQ(Order(d), (std::vector<std::string>{"down", "good"})) << "the policy's order";
  DownloadOutcome o = Download(d);
  ASSERT_TRUE(o.status.ok()) << o.status.ToString();
  EXPECT_EQ(o.source, Url("good"));
  ASSERT_EQ(Codes(o), (std::vector<int>{core::msg::kAgentSourceFailed}));
  EXPECT_EQ(o.events[0].params.at("source"), Url("down"));
  EXPECT_EQ(o.events[0].deployment, 1);
  EXPECT_NE(o.events[0].params.at("error").find("injected"), std::string::npos);
  EXPECT_EQ(Order(d), (std::vector<std::string>{"good", "down"}));

  // A new version within the penalty: the good source first, the failed one not even opened.
  repo::AddResult v2 = AddVersion("tools", {{"bin/tool", "two"}});
  Changes c;
  c.new_version = Item(1, v2, {{"sources", Sources({"down", "good"})}});
  ASSERT_TRUE(state_->Transition(1, Event::kNewVersion, c, {}).ok());
  clock_.Advance(std::chrono::minutes(9));
  EXPECT_EQ(Order(Get(1)), (std::vector<std::string>{"good", "down"}));
  const int opened = Opened("down");
  o = Download(Get(1));
  ASSERT_TRUE(o.status.ok()) << o.status.ToString();
  EXPECT_TRUE(o.events.empty());
  EXPECT_EQ(Opened("down"), opened);

  // Once the penalty is over, the policy's order again.
  clock_.Advance(std::chrono::minutes(2));
  EXPECT_EQ(Order(d), (std::vector<std::string>{"down", "good"}));
}

TEST_F(DownloaderTest, EverySourceFailingIsAFailureWithAMessagePerSource) {
  AddSource("down", RepoDir(), Fault::kUnavailable);
  SetFault("good", Fault::kUnavailable);
  DownloadOutcome o = Download(Deploy(1, v1_, {"good", "down"}));
  EXPECT_FALSE(o.status.ok());
  EXPECT_FALSE(o.refused);
  EXPECT_FALSE(o.cancelled);
  EXPECT_EQ(Codes(o),
            (std::vector<int>{core::msg::kAgentSourceFailed, core::msg::kAgentSourceFailed}));
  EXPECT_FALSE(env_->Exists(content_->Dir("tools", 1)).value());
}

TEST_F(DownloaderTest, ASourceWithoutTheVersionIsReportedStale) {
  CopyRepo(dir_.Sub("stale"));  // has version 1 only
  AddSource("stale", dir_.Sub("stale"));
  repo::AddResult v2 = AddVersion("tools", {{"bin/tool", "two"}});
  DownloadOutcome o = Download(Deploy(1, v2, {"stale", "good"}));
  ASSERT_TRUE(o.status.ok()) << o.status.ToString();
  EXPECT_EQ(o.source, Url("good"));
  ASSERT_EQ(Codes(o), (std::vector<int>{core::msg::kAgentSourceStale}));
  EXPECT_EQ(o.events[0].params.at("source"), Url("stale"));
  EXPECT_EQ(o.events[0].params.at("source_version"), "1");
  EXPECT_EQ(Order(Get(1)), (std::vector<std::string>{"good", "stale"}));
}

TEST_F(DownloaderTest, ASourceBehindWhatThisMachineTrustsIsReportedStale) {
  CopyRepo(dir_.Sub("stale"));
  AddSource("stale", dir_.Sub("stale"));
  repo::AddResult v2 = AddVersion("tools", {{"bin/tool", "two"}});
  ASSERT_TRUE(Download(Deploy(1, v2, {"good"})).status.ok());  // now trusts the newer metadata
  repo::AddResult v3 = AddVersion("tools", {{"bin/tool", "three"}});
  DownloadOutcome o = Download(Deploy(2, v3, {"stale", "good"}));
  ASSERT_TRUE(o.status.ok()) << o.status.ToString();
  ASSERT_EQ(Codes(o), (std::vector<int>{core::msg::kAgentSourceStale}));
  EXPECT_EQ(o.events[0].params.at("source_version"), "older signed metadata");
}

TEST_F(DownloaderTest, BadOrMissingChunksAreReportedNamingThem) {
  for (Fault fault : {Fault::kCorruptChunks, Fault::kMissingChunks}) {
    SCOPED_TRACE(static_cast<int>(fault));
    const std::int64_t id = fault == Fault::kCorruptChunks ? 1 : 2;
    const std::string bad = "bad" + std::to_string(id);  // the first is penalised now
    AddSource(bad, RepoDir(), fault);
    repo::AddResult v =
        AddVersion("p" + std::to_string(id), {{"data", depot::testing::RandomData(200 << 10, id)}});
    DownloadOutcome o = Download(Deploy(id, v, {bad, "good"}));
    ASSERT_TRUE(o.status.ok()) << o.status.ToString();
    ASSERT_EQ(Codes(o), (std::vector<int>{core::msg::kAgentVerificationFailed}));
    const auto& p = o.events[0].params;
    EXPECT_EQ(p.at("source"), Url(bad));
    EXPECT_EQ(p.at("object"), v.package + " version 1");
    ASSERT_TRUE(p.count("chunks"));
    std::set<std::string> chunks = ChunksOf(o);
    std::string named = p.at("chunks");
    std::size_t n = 0;
    for (std::size_t at = 0; at < named.size();) {
      std::size_t comma = named.find(',', at);
      if (comma == std::string::npos) comma = named.size();
      EXPECT_TRUE(chunks.count(named.substr(at, comma - at))) << named.substr(at, comma - at);
      ++n;
      at = comma + 1;
    }
    EXPECT_GE(n, 1u);
    EXPECT_EQ(Order(Get(id)), (std::vector<std::string>{"good", bad}));
  }
}

TEST_F(DownloaderTest, ALocalFailureBlamesNoSource) {
  depot::testing::FaultyEnv full(env_);
  full.write_budget = 0;  // the disk is full
  Downloader dl(&full, &clock_, &config_, data_dir_, Factory(),
                [this](const std::string& id) { return content_->LoadManifest(id); });
  dl.SetTrustedRoot(trusted_root_);
  AddSource("other", RepoDir());
  Deployment d = Deploy(1, v1_, {"good", "other"});
  dl.Start(d, content_->Dir("tools", 1), {}, std::nullopt);
  dl.Wait(std::chrono::hours(24), nullptr);
  auto o = dl.Take(1);
  ASSERT_TRUE(o.has_value());
  EXPECT_FALSE(o->status.ok());
  EXPECT_FALSE(o->refused);
  EXPECT_TRUE(o->events.empty()) << o->events[0].params.at("error");
  EXPECT_EQ(Opened("other"), 0) << "another source would fail the same way";
  std::vector<std::string> order;
  for (const auto& s : dl.Order(d.sources)) order.push_back(s.name);
  EXPECT_EQ(order, (std::vector<std::string>{"good", "other"})) << "not penalised";
}

TEST_F(DownloaderTest, CancelStopsTheDownloadWithoutBlamingTheSource) {
  SetFault("good", Fault::kHoldChunks);
  Deployment d = Deploy(1, v1_, {"good"});
  downloader_->Start(d, content_->Dir("tools", 1), {}, std::nullopt);
  WaitForHeldChunk();
  downloader_->Cancel(2);  // another deployment's: nothing happens
  downloader_->Cancel(1);
  EXPECT_TRUE(downloader_->Holds(1));
  ReleaseChunks();
  WaitForDownload();
  auto o = downloader_->Take(1);
  ASSERT_TRUE(o.has_value());
  EXPECT_TRUE(o->cancelled);
  EXPECT_FALSE(o->status.ok());
  EXPECT_TRUE(o->events.empty());
  EXPECT_FALSE(downloader_->Holds(1));
  EXPECT_FALSE(env_->Exists(content_->Dir("tools", 1)).value());
  EXPECT_EQ(Order(d), (std::vector<std::string>{"good"}));
  // The next download of it goes through.
  SetFault("good", Fault::kNone);
  EXPECT_TRUE(Download(d).status.ok());
}

TEST_F(DownloaderTest, OneDownloadAtATimeAndItsOutcomeIsTakenOnce) {
  SetFault("good", Fault::kHoldChunks);
  Deployment d1 = Deploy(1, v1_, {"good"});
  repo::AddResult other = AddVersion("other", {{"x", "y"}});
  Deployment d2 = Deploy(2, other, {"good"});
  downloader_->Start(d1, content_->Dir("tools", 1), {}, std::nullopt);
  WaitForHeldChunk();
  downloader_->Start(d2, content_->Dir("other", 1), {}, std::nullopt);  // no-op: one runs
  std::int64_t id = 0, version = 0;
  EXPECT_TRUE(downloader_->Running(&id, &version));
  EXPECT_EQ(id, 1);
  EXPECT_EQ(version, 1);
  EXPECT_TRUE(downloader_->Holds(1));
  EXPECT_FALSE(downloader_->Holds(2));
  ReleaseChunks();
  WaitForDownload();
  EXPECT_FALSE(downloader_->Running());
  // Finished but not taken: it still holds the worker.
  downloader_->Start(d2, content_->Dir("other", 1), {}, std::nullopt);
  EXPECT_FALSE(downloader_->Holds(2));
  EXPECT_FALSE(downloader_->Take(2).has_value());
  auto o = downloader_->Take(1);
  ASSERT_TRUE(o.has_value());
  EXPECT_TRUE(o->status.ok()) << o->status.ToString();
  EXPECT_EQ(o->result.manifest_id, v1_.manifest_id);
  EXPECT_FALSE(downloader_->Take(1).has_value()) << "taken once";
  EXPECT_TRUE(Download(d2).status.ok());
}

TEST_F(DownloaderTest, AFinishedDownloadNoLongerWantedIsDroppedKeepingItsMessages) {
  AddSource("down", RepoDir(), Fault::kUnavailable);
  Deployment d = Deploy(1, v1_, {"down", "good"});
  downloader_->Start(d, content_->Dir("tools", 1), {}, std::nullopt);
  WaitForDownload();
  // Still wanted: kept.
  EXPECT_TRUE(downloader_->DropUnless([](std::int64_t, std::int64_t) { return true; }).empty());
  EXPECT_TRUE(downloader_->Holds(1));
  std::int64_t asked_id = 0, asked_version = 0;
  auto events = downloader_->DropUnless([&](std::int64_t id, std::int64_t version) {
    asked_id = id;
    asked_version = version;
    return false;
  });
  EXPECT_EQ(asked_id, 1);
  EXPECT_EQ(asked_version, 1);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].code, core::msg::kAgentSourceFailed);
  EXPECT_FALSE(downloader_->Holds(1));
  EXPECT_FALSE(downloader_->Take(1).has_value());
}

}  // namespace
}  // namespace depot::agent
