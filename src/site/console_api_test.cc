// The API the web console adds (console_api.cc): who is signed in, the change
// stream, rule previews, the site's processes.
#include "site/api.h"
#include "site/site_fixture.h"

namespace depot::site {
namespace {

// One request to the change stream, handled as the server would hand it over.
http::Response Changes(SiteApi& api, const std::string& token, std::int64_t since,
                       bool timed_out = false) {
  http::Request req;
  req.method = "GET";
  req.path = "/api/v1/changes";
  req.query = "since=" + std::to_string(since) + "&wait=25";
  req.target = req.path + "?" + req.query;
  req.headers.push_back({"Authorization", "Bearer " + token});
  req.received = std::chrono::steady_clock::now();
  req.poll_round = timed_out ? 1 : 0;
  req.poll_timed_out = timed_out;
  http::Response resp;
  api.Handle(req, &resp);
  return resp;
}

TEST_P(SiteTest, TheChangeStreamParksUntilActivityPassesTheCallersRevision) {
  SiteContext* ctx = site_->context();
  SiteApi api(ctx);
  const std::string viewer =
      Call(admin_.get(), "POST", "/api/v1/tokens", {{"role", "read-only"}}, 201)["token"];
  Json who = Call(Client(viewer).get(), "GET", "/api/v1/whoami");
  EXPECT_EQ(who["role"], "read-only");
  EXPECT_EQ(who["site"], "TST");
  const std::int64_t rev = who["revision"];
  ASSERT_GT(rev, 0);

  // Nothing newer: parked on the console topic from its current sequence number.
  const std::uint64_t seq = ctx->server->Sequence(kConsoleTopic);
  http::Response parked = Changes(api, viewer, rev);
  ASSERT_TRUE(parked.wait.has_value()) << parked.body;
  EXPECT_EQ(parked.wait->topic, kConsoleTopic);
  EXPECT_EQ(parked.wait->seen, seq);
  // Reading changes nothing a console shows.
  Call(admin_.get(), "GET", "/api/v1/status");
  EXPECT_EQ(ctx->console_revision.load(), rev);
  EXPECT_EQ(ctx->server->Sequence(kConsoleTopic), seq);

  // A change through the API (here a token) wakes the topic and answers the poll.
  Call(admin_.get(), "POST", "/api/v1/tokens", {{"role", "operator"}}, 201);
  EXPECT_GT(ctx->server->Sequence(kConsoleTopic), seq);
  http::Response woken = Changes(api, viewer, rev);
  ASSERT_FALSE(woken.wait.has_value());
  Json j = Json::parse(woken.body);
  EXPECT_TRUE(j["changed"]);
  EXPECT_GT(j["revision"].get<std::int64_t>(), rev);

  // So does activity no request made (a DP's health, found by a probe).
  const std::int64_t now = j["revision"];
  ctx->Activity();
  EXPECT_GT(ctx->console_revision.load(), now);

  // A revision from another process that counts ahead: parked, and when the wait
  // ends the answer is this process's own count, unchanged, for the caller to adopt.
  const std::int64_t ahead = ctx->console_revision.load() + 1'000'000;
  EXPECT_TRUE(Changes(api, viewer, ahead).wait.has_value());
  Json late = Json::parse(Changes(api, viewer, ahead, true).body);
  EXPECT_FALSE(late["changed"]);
  EXPECT_LT(late["revision"].get<std::int64_t>(), ahead);

  // Garbage is refused, naming the parameter.
  http::Request bad;
  bad.method = "GET";
  bad.path = "/api/v1/changes";
  bad.query = "since=yesterday";
  bad.headers.push_back({"Authorization", "Bearer " + viewer});
  http::Response refused;
  api.Handle(bad, &refused);
  EXPECT_EQ(refused.status, 400);
  EXPECT_NE(refused.body.find("since"), std::string::npos);
}

TEST_P(SiteTest, ARulePreviewAndTheClientSearchCountWhatTheyMatch) {
  const std::string enroll =
      Call(admin_.get(), "POST", "/api/v1/tokens", {{"role", "enroll"}, {"uses", 3}}, 201)["token"];
  auto agent = Client(enroll);
  for (const char* name : {"web-1", "web-2", "db-1"}) {
    Call(agent.get(), "POST", "/api/v1/agent/enroll",
         {{"name", name}, {"attributes", {{"os", {"linux"}}}}}, 201);
  }
  const std::string viewer =
      Call(admin_.get(), "POST", "/api/v1/tokens", {{"role", "read-only"}}, 201)["token"];
  auto look = Client(viewer);
  Json r = Call(look.get(), "POST", "/api/v1/rules/preview",
                {{"rule", R"(name in ["web-1", "web-2"] and os == "linux")"}});
  EXPECT_TRUE(r["valid"]);
  EXPECT_EQ(r["count"], 2);
  ASSERT_EQ(r["clients"].size(), 2u);
  EXPECT_EQ(r["clients"][0]["name"], "web-1");
  Json none = Call(look.get(), "POST", "/api/v1/rules/preview", {{"rule", R"(os == "windows")"}});
  EXPECT_EQ(none["count"], 0);
  Json half = Call(look.get(), "POST", "/api/v1/rules/preview", {{"rule", "name == "}});
  EXPECT_FALSE(half["valid"]);
  EXPECT_FALSE(half["error"].get<std::string>().empty());
  // Nothing was stored.
  EXPECT_EQ(Call(admin_.get(), "GET", "/api/v1/collections")["collections"].size(), 0u);
  // The clients list searches at the site and sends only what is asked for.
  Json web = Call(look.get(), "GET", "/api/v1/clients?q=WEB");
  EXPECT_EQ(web["matched"], 2);
  EXPECT_EQ(web["total"], 3);
  Json one = Call(look.get(), "GET", "/api/v1/clients?q=os%3Dlinux&limit=1");
  EXPECT_EQ(one["matched"], 3);
  ASSERT_EQ(one["clients"].size(), 1u);
  EXPECT_EQ(one["clients"][0]["name"], "db-1");
  EXPECT_EQ(Call(look.get(), "GET", "/api/v1/clients?q=os%3Dwin")["matched"], 0);
  Call(look.get(), "GET", "/api/v1/clients?limit=0", nullptr, 400);
  // A field the preview does not take is an error, not ignored.
  Call(look.get(), "POST", "/api/v1/rules/preview", {{"rule", "os == \"linux\""}, {"save", true}},
       400);
}

TEST_P(SiteTest, TheProcessesOfTheSiteAreListedWithThisOneMarked) {
  Json p = Call(admin_.get(), "GET", "/api/v1/processes");
  ASSERT_EQ(p["processes"].size(), 1u);
  EXPECT_TRUE(p["processes"][0]["this"]);
  EXPECT_EQ(p["processes"][0]["pid"], static_cast<std::int64_t>(::getpid()));
}

}  // namespace
}  // namespace depot::site
