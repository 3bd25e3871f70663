// The Beast/Asio implementation of http::Server. Beast parses requests and provides
// the timed streams; responses are serialized here (a status line and headers are
// simple, and writing them ourselves lets file bodies go out with sendfile(2)).
#include "http/server.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <boost/asio.hpp>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <limits>
#include <list>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <unordered_set>

#include "core/errors.h"
#include "core/log.h"

namespace depot::http {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using tcp = asio::ip::tcp;
using asio::awaitable;
using asio::use_awaitable;
using core::Status;

namespace {

constexpr auto kTuple = asio::as_tuple(use_awaitable);
// A connection keeps its request-body buffer for the next request up to this size.
constexpr std::size_t kKeptBodyBuffer = 16u << 20;

// "Sun, 06 Nov 1994 08:49:37 GMT", recomputed at most once a second.
std::string HttpDate() {
  static std::mutex mu;
  static std::time_t cached_at = 0;
  static std::string cached;
  std::time_t now = std::time(nullptr);
  std::lock_guard<std::mutex> lock(mu);
  if (now != cached_at) {
    std::tm tm;
    gmtime_r(&now, &tm);
    char buf[64];
    std::strftime(buf, sizeof(buf), "%a, %d %b %Y %H:%M:%S GMT", &tm);
    cached = buf;
    cached_at = now;
  }
  return cached;
}

bool ValidHeaderText(std::string_view s) {
  for (char c : s) {
    if (c == '\r' || c == '\n' || c == '\0') return false;
  }
  return true;
}

// Per-connection state the server can reach from outside the coroutine (to close
// idle connections at shutdown).
struct SessionState {
  std::atomic<bool> idle{true};
  std::function<void()> cancel;  // runs on the session's strand
  asio::any_io_executor executor;
};

struct Waiter {
  explicit Waiter(asio::any_io_executor ex) : timer(ex) {}
  asio::steady_timer timer;
  bool notified = false;  // guarded by the topic mutex
};

}  // namespace

struct Server::Impl {
  Impl(Handler* h, ServerOptions o) : handler(h), opts(std::move(o)), acceptor(ioc) {}
  ~Impl() {
    if (access_fd >= 0) ::close(access_fd);
  }

  Handler* handler;
  ServerOptions opts;
  asio::io_context ioc;
  tcp::acceptor acceptor;
  std::unique_ptr<asio::ssl::context> ssl;
  std::vector<std::thread> threads;
  std::atomic<std::size_t> connections{0};
  std::atomic<bool> stopping{false};
  std::atomic<bool> stopped{false};
  std::string host;
  std::uint16_t port = 0;

  std::mutex topics_mu;
  struct Topic {
    std::uint64_t seq = 0;
    std::list<std::shared_ptr<Waiter>> waiters;
  };
  std::unordered_map<std::string, Topic> topics;

  std::mutex sessions_mu;
  std::unordered_set<std::shared_ptr<SessionState>> sessions;

  std::vector<std::shared_ptr<asio::steady_timer>> every_timers;
  std::mutex every_mu;

  int access_fd = -1;  // the access log, or -1

  // Metrics (null when no registry).
  core::Counter* requests_by_class[6] = {};
  core::Histogram* latency = nullptr;
  core::Counter* bytes_sent = nullptr;
  core::Counter* rejected_connections = nullptr;

  void SetUpMetrics() {
    core::Registry* r = opts.metrics;
    if (r == nullptr) return;
    const std::string& p = opts.metrics_prefix;
    for (int c = 1; c <= 5; ++c) {
      requests_by_class[c] = r->GetCounter(p + "_requests_total", "HTTP requests answered",
                                           {{"code", std::to_string(c) + "xx"}});
    }
    latency = r->GetHistogram(p + "_request_duration_seconds",
                              "Time from a complete request to its response written",
                              core::LatencyBuckets());
    bytes_sent = r->GetCounter(p + "_response_bytes_total", "Response bytes written");
    rejected_connections = r->GetCounter(p + "_rejected_connections_total",
                                         "Connections refused by the connection limit");
    r->AddCollector(p + "_connections", "Open connections",
                    [this](const core::Registry::Emit& emit) {
                      emit({}, static_cast<double>(connections.load()));
                    });
  }

