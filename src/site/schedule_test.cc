// The site's schedules on a manual clock: when a silent DP is probed (per-DP backoff),
// that a polling or removed DP is not, and when deleted content is collected. The test
// is the timer: the site is opened but not started (no worker thread), and the test
// calls the worker's passes (ProbeDps, CollectContent) at the instants that matter.
// The cross-process tests (tests/site_test.py, scenario_test.py) show the same work
// done by the real worker, by events, without asserting on how long it takes.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <optional>

#include "core/backoff.h"
#include "core/clock.h"
#include "core/messages.h"
#include "core/testing.h"
#include "site/context.h"
#include "site/distribution.h"
#include "site/packages.h"
#include "site/processes.h"
#include "site/site.h"
#include "site/site_fixture.h"
#include "store/chunk_store.h"
#include "store/manifest.h"
#include "store/snapshot.h"

namespace depot::site {
namespace {

using std::chrono::milliseconds;

class SiteScheduleTest : public ::testing::TestWithParam<catalog::Dialect> {
 protected:
  void SetUp() override {
    InitOptions o;
    o.data_dir = dir_.Sub("site");
    o.code = "TST";
    o.listen = "127.0.0.1:0";
    o.db = TestCatalog(GetParam(), dir_);
    auto init = InitSite(core::Env::Default(), &clock_, o);
    ASSERT_TRUE(init.ok()) << init.status().ToString();
    auto site = Site::Open(core::Env::Default(), &clock_, o.data_dir);
    ASSERT_TRUE(site.ok()) << site.status().ToString();
    site_ = std::move(*site);
    ctx_ = site_->context();
  }

  // A DP nobody answers for (the discard port refuses connections at once).
  std::int64_t NewDp(const std::string& name) {
    auto r = AddDp(*ctx_, Json{{"name", name}, {"url", "http://127.0.0.1:9"}});
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    auto id = ctx_->db->QueryInt("SELECT id FROM dps WHERE name = ?", {name});
    EXPECT_TRUE(id.ok()) << id.status().ToString();
    return id.ok() ? *id : 0;
  }

  struct ProbeState {
    std::int64_t attempts = 0;
    std::optional<std::int64_t> next_ms;  // next_probe_at
  };
  ProbeState Probes(const std::string& dp) {
    auto row =
        ctx_->db->QueryRow("SELECT probe_attempts, next_probe_at FROM dps WHERE name = ?", {dp});
    EXPECT_TRUE(row.ok()) << row.status().ToString();
    if (!row.ok()) return {};
    return {row->Int(0), row->OptInt(1)};
  }

  // (records, sum of their counts) of message `code` about `dp`.
  std::pair<std::int64_t, std::int64_t> Messages(int code, const std::string& dp) {
    auto row = ctx_->db->QueryRow(
        "SELECT COUNT(*), COALESCE(SUM(count), 0) FROM messages WHERE code = ? AND dp = ?",
        {code, dp});
    EXPECT_TRUE(row.ok()) << row.status().ToString();
    return row.ok() ? std::pair{row->Int(0), row->Int(1)} : std::pair<std::int64_t, std::int64_t>{};
  }
  std::int64_t MessageCount(int code) {
    auto n = ctx_->db->QueryInt("SELECT COUNT(*) FROM messages WHERE code = ?", {code});
    EXPECT_TRUE(n.ok());
    return n.ok() ? *n : -1;
  }

  // Chunks `src` into the library and creates package `name` from it, as an upload
  // would; returns its manifest.
  store::Manifest CreatePackage(const std::string& name, const std::string& src) {
    store::SnapshotOptions opts;
    opts.chunker = ctx_->repo->settings().chunker;
    auto snap = store::Snapshot(core::Env::Default(), src, ctx_->repo->chunks(), opts);
    EXPECT_TRUE(snap.ok()) << snap.status().ToString();
    store::Manifest m;
    m.package_id = "0000000000000000";
    m.package_name = name;
    m.version = 1;
    m.created = core::FormatUtc(clock_.Now());
    m.chunker = opts.chunker;
    if (snap.ok()) m.entries = snap->entries;
    auto bytes = store::SerializeManifest(m);
    EXPECT_TRUE(bytes.ok()) << bytes.status().ToString();
    auto created = CreateVersion(*ctx_, name, true, bytes.ok() ? *bytes : "");
    EXPECT_TRUE(created.ok()) << created.status().ToString();
    return m;
  }
  std::size_t LibraryChunks() {
    std::size_t n = 0;
    EXPECT_TRUE(ctx_->repo->chunks()
                    ->ForEach([&](const store::ChunkId&, std::uint64_t) { return ++n, true; })
                    .ok());
    return n;
  }

