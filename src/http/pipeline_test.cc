#include "http/pipeline.h"

#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <mutex>
#include <thread>

#include "http/curl_source.h"

namespace depot::http {
namespace {

// A scripted HTTP/1.1 server on loopback for what a real server does not do on
// demand: close connections early, answer chunked, stall, send HTTP/1.0. It reads
// requests (pipelined or not) and answers each with "body of <path>".
class ScriptedServer {
 public:
  enum class Mode {
    kNormal,         // keep-alive, Content-Length
    kCloseAfterTwo,  // answers two requests per connection, then closes without saying so
    kOnlyFirst,      // answers the first request of a connection, then closes (no pipelining)
    kSaysClose,      // answers three, the third with "Connection: close", then closes
    kChunked,        // Transfer-Encoding: chunked
    kHttp10,         // HTTP/1.0, one answer per connection
    kStall,          // reads, never answers
    kGarbage,        // answers with something that is not HTTP
  };

  explicit ScriptedServer(Mode mode) : mode_(mode) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof(a)), 0);
    EXPECT_EQ(::listen(fd_, 64), 0);
    socklen_t len = sizeof(a);
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
    acceptor_ = std::thread([this] { Accept(); });
  }
  ~ScriptedServer() {
    stop_ = true;
    ::shutdown(fd_, SHUT_RDWR);
    ::close(fd_);
    acceptor_.join();
    std::lock_guard<std::mutex> lock(mu_);
    for (int c : open_) ::shutdown(c, SHUT_RDWR);
    for (auto& t : workers_) t.join();
    for (int c : open_) ::close(c);
  }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_) + "/repo"; }
  int connections() const { return connections_.load(); }
  int answers() const { return answers_.load(); }
  static std::string BodyOf(const std::string& path) {
    return "body of " + path + std::string(path.size() * 50, '.');
  }

 private:
  void Accept() {
    while (!stop_) {
      int c = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (c < 0) continue;
      ++connections_;
      std::lock_guard<std::mutex> lock(mu_);
      open_.push_back(c);
      workers_.emplace_back([this, c] { Serve(c); });
    }
  }

  void Serve(int c) {
    std::string in;
    char buf[4096];
    int served = 0;
    for (;;) {
      std::size_t end = in.find("\r\n\r\n");
      if (end == std::string::npos) {
        ssize_t n = ::recv(c, buf, sizeof(buf), 0);
        if (n <= 0) break;
        in.append(buf, static_cast<std::size_t>(n));
        continue;
      }
      std::string head = in.substr(0, end);
      in.erase(0, end + 4);
      std::string path = head.substr(4, head.find(' ', 4) - 4);
      if (mode_ == Mode::kStall) continue;
      std::string body = BodyOf(path);
      std::string out;
      ++served;
      if (path.find("absent") != std::string::npos) {
        out = "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n";
      } else if (mode_ == Mode::kChunked) {
        char size[32];
        std::snprintf(size, sizeof(size), "%zx", body.size());
        out = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + std::string(size) + "\r\n" +
              body + "\r\n0\r\n\r\n";
      } else if (mode_ == Mode::kHttp10) {
        out =
            "HTTP/1.0 200 OK\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
      } else if (mode_ == Mode::kGarbage) {
        out = "SSH-2.0-OpenSSH_9.2\r\n\r\n";
      } else {
        bool says_close = mode_ == Mode::kSaysClose && served == 3;
        out = "HTTP/1.1 200 OK\r\nContent-Length: " + std::to_string(body.size()) +
              (says_close ? "\r\nConnection: close" : "") + "\r\n\r\n" + body;
      }
      if (::send(c, out.data(), out.size(), MSG_NOSIGNAL) < 0) break;
      ++answers_;
      if (mode_ == Mode::kHttp10 || (mode_ == Mode::kCloseAfterTwo && served == 2) ||
          (mode_ == Mode::kOnlyFirst && served == 1) ||
          (mode_ == Mode::kSaysClose && served == 3)) {
        break;
      }
    }
    ::shutdown(c, SHUT_RDWR);
  }

  Mode mode_;
  int fd_ = -1;
  std::uint16_t port_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<int> connections_{0}, answers_{0};
  std::thread acceptor_;
  std::mutex mu_;
  std::vector<int> open_;
  std::vector<std::thread> workers_;
};

