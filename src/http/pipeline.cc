#include "http/pipeline.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cstring>
#include <deque>
#include <memory>

#include "core/errors.h"
#include "core/path.h"
#include "http/curl_errors.h"
#include "http/response_head.h"
#include "http/server.h"

namespace depot::http {

using core::Status;
using Clock = std::chrono::steady_clock;

namespace {

constexpr std::size_t kInBuffer = 256 * 1024;
constexpr std::size_t kMaxHead = 16 * 1024;
// An answer longer than its request allows is read past (not kept) up to this size,
// so the answers behind it on the connection stay usable; a longer one ends the
// connection instead.
constexpr std::uint64_t kMaxSkip = 4u << 20;
constexpr int kMaxTries = 3;

// Why a connection is dropped.
enum class End {
  kFailed,        // a protocol or socket error, or a connect that did not complete
  kServerClosed,  // the server ended or reset it
  kStalled,       // requests in flight and no byte for the stall timeout
};

std::string_view EndText(End e) {
  switch (e) {
    case End::kServerClosed:
      return "server closed";
    case End::kStalled:
      return "stalled";
    case End::kFailed:
      break;
  }
  return "connection failed";
}

struct Conn {
  int fd = -1;
  bool connecting = false;
  Clock::time_point started, last_progress;
  std::string out;
  std::size_t out_off = 0;
  std::deque<std::size_t> inflight;  // request indices, in the order they were sent
  std::unique_ptr<char[]> in{new char[kInBuffer]};
  std::size_t in_begin = 0, in_end = 0;
  bool in_body = false;
  std::uint64_t skip = 0;  // bytes of a refused answer's body still to read past
  bool close_after_skip = false;
  ResponseHead head;
  std::string body;
  std::size_t answered = 0;

  ~Conn() {
    if (fd >= 0) ::close(fd);
  }
};

class Run {
 public:
  Run(const PipelineTarget& t, const PipelineOptions& o,
      const std::vector<core::FetchRequest>& requests, const PipelineHooks& hooks)
      : t_(t), o_(o), requests_(requests), hooks_(hooks), tries_(requests.size(), 0) {}

  PipelineOutcome Go(const std::vector<std::size_t>& indices) {
    for (std::size_t i : indices) {
      Status valid = core::ValidateRelativePath(requests_[i].path);
      if (!valid.ok()) {
        if (!Deliver(i, valid)) return Finish();
        continue;
      }
      queue_.push_back(i);
    }
    if (!queue_.empty()) {
      Status r = Resolve();
      if (!r.ok()) {
        FailAll(r);
        return Finish();
      }
    }
    depth_ = std::max(1u, o_.depth);
    while (!out_.stopped && out_.rest.empty() && (!queue_.empty() || Inflight() > 0)) {
      // Open connections while there is work for them.
      while (conns_.size() < std::max(1u, o_.connections) &&
             conns_.size() * depth_ < queue_.size() + Inflight()) {
        if (!Open()) break;
      }
      if (conns_.empty()) {
        FailAll(last_connect_error_.ok() ? Status::Unavailable(t_.url + ": cannot connect")
                                         : last_connect_error_);
        break;
      }
      for (auto& c : conns_) Fill(c.get());
      Poll();
    }
    return Finish();
  }

 private:
  std::size_t Inflight() const {
    std::size_t n = 0;
    for (const auto& c : conns_) n += c->inflight.size();
    return n;
  }

  PipelineOutcome Finish() {
    if (!out_.rest.empty()) {
      // Whatever was queued or in flight goes back to the caller, in request order.
      for (auto& c : conns_)
        out_.rest.insert(out_.rest.end(), c->inflight.begin(), c->inflight.end());
      out_.rest.insert(out_.rest.end(), queue_.begin(), queue_.end());
      std::sort(out_.rest.begin(), out_.rest.end());
      out_.rest.erase(std::unique(out_.rest.begin(), out_.rest.end()), out_.rest.end());
    }
    conns_.clear();
    return std::move(out_);
  }

