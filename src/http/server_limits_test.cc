// What a hostile client can make the server hold: nothing before its handler admits
// the request from the headers, and then no more than its share.
#include <sys/resource.h>

#include "http/framing.h"
#include "http/server_fixture.h"

namespace depot::http {
namespace {

using server_testing::Connect;
using server_testing::ReadAll;
using server_testing::ServerTest;
using server_testing::WriteAll;

// Finding 1: a site sized the body from Content-Length and authenticated after
// reading it. Now the refusal comes from the headers alone: no body byte is sent
// here, and the answer arrives at once (on main it waited for the 256 MiB).
TEST_F(ServerTest, RefusalFromTheHeadersComesBeforeAnyBodyByte) {
  ServerOptions opts;
  opts.body_timeout = std::chrono::seconds(30);
  Start(opts);
  int fd = Connect(server_->port());
  ASSERT_TRUE(WriteAll(fd,
                       "POST /private HTTP/1.1\r\nHost: x\r\nContent-Length: 268435456\r\n"
                       "Content-Type: application/json\r\n\r\n"));
  std::string answer = ReadAll(fd);  // the server closes after answering
  ::close(fd);
  EXPECT_EQ(answer.rfind("HTTP/1.1 401", 0), 0u) << answer;
  EXPECT_NE(answer.find("Connection: close"), std::string::npos) << answer;
  EXPECT_EQ(handler_.calls.load(), 0);
  EXPECT_EQ(handler_.admitted.load(), 1);
}

TEST_F(ServerTest, RequestsWithoutABodyAreNotAdmittedButHandled) {
  Start();
  auto r = client_->Do("GET", "/private");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(handler_.admitted.load(), 0);
  EXPECT_EQ(handler_.calls.load(), 1);  // the handler authenticates GETs itself
}

// Finding 5: a body framed by a Transfer-Encoding other than "chunked" alone was
// taken as no body, and then ran as a second request on the connection.
TEST_F(ServerTest, TransferEncodingOtherThanChunkedIsRefusedAndNothingIsSmuggled) {
  Start();
  const std::string smuggled = "GET /echo HTTP/1.1\r\nHost: x\r\n\r\n";
  for (std::string framing :
       {"Transfer-Encoding: xchunked", "Transfer-Encoding: chunked, identity",
        "Transfer-Encoding: identity", "Transfer-Encoding: gzip, chunked",
        "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked", "Transfer-Encoding: ",
        "Transfer-Encoding: chunked\r\nContent-Length: 31", "Content-Length: 31, 31",
        "Content-Length: 31\r\nContent-Length: 31", "Content-Length: +31"}) {
    int fd = Connect(server_->port());
    ASSERT_TRUE(
        WriteAll(fd, "POST /echo HTTP/1.1\r\nHost: x\r\n" + framing + "\r\n\r\n" + smuggled));
    std::string answer = ReadAll(fd);
    ::close(fd);
    EXPECT_EQ(answer.rfind("HTTP/1.1 400", 0), 0u) << framing << "\n" << answer;
    EXPECT_EQ(answer.find("HTTP/1.1 200"), std::string::npos) << framing << "\n" << answer;
  }
  EXPECT_EQ(handler_.calls.load(), 0);
  // Chunked alone (any case) is fine.
  int fd = Connect(server_->port());
  ASSERT_TRUE(WriteAll(fd,
                       "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: Chunked\r\n"
                       "Connection: close\r\n\r\n3\r\nabc\r\n0\r\n\r\n"));
  std::string answer = ReadAll(fd);
  ::close(fd);
  EXPECT_EQ(answer.rfind("HTTP/1.1 200", 0), 0u) << answer;
  EXPECT_NE(answer.find("POST abc q=-"), std::string::npos) << answer;
}

TEST(FramingTest, WhatRfc9112Section6Allows) {
  auto error = [](std::vector<Header> h) { return FramingError(h).has_value(); };
  EXPECT_FALSE(error({}));
  EXPECT_FALSE(error({{"content-length", "0"}}));
  EXPECT_FALSE(error({{"content-length", " 12 "}}));
  EXPECT_FALSE(error({{"transfer-encoding", "chunked"}}));
  EXPECT_FALSE(error({{"transfer-encoding", "CHUNKED"}}));
  EXPECT_FALSE(error({{"transfer-encoding", " , chunked ,"}}));
  EXPECT_TRUE(error({{"transfer-encoding", "chunked, chunked"}}));
  EXPECT_TRUE(error({{"transfer-encoding", "xchunked"}}));
  EXPECT_TRUE(error({{"transfer-encoding", ","}}));
  EXPECT_TRUE(error({{"transfer-encoding", "chunked"}, {"content-length", "1"}}));
  EXPECT_TRUE(error({{"content-length", "-1"}}));
  EXPECT_TRUE(error({{"content-length", "99999999999999999999"}}));
  EXPECT_TRUE(error({{"content-length", ""}}));
}

// Finding 4: one address could take every connection. It gets its share, and the
// rest of the world still gets in.
TEST_F(ServerTest, OneAddressGetsItsShareOfConnectionsAndOthersStillGetIn) {
  ServerOptions opts;
  opts.max_connections = 100;
  opts.max_connections_per_address = 3;
  Start(opts);
  std::vector<int> held;
  for (int i = 0; i < 3; ++i) {
    held.push_back(Connect(server_->port(), "127.0.0.2"));
    ASSERT_TRUE(WriteAll(held.back(), "GET /echo HTTP/1.1\r\nHost: x\r\n\r\n"));
    char buf[512];
    ASSERT_GT(::read(held.back(), buf, sizeof(buf)), 0);  // answered: the server counts it
  }
  int over = Connect(server_->port(), "127.0.0.2");
  std::string refused = ReadAll(over);
  ::close(over);
  EXPECT_EQ(refused.rfind("HTTP/1.1 503", 0), 0u) << refused;
  EXPECT_NE(refused.find("Retry-After:"), std::string::npos) << refused;
  auto r = client_->Do("GET", "/echo");  // from 127.0.0.1
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->status, 200);
  for (int fd : held) ::close(fd);
}

// Past its address's share of body memory a client is told to come back, while
// another address is served.
TEST_F(ServerTest, BodiesOverTheAddressShareOfMemoryGet503WithRetryAfter) {
  ServerOptions opts;
  opts.max_body_memory = 1 << 20;
  opts.max_body_memory_per_address = 256 << 10;
  Start(opts);
  int fd = Connect(server_->port(), "127.0.0.3");
  ASSERT_TRUE(WriteAll(fd, "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 300000\r\n\r\n"));
  std::string answer = ReadAll(fd);
  ::close(fd);
  EXPECT_EQ(answer.rfind("HTTP/1.1 503", 0), 0u) << answer;
  EXPECT_NE(answer.find("Retry-After: 1"), std::string::npos) << answer;
  EXPECT_EQ(handler_.calls.load(), 0);
  auto r = client_->Do("POST", "/echo", std::string(200 << 10, 'b'));
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->status, 200);
}