struct Fetched {
  std::vector<core::FetchRequest> requests;
  std::vector<core::Result<std::string>> got;
};

Fetched FetchAll(CurlSource* src, int n, CurlOptions = {}) {
  Fetched f;
  for (int i = 0; i < n; ++i) {
    std::string path = "chunks/" + std::to_string(i % 7) + "/" + std::to_string(i);
    f.requests.push_back({path, 4096});
  }
  f.got.assign(f.requests.size(), core::Status::Unavailable("not delivered"));
  EXPECT_TRUE(src->FetchMany(f.requests, 16,
                             [&](std::size_t i, core::Result<std::string> r) {
                               f.got[i] = std::move(r);
                               return true;
                             })
                  .ok());
  return f;
}

void ExpectAllBodies(const Fetched& f) {
  for (std::size_t i = 0; i < f.requests.size(); ++i) {
    ASSERT_TRUE(f.got[i].ok()) << i << ": " << f.got[i].status().ToString();
    EXPECT_EQ(*f.got[i], ScriptedServer::BodyOf("/repo/" + f.requests[i].path)) << i;
  }
}

std::unique_ptr<CurlSource> Source(const std::string& url, std::uint32_t stall_s = 30) {
  CurlOptions o;
  o.low_speed_time_s = stall_s;
  return std::move(*CurlSource::Create(url, o));
}

TEST(PipelineTest, ParsesOnlyPlainHttpUrls) {
  PipelineTarget t;
  ASSERT_TRUE(ParsePlainHttpUrl("http://dp1:8080/repo/", &t));
  EXPECT_EQ(t.host, "dp1");
  EXPECT_EQ(t.port, 8080);
  EXPECT_EQ(t.host_header, "dp1:8080");
  EXPECT_EQ(t.path_prefix, "/repo");
  ASSERT_TRUE(ParsePlainHttpUrl("http://[::1]:9/", &t));
  EXPECT_EQ(t.host, "::1");
  EXPECT_EQ(t.host_header, "[::1]:9");
  EXPECT_EQ(t.path_prefix, "");
  ASSERT_TRUE(ParsePlainHttpUrl("http://cdn.example", &t));
  EXPECT_EQ(t.port, 80);
  for (const char* bad :
       {"https://dp1/repo", "http://user@dp1/repo", "http://dp1/repo?x=1", "http://dp1:0/",
        "http://dp1:99999/", "http://[::1/", "http:///repo", "ftp://dp1/"}) {
    EXPECT_FALSE(ParsePlainHttpUrl(bad, &t)) << bad;
  }
}

TEST(PipelineTest, ManyGetsOverFewConnections) {
  ScriptedServer server(ScriptedServer::Mode::kNormal);
  auto src = Source(server.url());
  Fetched f = FetchAll(src.get(), 500);
  ExpectAllBodies(f);
  EXPECT_LE(server.connections(),
            4);  // not one per request, as libcurl's transfers would open at first
  EXPECT_EQ(server.answers(), 500);
  EXPECT_GT(src->BytesFetched(), 500u * 50);
}

