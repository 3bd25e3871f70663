// The Beast/Asio implementation of http::Server. Beast parses requests and provides
// the timed streams; responses are serialized here (a status line and headers are
// simple, and writing them ourselves lets file bodies go out with sendfile(2)).
#include "http/server.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <strings.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <boost/asio.hpp>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <cstring>
#include <limits>
#include <mutex>
#include <thread>
#include <unordered_set>

#include "core/errors.h"
#include "core/log.h"
#include "http/access_log.h"
#include "http/address_budget.h"
#include "http/framing.h"
#include "http/head_text.h"
#include "http/request_head.h"
#include "http/server_metrics.h"
#include "http/server_setup.h"
#include "http/stream_io.h"
#include "http/topic_board.h"

namespace depot::http {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using tcp = asio::ip::tcp;
using asio::awaitable;
using asio::use_awaitable;
using core::Status;

namespace {

using stream_io::kTuple;
// Body buffers go back to a pool the server shares (not to their connection, so an
// idle connection holds none): at most kPooledBuffers of at most kPooledCapacity.
// An upload of 1 GiB in 2 MiB bodies otherwise maps (and the kernel zeroes) ~170 k
// fresh pages.
constexpr std::size_t kPooledBuffers = 4;
constexpr std::size_t kPooledCapacity = 8u << 20;
// Descriptors a server process needs besides its connections.
constexpr std::size_t kReservedFiles = 256;

// The address of a connection's peer ("" when it is already gone), IPv4-mapped IPv6
// written as IPv4.
template <typename Socket>
std::string PeerAddress(const Socket& sock) {
  beast::error_code ec;
  auto ep = sock.remote_endpoint(ec);
  if (ec) return "";
  auto addr = ep.address();
  if (addr.is_v6() && addr.to_v6().is_v4_mapped()) {
    addr = asio::ip::make_address_v4(asio::ip::v4_mapped, addr.to_v6());
  }
  return addr.to_string();
}

// Per-connection state the server can reach from outside the coroutine (to close
// idle connections at shutdown).
struct SessionState {
  std::atomic<bool> idle{true};
  std::function<void()> cancel;  // runs on the session's strand
  asio::any_io_executor executor;
};

}  // namespace

struct Server::Impl {
  Impl(Handler* h, ServerOptions o)
      : handler(h),
        opts(Fitted(std::move(o))),
        acceptor(ioc),
        peers(opts.max_connections, opts.max_connections_per_address),
        bodies(opts.max_body_memory, opts.max_body_memory_per_address) {}

  // `o` with its connection limit fitted to the open-files limit and the per-address
  // defaults filled in.
  static ServerOptions Fitted(ServerOptions o) {
    o.max_connections = FitConnectionsToFileLimit(o.max_connections, kReservedFiles);
    // (AddressBudget holds a per-address share above the total to the total.)
    if (o.max_connections_per_address == 0)
      o.max_connections_per_address = std::max<std::size_t>(1, o.max_connections / 4);
    if (o.max_body_memory_per_address == 0) o.max_body_memory_per_address = o.max_body_memory / 4;
    return o;
  }

  Handler* handler;
  ServerOptions opts;
  asio::io_context ioc;
  tcp::acceptor acceptor;
  std::unique_ptr<asio::ssl::context> ssl;
  std::vector<std::thread> threads;
  std::atomic<std::size_t> connections{0};
  std::atomic<std::size_t> parked{0};  // requests in a long-poll wait
  std::atomic<bool> stopping{false};
  std::atomic<bool> stopped{false};
  std::string host;
  std::uint16_t port = 0;

  TopicBoard topics{&stopping};  // long polls

  std::mutex sessions_mu;
  std::unordered_set<std::shared_ptr<SessionState>> sessions;

  std::vector<std::shared_ptr<asio::steady_timer>> every_timers;
  std::mutex every_mu;

  AccessLog access_log;
  ServerMetrics metrics;  // null pointers when no registry
  AddressBudget peers;    // connections
  AddressBudget bodies;   // bytes of request bodies

  std::mutex pool_mu;
  std::vector<std::string> pool;  // body buffers (kPooledBuffers at most)

  std::string TakeBuffer() {
    std::lock_guard lock(pool_mu);
    if (pool.empty()) return {};
    std::string b = std::move(pool.back());
    pool.pop_back();
    return b;
  }
  void GiveBuffer(std::string b) {
    if (b.capacity() == 0 || b.capacity() > kPooledCapacity) return;
    std::lock_guard lock(pool_mu);
    if (pool.size() < kPooledBuffers) pool.push_back(std::move(b));
  }
  stream_io::Writing Writes() const { return {opts.write_timeout, metrics.bytes_sent}; }