  // ---- topics ----
  std::uint64_t Sequence(const std::string& topic) {
    std::lock_guard<std::mutex> lock(topics_mu);
    return topics[topic].seq;
  }

  void Notify(const std::string& topic) {
    std::lock_guard<std::mutex> lock(topics_mu);
    Topic& t = topics[topic];
    ++t.seq;
    for (auto& w : t.waiters) WakeLocked(w);
    t.waiters.clear();
  }

  void NotifyAll() {
    std::lock_guard<std::mutex> lock(topics_mu);
    for (auto& [name, t] : topics) {
      ++t.seq;
      for (auto& w : t.waiters) WakeLocked(w);
      t.waiters.clear();
    }
  }

  static void WakeLocked(const std::shared_ptr<Waiter>& w) {
    w->notified = true;
    // Timers are not thread-safe: cancel on the waiter's own executor.
    asio::post(w->timer.get_executor(), [w] { w->timer.cancel(); });
  }

  // Parks until the topic moves past `seen` or the timeout. Returns true on timeout.
  awaitable<bool> WaitTopic(const Response::Wait& wait) {
    auto ex = co_await asio::this_coro::executor;
    auto w = std::make_shared<Waiter>(ex);
    w->timer.expires_after(wait.timeout);
    {
      std::lock_guard<std::mutex> lock(topics_mu);
      Topic& t = topics[wait.topic];
      // Stopping: answer as if the wait timed out, so the handler gives its final
      // answer instead of parking again.
      if (stopping) co_return true;
      if (t.seq != wait.seen) co_return false;
      t.waiters.push_back(w);
    }
    co_await w->timer.async_wait(kTuple);
    bool notified;
    {
      std::lock_guard<std::mutex> lock(topics_mu);
      notified = w->notified;
      if (!notified) topics[wait.topic].waiters.remove(w);
    }
    co_return !notified || stopping;
  }

  // ---- serving ----
  awaitable<void> Listen() {
    for (;;) {
      auto [ec, sock] = co_await acceptor.async_accept(asio::make_strand(ioc), kTuple);
      if (stopping) co_return;
      if (ec) {
        if (ec == asio::error::operation_aborted) co_return;
        core::Log(core::LogLevel::kWarn, "http.accept_failed", {{"error", ec.message()}});
        // EMFILE and friends: back off instead of spinning.
        asio::steady_timer t(ioc, std::chrono::milliseconds(50));
        co_await t.async_wait(kTuple);
        continue;
      }
      if (connections.load() >= opts.max_connections) {
        if (rejected_connections) rejected_connections->Inc();
        asio::co_spawn(sock.get_executor(), RejectBusy(std::move(sock)), asio::detached);
        continue;
      }
      ++connections;
      auto ex = sock.get_executor();
      asio::co_spawn(ex, Session(std::move(sock)), [this](std::exception_ptr e) {
        --connections;
        if (e) {
          try {
            std::rethrow_exception(e);
          } catch (const std::exception& ex2) {
            core::Log(core::LogLevel::kError, "http.session_exception", {{"error", ex2.what()}});
          }
        }
      });
    }
  }

  awaitable<void> RejectBusy(tcp::socket sock) {
    static const std::string kBusy =
        "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n"
        "Retry-After: 1\r\n\r\n";
    co_await asio::async_write(sock, asio::buffer(kBusy), kTuple);
    beast::error_code ignored;
    sock.shutdown(tcp::socket::shutdown_both, ignored);
  }