  // An hour ahead of the real clock, so that files written now (whose times are real)
  // are older than anything this clock dates: collection spares chunks younger than the
  // grace period by their file times.
  core::ManualClock clock_{core::Clock::Real()->Now() + std::chrono::hours(1)};
  testing::TempDir dir_;
  std::unique_ptr<Site> site_;
  SiteContext* ctx_ = nullptr;
};

INSTANTIATE_TEST_SUITE_P(Backends, SiteScheduleTest, ::testing::ValuesIn(catalog::TestDialects()),
                         catalog::DialectTestName);

TEST_P(SiteScheduleTest, ASilentDpIsProbedOnItsBackoffAndAPollingDpNever) {
  // The defaults: silent after 5 minutes, probes back off from 1 minute to 12 hours.
  const SiteConfig& cfg = ctx_->config;
  const core::BackoffPolicy policy{cfg.probe_base, cfg.probe_max};
  NewDp("dead");
  const std::int64_t alive = NewDp("alive");
  // A probe pass, with `alive` having polled its assignment just before.
  auto pass = [&] {
    SeenDp(*ctx_, alive);
    ProbeDps(*ctx_);
  };

  clock_.Advance(cfg.dp_offline_after);
  pass();
  EXPECT_EQ(Probes("dead").attempts, 0) << "probed before it was silent for dp_offline_after";
  clock_.Advance(milliseconds(1));
  pass();
  ASSERT_EQ(Probes("dead").attempts, 1);

  // Probe n is followed by the next no earlier than it is due, and it is due within
  // [0, min(probe_max, probe_base * 2^(n-1))]: ~15 probes in three days, not one per
  // pass. From n = 11 on, the cap is probe_max.
  for (std::int64_t n = 1; n <= 14; ++n) {
    const ProbeState s = Probes("dead");
    ASSERT_EQ(s.attempts, n);
    ASSERT_TRUE(s.next_ms.has_value());
    const std::int64_t delay = *s.next_ms - ctx_->NowMs();  // probe n was at this very instant
    EXPECT_GE(delay, 0) << "after probe " << n;
    EXPECT_LE(delay, core::ToMillis(core::BackoffCap(policy, n))) << "after probe " << n;
    if (delay > 0) {
      clock_.Advance(milliseconds(delay - 1));
      pass();
      EXPECT_EQ(Probes("dead").attempts, n) << "probed before it was due, after probe " << n;
      clock_.Advance(milliseconds(1));
    }
    pass();
    EXPECT_EQ(Probes("dead").attempts, n + 1) << "not probed when due, after probe " << n;
    EXPECT_EQ(Probes("alive").attempts, 0) << "a DP that polls is never probed";
  }
  EXPECT_EQ(Messages(core::msg::kDpUnreachable, "dead"),
            (std::pair<std::int64_t, std::int64_t>{1, 15}))
      << "one record, its count the number of probes";
  EXPECT_EQ(Messages(core::msg::kDpUnreachable, "alive").first, 0);

  // It polls again: back, once, and no longer probed.
  SeenDp(*ctx_, *ctx_->db->QueryInt("SELECT id FROM dps WHERE name = 'dead'"));
  pass();
  const ProbeState back = Probes("dead");
  EXPECT_EQ(back.attempts, 0);
  EXPECT_FALSE(back.next_ms.has_value());
  EXPECT_EQ(Messages(core::msg::kDpReachable, "dead").first, 1);
}

TEST_P(SiteScheduleTest, RemovingADpEndsItsProbesAtOnce) {
  NewDp("dead");
  clock_.Advance(ctx_->config.dp_offline_after + milliseconds(1));
  ProbeDps(*ctx_);
  ASSERT_EQ(Probes("dead").attempts, 1);
  ASSERT_TRUE(RemoveDp(*ctx_, "dead").ok());
  // Long past any time its next probe could have been due.
  clock_.Advance(ctx_->config.probe_max + std::chrono::hours(1));
  ProbeDps(*ctx_);
  EXPECT_EQ(Messages(core::msg::kDpUnreachable, "dead"),
            (std::pair<std::int64_t, std::int64_t>{1, 1}));
  EXPECT_EQ(MessageCount(core::msg::kDpRemoved), 1);
}

TEST_P(SiteScheduleTest, DeletedContentIsCollectedOnceTheGracePeriodIsOverAndSharedChunksStay) {
  // pa and pb share every chunk but only-a.bin's.
  for (const char* p : {"a", "b"}) {
    testing::WriteFileOrDie(dir_.Sub(std::string(p) + "/shared.bin"),
                            testing::RandomData(400000, 1));
    testing::WriteFileOrDie(dir_.Sub(std::string(p) + "/small.txt"), "the same in both\n");
  }
  testing::WriteFileOrDie(dir_.Sub("a/only-a.bin"), testing::RandomData(300000, 2));
  CreatePackage("pa", dir_.Sub("a"));
  const store::Manifest pb = CreatePackage("pb", dir_.Sub("b"));
  const std::size_t before = LibraryChunks();
  ASSERT_TRUE(DeletePackage(*ctx_, "pa").ok());

  // One millisecond before the grace period (24 h) is over: nothing.
  clock_.Advance(ctx_->config.gc_grace - milliseconds(1));
  CollectContent(*ctx_);
  EXPECT_EQ(LibraryChunks(), before) << "collected inside the grace period";
  EXPECT_EQ(MessageCount(core::msg::kContentCollected), 0);

  // Over: only-a.bin's chunks go, once.
  clock_.Advance(milliseconds(1));
  CollectContent(*ctx_);
  EXPECT_LT(LibraryChunks(), before);
  EXPECT_EQ(MessageCount(core::msg::kContentCollected), 1);
  CollectContent(*ctx_);
  EXPECT_EQ(MessageCount(core::msg::kContentCollected), 1) << "the same content collected twice";
  for (const auto& ref : pb.UniqueChunks()) {
    auto has = ctx_->repo->chunks()->Has(ref.id);
    ASSERT_TRUE(has.ok());
    EXPECT_TRUE(*has) << "a chunk pb uses was collected";
  }
}

// Sightings recorded in memory reach the catalog in batches (FlushSeen), a client's to
// a quarter of the offline threshold at most (here an hour: to the minute).
TEST_P(SiteScheduleTest, SightingsAreFlushedInBatchesAClientsToTheMinute) {
  const std::int64_t t0 = ctx_->NowMs();
  ASSERT_TRUE(ctx_->db
                  ->Transaction([&](catalog::Tx& tx) -> core::Status {
                    for (int i = 0; i < 1200; ++i) {  // more than one statement's batch
                      DEPOT_RETURN_IF_ERROR(
                          tx.Exec("INSERT INTO clients (uid, name, attributes, address, "
                                  "enrolled_at, last_seen_at, attributes_at) VALUES (?, ?, '{}', "
                                  "'', ?, ?, ?)",
                                  {"u" + std::to_string(i), "pc" + std::to_string(i), t0, t0, t0})
                              .status());
                    }
                    return core::Status::Ok();
                  })
                  .ok());
  auto seen_at = [&](std::int64_t ms) {
    std::lock_guard<std::mutex> lock(ctx_->seen_mu);
    auto rows = ctx_->db->Query("SELECT id FROM clients");
    for (const auto& r : *rows) ctx_->client_seen[r.Int(0)] = ms;
  };
  auto at = [&](std::int64_t ms) {
    return *ctx_->db->QueryInt("SELECT COUNT(*) FROM clients WHERE last_seen_at = ?", {ms});
  };
  seen_at(t0 + 59'000);  // within the minute: not written
  FlushSeen(*ctx_);
  EXPECT_EQ(at(t0), 1200);
  seen_at(t0 + 60'000);
  FlushSeen(*ctx_);
  EXPECT_EQ(at(t0 + 60'000), 1200);
}

// Several processes on one catalog (processes.h): recovery gives back only the
// reservations of processes that are gone, and a lease is one process's until it lapses.
TEST_P(SiteScheduleTest, RecoveryResolvesOnlyReservationsOfGoneProcessesAndLeasesLapse) {
  testing::WriteFileOrDie(dir_.Sub("t/a.txt"), "one\n");
  CreatePackage("tools", dir_.Sub("t"));
  const std::int64_t now = ctx_->NowMs();
  const std::int64_t ttl = core::ToMillis(ctx_->config.lease_ttl);
  auto exec = [&](const std::string& sql, const catalog::Params& p) {
    ASSERT_TRUE(
        ctx_->db->Transaction([&](catalog::Tx& tx) { return tx.Exec(sql, p).status(); }).ok())
        << sql;
  };
  exec(
      "INSERT INTO site_processes (id, host, pid, url, started_at, seen_at) VALUES "
      "('live', 'elsewhere', 1, '', ?, ?), ('silent', 'elsewhere', 2, '', ?, ?)",
      {now, now, now - 2 * ttl, now - ttl - 1000});
  const std::int64_t package = *ctx_->db->QueryInt("SELECT id FROM packages WHERE name = 'tools'");
  for (auto [version, owner] :
       {std::pair<int, std::string>{2, "live"}, {3, "silent"}, {4, ctx_->process_id}}) {
    exec(
        "INSERT INTO versions (package_id, version, state, created_at, reserved_by) VALUES "
        "(?, ?, 'publishing', ?, ?)",
        {package, version, now, owner});
  }
  auto reserved = [&] {
    std::vector<std::int64_t> out;
    auto rows =
        ctx_->db->Query("SELECT version FROM versions WHERE state = 'publishing' ORDER BY version");
    EXPECT_TRUE(rows.ok());
    for (const auto& r : *rows) out.push_back(r.Int(0));
    return out;
  };
  // This process is mid-upload: its own reservation stays, as does the live one's.
  ctx_->reserving = 1;
  ASSERT_TRUE(RecoverVersions(*ctx_).ok());
  EXPECT_EQ(reserved(), (std::vector<std::int64_t>{2, 4}));
  // Its upload ended without recording version 4 (a failure that could not give the
  // number back): recovered here too.
  ctx_->reserving = 0;
  ASSERT_TRUE(RecoverVersions(*ctx_).ok());
  EXPECT_EQ(reserved(), (std::vector<std::int64_t>{2}));
  // The live process falls silent for longer than the ttl.
  clock_.Advance(ctx_->config.lease_ttl + milliseconds(1001));
  Heartbeat(*ctx_);  // this one is still here
  ASSERT_TRUE(RecoverVersions(*ctx_).ok());
  EXPECT_EQ(reserved(), (std::vector<std::int64_t>{}));
  EXPECT_EQ(*ctx_->db->QueryInt("SELECT MAX(version) FROM versions"), 1);

  // A lease: taken, renewed by its holder, refused to another until it lapses.
  EXPECT_TRUE(HoldLease(*ctx_, "housekeeping"));
  EXPECT_TRUE(HoldLease(*ctx_, "housekeeping"));
  const std::string me = ctx_->process_id;
  ctx_->process_id = "other";
  EXPECT_FALSE(HoldLease(*ctx_, "housekeeping"));
  clock_.Advance(ctx_->config.lease_ttl + milliseconds(1));
  EXPECT_TRUE(HoldLease(*ctx_, "housekeeping"));
  ctx_->process_id = me;
  EXPECT_FALSE(HoldLease(*ctx_, "housekeeping"));
}

}  // namespace
}  // namespace depot::site
