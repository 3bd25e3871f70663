#include "repo/repository.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <thread>

#include "core/testing.h"
#include "tuf/metadata.h"

namespace depot::repo {
namespace {

using core::Status;

class RepositoryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(Repository::Init(env_, clock_, dir_.Sub("repo"), {}).ok());
    auto r = Repository::Open(env_, clock_, dir_.Sub("repo"));
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    repo_ = std::move(*r);
    testing::WriteFileOrDie(src_ + "/bin/tool", testing::RandomData(1 << 20, 1), 0755);
    testing::WriteFileOrDie(src_ + "/README", "read me\n");
  }

  core::Result<AddResult> Add(const std::string& package = "tools") {
    AddRequest req;
    req.package = package;
    req.source_dir = src_;
    store::Program p;
    p.name = "install";
    p.command = "./bin/tool --install";
    req.programs.push_back(p);
    return repo_->AddVersion(req);
  }

  core::Env* env_ = core::Env::Default();
  core::Clock* clock_ = core::Clock::Real();
  testing::TempDir dir_;
  std::string src_ = dir_.Sub("src");
  std::unique_ptr<Repository> repo_;
};

TEST_F(RepositoryTest, InitLaysOutDirectoriesAndRefusesToOverwrite) {
  RepoLayout l(dir_.Sub("repo"));
  for (const auto& p : {l.config(), l.keys() + "/root.pem", l.metadata() + "/1.root.json",
                        l.metadata() + "/timestamp.json", l.chunks() + "/ff"}) {
    EXPECT_TRUE(*env_->Exists(p)) << p;
  }
  EXPECT_TRUE(Repository::Init(env_, clock_, dir_.Sub("repo"), {}).IsInvalidArgument());
  auto missing = Repository::Open(env_, clock_, dir_.Sub("nothing"));
  EXPECT_TRUE(missing.status().IsNotFound());
  EXPECT_NE(missing.status().message().find("depot repo init"), std::string::npos);
}

TEST_F(RepositoryTest, AddsVersionsInOrderWithStablePackageId) {
  auto v1 = Add();
  ASSERT_TRUE(v1.ok()) << v1.status().ToString();
  EXPECT_EQ(v1->version, 1);
  EXPECT_EQ(v1->target_path, "tools/1.json");
  EXPECT_GT(v1->stats.new_bytes, 1u << 20);
  testing::WriteFileOrDie(src_ + "/README", "changed\n");
  auto v2 = Add();
  ASSERT_TRUE(v2.ok());
  EXPECT_EQ(v2->version, 2);
  EXPECT_EQ(v2->package_id, v1->package_id);
  // Only the changed file was new.
  EXPECT_EQ(v2->stats.new_chunks, 1u);
  EXPECT_EQ(v2->stats.new_bytes, 8u);
  auto other = Add("other");
  ASSERT_TRUE(other.ok());
  EXPECT_EQ(other->version, 1);
  EXPECT_NE(other->package_id, v1->package_id);

  auto list = repo_->ListVersions();
  ASSERT_TRUE(list.ok());
  ASSERT_EQ(list->size(), 3u);
  EXPECT_EQ((*list)[0].package, "other");
  EXPECT_EQ((*list)[2].version, 2);
  EXPECT_EQ((*list)[2].manifest_id, v2->manifest_id);
  // The manifest sits at its consistent, content-addressed path.
  std::string file = repo_->layout().targets() + "/tools/" + v2->manifest_id + ".2.json";
  EXPECT_EQ(core::Sha256::HashHex(testing::ReadFileOrDie(file)), v2->manifest_id);
  EXPECT_TRUE(repo_->TrustedRoot().ok());
}

TEST_F(RepositoryTest, RejectsBadPackageNameAndMissingSource) {
  EXPECT_TRUE(Add("../evil").status().IsInvalidArgument());
  AddRequest req;
  req.package = "tools";
  req.source_dir = dir_.Sub("absent");
  EXPECT_TRUE(repo_->AddVersion(req).status().IsNotFound());
  EXPECT_TRUE(repo_->ListVersions()->empty());
}

TEST_F(RepositoryTest, ConcurrentAddsGetDistinctVersions) {
  std::vector<std::int64_t> got(4);
  std::vector<std::thread> threads;
  for (int i = 0; i < 4; ++i) {
    threads.emplace_back([&, i] {
      auto r = Add();
      ASSERT_TRUE(r.ok()) << r.status().ToString();
      got[i] = r->version;
    });
  }
  for (auto& t : threads) t.join();
  std::sort(got.begin(), got.end());
  EXPECT_EQ(got, (std::vector<std::int64_t>{1, 2, 3, 4}));
}