  awaitable<void> Session(tcp::socket sock) {
    beast::error_code ignored;
    sock.set_option(tcp::no_delay(true), ignored);
    auto state = std::make_shared<SessionState>();
    state->executor = sock.get_executor();
    {
      std::lock_guard<std::mutex> lock(sessions_mu);
      sessions.insert(state);
    }
    struct Unregister {
      Impl* impl;
      std::shared_ptr<SessionState> st;
      ~Unregister() {
        // On the session's strand, like every call of `cancel`: after this no posted
        // cancel can touch the (destroyed) stream.
        st->cancel = nullptr;
        std::lock_guard<std::mutex> lock(impl->sessions_mu);
        impl->sessions.erase(st);
      }
    } unregister{this, state};

    std::string remote;
    {
      auto ep = sock.remote_endpoint(ignored);
      if (!ignored) {
        auto addr = ep.address();
        if (addr.is_v6() && addr.to_v6().is_v4_mapped()) {
          addr = asio::ip::make_address_v4(asio::ip::v4_mapped, addr.to_v6());
        }
        remote = addr.to_string();
      }
    }
    if (ssl) {
      beast::ssl_stream<beast::tcp_stream> stream(beast::tcp_stream(std::move(sock)), *ssl);
      state->cancel = [&stream] { beast::get_lowest_layer(stream).cancel(); };
      beast::get_lowest_layer(stream).expires_after(opts.header_timeout);
      auto [ec] = co_await stream.async_handshake(asio::ssl::stream_base::server, kTuple);
      if (ec) co_return;
      co_await Serve(stream, beast::get_lowest_layer(stream), remote, true, state.get());
      beast::get_lowest_layer(stream).expires_after(std::chrono::seconds(2));
      co_await stream.async_shutdown(kTuple);
    } else {
      beast::tcp_stream stream(std::move(sock));
      state->cancel = [&stream] { stream.cancel(); };
      co_await Serve(stream, stream, remote, false, state.get());
      stream.socket().shutdown(tcp::socket::shutdown_send, ignored);
    }
  }

  // Writes `a` then `b` in one gathered write. (Plain parameters: GCC 12 cannot pass
  // an initializer list into a coroutine.)
  template <typename Stream>
  awaitable<bool> WriteAll(Stream& stream, beast::tcp_stream& lowest, std::string_view a,
                           std::string_view b = {}) {
    lowest.expires_after(opts.write_timeout);
    std::array<asio::const_buffer, 2> bufs = {asio::buffer(a.data(), a.size()),
                                              asio::buffer(b.data(), b.size())};
    auto [ec, n] = co_await asio::async_write(stream, bufs, kTuple);
    if (bytes_sent) bytes_sent->Inc(n);
    co_return !ec && n == a.size() + b.size();
  }

  // Writes `a` then `b` on a plain TCP connection right away if the socket takes
  // them (it nearly always does: a response is small next to the send buffer), and
  // says how many bytes went. Skips an asynchronous write -- its timer, its posted
  // completion and the coroutine's resumption -- for most responses. `more` tells
  // the kernel a body follows at once (sendfile), so the head and the body's first
  // bytes share packets.
  std::size_t SendNow(beast::tcp_stream& lowest, std::string_view a, std::string_view b,
                      bool more) {
    iovec iov[2] = {{const_cast<char*>(a.data()), a.size()},
                    {const_cast<char*>(b.data()), b.size()}};
    msghdr m{};
    m.msg_iov = iov;
    m.msg_iovlen = b.empty() ? 1 : 2;
    ssize_t n = ::sendmsg(lowest.socket().native_handle(), &m,
                          MSG_DONTWAIT | MSG_NOSIGNAL | (more ? MSG_MORE : 0));
    if (n <= 0) return 0;
    if (bytes_sent) bytes_sent->Inc(static_cast<std::uint64_t>(n));
    return static_cast<std::size_t>(n);
  }

  // SendNow, then an asynchronous write of whatever it could not send.
  template <typename Stream>
  awaitable<bool> WriteResponse(Stream& stream, beast::tcp_stream& lowest, bool tls,
                                std::string_view a, std::string_view b, bool more) {
    if (!tls) {
      std::size_t sent = SendNow(lowest, a, b, more);
      if (sent == a.size() + b.size()) co_return true;
      if (sent >= a.size()) {
        co_return co_await WriteAll(stream, lowest, b.substr(sent - a.size()));
      }
      co_return co_await WriteAll(stream, lowest, a.substr(sent), b);
    }
    co_return co_await WriteAll(stream, lowest, a, b);
  }