  // Starts accepting, and the threads that run the io_context.
  void RunThreads() {
    asio::co_spawn(ioc, Listen(), asio::detached);
    unsigned n =
        opts.threads != 0 ? opts.threads : std::max(1u, std::thread::hardware_concurrency());
    for (unsigned i = 0; i < n; ++i) {
      threads.emplace_back([this] {
        for (;;) {
          try {
            ioc.run();
            return;
          } catch (const std::exception& e) {
            core::Log(core::LogLevel::kError, "http.loop_exception", {{"error", e.what()}});
          }
        }
      });
    }
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
      std::string remote = PeerAddress(sock);
      if (!peers.Reserve(remote, 1)) {
        if (metrics.rejected_connections) metrics.rejected_connections->Inc();
        asio::co_spawn(sock.get_executor(), RejectBusy(std::move(sock)), asio::detached);
        continue;
      }
      ++connections;
      auto ex = sock.get_executor();
      asio::co_spawn(ex, Session(std::move(sock), remote), [this, remote](std::exception_ptr e) {
        peers.Release(remote, 1);
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

  awaitable<void> Session(tcp::socket sock, std::string remote) {
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

  template <typename Stream>
  awaitable<bool> WriteAll(Stream& stream, beast::tcp_stream& lowest, std::string_view a,
                           std::string_view b = {}) {
    co_return co_await stream_io::WriteAll(stream, lowest, Writes(), a, b);
  }

  template <typename Stream>
  awaitable<void> WriteSimple(Stream& stream, beast::tcp_stream& lowest, int status,
                              std::string_view message) {
    Response r = ErrorJson(status, message);
    std::string head = HeadText(r, opts.server_name, r.body.size(), false);
    co_await WriteAll(stream, lowest, head, r.body);
    metrics.Count(status);
  }

  template <typename Stream>
  awaitable<void> Serve(Stream& stream, beast::tcp_stream& lowest, const std::string& remote,
                        bool tls, SessionState* state) {
    beast::flat_buffer buffer;
    bool first = true;
    for (;;) {
      if (stopping) co_return;
      bhttp::request_parser<bhttp::string_body> parser;
      parser.header_limit(opts.max_header_bytes);
      // The handler decides the body limit once it has seen the headers (AdmitBody).
      parser.body_limit(std::numeric_limits<std::uint64_t>::max());
      state->idle = true;
      lowest.expires_after(first ? opts.header_timeout : opts.idle_timeout);
      auto [rec, rn_unused] = co_await bhttp::async_read_header(stream, buffer, parser, kTuple);
      state->idle = false;
      first = false;
      if (rec) {
        co_await AnswerUnreadHead(stream, lowest, rec);
        co_return;
      }
      auto start = std::chrono::steady_clock::now();
      Request req = RequestOf(parser.get(), remote, tls, start);
      if (!SplitTarget(&req)) {
        co_await WriteSimple(stream, lowest, 400,
                             "bad request target: the path must start with / and hold no NUL or "
                             "malformed %-escape");
        co_return;
      }

      if (auto bad = FramingError(req.headers)) {
        co_await WriteSimple(stream, lowest, 400, *bad);
        co_return;
      }

      bool keep_alive = parser.get().keep_alive();
      if (!parser.is_done()) {
        const std::uint64_t reserved = co_await AdmitBody(stream, lowest, tls, parser, req);
        if (reserved == 0) co_return;
        const bool read = co_await ReadBody(stream, lowest, buffer, parser, reserved, req);
        if (!read) {
          bodies.Release(remote, reserved);
          co_return;
        }
        Response resp = co_await Respond(lowest, req);
        // The body is done with: its memory goes back before a slow reader is answered.
        GiveBuffer(std::move(req.body));
        bodies.Release(remote, reserved);
        if (!co_await Answer(stream, lowest, tls, req, resp, keep_alive)) co_return;
        continue;
      }
      Response resp = co_await Respond(lowest, req);
      if (!co_await Answer(stream, lowest, tls, req, resp, keep_alive)) co_return;
    }
  }

  // Writes and records the answer to `req`. False when the connection is to end.
  template <typename Stream>
  awaitable<bool> Answer(Stream& stream, beast::tcp_stream& lowest, bool tls, const Request& req,
                         Response& resp, bool keep_alive) {
    if (resp.close || stopping) keep_alive = false;
    const bool written = co_await WriteAnswer(stream, lowest, tls, req, resp, keep_alive);
    Record(req, resp, req.received);
    const bool go_on = written && keep_alive;
    co_return go_on;
  }

  // Shows `req` (its headers only) to the handler, then reserves memory for its body
  // within the limits of the server and of the client's address. Returns the bytes
  // reserved; 0 when the request has been answered and the connection is to end:
  // refused by the handler, over its body limit (413) or over the memory its client
  // or the server may hold (503 with Retry-After).
  template <typename Stream>
  awaitable<std::uint64_t> AdmitBody(Stream& stream, beast::tcp_stream& lowest, bool tls,
                                     bhttp::request_parser<bhttp::string_body>& parser,
                                     Request& req) {
    Admission admission = handler->Admit(req);
    const std::uint64_t limit = admission.body_limit;
    const auto len = parser.content_length();
    Response refusal;
    if (admission.refusal) {
      refusal = std::move(*admission.refusal);
    } else if (limit == 0 || (len && *len > limit)) {
      refusal = ErrorJson(413, "request body larger than " + std::to_string(limit) + " bytes");
    } else {
      // A chunked body cannot be larger than what it may hold.
      const std::uint64_t reserve = len ? *len : std::min(limit, opts.max_body_memory_per_address);
      if (bodies.Reserve(req.remote_address, reserve)) {
        parser.body_limit(reserve);
        co_return co_await SendContinue(stream, lowest, req) ? reserve : 0;
      }
      if (metrics.rejected_bodies) metrics.rejected_bodies->Inc();
      refusal = ErrorJson(503, "too many request bodies in flight; retry shortly");
      refusal.SetHeader("Retry-After", "1");
    }
    co_await WriteAnswer(stream, lowest, tls, req, refusal, false);
    Record(req, refusal, req.received);
    if (!tls) co_await stream_io::LingeringClose(stream, lowest);
    co_return 0;
  }

  // Answers "Expect: 100-continue" (the client then sends the body). False when the
  // connection failed.
  template <typename Stream>
  awaitable<bool> SendContinue(Stream& stream, beast::tcp_stream& lowest, const Request& req) {
    const std::string* expect = req.GetHeader("expect");
    if (expect == nullptr || strcasecmp(expect->c_str(), "100-continue") != 0) co_return true;
    static const std::string kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
    co_return co_await WriteAll(stream, lowest, kContinue);
  }

  // An error answer ({"error":{"code","message"}}) that closes the connection: 503 is
  // Unavailable, everything else the server answers itself is the request's fault.
  static Response ErrorJson(int status, std::string_view message) {
    Response r =
        Response::Json(status, R"({"error":{"code":")" +
                                   std::string(status == 503 ? "Unavailable" : "InvalidArgument") +
                                   R"(","message":")" + std::string(message) + "\"}}");
    r.close = true;
    return r;
  }

  // Answers a request whose headers could not be read, if it deserves an answer (a
  // connection closed between requests does not).
  template <typename Stream>
  awaitable<void> AnswerUnreadHead(Stream& stream, beast::tcp_stream& lowest,
                                   beast::error_code rec) {
    if (rec == bhttp::error::header_limit) {
      co_await WriteSimple(stream, lowest, 431, "request headers too large");
    } else if (rec.category() == bhttp::make_error_code(bhttp::error::bad_method).category() &&
               rec != bhttp::error::end_of_stream && rec != bhttp::error::partial_message) {
      co_await WriteSimple(stream, lowest, 400, "malformed HTTP request");
    }
  }

  // Reads the admitted body of `req` (within `limit`, which AdmitBody set on `parser`).
  // False when the connection is to end: the body is over the limit (413 answered),
  // or the read failed or timed out.
  template <typename Stream>
  awaitable<bool> ReadBody(Stream& stream, beast::tcp_stream& lowest, beast::flat_buffer& buffer,
                           bhttp::request_parser<bhttp::string_body>& parser, std::uint64_t limit,
                           Request& req) {
    lowest.expires_after(opts.body_timeout);
    if (auto len = parser.content_length(); len && !parser.chunked()) {
      // A body of known length is read straight into its string, as much per read
      // as the socket has. Beast's parser would read it through `buffer`, whose
      // capacity after a header is ~1 KiB: an 8 MiB upload then took ~16 k reads
      // (and as many trips through the reactor) instead of a few hundred.
      req.body = TakeBuffer();
      co_return co_await stream_io::ReadBody(stream, buffer, *len, req.body);
    }
    auto [bec, bn] = co_await bhttp::async_read(stream, buffer, parser, kTuple);
    if (bec) {
      if (bec == bhttp::error::body_limit) {
        co_await WriteSimple(stream, lowest, 413,
                             "request body larger than " + std::to_string(limit) + " bytes");
        if (!req.tls) co_await stream_io::LingeringClose(stream, lowest);
      }
      co_return false;
    }
    req.body = std::move(parser.get().body());
    co_return true;
  }

  // The handler's answer to `req`, after as many long-poll waits as it asks for
  // (parked without a timer on the connection).
  awaitable<Response> Respond(beast::tcp_stream& lowest, Request& req) {
    Response resp;
    handler->Handle(req, &resp);
    while (resp.wait) {
      lowest.expires_never();
      Response::Wait wait = *resp.wait;
      parked.fetch_add(1);
      bool timed_out = co_await topics.Wait(wait);
      parked.fetch_sub(1);
      req.poll_round++;
      req.poll_timed_out = timed_out;
      resp = Response();
      handler->Handle(req, &resp);
    }
    co_return resp;
  }

  // Writes `resp` (its file body by sendfile where it can; no body for HEAD, 204 and
  // 304). False when the connection failed.
  template <typename Stream>
  awaitable<bool> WriteAnswer(Stream& stream, beast::tcp_stream& lowest, bool tls,
                              const Request& req, Response& resp, bool keep_alive) {
    bool ok;
    if (resp.file) {
      std::shared_ptr<const OpenFile> file = std::move(resp.file->file);
      std::string head = HeadText(resp, opts.server_name, resp.file->length, keep_alive);
      bool body_follows = req.method != "HEAD" && resp.file->length > 0;
      ok = co_await stream_io::WriteResponse(stream, lowest, Writes(), tls, head, {}, body_follows);
      if (ok && req.method != "HEAD") {
        ok = co_await stream_io::SendFile(stream, lowest, Writes(), tls, file->fd(),
                                          resp.file->offset, resp.file->length);
      }
    } else if (req.method == "HEAD") {
      std::string head =
          HeadText(resp, opts.server_name, resp.head_length.value_or(resp.body.size()), keep_alive);
      ok = co_await stream_io::WriteResponse(stream, lowest, Writes(), tls, head, {}, false);
    } else {
      bool bodiless = resp.status == 304 || resp.status == 204;
      std::string head = HeadText(resp, opts.server_name, resp.body.size(), keep_alive);
      ok = co_await stream_io::WriteResponse(stream, lowest, Writes(), tls, head,
                                             bodiless ? std::string_view() : resp.body, false);
    }
    co_return ok;
  }

  // Counts, logs and times an answered request.
  void Record(const Request& req, const Response& resp,
              std::chrono::steady_clock::time_point start) {
    metrics.Count(resp.status);
    access_log.Write(req, resp.status,
                     req.method == "HEAD" || resp.status == 304 || resp.status == 204 ? 0
                     : resp.file ? resp.file->length
                                 : resp.body.size(),
                     start);
    if (metrics.latency) {
      metrics.latency->Observe(
          std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
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
  DEPOT_ASSIGN_OR_RETURN(tcp::endpoint ep, ListenEndpoint(options.listen, impl->ioc));
  if (!options.tls_cert_file.empty() || !options.tls_key_file.empty()) {
    DEPOT_ASSIGN_OR_RETURN(impl->ssl,
                           TlsServerContext(options.tls_cert_file, options.tls_key_file));
  }
  DEPOT_RETURN_IF_ERROR(BindAcceptor(impl->acceptor, ep, options.listen));
  beast::error_code ec;
  auto local = impl->acceptor.local_endpoint(ec);
  impl->port = local.port();
  impl->host = local.address().is_unspecified() ? (local.address().is_v6() ? "::1" : "127.0.0.1")
                                                : local.address().to_string();
  if (!options.access_log.empty()) DEPOT_RETURN_IF_ERROR(impl->access_log.Open(options.access_log));
  impl->metrics.SetUp(options.metrics, options.metrics_prefix, &impl->connections, &impl->parked);
  impl->RunThreads();
  return std::unique_ptr<Server>(new Server(std::move(impl)));
}

std::uint16_t Server::port() const { return impl_->port; }

bool Server::tls() const { return impl_->ssl != nullptr; }

std::string Server::url() const {
  std::string host =
      impl_->host.find(':') != std::string::npos ? "[" + impl_->host + "]" : impl_->host;
  return std::string(tls() ? "https://" : "http://") + host + ":" + std::to_string(impl_->port);
}

std::uint64_t Server::Sequence(const std::string& topic) { return impl_->topics.Sequence(topic); }
void Server::Notify(const std::string& topic) { impl_->topics.Notify(topic); }
void Server::NotifyAll() { impl_->topics.NotifyAll(); }

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
  impl->topics.NotifyAll();
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
