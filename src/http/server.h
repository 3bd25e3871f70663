// The HTTP/1.1 server of the site and of DPs (Boost.Beast on Asio C++20 coroutines,
// kept inside server.cc and its internal helpers: this header has only standard
// types).
//
// One io_context runs on `threads` threads; each connection is one coroutine on its
// own strand. The Handler is called synchronously on that strand, so it may block
// briefly (a catalog query, verifying an uploaded chunk) but never for long.
//
// What the server enforces for every connection: keep-alive with an idle timeout, a
// header size limit, request framing by RFC 9112 section 6 (framing.h), read/write
// timeouts, a connection limit in all and per peer address (503 and close beyond
// them), TLS when a certificate is configured. A request that announces a body is
// first shown to the handler's Admit with its headers alone: the handler
// authenticates there and refuses or sets the body limit (413 beyond it); only then
// is body memory reserved, within a budget in all and per address (503 beyond it),
// and filled as bytes arrive, never sized from a declared length. File bodies go out
// with sendfile(2) on plain TCP.
//
// Long polls: a handler that has nothing new yet returns Response::Wait; the server
// parks the request without a thread until Notify(topic) or the timeout, then calls
// the handler again (Request::poll_round counts the calls).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/metrics.h"
#include "core/status.h"

namespace depot::http {

struct Header {
  std::string name;  // lowercase
  std::string value;
};

// The value of header `name` (case-insensitive) in `headers`, or nullptr.
const std::string* FindHeader(const std::vector<Header>& headers, std::string_view name);

struct Request {
  std::string method;  // "GET", "POST", ...
  std::string target;  // as received: "/api/v1/x?y=1"
  std::string path;    // percent-decoded path part: "/api/v1/x"
  std::string query;   // raw query string: "y=1"
  std::vector<Header> headers;
  std::string body;
  std::string remote_address;  // peer IP, "127.0.0.1"
  bool tls = false;
  std::chrono::steady_clock::time_point received;  // when its headers were read
  int poll_round = 0;                              // 0 on the first call; +1 per long-poll wake-up
  bool poll_timed_out = false;  // the last wait ended by timeout (or shutdown), not Notify

  // The value of header `name` (case-insensitive), or nullptr.
  const std::string* GetHeader(std::string_view name) const;
  // The percent-decoded value of query parameter `name`, if present.
  std::optional<std::string> QueryParam(std::string_view name) const;
};

// An open file descriptor, closed when the last holder lets go: a response sending
// it and a cache of open files (StaticTree) may share one.
class OpenFile {
 public:
  explicit OpenFile(int fd) : fd_(fd) {}
  ~OpenFile();
  OpenFile(const OpenFile&) = delete;
  OpenFile& operator=(const OpenFile&) = delete;
  int fd() const { return fd_; }

 private:
  int fd_;
};

// A response body sent from a file, by sendfile(2) where possible (which reads at an
// explicit offset, so several responses can send one shared descriptor at once).
struct FileBody {
  std::shared_ptr<const OpenFile> file;
  std::uint64_t offset = 0;
  std::uint64_t length = 0;
};

struct Response {
  int status = 200;
  std::vector<Header> headers;
  std::string body;
  std::optional<FileBody> file;  // instead of `body`
  // For HEAD: the Content-Length to announce (the body is never sent).
  std::optional<std::uint64_t> head_length;
  bool close = false;  // close the connection after this response
  // Dropped once the response has been written or abandoned: a lease on a budget
  // (AddressBudget::Lease) for what the response holds in memory.
  std::shared_ptr<const void> hold;

  // Long poll: park until Notify(topic) advances it past `seen` or `timeout` passes,
  // then call the handler again. `seen` is Server::Sequence(topic) read by the
  // handler *before* it looked at the state, so no wake-up can be missed.
  struct Wait {
    std::string topic;
    std::uint64_t seen = 0;
    std::chrono::milliseconds timeout{30'000};
  };
  std::optional<Wait> wait;