  std::string HeadText(const Response& r, std::uint64_t content_length, bool keep_alive) {
    std::string h;
    h.reserve(256);
    h += "HTTP/1.1 ";
    h += std::to_string(r.status);
    h += ' ';
    h += ReasonPhrase(r.status);
    h += "\r\nServer: ";
    h += opts.server_name;
    h += "\r\nDate: ";
    h += HttpDate();
    for (const Header& hd : r.headers) {
      if (!ValidHeaderText(hd.name) || !ValidHeaderText(hd.value)) continue;
      h += "\r\n";
      h += hd.name;
      h += ": ";
      h += hd.value;
    }
    if (r.status != 304 && r.status >= 200 && r.status != 204) {
      h += "\r\nContent-Length: ";
      h += std::to_string(content_length);
    }
    if (!keep_alive) h += "\r\nConnection: close";
    h += "\r\n\r\n";
    return h;
  }

  // Sends `length` bytes of `fd` from `offset`: sendfile on plain TCP, read+write
  // otherwise. False when the connection failed or the file came up short.
  template <typename Stream>
  awaitable<bool> SendFile(Stream& stream, beast::tcp_stream& lowest, bool tls, int fd,
                           std::uint64_t offset, std::uint64_t length) {
    if (!tls) {
      using namespace asio::experimental::awaitable_operators;
      tcp::socket& s = lowest.socket();
      // The socket is non-blocking once it has served an asynchronous read; ask
      // (a system call) only when it is not.
      if (!s.native_non_blocking()) {
        beast::error_code ec;
        s.native_non_blocking(true, ec);
        if (ec) co_return false;
      }
      off_t off = static_cast<off_t>(offset);
      std::uint64_t left = length;
      asio::steady_timer timer(s.get_executor());
      while (left > 0) {
        ssize_t n = ::sendfile(s.native_handle(), fd, &off,
                               static_cast<std::size_t>(std::min<std::uint64_t>(left, 1u << 30)));
        if (n > 0) {
          left -= static_cast<std::uint64_t>(n);
          if (bytes_sent) bytes_sent->Inc(static_cast<std::uint64_t>(n));
          continue;
        }
        if (n == 0) co_return false;  // the file is shorter than announced
        if (errno == EINTR) continue;
        if (errno != EAGAIN) co_return false;
        timer.expires_after(opts.write_timeout);
        auto which =
            co_await (s.async_wait(tcp::socket::wait_write, kTuple) || timer.async_wait(kTuple));
        if (which.index() == 1) co_return false;  // write timeout
        auto [wec] = std::get<0>(which);
        if (wec) co_return false;
      }
      co_return true;
    }
    std::vector<char> buf(256 * 1024);
    std::uint64_t done = 0;
    while (done < length) {
      std::size_t want =
          static_cast<std::size_t>(std::min<std::uint64_t>(buf.size(), length - done));
      ssize_t n = ::pread(fd, buf.data(), want, static_cast<off_t>(offset + done));
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) co_return false;
      if (!co_await WriteAll(stream, lowest,
                             std::string_view(buf.data(), static_cast<std::size_t>(n)))) {
        co_return false;
      }
      done += static_cast<std::uint64_t>(n);
    }
    co_return true;
  }

  template <typename Stream>
  awaitable<void> WriteSimple(Stream& stream, beast::tcp_stream& lowest, int status,
                              std::string_view message) {
    Response r = Response::Json(status, std::string("{\"error\":{\"code\":\"") + "InvalidArgument" +
                                            "\",\"message\":\"" + std::string(message) + "\"}}");
    std::string head = HeadText(r, r.body.size(), false);
    co_await WriteAll(stream, lowest, head, r.body);
    Count(status);
  }