// A connection that sent a large body and stays open holds no buffer for it: the
// next large body on another connection reuses the one the first returned.
TEST_F(ServerTest, BodyMemoryIsReleasedAfterEachRequest) {
  ServerOptions opts;
  opts.max_body_memory = 1 << 20;
  opts.max_body_memory_per_address = 1 << 20;
  Start(opts);
  auto other = Client::Create(server_->url());
  ASSERT_TRUE(other.ok());
  // Each body takes most of the budget; a reservation kept by the first (idle,
  // kept-alive) connection would make the second one's 503.
  for (Client* c : {client_.get(), other->get(), client_.get()}) {
    auto r = c->Do("POST", "/echo", std::string(700 << 10, 'x'));
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    EXPECT_EQ(r->status, 200);
  }
}

// The server raises its soft open-files limit to what its connections need.
TEST_F(ServerTest, OpenFilesLimitIsRaisedForTheConnections) {
  struct rlimit lim;
  ASSERT_EQ(::getrlimit(RLIMIT_NOFILE, &lim), 0);
  if (lim.rlim_max != RLIM_INFINITY && lim.rlim_max < 3000) GTEST_SKIP() << "hard limit too low";
  struct rlimit low = lim;
  low.rlim_cur = 1024;
  ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &low), 0);
  ServerOptions opts;
  opts.max_connections = 2000;
  Start(opts);
  struct rlimit now;
  ASSERT_EQ(::getrlimit(RLIMIT_NOFILE, &now), 0);
  EXPECT_GE(now.rlim_cur, 2000u + 2000u / 4);
  ::setrlimit(RLIMIT_NOFILE, &lim);
}

}  // namespace
}  // namespace depot::http