  void SetHeader(std::string_view name, std::string value);
  const std::string* GetHeader(std::string_view name) const;
  // A JSON body with Content-Type application/json.
  static Response Json(int status, std::string body);
  static Response Text(int status, std::string body);
};

// What a handler decides about a request from its headers alone.
struct Admission {
  std::uint64_t body_limit = 0;  // the largest body accepted (413 beyond it)
  // Set: the answer, sent without reading the body; the connection then closes.
  std::optional<Response> refusal;
};

class Handler {
 public:
  virtual ~Handler() = default;
  // Called for a request that announces a body (Content-Length above zero, or
  // chunked) with its headers only (body empty), before any byte of the body is
  // read: authenticate and authorize here, so nothing is read or held for a caller
  // who may not send it. Requests without a body go straight to Handle. Called on
  // the connection's strand; must not block long.
  virtual Admission Admit(const Request& head) = 0;
  // Produces the response. Must not throw. Called on the connection's strand.
  virtual void Handle(Request& request, Response* response) = 0;
};

struct ServerOptions {
  std::string listen = "127.0.0.1:0";  // HOST:PORT; port 0 picks a free one
  unsigned threads = 0;                // 0: one per core
  std::string tls_cert_file;           // PEM chain; TLS when both are set
  std::string tls_key_file;
  // Connections in all (raised RLIMIT_NOFILE permitting: see Server::Start), and
  // from one peer address (0: a quarter of max_connections).
  std::size_t max_connections = 10'000;
  std::size_t max_connections_per_address = 0;
  // Bytes of request bodies held at once (declared lengths of admitted requests,
  // the limit for a chunked one), in all and for one address (0: a quarter).
  std::uint64_t max_body_memory = 1ull << 30;
  std::uint64_t max_body_memory_per_address = 0;
  std::uint32_t max_header_bytes = 16 * 1024;
  std::chrono::milliseconds header_timeout{15'000};  // first byte to end of headers
  std::chrono::milliseconds idle_timeout{60'000};    // keep-alive between requests
  std::chrono::milliseconds body_timeout{120'000};
  std::chrono::milliseconds write_timeout{120'000};
  std::chrono::milliseconds shutdown_grace{10'000};
  std::string server_name = "depot";
  core::Registry* metrics = nullptr;  // request counters and latencies, if given
  // Access log: one JSON line per answered request appended to this file
  // ({"time","remote","method","target","status","bytes","ms"}), "" = none. Opened
  // with O_APPEND, so logrotate's copytruncate and several processes are safe.
  std::string access_log;
  std::string metrics_prefix = "depot_http";
};

class Server {
 public:
  // Binds, then starts serving on background threads. `handler` is not owned and
  // must outlive the server. Raises this process's soft limit of open files to what
  // max_connections needs, or serves fewer connections (and logs so) when the hard
  // limit is lower. InvalidArgument for a bad listen address or TLS files;
  // IOError/PermissionDenied when binding fails (the message names the address).
  static core::Result<std::unique_ptr<Server>> Start(Handler* handler,
                                                     const ServerOptions& options);
  ~Server();  // Stop()s

  std::uint16_t port() const;
  // "http://127.0.0.1:PORT" or "https://...": the bound address.
  std::string url() const;
  bool tls() const;

  // Long-poll topics: Sequence is a counter per topic; Notify increments it and wakes
  // every request parked on the topic. Any thread.
  std::uint64_t Sequence(const std::string& topic);
  void Notify(const std::string& topic);
  // Notifies every topic (e.g. at shutdown).
  void NotifyAll();

  // Runs `fn` every `period` on a server thread until Stop (the first run after one
  // period); fn must be quick or hand work off. Nothing calls it today: the site's
  // timers run on its own worker thread (site.cc).
  void Every(std::chrono::milliseconds period, std::function<void()> fn);

  std::size_t active_connections() const;

  // Graceful stop: stop accepting, close idle connections, let requests in flight
  // finish (long polls are woken and answered) for up to shutdown_grace, then stop
  // the threads. Idempotent; call from any thread but a server thread.
  void Stop();

 private:
  struct Impl;
  explicit Server(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Percent-decodes `s` ("+" stays "+"). InvalidArgument on a bad escape or a NUL.
core::Result<std::string> PercentDecode(std::string_view s);
// Percent-encodes everything outside [A-Za-z0-9-._~/] (with `keep_slash`) or
// outside [A-Za-z0-9-._~].
std::string PercentEncode(std::string_view s, bool keep_slash = false);

// The canonical reason phrase for a status code ("Not Found").
std::string_view ReasonPhrase(int status);

}  // namespace depot::http
