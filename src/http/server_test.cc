#include "http/server.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <thread>

#include "core/testing.h"
#include "http/client.h"
#include "http/server_fixture.h"

namespace depot::http {
namespace {

using server_testing::Connect;
using server_testing::ReadAll;
using server_testing::ServerTest;

TEST_F(ServerTest, AccessLogHasOneJsonLinePerRequest) {
  testing::TempDir dir;
  ServerOptions opts;
  opts.access_log = dir.path() + "/access.log";
  Start(opts);
  ASSERT_TRUE(client_->Do("GET", "/echo?q=%22x%22").ok());
  ASSERT_TRUE(client_->Do("POST", "/echo", "body").ok());
  ASSERT_TRUE(client_->Do("GET", "/nope").ok());
  server_->Stop();
  auto text = core::Env::Default()->ReadFile(opts.access_log, 1 << 20);
  ASSERT_TRUE(text.ok()) << text.status().ToString();
  std::vector<std::string> lines;
  for (std::size_t at = 0, nl; (nl = text->find('\n', at)) != std::string::npos; at = nl + 1) {
    lines.push_back(text->substr(at, nl - at));
  }
  ASSERT_EQ(lines.size(), 3u) << *text;
  EXPECT_NE(lines[0].find(R"("method":"GET","target":"/echo?q=%22x%22","status":200)"),
            std::string::npos)
      << lines[0];
  EXPECT_NE(lines[0].find(R"("remote":"127.0.0.1")"), std::string::npos) << lines[0];
  EXPECT_NE(lines[1].find(R"("method":"POST")"), std::string::npos) << lines[1];
  EXPECT_NE(lines[2].find(R"("status":404)"), std::string::npos) << lines[2];
}

TEST_F(ServerTest, UnwritableAccessLogIsAnErrorNamingIt) {
  ServerOptions opts;
  opts.access_log = "/nonexistent-dir/access.log";
  auto s = Server::Start(&handler_, opts);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.status().ToString().find("/nonexistent-dir/access.log"), std::string::npos);
}

TEST_F(ServerTest, GetPostQueryAndErrors) {
  Start();
  auto r = client_->Do("GET", "/echo?q=a%20b");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body, "GET  q=a b");
  r = client_->Do("POST", "/echo", "hello");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->body, "POST hello q=-");
  r = client_->Do("GET", "/space%20dir/x");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->body, "decoded");
  r = client_->Do("GET", "/nope");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->status, 404);
  core::Status s = ApiError(*r, "get /nope");
  EXPECT_TRUE(s.IsNotFound());
  EXPECT_EQ(s.message(), "get /nope: no such thing");
  EXPECT_NE(registry_.Render().find("depot_http_requests_total{code=\"2xx\"} 3"),
            std::string::npos);
}

TEST_F(ServerTest, EveryAnswerIsDatedAndTheDateParses) {
  Start();
  auto sent = std::chrono::system_clock::now();
  auto r = client_->Do("GET", "/echo");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  const std::string* date = r->GetHeader("date");
  ASSERT_NE(date, nullptr);
  auto t = ParseHttpDate(*date);
  ASSERT_TRUE(t.has_value()) << *date;
  // The time it was answered, in whole seconds: between the request and its answer
  // (less a second: the server reads the coarse clock, which may lag a tick behind).
  auto before = std::chrono::floor<std::chrono::seconds>(sent) - std::chrono::seconds(1);
  EXPECT_GE(*t, before) << *date;
  EXPECT_LE(*t, std::chrono::system_clock::now()) << *date;
  EXPECT_EQ(ParseHttpDate("Sun, 06 Nov 1994 08:49:37 GMT"),
            core::TimePoint(std::chrono::seconds(784111777)));
  for (const char* bad : {"", "Sunday, 06-Nov-94 08:49:37 GMT", "Sun, 06 Nov 1994 08:49:37 UTC",
                          "Sun, 06 Foo 1994 08:49:37 GMT", "Sun, 36 Nov 1994 08:49:37 GMT",
                          "Sun, 06 Nov 1994 25:49:37 GMT", "Sun, 06 Nov 19x4 08:49:37 GMT"}) {
    EXPECT_FALSE(ParseHttpDate(bad).has_value()) << bad;
  }
}

TEST_F(ServerTest, BodyOverTheLimitIs413AndNeverReachesTheHandler) {
  Start();
  auto r = client_->Do("POST", "/small", std::string(17, 'x'));
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->status, 413);
  EXPECT_EQ(handler_.calls.load(), 0);
  r = client_->Do("POST", "/small", std::string(16, 'x'));
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->status, 404);  // accepted, then routed
}

TEST_F(ServerTest, FileBodyWithSendfileAndHead) {
  testing::TempDir dir;
  handler_.file_path = dir.Sub("f");
  testing::WriteFileOrDie(handler_.file_path, "0123456789");
  Start();
  auto r = client_->Do("GET", "/file");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->body, "23456");
  r = client_->Do("HEAD", "/file");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->body, "");
  ASSERT_NE(r->GetHeader("content-length"), nullptr);
  EXPECT_EQ(*r->GetHeader("content-length"), "5");
}

TEST_F(ServerTest, LongPollWakesOnNotifyAndTimesOut) {
  Start();
  // Each wait is long enough that only Notify can end it with "woken": a timeout
  // answers "timeout".
  handler_.seen_for_poll = server_->Sequence("t");
  handler_.wait_ms = 60000;
  std::thread notifier([&] {
    handler_.WaitForCalls(1);
    server_->Notify("t");
  });
  auto r = client_->Do("GET", "/poll");
  notifier.join();
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->body, "woken");

  handler_.seen_for_poll = server_->Sequence("t");
  handler_.wait_ms = 100;
  r = client_->Do("GET", "/poll");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->body, "timeout");

  // A notification between the handler's look and the park is not lost.
  handler_.seen_for_poll = server_->Sequence("t");
  server_->Notify("t");
  handler_.wait_ms = 60000;
  r = client_->Do("GET", "/poll");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->body, "woken");
}

