// In-process tests of the site's API: a real site on loopback, real SQLite, a real
// content library, driven through the HTTP client like the CLI drives it.
#include "site/site.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <set>
#include <thread>

#include "core/testing.h"
#include "http/client.h"
#include "site/context.h"
#include "site/distribution.h"
#include "site/site_fixture.h"
#include "store/chunk_batch.h"

namespace depot::site {
namespace {

INSTANTIATE_TEST_SUITE_P(Backends, SiteTest, ::testing::ValuesIn(catalog::TestDialects()),
                         catalog::DialectTestName);

// A site's catalog in PostgreSQL must be an empty database: one that holds a site is
// refused before anything is written, naming the database but not its password.
TEST(SiteInitTest, APostgresCatalogHoldingASiteIsRefusedBeforeAnythingIsWritten) {
  testing::TempDir dir;
  const std::string db = TestCatalog(catalog::Dialect::kPostgres, dir);
  ASSERT_FALSE(db.empty());
  InitOptions o;
  o.data_dir = dir.Sub("a");
  o.code = "TST";
  o.listen = "127.0.0.1:0";
  o.db = db;
  auto first = InitSite(core::Env::Default(), core::Clock::Real(), o);
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  o.data_dir = dir.Sub("b");
  auto again = InitSite(core::Env::Default(), core::Clock::Real(), o);
  ASSERT_FALSE(again.ok());
  EXPECT_NE(again.status().message().find("already holds a depot catalog"), std::string::npos)
      << again.status().ToString();
  EXPECT_FALSE(*core::Env::Default()->Exists(o.data_dir)) << "nothing written";
}

using Json = nlohmann::json;

TEST_P(SiteTest, HealthMetricsAndRepositoryArePublic) {
  auto anon = Client("");
  auto r = anon->Do("GET", "/healthz");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->status, 200);
  r = anon->Do("GET", "/metrics");
  ASSERT_TRUE(r.ok());
  EXPECT_NE(r->body.find("depot_site_http_requests_total"), std::string::npos);
  r = anon->Do("GET", "/repo/metadata/1.root.json");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->status, 200);
  r = anon->Do("GET", "/repo/metadata/../../catalog.db");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->status, 404);
}

struct Endpoint {
  const char* method;
  const char* target;
  const char* least;  // weakest role that passes
};
// Every API endpoint with the weakest role that may call it.
const Endpoint kEndpoints[] = {
    {"POST", "/api/v1/tokens", "admin"},
    {"GET", "/api/v1/tokens", "admin"},
    {"DELETE", "/api/v1/tokens/999", "admin"},
    {"POST", "/api/v1/chunks/missing", "operator"},
    {"POST", "/api/v1/chunks", "operator"},
    {"POST", "/api/v1/chunks/commit", "operator"},
    {"POST", "/api/v1/packages/x/versions", "operator"},
    {"GET", "/api/v1/packages", "read-only"},
    {"GET", "/api/v1/packages/x", "read-only"},
    {"DELETE", "/api/v1/packages/x", "operator"},
    {"GET", "/api/v1/settings", "read-only"},
    {"POST", "/api/v1/dps", "admin"},
    {"GET", "/api/v1/dps", "read-only"},
    {"GET", "/api/v1/dps/x", "read-only"},
    {"DELETE", "/api/v1/dps/x", "admin"},
    {"PATCH", "/api/v1/dps/x", "admin"},
    {"POST", "/api/v1/distributions", "operator"},
    {"GET", "/api/v1/clients", "read-only"},
    {"GET", "/api/v1/clients/x", "read-only"},
    {"POST", "/api/v1/collections", "operator"},
    {"GET", "/api/v1/collections", "read-only"},
    {"GET", "/api/v1/collections/x", "read-only"},
    {"DELETE", "/api/v1/collections/x", "operator"},
    {"PATCH", "/api/v1/collections/x", "operator"},
    {"POST", "/api/v1/deployments", "operator"},
    {"GET", "/api/v1/deployments", "read-only"},
    {"GET", "/api/v1/deployments/1", "read-only"},
    {"POST", "/api/v1/deployments/1/cancel", "operator"},
    {"GET", "/api/v1/messages", "read-only"},
    {"GET", "/api/v1/status", "read-only"},
    {"GET", "/api/v1/dp/assignment", "dp"},
    {"POST", "/api/v1/dp/report", "dp"},
    {"GET", "/api/v1/dp/trust", "dp"},
    {"POST", "/api/v1/dp/messages", "dp"},
    {"POST", "/api/v1/agent/enroll", "enroll"},
    {"GET", "/api/v1/agent/policy", "agent"},
    {"POST", "/api/v1/agent/attributes", "agent"},
    {"POST", "/api/v1/agent/status", "agent"},
};