  bool Deliver(std::size_t i, core::Result<std::string> r) {
    if (out_.stopped) return false;
    if (!hooks_.on_done(i, std::move(r))) out_.stopped = true;
    return !out_.stopped;
  }

  void FailAll(const Status& s) {
    for (auto& c : conns_) {
      for (std::size_t i : c->inflight) queue_.push_back(i);
      c->inflight.clear();
    }
    while (!queue_.empty() && !out_.stopped) {
      std::size_t i = queue_.front();
      queue_.pop_front();
      Deliver(i, s);
    }
  }

  Status Resolve() {
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    addrinfo* res = nullptr;
    std::string port = std::to_string(t_.port);
    int rc = ::getaddrinfo(t_.host.c_str(), port.c_str(), &hints, &res);
    if (rc != 0 || res == nullptr) {
      return Status::Unavailable(t_.url + ": cannot resolve " + t_.host + ": " +
                                 ::gai_strerror(rc));
    }
    std::memcpy(&addr_, res->ai_addr, res->ai_addrlen);
    addr_len_ = res->ai_addrlen;
    family_ = res->ai_family;
    ::freeaddrinfo(res);
    return Status::Ok();
  }

  bool Open() {
    // Two failed connects in a row with nothing answered since: the server is down.
    if (connect_failures_ >= 2) return false;
    int fd = ::socket(family_, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
      last_connect_error_ = core::ErrnoStatus(errno, t_.url + ": socket");
      ++connect_failures_;
      return false;
    }
    int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    auto c = std::make_unique<Conn>();
    c->fd = fd;
    c->started = c->last_progress = Clock::now();
    if (::connect(fd, reinterpret_cast<sockaddr*>(&addr_), addr_len_) != 0) {
      if (errno != EINPROGRESS) {
        last_connect_error_ = Status::Unavailable(t_.url + ": connect: " + std::strerror(errno));
        ++connect_failures_;
        return false;
      }
      c->connecting = true;
    }
    conns_.push_back(std::move(c));
    return true;
  }

  void Fill(Conn* c) {
    while (c->inflight.size() < depth_ && !queue_.empty()) {
      std::size_t i = queue_.front();
      queue_.pop_front();
      c->out += "GET ";
      c->out += t_.path_prefix;
      c->out += '/';
      c->out += PercentEncode(requests_[i].path, /*keep_slash=*/true);
      c->out += " HTTP/1.1\r\nHost: ";
      c->out += t_.host_header;
      c->out += "\r\nUser-Agent: depot/0.1\r\n";
      if (!o_.bearer_token.empty()) {
        c->out += "Authorization: Bearer ";
        c->out += o_.bearer_token;
        c->out += "\r\n";
      }
      c->out += "\r\n";
      if (c->inflight.empty()) c->last_progress = Clock::now();
      c->inflight.push_back(i);
    }
  }

  void Poll() {
    std::vector<pollfd> fds(conns_.size());
    for (std::size_t k = 0; k < conns_.size(); ++k) {
      Conn* c = conns_[k].get();
      fds[k].fd = c->fd;
      fds[k].events = POLLIN;
      if (c->connecting || c->out_off < c->out.size()) fds[k].events |= POLLOUT;
    }
    int n = ::poll(fds.data(), fds.size(), 200);
    if (n < 0 && errno != EINTR) {
      FailAll(core::ErrnoStatus(errno, t_.url + ": poll"));
      return;
    }
    auto now = Clock::now();
    std::vector<bool> drop(conns_.size(), false);
    std::vector<End> why(conns_.size(), End::kFailed);
    for (std::size_t k = 0; k < conns_.size() && !out_.stopped && out_.rest.empty(); ++k) {
      short ev = n > 0 ? fds[k].revents : 0;
      drop[k] = Service(conns_[k].get(), ev, now, &why[k]);
    }
    for (std::size_t k = conns_.size(); k-- > 0;) {
      if (!drop[k]) continue;
      Drop(conns_[k].get(), why[k]);
      conns_.erase(conns_.begin() + static_cast<std::ptrdiff_t>(k));
    }
  }

