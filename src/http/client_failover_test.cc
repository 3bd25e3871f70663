// http::Client with several base URLs (one site's processes, docs/scale-out.md):
// which answers move it to the next URL, when the request is sent again there, and
// that a URL that failed backs off on the clock. Real servers on loopback; a "dead"
// URL is a port nothing listens on.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <memory>
#include <string>

#include "core/clock.h"
#include "http/client.h"
#include "http/server.h"

namespace depot::http {
namespace {

// Answers every request with `status`, counting what it handled.
class CountingHandler : public Handler {
 public:
  explicit CountingHandler(std::string name) : name_(std::move(name)) {}
  Admission Admit(const Request&) override { return {1u << 20, std::nullopt}; }
  void Handle(Request& req, Response* resp) override {
    ++handled;
    *resp = Response::Text(status.load(), name_ + " " + req.method);
  }
  std::atomic<int> status{200};
  std::atomic<int> handled{0};

 private:
  std::string name_;
};

class ClientFailoverTest : public ::testing::Test {
 protected:
  void SetUp() override {
    for (auto* h : {&a_, &b_}) {
      auto s = Server::Start(h, ServerOptions{});
      ASSERT_TRUE(s.ok()) << s.status().ToString();
      servers_.push_back(std::move(*s));
    }
    // A port bound but never listened on: connecting is refused, and no other
    // process can take it while the test runs.
    dead_fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(::bind(dead_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
    socklen_t len = sizeof(addr);
    ASSERT_EQ(::getsockname(dead_fd_, reinterpret_cast<sockaddr*>(&addr), &len), 0);
    dead_ = "http://127.0.0.1:" + std::to_string(ntohs(addr.sin_port));
  }
  void TearDown() override {
    if (dead_fd_ >= 0) ::close(dead_fd_);
  }
  std::unique_ptr<Client> Make(std::vector<std::string> urls) {
    ClientOptions o;
    o.fallback_urls.assign(urls.begin() + 1, urls.end());
    o.clock = &clock_;
    o.connect_timeout_s = 5;
    auto c = Client::Create(urls.front(), o);
    EXPECT_TRUE(c.ok()) << c.status().ToString();
    return std::move(*c);
  }
  std::string A() const { return servers_[0]->url(); }
  std::string B() const { return servers_[1]->url(); }

  core::ManualClock clock_{std::chrono::system_clock::now()};
  CountingHandler a_{"a"}, b_{"b"};
  std::vector<std::unique_ptr<Server>> servers_;
  std::string dead_;
  int dead_fd_ = -1;
};

TEST_F(ClientFailoverTest, AnUnreachableUrlHandsEvenAPostToTheNextWhichStaysCurrent) {
  auto c = Make({dead_, A()});
  auto r = c->Do("POST", "/x", "report");  // nothing was sent: safe to send again
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->body, "a POST");
  EXPECT_EQ(c->base_url(), A());
  r = c->Do("GET", "/x");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(a_.handled.load(), 2);
}

TEST_F(ClientFailoverTest, A503IsNotProcessedAndIsSentToTheNext) {
  a_.status = 503;
  auto c = Make({A(), B()});
  auto r = c->Do("POST", "/x", "report");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body, "b POST");
  EXPECT_EQ(c->base_url(), B());
}

TEST_F(ClientFailoverTest, APostThatMayHaveBeenAppliedIsNotSentTwice) {
  a_.status = 504;  // a balancer's timeout: the backend may have applied it
  auto c = Make({A(), B()});
  auto r = c->Do("POST", "/x", "report");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->status, 504);
  EXPECT_EQ(b_.handled.load(), 0);
  // ...but the caller's retry goes to the next URL.
  EXPECT_EQ(c->base_url(), B());
  // A GET is sent again at once.
  c = Make({A(), B()});
  r = c->Do("GET", "/x");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->body, "b GET");
}

TEST_F(ClientFailoverTest, OtherAnswersAreTheCallersAndMoveNothing) {
  a_.status = 404;
  auto c = Make({A(), B()});
  auto r = c->Do("GET", "/x");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->status, 404);
  EXPECT_EQ(c->base_url(), A());
  EXPECT_EQ(b_.handled.load(), 0);
}

TEST_F(ClientFailoverTest, AFailedUrlBacksOffAndEveryUrlDownIsAnError) {
  auto c = Make({A(), B()});
  b_.status = 503;
  a_.status = 503;
  auto r = c->Do("GET", "/x");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->status, 503);  // both tried once, the last answer returned
  a_.status = 200;
  b_.status = 200;
  // Both back off: the current one is asked, no second one.
  const int before = a_.handled.load() + b_.handled.load();
  r = c->Do("GET", "/x");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(a_.handled.load() + b_.handled.load(), before + 1);
  // The current one fails again: the other is still backing off, so no move...
  const std::string at = c->base_url();
  (at == A() ? a_ : b_).status = 503;
  r = c->Do("GET", "/x");
  EXPECT_EQ(c->base_url(), at);
  // ...until its backoff is over.
  clock_.Advance(std::chrono::minutes(2));
  r = c->Do("GET", "/x");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->status, 200);
  EXPECT_NE(c->base_url(), at);
}

}  // namespace
}  // namespace depot::http
