// The DP's parts in-process on a real data directory and a manual clock: the
// scrubber, the collector and the request handler (no site: what they do with the
// store, the state database and the version book).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "catalog/outbox.h"
#include "core/sha256.h"
#include "core/testing.h"
#include "dp/collector.h"
#include "dp/context.h"
#include "dp/handler.h"
#include "dp/scrubber.h"
#include "store/compress.h"
#include "store/manifest.h"

namespace depot::dp {
namespace {

using Json = nlohmann::json;

class DpPartsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    DpConfig c;
    c.site = "http://127.0.0.1:9";  // never reached by these parts
    c.token = "t";
    c.gc_grace = std::chrono::hours(1);
    ctx_ = std::make_unique<DpContext>(core::Env::Default(), &clock_, dir_.Sub("dp"), c);
    ASSERT_TRUE(ctx_->Open().ok());
  }

  store::ChunkRef Put(const std::string& data) {
    store::ChunkId id = core::Sha256::Hash(data);
    auto frame = store::CompressFrame(data, 1);
    EXPECT_TRUE(frame.ok());
    EXPECT_TRUE(
        ctx_->chunks.PutFrame(id, static_cast<std::uint32_t>(data.size()), *frame, nullptr).ok());
    return {id, static_cast<std::uint32_t>(data.size())};
  }
  void Damage(const store::ChunkId& id) {
    std::string path = core::JoinPath(ctx_->layout.chunks(), store::ChunkRelPath(id));
    std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(static_cast<std::streamoff>(std::filesystem::file_size(path) / 2));
    f.put('\xff');
  }
  bool Has(const store::ChunkId& id) { return *ctx_->chunks.Has(id); }

  // Publishes version `version` of "tools" made of `chunks` as the syncer does, and
  // returns its assignment entry.
  Assigned Publish(std::int64_t version, const std::vector<store::ChunkRef>& chunks) {
    store::Manifest m;
    m.package_id = "p1";
    m.package_name = "tools";
    m.version = version;
    m.created = "2026-12-01T00:00:00Z";
    // One file per chunk: a one-chunk file's hash is its chunk's id.
    for (std::size_t i = 0; i < chunks.size(); ++i) {
      store::Entry e;
      e.path = "f" + std::to_string(i);
      e.type = store::EntryType::kFile;
      e.mode = 0644;
      e.size = chunks[i].size;
      e.sha256 = chunks[i].id;
      e.chunks = {chunks[i]};
      m.entries.push_back(e);
    }
    auto bytes = store::SerializeManifest(m);
    EXPECT_TRUE(bytes.ok()) << bytes.status().ToString();
    Assigned a;
    a.package = "tools";
    a.package_id = "p1";
    a.version = version;
    a.target = "tools/" + std::to_string(version) + ".json";
    a.manifest_id = core::Sha256::HashHex(*bytes);
    a.manifest_bytes = bytes->size();
    std::string path = ctx_->PublishedPath(a.package, a.version, a.manifest_id);
    EXPECT_TRUE(ctx_->env->CreateDirs(std::string(core::Dirname(path))).ok());
    EXPECT_TRUE(ctx_->env->WriteFileAtomic(path, *bytes, 0644).ok());
    EXPECT_TRUE(ctx_->db
                    ->Transaction([&](catalog::Tx& tx) {
                      return tx
                          .Exec(
                              "INSERT INTO versions (target, package, version, manifest_id, "
                              "published_at) VALUES "
                              "(?, ?, ?, ?, ?)",
                              {a.target, a.package, a.version, a.manifest_id,
                               core::UnixMillis(clock_.Now())})
                          .status();
                    })
                    .ok());
    ctx_->WantChunksOf(*bytes);
    return a;
  }

  std::vector<int> OutboxCodes() {
    auto batch = catalog::ReadOutbox(ctx_->db.get(), 100);
    std::vector<int> codes;
    for (const auto& m : Json::parse(batch->json)) codes.push_back(m["code"]);
    return codes;
  }