  // After answering a request whose body we will not read (413), closing at once
  // would make the kernel reset the connection while the client is still sending,
  // and the client might never see the answer. So, like nginx's lingering close:
  // stop sending, then read and discard for a short while before closing.
  template <typename Stream>
  awaitable<void> LingeringClose(Stream& stream, beast::tcp_stream& lowest) {
    beast::error_code ignored;
    lowest.socket().shutdown(tcp::socket::shutdown_send, ignored);
    lowest.expires_after(std::chrono::seconds(2));
    std::vector<char> sink(64 * 1024);
    std::uint64_t drained = 0;
    while (drained < (64ull << 20)) {
      auto [ec, n] = co_await stream.async_read_some(asio::buffer(sink), kTuple);
      if (ec) break;
      drained += n;
    }
  }

  // One line per request, written with a single write(2) so lines from the server's
  // threads never interleave.
  void LogAccess(const Request& req, int status, std::uint64_t bytes,
                 std::chrono::steady_clock::time_point start) {
    if (access_fd < 0) return;
    auto now = std::chrono::system_clock::now();
    std::time_t secs = std::chrono::system_clock::to_time_t(now);
    int ms_part = static_cast<int>(
        std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count() %
        1000);
    std::tm tm{};
    gmtime_r(&secs, &tm);
    char when[96];
    std::snprintf(when, sizeof(when), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                  tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ms_part);
    double ms =
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
    std::string line =
        "{\"time\":\"" + std::string(when) + "\",\"remote\":" + JsonString(req.remote_address) +
        ",\"method\":" + JsonString(req.method) + ",\"target\":" + JsonString(req.target) +
        ",\"status\":" + std::to_string(status) + ",\"bytes\":" + std::to_string(bytes);
    char tail[48];
    std::snprintf(tail, sizeof(tail), ",\"ms\":%.3f}\n", ms);
    line += tail;
    if (::write(access_fd, line.data(), line.size()) < 0) {
      core::Log(core::LogLevel::kWarn, "http.access_log_failed", {{"error", std::strerror(errno)}});
    }
  }

  static std::string JsonString(std::string_view s) {
    std::string out = "\"";
    for (char c : s) {
      auto u = static_cast<unsigned char>(c);
      if (c == '"' || c == '\\') {
        out += '\\';
        out += c;
      } else if (u < 0x20 || u >= 0x7f) {
        // Request targets are bytes, not UTF-8: escape anything outside printable ASCII.
        char buf[8];
        std::snprintf(buf, sizeof(buf), "\\u%04x", u);
        out += buf;
      } else {
        out += c;
      }
    }
    return out + "\"";
  }

  void Count(int status) {
    int c = status / 100;
    if (c >= 1 && c <= 5 && requests_by_class[c] != nullptr) requests_by_class[c]->Inc();
  }