  // One connection's turn after a poll that reported `ev` for it: completes its
  // connect, sends what waits, reads what came. True when it is to be dropped, for
  // the reason in *why.
  bool Service(Conn* c, short ev, Clock::time_point now, End* why) {
    if (c->connecting) {
      if (ev & (POLLOUT | POLLERR | POLLHUP)) {
        int err = 0;
        socklen_t len = sizeof(err);
        ::getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
        if (err != 0) {
          last_connect_error_ = Status::Unavailable(t_.url + ": connect: " + std::strerror(err));
          ++connect_failures_;
          return true;
        }
        c->connecting = false;
        c->last_progress = now;
      } else if (now - c->started > std::chrono::seconds(o_.connect_timeout_s)) {
        last_connect_error_ = Status::Unavailable(t_.url + ": connect: timed out");
        ++connect_failures_;
        return true;
      } else {
        return false;
      }
    }
    if (c->out_off < c->out.size()) {
      ssize_t w =
          ::send(c->fd, c->out.data() + c->out_off, c->out.size() - c->out_off, MSG_NOSIGNAL);
      if (w > 0) {
        c->out_off += static_cast<std::size_t>(w);
        if (c->out_off == c->out.size()) {
          c->out.clear();
          c->out_off = 0;
        }
      } else if (w < 0 && errno != EAGAIN && errno != EINTR) {
        if (errno == EPIPE || errno == ECONNRESET) {
          // A server that closes after answering (a keep-alive limit, HTTP/1.0)
          // makes the next pipelined send fail while its answers still wait in
          // our receive buffer: take them first, so they count as answered (and
          // the requests they answer are not sent again or charged a try).
          // (Read says kServerClosed at the end of the stream; a false without it
          // is an answer that is not HTTP, which stays a failure.)
          if (Read(c, why)) *why = End::kServerClosed;
        }
        return true;
      }
    }
    if (ev & (POLLIN | POLLHUP | POLLERR)) {
      if (!Read(c, why)) return true;
    }
    if (!c->inflight.empty() && now - c->last_progress > std::chrono::seconds(o_.stall_timeout_s)) {
      *why = End::kStalled;
      return true;
    }
    return false;
  }

  // A connection is gone with requests in flight: they go back to the queue (front,
  // in order). A server that closed a connection after answering on it made
  // progress (a keep-alive limit, an idle close racing the next request): no try is
  // used. Otherwise -- it answered nothing, stalled, or sent what is not HTTP --
  // each request counts a try, and one that used its tries fails.
  void Drop(Conn* c, End why) {
    bool closed_after_answers = why == End::kServerClosed && c->answered > 0;
    if (closed_after_answers && !c->inflight.empty() && depth_ > 1) {
      // It answered some and dropped the rest without saying so: it may not take
      // pipelined requests. One at a time from now on.
      depth_ = 1;
      out_.no_pipelining = true;
    }
    if (closed_after_answers) {
      for (auto it = c->inflight.rbegin(); it != c->inflight.rend(); ++it) queue_.push_front(*it);
      c->inflight.clear();
      return;
    }
    for (auto it = c->inflight.rbegin(); it != c->inflight.rend(); ++it) {
      std::size_t i = *it;
      if (++tries_[i] >= kMaxTries) {
        Deliver(i, Status::Unavailable(t_.url + "/" + requests_[i].path + ": " +
                                       std::string(EndText(why)) + " (" +
                                       std::to_string(kMaxTries) + " tries)"));
      } else {
        queue_.push_front(i);
      }
    }
    c->inflight.clear();
  }