  std::map<std::string, Assigned> Assign(const std::vector<Assigned>& versions) {
    std::map<std::string, Assigned> out;
    for (const auto& a : versions) out[a.target] = a;
    return out;
  }

  core::ManualClock clock_{core::TimePoint(std::chrono::seconds(1'800'000'000))};
  depot::testing::TempDir dir_;
  std::unique_ptr<DpContext> ctx_;
};

TEST_F(DpPartsTest, ScrubRemovesDamageReportsItAndSendsItsVersionBackToPending) {
  auto a = Put(depot::testing::RandomData(70000, 1));
  auto b = Put(depot::testing::RandomData(70000, 2));
  Assigned v1 = Publish(1, {a, b});
  ctx_->book.Apply(Assign({v1}));
  ASSERT_TRUE(ctx_->book.Move(v1.target, VersionEvent::kFoundPublished));
  Damage(b.id);
  // A manifest whose bytes no longer match its name.
  std::string other = ctx_->PublishedPath("tools", 9, std::string(64, 'c'));
  ASSERT_TRUE(ctx_->env->WriteFileAtomic(other, "{}", 0644).ok());

  Scrubber scrubber(ctx_.get());
  auto r = scrubber.Scrub(/*repair=*/false, 0);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->chunks, 2u);
  EXPECT_EQ(r->manifests, 2u);
  ASSERT_EQ(r->findings.size(), 2u);
  EXPECT_EQ(r->findings[0].object, "chunks/" + store::ChunkRelPath(b.id));
  EXPECT_FALSE(r->findings[0].repaired);
  EXPECT_TRUE(Has(a.id));
  EXPECT_FALSE(Has(b.id)) << "a damaged chunk is never served again";
  EXPECT_FALSE(*ctx_->env->Exists(other));
  EXPECT_EQ(OutboxCodes(), (std::vector<int>{3003, 3003}));
  EXPECT_EQ(ctx_->book.CountByState()["pending"], 1) << "the syncer re-checks the version";
  EXPECT_EQ(ctx_->metrics.scrub_damage->value(), 2u);
}

TEST_F(DpPartsTest, ScrubIsPacedOnTheClock) {
  for (int i = 0; i < 4; ++i) Put(depot::testing::RandomData(50000, 10 + i));
  Scrubber scrubber(ctx_.get());
  // 1 byte/s: each chunk read waits until its bytes' worth of time has passed, on the
  // manual clock (so the clock is moved until the pass is done).
  std::atomic<bool> done{false};
  core::Result<VerifyReport> r = core::Status::Unavailable("not run");
  std::thread t([&] {
    r = scrubber.Scrub(false, 1);
    done = true;
  });
  const core::MonoTime start = clock_.Monotonic();
  while (!done) {
    clock_.Advance(std::chrono::hours(1));
    std::this_thread::yield();
  }
  t.join();
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->chunks, 4u);
  // At 1 byte/s the pass took at least its bytes' worth of (manual) seconds.
  EXPECT_GE(clock_.Monotonic() - start, std::chrono::seconds(r->bytes));
}

TEST_F(DpPartsTest, CollectorDeletesUnassignedVersionsAfterTheGraceAndKeepsSharedChunks) {
  auto shared = Put(depot::testing::RandomData(60000, 3));
  auto only_old = Put(depot::testing::RandomData(60000, 4));
  Assigned v1 = Publish(1, {shared, only_old});
  Assigned v2 = Publish(2, {shared});
  ctx_->book.Apply(Assign({v2}));
  ASSERT_TRUE(ctx_->db
                  ->Transaction([&](catalog::Tx& tx) {
                    return tx
                        .Exec("UPDATE versions SET removed_at = ? WHERE target = ?",
                              {core::UnixMillis(clock_.Now()), v1.target})
                        .status();
                  })
                  .ok());
  const std::string v1_path = ctx_->PublishedPath("tools", 1, v1.manifest_id);
  clock_.Advance(std::chrono::minutes(59));
  CollectGarbage(ctx_.get());
  EXPECT_TRUE(*ctx_->env->Exists(v1_path)) << "within the grace";
  EXPECT_TRUE(Has(only_old.id));
  clock_.Advance(std::chrono::minutes(2));
  // (Chunk files younger than the grace by their mtime are kept; the manual clock
  // runs ahead of the real one, so these count as old.)
  CollectGarbage(ctx_.get());
  EXPECT_FALSE(*ctx_->env->Exists(v1_path));
  EXPECT_TRUE(*ctx_->env->Exists(ctx_->PublishedPath("tools", 2, v2.manifest_id)));
  EXPECT_TRUE(Has(shared.id)) << "version 2 still uses it";
  EXPECT_FALSE(Has(only_old.id));
  EXPECT_EQ(*ctx_->db->QueryInt("SELECT COUNT(*) FROM versions"), 1);
  EXPECT_EQ(OutboxCodes(), (std::vector<int>{3006}));
}

TEST_F(DpPartsTest, CollectorCollectsNothingWhileAnAssignedManifestIsUnknown) {
  auto c = Put(depot::testing::RandomData(60000, 5));
  Assigned v1 = Publish(1, {c});
  Assigned unknown = v1;
  unknown.target = "tools/7.json";
  unknown.version = 7;
  unknown.manifest_id = std::string(64, 'd');
  ctx_->book.Apply(Assign({unknown}));
  ASSERT_TRUE(ctx_->db
                  ->Transaction([&](catalog::Tx& tx) {
                    return tx
                        .Exec("UPDATE versions SET removed_at = 1 WHERE target = ?", {v1.target})
                        .status();
                  })
                  .ok());
  CollectGarbage(ctx_.get());
  EXPECT_TRUE(*ctx_->env->Exists(ctx_->PublishedPath("tools", 1, v1.manifest_id)));
  EXPECT_TRUE(OutboxCodes().empty());
}

TEST_F(DpPartsTest, HandlerServesTheLayoutAndOnlyWantedChunksAreCandidatesForPullThrough) {
  auto c = Put(depot::testing::RandomData(60000, 6));
  Assigned v1 = Publish(1, {c});
  Handler handler(ctx_.get());
  auto get = [&](const std::string& path) {
    http::Request req;
    req.method = "GET";
    req.path = path;
    req.target = path;
    http::Response resp;
    handler.Handle(req, &resp);
    return resp;
  };
  EXPECT_EQ(get("/healthz").status, 200);
  http::Response metrics = get("/metrics");
  EXPECT_EQ(metrics.status, 200);
  EXPECT_NE(metrics.body.find("depot_dp_scrub_passes_total"), std::string::npos);
  EXPECT_EQ(get("/nothing").status, 404);
  EXPECT_EQ(get("/repo/chunks/" + store::ChunkRelPath(c.id)).status, 200);
  EXPECT_EQ(get("/repo/targets/tools/" + v1.manifest_id + ".1.json").status, 200);
  // A chunk no assigned version uses: 404, never fetched for anyone.
  store::ChunkId stranger = core::Sha256::Hash("stranger");
  http::Response r = get("/repo/chunks/" + store::ChunkRelPath(stranger));
  EXPECT_EQ(r.status, 404);
  EXPECT_FALSE(r.wait.has_value());
  EXPECT_EQ(ctx_->metrics.pull_through->value(), 0u);
  http::Request put;
  put.method = "PUT";
  put.path = "/repo/chunks/" + store::ChunkRelPath(c.id);
  http::Admission refused = handler.Admit(put);
  ASSERT_TRUE(refused.refusal.has_value()) << "a body the DP has no use for is refused unread";
  EXPECT_EQ(refused.refusal->status, 405);
  http::Request batch;
  batch.method = "POST";
  batch.path = "/repo/chunks/batch";
  http::Admission admitted = handler.Admit(batch);
  EXPECT_FALSE(admitted.refusal.has_value());
  EXPECT_EQ(admitted.body_limit, http::kMaxBatchBody);
}

}  // namespace
}  // namespace depot::dp