TEST_P(SiteTest, EveryApiEndpointRefusesMissingWrongAndUnderPrivilegedCredentials) {
  Json ro = Call(admin_.get(), "POST", "/api/v1/tokens", {{"role", "read-only"}}, 201);
  Json op = Call(admin_.get(), "POST", "/api/v1/tokens", {{"role", "operator"}}, 201);
  Json en = Call(admin_.get(), "POST", "/api/v1/tokens", {{"role", "enroll"}, {"uses", 5}}, 201);
  auto none = Client("");
  auto wrong = Client("depot_admin_" + std::string(64, '0'));
  auto read_only = Client(ro["token"]);
  auto oper = Client(op["token"]);
  auto enroll = Client(en["token"]);
  for (const auto& e : kEndpoints) {
    std::string what = std::string(e.method) + " " + e.target;
    std::string body =
        std::string(e.method) == "POST" || std::string(e.method) == "PATCH" ? "{}" : "";
    auto r = none->Do(e.method, e.target, body);
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(r->status, 401) << what << " without credentials";
    r = wrong->Do(e.method, e.target, body);
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(r->status, 401) << what << " with an unknown token";
    std::string least = e.least;
    // Every credential weaker than (or unrelated to) the least one is refused.
    std::vector<std::pair<std::string, http::Client*>> weaker;
    if (least == "admin")
      weaker = {{"operator", oper.get()}, {"read-only", read_only.get()}, {"enroll", enroll.get()}};
    if (least == "operator") weaker = {{"read-only", read_only.get()}, {"enroll", enroll.get()}};
    if (least == "read-only") weaker = {{"enroll", enroll.get()}};
    if (least == "dp" || least == "agent")
      weaker = {{"admin", admin_.get()}, {"enroll", enroll.get()}};
    if (least == "enroll") weaker = {{"admin", admin_.get()}, {"read-only", read_only.get()}};
    for (auto& [name, c] : weaker) {
      r = c->Do(e.method, e.target, body);
      ASSERT_TRUE(r.ok());
      EXPECT_EQ(r->status, 403) << what << " with a " << name << " token: " << r->body;
    }
  }
}

TEST_P(SiteTest, RevokedAndExpiredTokensStopWorkingAtOnce) {
  Json t =
      Call(admin_.get(), "POST", "/api/v1/tokens", {{"role", "read-only"}, {"name", "ci"}}, 201);
  auto c = Client(t["token"]);
  Call(c.get(), "GET", "/api/v1/packages");
  Call(admin_.get(), "DELETE", "/api/v1/tokens/" + std::to_string(t["id"].get<int>()));
  auto r = c->Do("GET", "/api/v1/packages");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->status, 401);
  EXPECT_NE(r->body.find("revoked"), std::string::npos);
  Json e = Call(admin_.get(), "POST", "/api/v1/tokens", {{"role", "enroll"}, {"uses", 1}}, 201);
  auto enroll = Client(e["token"]);
  Call(enroll.get(), "POST", "/api/v1/agent/enroll", {{"name", "pc1"}}, 201);
  r = enroll->Do("POST", "/api/v1/agent/enroll", Json{{"name", "pc2"}}.dump());
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->status, 401);
  EXPECT_NE(r->body.find("no uses left"), std::string::npos) << r->body;
}