  // Reads what is there and hands out complete answers. False when the connection
  // is to be dropped (`*why` says why, when the server ended it).
  bool Read(Conn* c, End* why) {
    for (;;) {
      // A body's remainder goes straight into the body once the buffer is drained.
      if (c->in_body && c->in_begin == c->in_end) {
        std::size_t need = static_cast<std::size_t>(c->head.length) - c->body.size();
        std::size_t have = c->body.size();
        c->body.resize(have + need);
        ssize_t r = ::recv(c->fd, c->body.data() + have, need, 0);
        if (r <= 0) c->body.resize(have);
        if (r == 0 || (r < 0 && errno == ECONNRESET)) {
          *why = End::kServerClosed;
          return false;
        }
        if (r < 0) return errno == EAGAIN || errno == EINTR;
        c->body.resize(have + static_cast<std::size_t>(r));
        c->last_progress = Clock::now();
        if (hooks_.count_bytes) hooks_.count_bytes(static_cast<std::uint64_t>(r));
        if (c->body.size() == c->head.length && !Complete(c)) return false;
        continue;
      }
      if (c->in_begin > 0 && c->in_begin == c->in_end) c->in_begin = c->in_end = 0;
      if (c->in_end == kInBuffer) {
        std::memmove(c->in.get(), c->in.get() + c->in_begin, c->in_end - c->in_begin);
        c->in_end -= c->in_begin;
        c->in_begin = 0;
        if (c->in_end == kInBuffer) return false;  // a head this long is not one
      }
      ssize_t r = ::recv(c->fd, c->in.get() + c->in_end, kInBuffer - c->in_end, 0);
      // A server that closes with requests unread in its buffer resets the
      // connection instead of ending it: the same thing here.
      if (r == 0 || (r < 0 && errno == ECONNRESET)) {
        *why = End::kServerClosed;
        return false;
      }
      if (r < 0) return errno == EAGAIN || errno == EINTR;
      c->in_end += static_cast<std::size_t>(r);
      c->last_progress = Clock::now();
      if (!Parse(c)) return false;
      if (out_.stopped || !out_.rest.empty()) return true;
    }
  }

  // Consumes complete heads and bodies from the buffer.
  bool Parse(Conn* c) {
    while (c->in_begin < c->in_end) {
      if (c->skip > 0) {
        std::size_t take =
            static_cast<std::size_t>(std::min<std::uint64_t>(c->skip, c->in_end - c->in_begin));
        c->in_begin += take;
        c->skip -= take;
        if (c->skip > 0) return true;
        if (c->close_after_skip) return CloseAndRequeue(c);
        continue;
      }
      if (!c->in_body) {
        std::string_view buf(c->in.get() + c->in_begin, c->in_end - c->in_begin);
        std::size_t end = buf.find("\r\n\r\n");
        if (end == std::string_view::npos) return buf.size() <= kMaxHead;
        if (c->inflight.empty()) return false;  // an answer nobody asked for
        ResponseHead h;
        if (!ParseResponseHead(buf.substr(0, end + 2), &h)) return false;
        c->in_begin += end + 4;
        if (h.status < 200) continue;  // 100 Continue and friends: the answer follows
        if (!h.unsupported.empty()) {
          // Hand everything not yet answered back to the caller.
          out_.why_rest = t_.url + " answered with " + h.unsupported;
          out_.rest.push_back(c->inflight.front());
          return true;
        }
        std::size_t i = c->inflight.front();
        if (h.length > requests_[i].max_bytes) {
          c->inflight.pop_front();
          Deliver(i, Status::Corruption(
                         t_.url + "/" + requests_[i].path + ": response longer than the " +
                         std::to_string(requests_[i].max_bytes) + " bytes expected"));
          if (h.length <= kMaxSkip) {
            c->skip = h.length;
            c->close_after_skip = h.close;
            if (c->skip == 0 && h.close) return CloseAndRequeue(c);
            continue;
          }
          return CloseAndRequeue(c);
        }
        c->head = h;
        c->in_body = true;
        if (c->body.capacity() == 0 && hooks_.take_buffer) c->body = hooks_.take_buffer();
        c->body.clear();
        c->body.reserve(static_cast<std::size_t>(h.length));
      }
      std::size_t need = static_cast<std::size_t>(c->head.length) - c->body.size();
      std::size_t take = std::min(need, c->in_end - c->in_begin);
      c->body.append(c->in.get() + c->in_begin, take);
      c->in_begin += take;
      if (hooks_.count_bytes) hooks_.count_bytes(take);
      if (c->body.size() < c->head.length) return true;
      if (!Complete(c)) return false;
      if (out_.stopped) return true;
    }
    return true;
  }