  template <typename Stream>
  awaitable<void> Serve(Stream& stream, beast::tcp_stream& lowest, const std::string& remote,
                        bool tls, SessionState* state) {
    beast::flat_buffer buffer;
    // Request bodies of known length are read into this connection's buffer, which
    // goes back here after the handler: an upload of 1 GiB in 2 MiB bodies otherwise
    // maps (and the kernel zeroes) ~170 k fresh pages. Large buffers are not kept.
    std::string body_buffer;
    bool first = true;
    for (;;) {
      if (stopping) co_return;
      bhttp::request_parser<bhttp::string_body> parser;
      parser.header_limit(opts.max_header_bytes);
      // The handler decides the body limit once it has seen the headers.
      parser.body_limit(std::numeric_limits<std::uint64_t>::max());
      state->idle = true;
      lowest.expires_after(first ? opts.header_timeout : opts.idle_timeout);
      auto [rec, rn_unused] = co_await bhttp::async_read_header(stream, buffer, parser, kTuple);
      state->idle = false;
      first = false;
      if (rec) {
        if (rec == bhttp::error::header_limit) {
          co_await WriteSimple(stream, lowest, 431, "request headers too large");
        } else if (rec.category() == bhttp::make_error_code(bhttp::error::bad_method).category() &&
                   rec != bhttp::error::end_of_stream && rec != bhttp::error::partial_message) {
          co_await WriteSimple(stream, lowest, 400, "malformed HTTP request");
        }
        co_return;
      }
      auto start = std::chrono::steady_clock::now();
      Request req;
      {
        const auto& h = parser.get();
        req.method = std::string(h.method_string());
        req.target = std::string(h.target());
        req.remote_address = remote;
        req.tls = tls;
        req.received = start;
        for (const auto& f : h) {
          std::string name(f.name_string());
          for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
          req.headers.push_back({std::move(name), std::string(f.value())});
        }
      }
      std::string_view t = req.target;
      auto qpos = t.find('?');
      auto decoded = PercentDecode(t.substr(0, qpos));
      if (!decoded.ok() || decoded->empty() || (*decoded)[0] != '/') {
        co_await WriteSimple(stream, lowest, 400,
                             "bad request target: the path must start with / and hold no NUL or "
                             "malformed %-escape");
        co_return;
      }
      req.path = std::move(*decoded);
      if (qpos != std::string_view::npos) req.query = std::string(t.substr(qpos + 1));

      bool keep_alive = parser.get().keep_alive();
      if (!parser.is_done()) {
        std::uint64_t limit = handler->BodyLimit(req);
        auto len = parser.content_length();
        if (limit == 0 || (len && *len > limit)) {
          co_await WriteSimple(stream, lowest, 413,
                               "request body larger than " + std::to_string(limit) + " bytes");
          if (!tls) co_await LingeringClose(stream, lowest);
          co_return;
        }
        parser.body_limit(limit);
        if (const std::string* expect = req.GetHeader("expect");
            expect != nullptr && strcasecmp(expect->c_str(), "100-continue") == 0) {
          static const std::string kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
          if (!co_await WriteAll(stream, lowest, kContinue)) {
            co_return;
          }
        }
        lowest.expires_after(opts.body_timeout);
        if (len && !parser.chunked()) {
          // A body of known length is read straight into its string, as much per read
          // as the socket has. Beast's parser would read it through `buffer`, whose
          // capacity after a header is ~1 KiB: an 8 MiB upload then took ~16 k reads
          // (and as many trips through the reactor) instead of a few hundred.
          std::string body = std::move(body_buffer);
          body.assign(*len, '\0');
          std::size_t have = std::min<std::size_t>(buffer.size(), body.size());
          std::memcpy(body.data(), buffer.data().data(), have);
          buffer.consume(have);
          while (have < body.size()) {
            auto [bec, bn] = co_await stream.async_read_some(
                asio::buffer(body.data() + have, body.size() - have), kTuple);
            if (bec) co_return;
            have += bn;
          }
          req.body = std::move(body);
        } else {
          auto [bec, bn] = co_await bhttp::async_read(stream, buffer, parser, kTuple);
          if (bec) {
            if (bec == bhttp::error::body_limit) {
              co_await WriteSimple(stream, lowest, 413,
                                   "request body larger than " + std::to_string(limit) + " bytes");
              if (!tls) co_await LingeringClose(stream, lowest);
            }
            co_return;
          }
          req.body = std::move(parser.get().body());
        }
      }

      Response resp;
      handler->Handle(req, &resp);
      while (resp.wait) {
        lowest.expires_never();
        Response::Wait wait = *resp.wait;
        bool timed_out = co_await WaitTopic(wait);
        req.poll_round++;
        req.poll_timed_out = timed_out;
        resp = Response();
        handler->Handle(req, &resp);
      }
      if (resp.close || stopping) keep_alive = false;

      bool ok;
      if (resp.file) {
        std::shared_ptr<const OpenFile> file = std::move(resp.file->file);
        std::string head = HeadText(resp, resp.file->length, keep_alive);
        bool body_follows = req.method != "HEAD" && resp.file->length > 0;
        ok = co_await WriteResponse(stream, lowest, tls, head, {}, body_follows);
        if (ok && req.method != "HEAD") {
          ok = co_await SendFile(stream, lowest, tls, file->fd(), resp.file->offset,
                                 resp.file->length);
        }
      } else if (req.method == "HEAD") {
        std::string head = HeadText(resp, resp.head_length.value_or(resp.body.size()), keep_alive);
        ok = co_await WriteResponse(stream, lowest, tls, head, {}, false);
      } else {
        bool bodiless = resp.status == 304 || resp.status == 204;
        std::string head = HeadText(resp, resp.body.size(), keep_alive);
        ok = co_await WriteResponse(stream, lowest, tls, head,
                                    bodiless ? std::string_view() : resp.body, false);
      }
      if (req.body.capacity() <= kKeptBodyBuffer && req.body.capacity() > body_buffer.capacity()) {
        body_buffer = std::move(req.body);
      }
      Count(resp.status);
      LogAccess(req, resp.status,
                req.method == "HEAD" || resp.status == 304 || resp.status == 204 ? 0
                : resp.file                                                      ? resp.file->length
                                                                                 : resp.body.size(),
                start);
      if (latency) {
        latency->Observe(
            std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
      }
      if (!ok || !keep_alive) co_return;
    }
  }

  awaitable<void> EveryLoop(std::shared_ptr<asio::steady_timer> timer,
                            std::chrono::milliseconds period, std::function<void()> fn) {
    for (;;) {
      timer->expires_after(period);
      auto [ec] = co_await timer->async_wait(kTuple);
      if (ec || stopping) co_return;
      fn();
    }
  }
};

Server::Server(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Server::~Server() { Stop(); }

core::Result<std::unique_ptr<Server>> Server::Start(Handler* handler,
                                                    const ServerOptions& options) {
  auto impl = std::make_unique<Impl>(handler, options);
  // HOST:PORT, with [v6] brackets.
  std::string_view listen = options.listen;
  auto colon = listen.rfind(':');
  if (colon == std::string_view::npos) {
    return Status::InvalidArgument("listen address `" + options.listen +
                                   "` is not HOST:PORT (e.g. 127.0.0.1:8080 or [::]:8080)");
  }
  std::string host(listen.substr(0, colon));
  std::string port_text(listen.substr(colon + 1));
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  if (host.empty() || host == "*") host = "0.0.0.0";
  int port = -1;
  try {
    std::size_t used = 0;
    port = std::stoi(port_text, &used);
    if (used != port_text.size()) port = -1;
  } catch (...) {
    port = -1;
  }
  if (port < 0 || port > 65535) {
    return Status::InvalidArgument("listen address `" + options.listen + "` has a bad port");
  }
  beast::error_code ec;
  auto addr = asio::ip::make_address(host, ec);
  if (ec) {
    // A name: resolve it (e.g. "localhost").
    tcp::resolver resolver(impl->ioc);
    auto results = resolver.resolve(host, port_text, ec);
    if (ec || results.empty()) {
      return Status::InvalidArgument("listen address `" + options.listen +
                                     "`: cannot resolve host: " + ec.message());
    }
    addr = results.begin()->endpoint().address();
  }
  tcp::endpoint ep(addr, static_cast<std::uint16_t>(port));

  if (!options.tls_cert_file.empty() || !options.tls_key_file.empty()) {
    if (options.tls_cert_file.empty() || options.tls_key_file.empty()) {
      return Status::InvalidArgument("TLS needs both a certificate and a key file");
    }
    impl->ssl = std::make_unique<asio::ssl::context>(asio::ssl::context::tls_server);
    impl->ssl->set_options(asio::ssl::context::default_workarounds | asio::ssl::context::no_sslv2 |
                           asio::ssl::context::no_sslv3 | asio::ssl::context::no_tlsv1 |
                           asio::ssl::context::no_tlsv1_1 | asio::ssl::context::single_dh_use);
    impl->ssl->use_certificate_chain_file(options.tls_cert_file, ec);
    if (ec) {
      return Status::InvalidArgument("TLS certificate " + options.tls_cert_file + ": " +
                                     ec.message());
    }
    impl->ssl->use_private_key_file(options.tls_key_file, asio::ssl::context::pem, ec);
    if (ec) {
      return Status::InvalidArgument("TLS key " + options.tls_key_file + ": " + ec.message());
    }
  }

  impl->acceptor.open(ep.protocol(), ec);
  if (!ec) impl->acceptor.set_option(tcp::acceptor::reuse_address(true), ec);
  if (!ec) impl->acceptor.bind(ep, ec);
  if (!ec) impl->acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    std::string msg = "listen on " + options.listen + ": " + ec.message();
    if (ec == asio::error::address_in_use) {
      return Status::Unavailable(msg + " (another process uses the port; pick another --listen)");
    }
    if (ec == asio::error::access_denied) return Status::PermissionDenied(msg);
    return Status::IOError(msg);
  }
  auto local = impl->acceptor.local_endpoint(ec);
  impl->port = local.port();
  impl->host = local.address().is_unspecified() ? (local.address().is_v6() ? "::1" : "127.0.0.1")
                                                : local.address().to_string();
  if (!options.access_log.empty()) {
    impl->access_fd =
        ::open(options.access_log.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
    if (impl->access_fd < 0) {
      return core::ErrnoStatus(errno, "access log " + options.access_log);
    }
  }
  impl->SetUpMetrics();

  Impl* raw = impl.get();
  asio::co_spawn(impl->ioc, raw->Listen(), asio::detached);
  unsigned n =
      options.threads != 0 ? options.threads : std::max(1u, std::thread::hardware_concurrency());
  for (unsigned i = 0; i < n; ++i) {
    impl->threads.emplace_back([raw] {
      for (;;) {
        try {
          raw->ioc.run();
          return;
        } catch (const std::exception& e) {
          core::Log(core::LogLevel::kError, "http.loop_exception", {{"error", e.what()}});
        }
      }
    });
  }
  return std::unique_ptr<Server>(new Server(std::move(impl)));
}

std::uint16_t Server::port() const { return impl_->port; }

bool Server::tls() const { return impl_->ssl != nullptr; }

std::string Server::url() const {
  std::string host =
      impl_->host.find(':') != std::string::npos ? "[" + impl_->host + "]" : impl_->host;
  return std::string(tls() ? "https://" : "http://") + host + ":" + std::to_string(impl_->port);
}

std::uint64_t Server::Sequence(const std::string& topic) { return impl_->Sequence(topic); }
void Server::Notify(const std::string& topic) { impl_->Notify(topic); }
void Server::NotifyAll() { impl_->NotifyAll(); }

void Server::Every(std::chrono::milliseconds period, std::function<void()> fn) {
  auto timer = std::make_shared<asio::steady_timer>(impl_->ioc);
  {
    std::lock_guard<std::mutex> lock(impl_->every_mu);
    impl_->every_timers.push_back(timer);
  }
  asio::co_spawn(impl_->ioc, impl_->EveryLoop(timer, period, std::move(fn)), asio::detached);
}

std::size_t Server::active_connections() const { return impl_->connections.load(); }

void Server::Stop() {
  if (!impl_ || impl_->stopped.exchange(true)) return;
  Impl* impl = impl_.get();
  impl->stopping = true;
  asio::post(impl->acceptor.get_executor(), [impl] {
    beast::error_code ignored;
    impl->acceptor.close(ignored);
  });
  {
    std::lock_guard<std::mutex> lock(impl->every_mu);
    for (auto& t : impl->every_timers) {
      asio::post(impl->ioc, [t] { t->cancel(); });
    }
  }
  impl->NotifyAll();
  auto deadline = std::chrono::steady_clock::now() + impl->opts.shutdown_grace;
  while (impl->connections.load() > 0 && std::chrono::steady_clock::now() < deadline) {
    {
      std::lock_guard<std::mutex> lock(impl->sessions_mu);
      for (const auto& st : impl->sessions) {
        if (st->idle) {
          asio::post(st->executor, [st] {
            if (st->idle && st->cancel) st->cancel();
          });
        }
      }
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  impl->ioc.stop();
  for (auto& t : impl->threads) {
    if (t.joinable()) t.join();
  }
}

OpenFile::~OpenFile() {
  if (fd_ >= 0) ::close(fd_);
}

}  // namespace depot::http