// Field report 004: a source file that keeps changing must never yield a version whose
// hashes disagree with the content; the add retries, then fails naming the file.
TEST_F(RepositoryTest, WriterAppendingDuringAddFailsNamingFileAndCreatesNoVersion) {
  std::string log = src_ + "/var/app.log";
  testing::WriteFileOrDie(log, testing::RandomData(1 << 20, 2));
  AddRequest req;
  req.package = "tools";
  req.source_dir = src_;
  req.max_attempts = 3;
  req.first_backoff = std::chrono::milliseconds(20);
  testing::FaultyEnv writer(env_);  // appends whenever the file is read
  writer.append_when_read = "app.log";
  writer.append_when_read_data = "another line of log output\n";
  auto repo = Repository::Open(&writer, clock_, dir_.Sub("repo"));
  ASSERT_TRUE(repo.ok()) << repo.status().ToString();
  auto r = (*repo)->AddVersion(req);
  EXPECT_EQ(writer.appends.load(), 3) << "one append per attempt";
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(r.status().IsIOError()) << r.status().ToString();
  EXPECT_NE(r.status().message().find("var/app.log: file changed while being read"),
            std::string::npos)
      << r.status().message();
  EXPECT_TRUE(repo_->ListVersions()->empty());
  // Whatever was stored is consistent: verify finds nothing wrong.
  auto report = repo_->Verify(2, nullptr);
  ASSERT_TRUE(report.ok());
  EXPECT_TRUE(report->damage.empty());
}

TEST_F(RepositoryTest, VerifyFindsDamagedChunksManifestsAndMetadata) {
  auto v1 = Add();
  ASSERT_TRUE(v1.ok());
  auto clean = repo_->Verify(2, nullptr);
  ASSERT_TRUE(clean.ok()) << clean.status().ToString();
  EXPECT_TRUE(clean->damage.empty());
  EXPECT_EQ(clean->manifests_checked, 1u);
  EXPECT_GT(clean->chunks_checked, 10u);

  // Flip a byte in one chunk.
  std::string victim;
  ASSERT_TRUE(repo_->chunks()
                  ->ForEach([&](const store::ChunkId& id, std::uint64_t size) {
                    if (size > 1000) victim = repo_->chunks()->PathOf(id);
                    return victim.empty();
                  })
                  .ok());
  std::string bytes = testing::ReadFileOrDie(victim);
  bytes[bytes.size() / 2] ^= 1;
  testing::WriteFileOrDie(victim, bytes);
  auto report = repo_->Verify(2, nullptr);
  ASSERT_TRUE(report.ok());
  ASSERT_EQ(report->damage.size(), 2u);  // the chunk, and the manifest that needs it
  EXPECT_EQ(report->damage[0].object.rfind("chunks/", 0), 0u);
  EXPECT_EQ(report->damage[1].object.rfind("targets/tools/", 0), 0u);
  EXPECT_NE(report->damage[1].problem.find("missing or damaged"), std::string::npos);

  // Tamper with the signed targets metadata.
  RepoLayout l(dir_.Sub("repo"));
  std::string targets_file = l.metadata() + "/2.targets.json";
  std::string t = testing::ReadFileOrDie(targets_file);
  t[t.find("tools/1.json")] = 'T';
  testing::WriteFileOrDie(targets_file, t);
  report = repo_->Verify(2, nullptr);
  ASSERT_TRUE(report.ok());
  bool metadata_damage = false;
  for (const auto& d : report->damage) metadata_damage |= d.object == "metadata";
  EXPECT_TRUE(metadata_damage);
}

TEST_F(RepositoryTest, GarbageCollectionKeepsWhatSignedVersionsNeed) {
  auto v1 = Add();
  ASSERT_TRUE(v1.ok());
  // What a crashed add leaves: an unreferenced chunk, a temp file, an unsigned manifest.
  std::string orphan = "orphan chunk bytes";
  ASSERT_TRUE(repo_->chunks()->Put(core::Sha256::Hash(orphan), orphan).ok());
  RepoLayout l(dir_.Sub("repo"));
  testing::WriteFileOrDie(l.chunks() + "/ab/.abcd.tmp.0123456789abcdef", "partial");
  testing::WriteFileOrDie(l.targets() + "/tools/" + std::string(64, 'e') + ".2.json", "{}");
  auto report = repo_->CollectGarbage();
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  EXPECT_EQ(report->chunks_removed, 1u);
  EXPECT_EQ(report->temp_removed, 1u);
  EXPECT_EQ(report->manifests_removed, 1u);
  EXPECT_FALSE(*repo_->chunks()->Has(core::Sha256::Hash(orphan)));
  auto verify = repo_->Verify(2, nullptr);
  ASSERT_TRUE(verify.ok());
  EXPECT_TRUE(verify->damage.empty());
  // Nothing left to collect the second time.
  EXPECT_EQ(repo_->CollectGarbage()->chunks_removed, 0u);
}

TEST_F(RepositoryTest, GarbageCollectionRefusesWhenAManifestIsDamaged) {
  auto v1 = Add();
  ASSERT_TRUE(v1.ok());
  std::size_t before = 0;
  ASSERT_TRUE(repo_->chunks()
                  ->ForEach([&](const store::ChunkId&, std::uint64_t) { return ++before, true; })
                  .ok());
  RepoLayout l(dir_.Sub("repo"));
  testing::WriteFileOrDie(l.targets() + "/tools/" + v1->manifest_id + ".1.json", "damaged");
  auto report = repo_->CollectGarbage();
  EXPECT_TRUE(report.status().IsCorruption()) << report.status().ToString();
  std::size_t after = 0;
  ASSERT_TRUE(repo_->chunks()
                  ->ForEach([&](const store::ChunkId&, std::uint64_t) { return ++after, true; })
                  .ok());
  EXPECT_EQ(after, before);
}

}  // namespace
}  // namespace depot::repo
