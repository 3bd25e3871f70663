// The server tests' shared parts: a handler with a few paths, a fixture that
// starts a server with it, and raw sockets for what a well-behaved client would
// never send. Test-only.
#pragma once

#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>

#include "core/metrics.h"
#include "http/client.h"
#include "http/server.h"

namespace depot::http::server_testing {

class TestHandler : public Handler {
 public:
  Admission Admit(const Request& head) override {
    ++admitted;
    if (head.GetHeader("authorization") == nullptr && head.path == "/private") {
      return {0, Response::Json(401, R"({"error":{"code":"PermissionDenied","message":"no"}})")};
    }
    return {head.path == "/small" ? 16u : 1u << 20, std::nullopt};
  }
  void Handle(Request& req, Response* resp) override {
    {
      std::lock_guard<std::mutex> lock(mu);
      ++calls;
    }
    called.notify_all();
    if (req.path == "/echo") {
      *resp = Response::Text(
          200, req.method + " " + req.body + " q=" + req.QueryParam("q").value_or("-"));
      return;
    }
    if (req.path == "/file") {
      int fd = ::open(file_path.c_str(), O_RDONLY | O_CLOEXEC);
      resp->file = FileBody{std::make_shared<OpenFile>(fd), 2, 5};
      return;
    }
    if (req.path == "/poll") {
      if (req.poll_round == 0 || (repark && !req.poll_timed_out)) {
        resp->wait = Response::Wait{"t", seen_for_poll, std::chrono::milliseconds(wait_ms)};
        return;
      }
      *resp = Response::Text(200, req.poll_timed_out ? "timeout" : "woken");
      return;
    }
    if (req.path == "/space dir/x") {
      *resp = Response::Text(200, "decoded");
      return;
    }
    *resp = Response::Json(404, R"({"error":{"code":"NotFound","message":"no such thing"}})");
  }
  // Returns once the handler has been called `n` times in all (a long poll's first
  // call has then read its sequence number: a Notify from now on wakes it).
  void WaitForCalls(int n) {
    std::unique_lock<std::mutex> lock(mu);
    called.wait(lock, [&] { return calls.load() >= n; });
  }
  std::mutex mu;
  std::condition_variable called;
  std::atomic<int> calls{0};
  std::atomic<int> admitted{0};
  std::string file_path;
  std::uint64_t seen_for_poll = 0;
  int wait_ms = 5000;
  bool repark = false;
};

class ServerTest : public ::testing::Test {
 protected:
  void Start(ServerOptions opts = {}) {
    opts.metrics = &registry_;
    auto s = Server::Start(&handler_, opts);
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    server_ = std::move(*s);
    auto c = Client::Create(server_->url());
    ASSERT_TRUE(c.ok());
    client_ = std::move(*c);
  }
  core::Registry registry_;
  TestHandler handler_;
  std::unique_ptr<Server> server_;
  std::unique_ptr<Client> client_;
};

// A connection to 127.0.0.1:`port` from `source` (any 127/8 address: each is a
// different peer address to the server).
inline int Connect(std::uint16_t port, const char* source = "127.0.0.1") {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in from{};
  from.sin_family = AF_INET;
  ::inet_pton(AF_INET, source, &from.sin_addr);
  EXPECT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&from), sizeof(from)), 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  EXPECT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  return fd;
}

// Everything `fd` receives until the peer closes.
inline std::string ReadAll(int fd) {
  std::string out;
  char buf[4096];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof(buf));
    if (n <= 0) break;
    out.append(buf, static_cast<std::size_t>(n));
  }
  return out;
}

// Writes all of `data` (false when the peer is gone).
inline bool WriteAll(int fd, const std::string& data) {
  for (std::size_t at = 0; at < data.size();) {
    ssize_t n = ::send(fd, data.data() + at, data.size() - at, MSG_NOSIGNAL);
    if (n <= 0) return false;
    at += static_cast<std::size_t>(n);
  }
  return true;
}

}  // namespace depot::http::server_testing