// The DP assignment long poll, on the handler itself (the server parks and wakes
// requests as a Response::Wait asks: http/server_test.cc).
TEST_P(SiteTest, AssignmentLongPollParksForWhatIsLeftOfItsWaitThenAnswers304) {
  Call(admin_.get(), "POST", "/api/v1/dps", {{"name", "dp1"}, {"url", "http://127.0.0.1:9"}}, 201);
  SiteContext* ctx = site_->context();
  const std::int64_t dp = *ctx->db->QueryInt("SELECT id FROM dps WHERE name = 'dp1'");
  // A request received `age` ago, seen by the handler for the first time or, when
  // `timed_out`, again after its wait ended without a change.
  auto ask = [&](const std::string& etag, const std::string& query, std::chrono::seconds age,
                 bool timed_out) {
    http::Request req;
    req.method = "GET";
    req.path = "/api/v1/dp/assignment";
    req.query = query;
    req.received = std::chrono::steady_clock::now() - age;
    req.poll_round = timed_out ? 1 : 0;
    req.poll_timed_out = timed_out;
    if (!etag.empty()) req.headers.push_back({"if-none-match", etag});
    http::Response resp;
    HandleAssignment(*ctx, dp, req, &resp);
    return resp;
  };
  http::Response first = ask("", "wait=60", std::chrono::seconds(0), false);
  EXPECT_EQ(first.status, 200);
  EXPECT_FALSE(first.wait.has_value());
  ASSERT_NE(first.GetHeader("etag"), nullptr);
  const std::string etag = *first.GetHeader("etag");

  // Nothing changed: parked on the assignments topic for what is left of `wait`, from
  // the topic's current sequence number (any change from now on wakes it).
  const std::uint64_t seq = ctx->server->Sequence("assignments");
  http::Response parked = ask(etag, "wait=60", std::chrono::seconds(20), false);
  ASSERT_TRUE(parked.wait.has_value());
  EXPECT_EQ(parked.wait->topic, "assignments");
  EXPECT_EQ(parked.wait->seen, seq);
  EXPECT_LE(parked.wait->timeout, std::chrono::seconds(40));
  EXPECT_GT(parked.wait->timeout, std::chrono::seconds(30));
  // `wait` is at most 120 s.
  http::Response capped = ask(etag, "wait=100000", std::chrono::seconds(0), false);
  ASSERT_TRUE(capped.wait.has_value());
  EXPECT_LE(capped.wait->timeout, std::chrono::seconds(120));
  // Its wait over, unchanged: 304 with the ETag. So too a request whose wait passed
  // before the handler saw it.
  for (const http::Response& r : {ask(etag, "wait=60", std::chrono::seconds(60), true),
                                  ask(etag, "wait=1", std::chrono::seconds(2), false)}) {
    EXPECT_EQ(r.status, 304);
    EXPECT_FALSE(r.wait.has_value());
    ASSERT_NE(r.GetHeader("etag"), nullptr);
    EXPECT_EQ(*r.GetHeader("etag"), etag);
  }
  // A change moves the topic past what the parked poll saw.
  Call(admin_.get(), "DELETE", "/api/v1/dps/dp1");
  EXPECT_GT(ctx->server->Sequence("assignments"), seq);
}

TEST_P(SiteTest, BadInputIsAClearErrorAndChangesNothing) {
  auto r = admin_->Do("POST", "/api/v1/dps", "{not json");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->status, 400);
  EXPECT_NE(r->body.find("not valid JSON"), std::string::npos);
  r = admin_->Do("POST", "/api/v1/dps",
                 Json{{"name", "dp1"}, {"url", "http://x"}, {"colour", "red"}}.dump());
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->status, 400);
  EXPECT_NE(r->body.find("unknown field `colour`"), std::string::npos) << r->body;
  r = admin_->Do("POST", "/api/v1/dps", Json{{"name", "../etc"}, {"url", "http://x"}}.dump());
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->status, 400);
  r = admin_->Do("POST", "/api/v1/dps", Json{{"name", "dp1"}, {"url", "ftp://x"}}.dump());
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->status, 400);
  std::string deep(100, '[');
  r = admin_->Do("POST", "/api/v1/dps", deep);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->status, 400);
  r = admin_->Do("POST", "/api/v1/dps", std::string(2 << 20, ' '));
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->status, 413) << r->body;
  EXPECT_EQ(Call(admin_.get(), "GET", "/api/v1/dps")["dps"].size(), 0u);
  r = admin_->Do("GET", "/api/v1/nothing-here");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->status, 404);
}

}  // namespace
}  // namespace depot::site

#include <cstring>

#include "core/sha256.h"
#include "store/chunk_store.h"
#include "store/manifest.h"
#include "store/snapshot.h"