  // The current answer is whole: hand it out. False when the connection is to close.
  bool Complete(Conn* c) {
    std::size_t i = c->inflight.front();
    c->inflight.pop_front();
    c->in_body = false;
    ++c->answered;
    connect_failures_ = 0;
    int status = c->head.status;
    bool close = c->head.close;
    if (status >= 200 && status <= 299) {
      std::string body;
      body.swap(c->body);
      Deliver(i, std::move(body));
    } else {
      c->body.clear();
      Deliver(i, HttpCodeStatus(status, t_.url + "/" + requests_[i].path));
    }
    if (close) return CloseAndRequeue(c);
    return true;
  }

  // The connection's stream ends here by the server's word or ours (not a failure):
  // what is still in flight goes to a new connection without a try used. False, for
  // the caller to drop the connection.
  bool CloseAndRequeue(Conn* c) {
    for (auto it = c->inflight.rbegin(); it != c->inflight.rend(); ++it) queue_.push_front(*it);
    c->inflight.clear();
    return false;
  }

  const PipelineTarget& t_;
  const PipelineOptions& o_;
  const std::vector<core::FetchRequest>& requests_;
  const PipelineHooks& hooks_;
  std::vector<std::uint8_t> tries_;
  std::deque<std::size_t> queue_;
  std::vector<std::unique_ptr<Conn>> conns_;
  unsigned depth_ = 1;
  sockaddr_storage addr_{};
  socklen_t addr_len_ = 0;
  int family_ = AF_INET;
  int connect_failures_ = 0;
  Status last_connect_error_;
  PipelineOutcome out_;
};

}  // namespace

bool ParsePlainHttpUrl(const std::string& url, PipelineTarget* out) {
  std::string_view u = url;
  if (u.rfind("http://", 0) != 0) return false;
  u.remove_prefix(7);
  std::size_t slash = u.find('/');
  std::string_view authority = u.substr(0, slash);
  std::string_view path = slash == std::string_view::npos ? std::string_view() : u.substr(slash);
  if (authority.empty() || authority.find('@') != std::string_view::npos) return false;
  if (path.find_first_of("?#%") != std::string_view::npos) return false;
  std::string_view host = authority, port;
  if (authority.front() == '[') {
    auto close = authority.find(']');
    if (close == std::string_view::npos) return false;
    host = authority.substr(1, close - 1);
    std::string_view after = authority.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') return false;
      port = after.substr(1);
    }
  } else {
    auto colon = authority.rfind(':');
    if (colon != std::string_view::npos) {
      host = authority.substr(0, colon);
      port = authority.substr(colon + 1);
    }
  }
  if (host.empty()) return false;
  unsigned p = 80;
  if (!port.empty()) {
    auto [q, ec] = std::from_chars(port.data(), port.data() + port.size(), p);
    if (ec != std::errc() || q != port.data() + port.size() || p == 0 || p > 65535) return false;
  }
  while (!path.empty() && path.back() == '/') path.remove_suffix(1);
  out->host = std::string(host);
  out->port = static_cast<std::uint16_t>(p);
  out->host_header = std::string(authority);
  out->path_prefix = std::string(path);
  out->url = url;
  while (!out->url.empty() && out->url.back() == '/') out->url.pop_back();
  return true;
}

PipelineOutcome PipelinedGet(const PipelineTarget& target, const PipelineOptions& options,
                             const std::vector<core::FetchRequest>& requests,
                             const std::vector<std::size_t>& indices, const PipelineHooks& hooks) {
  Run run(target, options, requests, hooks);
  return run.Go(indices);
}

}  // namespace depot::http