// A raw socket, to send what well-behaved clients never do.

TEST_F(ServerTest, OversizedHeadersAndGarbageAreRefused) {
  Start();
  int fd = Connect(server_->port());
  std::string req =
      "GET /echo HTTP/1.1\r\nHost: x\r\nX-Big: " + std::string(20000, 'a') + "\r\n\r\n";
  ASSERT_GT(::write(fd, req.data(), req.size()), 0);
  EXPECT_EQ(ReadAll(fd).rfind("HTTP/1.1 431", 0), 0u);
  ::close(fd);

  fd = Connect(server_->port());
  std::string junk = "NOT HTTP AT ALL\r\n\r\n";
  ASSERT_GT(::write(fd, junk.data(), junk.size()), 0);
  EXPECT_EQ(ReadAll(fd).rfind("HTTP/1.1 400", 0), 0u);
  ::close(fd);

  fd = Connect(server_->port());
  std::string traversal = "GET /a%00b HTTP/1.1\r\nHost: x\r\n\r\n";
  ASSERT_GT(::write(fd, traversal.data(), traversal.size()), 0);
  EXPECT_EQ(ReadAll(fd).rfind("HTTP/1.1 400", 0), 0u);
  ::close(fd);
  EXPECT_EQ(handler_.calls.load(), 0);
}

TEST_F(ServerTest, ConnectionLimitAnswers503) {
  ServerOptions opts;
  opts.max_connections = 1;
  Start(opts);
  ASSERT_TRUE(client_->Do("GET", "/echo").ok());  // holds the one keep-alive connection
  int fd = Connect(server_->port());
  EXPECT_EQ(ReadAll(fd).rfind("HTTP/1.1 503", 0), 0u);
  ::close(fd);
}

// Stop() waits up to shutdown_grace for connections to end, then stops the threads
// under those left: a connection still counted after Stop() is one it had to abandon.
TEST_F(ServerTest, StopClosesIdleKeepAliveConnectionsPromptly) {
  ServerOptions opts;
  opts.shutdown_grace = std::chrono::minutes(2);
  Start(opts);
  ASSERT_TRUE(client_->Do("GET", "/echo").ok());
  EXPECT_EQ(server_->active_connections(), 1u);
  server_->Stop();
  EXPECT_EQ(server_->active_connections(), 0u) << "the idle connection was closed, not abandoned";
}

TEST_F(ServerTest, StopAnswersParkedLongPolls) {
  ServerOptions opts;
  opts.shutdown_grace = std::chrono::minutes(2);
  Start(opts);
  handler_.seen_for_poll = server_->Sequence("t");
  handler_.wait_ms = 60000;
  std::string body;
  std::thread poller([&] {
    auto r = client_->Do("GET", "/poll");
    if (r.ok()) body = r->body;
  });
  handler_.WaitForCalls(1);  // parked, or about to park: Stop() must end it either way
  server_->Stop();
  poller.join();
  EXPECT_EQ(body, "timeout");  // answered, as a timeout, not woken by a change
  EXPECT_EQ(server_->active_connections(), 0u) << "answered within the grace, not abandoned";
}

TEST_F(ServerTest, StopEndsAHandlerThatWouldParkAgain) {
  // A handler that parks again after every wake-up that is not a timeout (like a
  // long poll whose state did not change) must not keep a stopping server alive.
  ServerOptions opts;
  opts.shutdown_grace = std::chrono::minutes(2);
  Start(opts);
  handler_.seen_for_poll = server_->Sequence("t");
  handler_.wait_ms = 60000;
  handler_.repark = true;
  std::thread poller([&] { client_->Do("GET", "/poll").status().IgnoreError(); });
  handler_.WaitForCalls(1);
  server_->Stop();
  poller.join();
  EXPECT_EQ(server_->active_connections(), 0u)
      << "the handler ended within the grace, not abandoned";
}

TEST_F(ServerTest, BadListenAddressesAreClearErrors) {
  ServerOptions opts;
  opts.listen = "nonsense";
  auto s = Server::Start(&handler_, opts);
  EXPECT_TRUE(s.status().IsInvalidArgument());
  Start();
  opts.listen = "127.0.0.1:" + std::to_string(server_->port());
  s = Server::Start(&handler_, opts);
  EXPECT_TRUE(s.status().IsUnavailable()) << s.status().ToString();
}

TEST(PercentTest, DecodeAndEncode) {
  EXPECT_EQ(*PercentDecode("a%2Fb%20c"), "a/b c");
  EXPECT_FALSE(PercentDecode("a%2").ok());
  EXPECT_FALSE(PercentDecode("a%zz").ok());
  EXPECT_FALSE(PercentDecode("a%00").ok());
  EXPECT_EQ(PercentEncode("a b/c"), "a%20b%2Fc");
  EXPECT_EQ(PercentEncode("a b/c", true), "a%20b/c");
}

}  // namespace
}  // namespace depot::http

namespace depot::http {
namespace {
TEST_F(ServerTest, LargeBodyOverTheLimitOnAKeptAliveConnection) {
  Start();
  ASSERT_TRUE(client_->Do("POST", "/echo", "x").ok());
  auto r = client_->Do("POST", "/small", std::string(2 << 20, ' '));
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->status, 413) << r->body;
  r = client_->Do("POST", "/echo", "after");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->body, "POST after q=-");
}
}  // namespace
}  // namespace depot::http