namespace depot::site {
namespace {

// Uploads a snapshot's chunks through the API and returns its manifest draft.
store::Manifest UploadTree(SiteTest* t, http::Client* c, const std::string& src,
                           const std::string& staging) {
  store::ChunkStore local(core::Env::Default(), staging, 1);
  EXPECT_TRUE(local.Create().ok());
  auto snap = store::Snapshot(core::Env::Default(), src, &local, {});
  EXPECT_TRUE(snap.ok());
  store::Manifest m;
  m.package_id = "0000000000000000";
  m.package_name = "tampered";
  m.version = 1;
  m.created = "2026-01-01T00:00:00Z";
  m.entries = snap->entries;
  std::string body;
  for (const auto& ref : m.UniqueChunks()) {
    auto frame = local.GetFrame(ref.id);
    EXPECT_TRUE(frame.ok());
    store::AppendChunkRecord(&body, ref.id, ref.size, *frame);
  }
  auto r = c->Do("POST", "/api/v1/chunks", body, std::string(store::kChunkBatchMediaType));
  EXPECT_TRUE(r.ok() && r->status == 200) << (r.ok() ? r->body : r.status().ToString());
  (void)t;
  return m;
}

TEST_P(SiteTest, ManifestsThatDisagreeWithTheirChunksAreNotSigned) {
  testing::WriteFileOrDie(dir_.Sub("src/big.bin"), testing::RandomData(700000, 5));
  testing::WriteFileOrDie(dir_.Sub("src/small.txt"), "hello");
  store::Manifest m = UploadTree(this, admin_.get(), dir_.Sub("src"), dir_.Sub("staging"));
  // The client's "that was all": the group commit starts, the answer does not wait.
  EXPECT_EQ(Call(admin_.get(), "POST", "/api/v1/chunks/commit", Json::object(), 202)["committing"],
            true);
  Call(admin_.get(), "POST", "/api/v1/chunks/commit", Json{{"chunks", 3}},
       400);  // it takes no fields
  auto post = [&](const store::Manifest& man) {
    auto bytes = store::SerializeManifest(man);
    EXPECT_TRUE(bytes.ok()) << bytes.status().ToString();
    if (!bytes.ok()) return http::ClientResponse{};
    auto r = admin_->Do("POST", "/api/v1/packages/tampered/versions?create=1", *bytes);
    EXPECT_TRUE(r.ok());
    return r.ok() ? *r : http::ClientResponse{};
  };
  // A chunk listed with the wrong size.
  store::Manifest bad_size = m;
  for (auto& e : bad_size.entries) {
    if (e.path == "big.bin") {
      e.chunks[0].size += 1;
      e.size += 1;
    }
  }
  auto r = post(bad_size);
  EXPECT_EQ(r.status, 422) << r.body;
  // A chunk the site does not have.
  store::Manifest missing = m;
  for (auto& e : missing.entries) {
    if (e.path == "small.txt") {
      e.chunks[0].id = core::Sha256::Hash("never uploaded");
      e.sha256 = e.chunks[0].id;
    }
  }
  r = post(missing);
  EXPECT_EQ(r.status, 404) << r.body;
  EXPECT_EQ(Call(admin_.get(), "GET", "/api/v1/packages")["packages"].size(), 0u)
      << "nothing was created";
  r = post(m);
  EXPECT_EQ(r.status, 201) << r.body;
}

TEST_P(SiteTest, MissingChunkAnswersFollowTheLibraryBeforeAndAfterItsFilterIsLoaded) {
  testing::WriteFileOrDie(dir_.Sub("src/big.bin"), testing::RandomData(700000, 6));
  testing::WriteFileOrDie(dir_.Sub("src/small.txt"), "hello again");
  store::Manifest m = UploadTree(this, admin_.get(), dir_.Sub("src"), dir_.Sub("staging"));
  auto bytes = store::SerializeManifest(m);
  ASSERT_TRUE(bytes.ok());
  auto r = admin_->Do("POST", "/api/v1/packages/tampered/versions?create=1", *bytes);
  ASSERT_TRUE(r.ok() && r->status == 201) << (r.ok() ? r->body : r.status().ToString());
  std::vector<std::string> stored;
  for (const auto& ref : m.UniqueChunks()) stored.push_back(core::DigestHex(ref.id));
  ASSERT_GE(stored.size(), 3u);
  const std::string never = core::DigestHex(core::Sha256::Hash("never uploaded"));
  auto missing = [&](const std::vector<std::string>& ids) {
    Json answer = Call(admin_.get(), "POST", "/api/v1/chunks/missing", {{"chunks", ids}});
    std::set<std::string> out;
    for (const auto& id : answer["missing"]) out.insert(id.get<std::string>());
    return out;
  };
  auto filter_ready = [&] {
    for (int i = 0; i < 1000; ++i) {
      auto metrics = Client("")->Do("GET", "/metrics");
      if (metrics.ok() &&
          metrics->body.find("depot_site_chunk_filter_ready 1") != std::string::npos)
        return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return false;
  };
  ASSERT_TRUE(filter_ready());
  std::vector<std::string> ask = stored;
  ask.push_back(never);
  EXPECT_EQ(missing(ask), std::set<std::string>{never});
  // A chunk deleted behind the site's back (an operator, a disk repair): missing, though
  // the filter saw it arrive.
  const std::string library = dir_.Sub("site/library/repo/chunks/");
  ASSERT_TRUE(
      core::Env::Default()->Remove(library + stored[0].substr(0, 2) + "/" + stored[0]).ok());
  EXPECT_EQ(missing(ask), (std::set<std::string>{never, stored[0]}));
  // After a restart the filter is loaded from the library: the same answers, before and
  // after it is ready.
  site_->Stop();
  site_.reset();
  auto site = Site::Open(core::Env::Default(), core::Clock::Real(), dir_.Sub("site"));
  ASSERT_TRUE(site.ok()) << site.status().ToString();
  site_ = std::move(*site);
  ASSERT_TRUE(site_->Start().ok());
  admin_ = Client(admin_token_);
  EXPECT_EQ(missing(ask), (std::set<std::string>{never, stored[0]}));
  ASSERT_TRUE(filter_ready());
  EXPECT_EQ(missing(ask), (std::set<std::string>{never, stored[0]}));
}

}  // namespace
}  // namespace depot::site
