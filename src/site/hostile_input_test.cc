// What a client may not get the site to accept: bodies before credentials, JSON that
// two parsers would read differently, numbers and filters out of range, tokens born
// expired, reports about other clients' deployments.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "site/auth.h"
#include "site/context.h"
#include "site/site_fixture.h"

namespace depot::site {
namespace {

// The answer to `head` (request line and headers, no body) sent raw: what a client
// gets before it has sent a byte of the body it announced.
std::string AnswerToHeadersAlone(std::uint16_t port, const std::string& head) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  EXPECT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  EXPECT_EQ(::send(fd, head.data(), head.size(), MSG_NOSIGNAL), static_cast<ssize_t>(head.size()));
  std::string out;
  char buf[4096];
  for (ssize_t n; (n = ::read(fd, buf, sizeof(buf))) > 0;)
    out.append(buf, static_cast<std::size_t>(n));
  ::close(fd);
  return out;
}

std::uint16_t PortOf(const std::string& url) {
  return static_cast<std::uint16_t>(std::stoi(url.substr(url.rfind(':') + 1)));
}

TEST_P(SiteTest, AnnouncedBodiesAreRefusedFromTheHeadersBeforeTheyAreRead) {
  Json ro = Call(admin_.get(), "POST", "/api/v1/tokens", {{"role", "read-only"}}, 201);
  const std::uint16_t port = PortOf(site_->url());
  const std::string post =
      "POST /api/v1/packages/x/versions HTTP/1.1\r\nHost: x\r\n"
      "Content-Type: application/json\r\nContent-Length: 268435456\r\n";
  std::string none = AnswerToHeadersAlone(port, post + "\r\n");
  EXPECT_EQ(none.rfind("HTTP/1.1 401", 0), 0u) << none;
  EXPECT_NE(none.find("WWW-Authenticate: Bearer"), std::string::npos) << none;
  std::string weak = AnswerToHeadersAlone(
      port, post + "Authorization: Bearer " + ro["token"].get<std::string>() + "\r\n\r\n");
  EXPECT_EQ(weak.rfind("HTTP/1.1 403", 0), 0u) << weak;
  std::string nowhere = AnswerToHeadersAlone(
      port, "POST /api/v1/nothing HTTP/1.1\r\nHost: x\r\nContent-Length: 268435456\r\n\r\n");
  EXPECT_EQ(nowhere.rfind("HTTP/1.1 404", 0), 0u) << nowhere;
  std::string repo = AnswerToHeadersAlone(
      port,
      "PUT /repo/metadata/1.root.json HTTP/1.1\r\nHost: x\r\nContent-Length: 9999999\r\n\r\n");
  EXPECT_EQ(repo.rfind("HTTP/1.1 405", 0), 0u) << repo;
}

TEST_P(SiteTest, JsonWithARepeatedKeyOrAnIntegerPastItsRangeIsRefused) {
  auto r = admin_->Do("POST", "/api/v1/dps", R"({"name":"dp1","url":"http://a","name":"dp2"})");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->status, 400);
  EXPECT_NE(r->body.find("`name` twice"), std::string::npos) << r->body;
  r = admin_->Do("POST", "/api/v1/tokens", R"({"role":"enroll","uses":18446744073709551615})");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->status, 400) << r->body;
  EXPECT_NE(r->body.find("`uses` must be from"), std::string::npos) << r->body;
  EXPECT_EQ(Call(admin_.get(), "GET", "/api/v1/dps")["dps"].size(), 0u);
  // The same key in different objects is fine.
  Call(admin_.get(), "POST", "/api/v1/dps", Json::parse(R"({"name":"dp1","url":"http://a"})"), 201);
}

TEST_P(SiteTest, ATokenThatWouldBeBornExpiredIsRefused) {
  for (const char* when : {"2000-01-01T00:00:00Z", "0s"}) {
    auto r =
        admin_->Do("POST", "/api/v1/tokens", Json{{"role", "read-only"}, {"expires", when}}.dump());
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(r->status, 400) << when;
    EXPECT_NE(r->body.find("not in the future"), std::string::npos) << r->body;
  }
  Call(admin_.get(), "POST", "/api/v1/tokens", {{"role", "read-only"}, {"expires", "1h"}}, 201);
}

TEST_P(SiteTest, MessageFiltersThatAreNotNumbersAreRefusedNotIgnored) {
  for (const char* q : {"deployment=abc", "code=1x", "version=-1", "limit=0", "limit=100001",
                        "limit=", "since=yesterday"}) {
    auto r = admin_->Do("GET", std::string("/api/v1/messages?") + q);
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(r->status, 400) << q << ": " << r->body;
  }
  Call(admin_.get(), "GET", "/api/v1/messages?limit=5&code=1001&since=1h");
}

// A catalog that runs `after_read` once, right after the next read transaction
// (fault injection: the moment between a token lookup's catalog read and its cache
// write).
class InterleavingDb final : public catalog::Db {
 public:
  explicit InterleavingDb(std::unique_ptr<catalog::Db> inner) : inner_(std::move(inner)) {}
  catalog::Dialect dialect() const override { return inner_->dialect(); }
  std::string Describe() const override { return inner_->Describe(); }
  core::Status Transaction(const std::function<core::Status(catalog::Tx&)>& fn,
                           Mode mode) override {
    core::Status s = inner_->Transaction(fn, mode);
    if (mode == Mode::kRead && after_read) std::exchange(after_read, nullptr)();
    return s;
  }
  // The site subscribed to the inner catalog's notifications.
  core::Status Notify(std::string_view message) override { return inner_->Notify(message); }
  core::Result<std::unique_ptr<catalog::NamedLock>> Lock(std::string_view name) override {
    return inner_->Lock(name);
  }
  std::function<void()> after_read;

 private:
  std::unique_ptr<catalog::Db> inner_;
};

// Finding 7: a request that read a token from the catalog just before its revocation
// committed put it in the cache afterwards, where it kept working for seconds.
TEST(TokenCacheTest, ALookupRacingARevocationIsAnsweredButNotCached) {
  testing::TempDir dir;
  InitOptions o;
  o.data_dir = dir.Sub("site");
  o.code = "TST";
  o.listen = "127.0.0.1:0";
  auto init = InitSite(core::Env::Default(), core::Clock::Real(), o);
  ASSERT_TRUE(init.ok()) << init.status().ToString();
  auto site = Site::Open(core::Env::Default(), core::Clock::Real(), o.data_dir);
  ASSERT_TRUE(site.ok()) << site.status().ToString();
  SiteContext& ctx = *(*site)->context();
  auto db = std::make_unique<InterleavingDb>(std::move(ctx.db));
  InterleavingDb* hooked = db.get();
  ctx.db = std::move(db);

  http::Request req;
  req.headers.push_back({"authorization", "Bearer " + init->admin_token});
  hooked->after_read = [&] {
    ASSERT_TRUE(ctx.db
                    ->Transaction([&](catalog::Tx& tx) {
                      return tx.Exec("UPDATE tokens SET revoked_at = 1").status();
                    })
                    .ok());
    ForgetCachedTokens(ctx);
  };
  auto racing = Authenticate(ctx, req);
  EXPECT_TRUE(racing.ok()) << "read before the revocation committed";
  auto next = Authenticate(ctx, req);
  ASSERT_FALSE(next.ok()) << "the revoked token was cached by the racing lookup";
  EXPECT_NE(next.status().message().find("revoked"), std::string::npos) << next.status().ToString();
}

}  // namespace
}  // namespace depot::site