TEST(PipelineTest, NotFoundAndOverLongAnswersAreTheirRequestsOnly) {
  ScriptedServer server(ScriptedServer::Mode::kNormal);
  auto src = Source(server.url());
  Fetched f;
  for (int i = 0; i < 60; ++i) f.requests.push_back({"chunks/x/" + std::to_string(i), 4096});
  f.requests[7].path = "chunks/x/absent";
  f.requests[20].max_bytes = 5;       // the answer is longer: Corruption, nothing else lost
  f.requests[30].path = "../escape";  // never sent
  f.got.assign(f.requests.size(), core::Status::Unavailable("not delivered"));
  ASSERT_TRUE(src->FetchMany(f.requests, 4,
                             [&](std::size_t i, core::Result<std::string> r) {
                               f.got[i] = std::move(r);
                               return true;
                             })
                  .ok());
  for (std::size_t i = 0; i < f.requests.size(); ++i) {
    if (i == 7) {
      EXPECT_TRUE(f.got[i].status().IsNotFound()) << f.got[i].status().ToString();
    } else if (i == 20) {
      EXPECT_TRUE(f.got[i].status().IsCorruption()) << f.got[i].status().ToString();
    } else if (i == 30) {
      EXPECT_TRUE(f.got[i].status().IsInvalidArgument()) << f.got[i].status().ToString();
    } else {
      ASSERT_TRUE(f.got[i].ok()) << i << ": " << f.got[i].status().ToString();
      EXPECT_EQ(*f.got[i], ScriptedServer::BodyOf("/repo/" + f.requests[i].path));
    }
  }
}

TEST(PipelineTest, ConnectionsClosedEarlyAreReopenedAndNothingIsLost) {
  for (auto mode : {ScriptedServer::Mode::kCloseAfterTwo, ScriptedServer::Mode::kSaysClose,
                    ScriptedServer::Mode::kOnlyFirst, ScriptedServer::Mode::kHttp10}) {
    ScriptedServer server(mode);
    auto src = Source(server.url());
    Fetched f = FetchAll(src.get(), 120);
    ExpectAllBodies(f);
    // A second run on the same source works too (after kOnlyFirst: one at a time).
    ExpectAllBodies(FetchAll(src.get(), 20));
  }
}

TEST(PipelineTest, AnswersItCannotPipelineGoToLibcurl) {
  ScriptedServer server(ScriptedServer::Mode::kChunked);
  auto src = Source(server.url());
  ExpectAllBodies(FetchAll(src.get(), 50));
  ExpectAllBodies(FetchAll(src.get(), 50));  // libcurl from the start now
}

TEST(PipelineTest, DeadStalledAndGarbageServersFailEveryRequest) {
  {
    // Nothing listens: connection refused, quickly.
    int port;
    {
      ScriptedServer gone(ScriptedServer::Mode::kNormal);
      port = std::stoi(gone.url().substr(17));
    }
    auto src = Source("http://127.0.0.1:" + std::to_string(port) + "/repo");
    Fetched f = FetchAll(src.get(), 40);
    for (const auto& r : f.got) EXPECT_TRUE(r.status().IsUnavailable()) << r.status().ToString();
  }
  {
    ScriptedServer server(ScriptedServer::Mode::kStall);
    auto src = Source(server.url(), /*stall_s=*/1);
    Fetched f = FetchAll(src.get(), 20);
    for (const auto& r : f.got) EXPECT_TRUE(r.status().IsUnavailable()) << r.status().ToString();
  }
  {
    ScriptedServer server(ScriptedServer::Mode::kGarbage);
    auto src = Source(server.url());
    Fetched f = FetchAll(src.get(), 20);
    for (const auto& r : f.got) EXPECT_TRUE(r.status().IsUnavailable()) << r.status().ToString();
  }
}

TEST(PipelineTest, StopsWhenTheCallerSaysSo) {
  ScriptedServer server(ScriptedServer::Mode::kNormal);
  auto src = Source(server.url());
  std::vector<core::FetchRequest> requests;
  for (int i = 0; i < 200; ++i) requests.push_back({"chunks/s/" + std::to_string(i), 4096});
  int delivered = 0;
  ASSERT_TRUE(
      src->FetchMany(requests, 4,
                     [&](std::size_t, core::Result<std::string>) { return ++delivered < 10; })
          .ok());
  EXPECT_EQ(delivered, 10);
}

}  // namespace
}  // namespace depot::http
