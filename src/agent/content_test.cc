// The content store over the real parts: the cache limit (least recently used
// versions first, pinned ones never), content set aside for the next fetch, seeds,
// removing other versions, and purging what left the policy while keeping what is in
// use.
#include "agent/content.h"

#include <gtest/gtest.h>

#include <set>

#include "agent/parts_fixture.h"
#include "core/messages.h"
#include "repo/fetch.h"

namespace depot::agent {
namespace {

using testing::Json;

class ContentTest : public testing::PartsFixture {
 protected:
  // Deployment `id` installs `v` (new, or moved to it from its version).
  void Install(std::int64_t id, const repo::AddResult& v) {
    if (state_->Get(id)->has_value()) {
      Changes c;
      c.new_version = Item(id, v);
      ASSERT_TRUE(state_->Transition(id, Event::kNewVersion, c, {}).ok());
    } else {
      Insert(Item(id, v));
    }
    Settle();
    ASSERT_EQ(StateName(Get(id).state), "succeeded") << Get(id).last_error;
  }
  std::set<store::ChunkId> ChunksOf(const repo::AddResult& v) {
    std::set<store::ChunkId> out;
    auto path = core::JoinPath(RepoDir(), "targets/" + v.package + "/" + v.manifest_id + "." +
                                              std::to_string(v.version) + ".json");
    auto m = store::ParseManifest(*env_->ReadFile(path, 64 << 20));
    EXPECT_TRUE(m.ok());
    for (const auto& c : m->UniqueChunks()) out.insert(c.id);
    return out;
  }
  std::map<store::ChunkId, std::uint64_t> Cached() {
    std::map<store::ChunkId, std::uint64_t> out;
    EXPECT_TRUE(content_->Cache()
                    .ForEach([&](const store::ChunkId& id, std::uint64_t bytes) {
                      out[id] = bytes;
                      return true;
                    })
                    .ok());
    return out;
  }
  std::uint64_t CachedBytes() {
    std::uint64_t n = 0;
    for (const auto& [id, bytes] : Cached()) n += bytes;
    return n;
  }
  std::set<std::string> HeldIds() {
    std::set<std::string> out;
    for (const auto& h : *state_->Held()) out.insert(h.manifest_id);
    return out;
  }
  bool Exists(const std::string& path) { return env_->Exists(path).value(); }
  void Purge() {
    ASSERT_TRUE(content_
                    ->Purge(
                        NowMs(), [](const Deployment&) { return true; },
                        [](const std::string&) { return std::optional<std::int64_t>(); })
                    .ok());
  }
  void Remove(std::int64_t id) {
    Deployment d = Get(id);
    ASSERT_TRUE(
        state_
            ->MarkRemoved(
                id, {core::msg::kAgentDeploymentRemoved, NowMs(), d.package, d.version, id, {}})
            .ok());
  }
};

TEST_F(ContentTest, ASupersededVersionGoesToTheCacheAndTheLimitEvictsTheLeastRecentlyUsed) {
  repo::AddResult a1 = AddVersion("a", {{"data", depot::testing::RandomData(256 << 10, 1)}});
  repo::AddResult a2 = AddVersion("a", {{"data", depot::testing::RandomData(256 << 10, 2)}});
  repo::AddResult b1 = AddVersion("b", {{"data", depot::testing::RandomData(256 << 10, 3)}});
  repo::AddResult b2 = AddVersion("b", {{"data", depot::testing::RandomData(256 << 10, 4)}});
  Install(1, a1);
  Install(1, a2);  // a1 superseded: its directory goes, its chunks into the cache
  EXPECT_FALSE(Exists(content_->Dir("a", 1)));
  clock_.Advance(std::chrono::minutes(1));
  Install(2, b1);
  Install(2, b2);
  std::set<store::ChunkId> cached;
  for (const auto& [id, bytes] : Cached()) cached.insert(id);
  std::set<store::ChunkId> expected = ChunksOf(a1);
  for (const auto& c : ChunksOf(b1)) expected.insert(c);
  ASSERT_EQ(cached, expected);
  ASSERT_EQ(HeldIds(), (std::set<std::string>{a1.manifest_id, a2.manifest_id, b1.manifest_id,
                                              b2.manifest_id}));

  // Under the limit: nothing goes.
  content_->EnforceCacheLimit();
  EXPECT_EQ(Cached().size(), expected.size());
  // One byte over: the least recently used version (a1) loses chunks and is forgotten.
  config_.cache_max_bytes = CachedBytes() - 1;
  content_->EnforceCacheLimit();
  EXPECT_LE(CachedBytes(), config_.cache_max_bytes);
  auto now = Cached();
  for (const auto& c : ChunksOf(b1)) EXPECT_TRUE(now.count(c)) << "b1 was used more recently";
  EXPECT_EQ(HeldIds(), (std::set<std::string>{a2.manifest_id, b1.manifest_id, b2.manifest_id}));
  EXPECT_FALSE(Exists(content_->ManifestPath(a1.manifest_id)));
  EXPECT_TRUE(Exists(content_->ManifestPath(b1.manifest_id)));

  // A version a deployment works towards is pinned: its chunks stay whatever the limit.
  Insert(Item(3, b1));
  config_.cache_max_bytes = 0;
  content_->EnforceCacheLimit();
  now = Cached();
  EXPECT_EQ(now.size(), ChunksOf(b1).size());
  for (const auto& c : ChunksOf(b1)) EXPECT_TRUE(now.count(c));
  EXPECT_TRUE(HeldIds().count(b1.manifest_id));
}

TEST_F(ContentTest, ContentSetAsideIsReverifiedAndReusedByTheNextFetch) {
  repo::AddResult v = AddVersion("a", {{"one", depot::testing::RandomData(200 << 10, 1)},
                                       {"two", depot::testing::RandomData(200 << 10, 2)}});
  Install(1, v);
  const std::string dir = content_->Dir("a", 1);
  content_->SetAside("a", 1);
  EXPECT_FALSE(Exists(dir));
  ASSERT_TRUE(Exists(repo::PartialPath(dir)));
  content_->SetAside("a", 1);  // nothing there: nothing happens
  ASSERT_TRUE(Exists(repo::PartialPath(dir)));
  // Damage one file of it: what still verifies is taken, the rest fetched.
  depot::testing::WriteFileOrDie(repo::PartialPath(dir) + "/two",
                                 depot::testing::RandomData(200 << 10, 9));
  downloader_->Start(Get(1), dir, {}, std::nullopt);
  WaitForDownload();
  auto o = downloader_->Take(1);
  ASSERT_TRUE(o.has_value());
  ASSERT_TRUE(o->status.ok()) << o->status.ToString();
  EXPECT_GT(o->result.seed_chunks, 0u);
  EXPECT_GT(o->result.fetched_chunks, 0u);
  EXPECT_LT(o->result.fetched_chunks, o->result.chunks);
  EXPECT_EQ(depot::testing::ReadFileOrDie(dir + "/two"), depot::testing::RandomData(200 << 10, 2));
  EXPECT_FALSE(Exists(repo::PartialPath(dir)));
}

TEST_F(ContentTest, SeedsAreOtherVersionsHereTheSamePackageFirst) {
  repo::AddResult a1 = AddVersion("a", {{"x", "a1"}});
  repo::AddResult b1 = AddVersion("b", {{"x", "b1"}});
  Install(1, a1);
  clock_.Advance(std::chrono::minutes(1));
  Install(2, b1);  // used more recently, but another package
  repo::AddResult a2 = AddVersion("a", {{"x", "a2"}});
  Insert(Item(3, a2));
  auto dirs = [&](const std::vector<SeedSpec>& seeds) {
    std::vector<std::string> out;
    for (const auto& s : seeds) out.push_back(s.dir);
    return out;
  };
  auto seeds = content_->SeedsFor(Get(3));
  EXPECT_EQ(dirs(seeds), (std::vector<std::string>{content_->Dir("a", 1), content_->Dir("b", 1)}));
  EXPECT_EQ(seeds[0].manifest_id, a1.manifest_id);
  // Not its own version; not a directory that is gone.
  EXPECT_EQ(dirs(content_->SeedsFor(Get(1))), (std::vector<std::string>{content_->Dir("b", 1)}));
  ASSERT_TRUE(env_->RemoveAll(content_->Dir("b", 1)).ok());
  EXPECT_EQ(dirs(content_->SeedsFor(Get(3))), (std::vector<std::string>{content_->Dir("a", 1)}));
}

TEST_F(ContentTest, RemovingOtherVersionsKeepsInstalledAndBusyOnes) {
  repo::AddResult a1 = AddVersion("a", {{"x", "a1"}});
  Install(1, a1);
  const std::string pkg = core::JoinPath(data_dir_, "content/a");
  const std::string partial5 = repo::PartialPath(content_->Dir("a", 5));
  for (const std::string& d :
       {content_->Dir("a", 5), partial5, content_->Dir("a", 6), pkg + "/notes"}) {
    ASSERT_TRUE(env_->CreateDirs(d, 0750).ok());
  }
  content_->RemoveOtherVersions("a", /*cache_chunks=*/false, /*busy=*/6);
  EXPECT_TRUE(Exists(content_->Dir("a", 1))) << "installed";
  EXPECT_FALSE(Exists(content_->Dir("a", 5)));
  EXPECT_FALSE(Exists(partial5));
  EXPECT_TRUE(Exists(core::JoinPath(pkg, "6"))) << "being written";
  EXPECT_TRUE(Exists(core::JoinPath(pkg, "notes"))) << "not a version";
}

TEST_F(ContentTest, PurgeKeepsContentAnotherDeploymentUses) {
  repo::AddResult v = AddVersion("a", {{"x", depot::testing::RandomData(100 << 10, 1)}});
  Install(1, v);
  Install(2, v);
  Remove(1);
  clock_.Advance(config_.purge_grace);
  Purge();
  EXPECT_FALSE(state_->Get(1)->has_value());
  EXPECT_TRUE(state_->Get(2)->has_value());
  EXPECT_TRUE(Exists(content_->Dir("a", 1)));
  EXPECT_EQ(*state_->InstalledVersion("a"), 1);
  EXPECT_TRUE(HeldIds().count(v.manifest_id));
  EXPECT_TRUE(OutboxOf(core::msg::kAgentContentPurged).empty());

  // A deployment the caller may not purge yet stays, with its content.
  Remove(2);
  ASSERT_TRUE(content_
                  ->Purge(
                      NowMs(), [](const Deployment&) { return false; },
                      [](const std::string&) { return std::optional<std::int64_t>(); })
                  .ok());
  EXPECT_TRUE(state_->Get(2)->has_value());
  EXPECT_TRUE(Exists(content_->Dir("a", 1)));

  // The last one gone: so is the package's content.
  Purge();
  EXPECT_FALSE(state_->Get(2)->has_value());
  EXPECT_FALSE(Exists(core::JoinPath(data_dir_, "content/a")));
  EXPECT_EQ(*state_->InstalledVersion("a"), std::nullopt);
  EXPECT_TRUE(HeldIds().empty());
  EXPECT_EQ(OutboxOf(core::msg::kAgentContentPurged).size(), 1u);
}

}  // namespace
}  // namespace depot::agent
