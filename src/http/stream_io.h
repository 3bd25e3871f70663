// Reading and writing on one connection's stream, plain TCP or TLS: gathered
// writes, file bodies, request bodies that grow as they arrive, and the lingering
// close. Internal to the http component (server.cc alone includes it); every
// function runs on the connection's strand.
#pragma once

#include <unistd.h>

#include <algorithm>
#include <array>
#include <boost/asio.hpp>
#include <boost/asio/as_tuple.hpp>
#include <boost/beast/core.hpp>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "core/metrics.h"
#include "http/tcp_send.h"

namespace depot::http::stream_io {

inline constexpr auto kTuple = boost::asio::as_tuple(boost::asio::use_awaitable);

struct Writing {
  std::chrono::milliseconds timeout;  // per write
  core::Counter* bytes_sent = nullptr;
};

// Writes `a` then `b` in one gathered write. (Plain parameters: GCC 12 cannot pass
// an initializer list into a coroutine.)
template <typename Stream>
boost::asio::awaitable<bool> WriteAll(Stream& stream, boost::beast::tcp_stream& lowest, Writing w,
                                      std::string_view a, std::string_view b = {}) {
  lowest.expires_after(w.timeout);
  std::array<boost::asio::const_buffer, 2> bufs = {boost::asio::buffer(a.data(), a.size()),
                                                   boost::asio::buffer(b.data(), b.size())};
  auto [ec, n] = co_await boost::asio::async_write(stream, bufs, kTuple);
  if (w.bytes_sent) w.bytes_sent->Inc(n);
  co_return !ec && n == a.size() + b.size();
}

// SendNow, then an asynchronous write of whatever it could not send. On a plain TCP
// connection the socket nearly always takes a whole response at once (it is small
// next to the send buffer): SendNow skips an asynchronous write -- its timer, its
// posted completion and the coroutine's resumption -- for most responses.
template <typename Stream>
boost::asio::awaitable<bool> WriteResponse(Stream& stream, boost::beast::tcp_stream& lowest,
                                           Writing w, bool tls, std::string_view a,
                                           std::string_view b, bool more) {
  if (!tls) {
    std::size_t sent = SendNow(lowest.socket(), a, b, more, w.bytes_sent);
    if (sent == a.size() + b.size()) co_return true;
    if (sent >= a.size()) co_return co_await WriteAll(stream, lowest, w, b.substr(sent - a.size()));
    co_return co_await WriteAll(stream, lowest, w, a.substr(sent), b);
  }
  co_return co_await WriteAll(stream, lowest, w, a, b);
}

// Sends `length` bytes of `fd` from `offset`: sendfile on plain TCP, read+write
// otherwise. False when the connection failed or the file came up short.
template <typename Stream>
boost::asio::awaitable<bool> SendFile(Stream& stream, boost::beast::tcp_stream& lowest, Writing w,
                                      bool tls, int fd, std::uint64_t offset,
                                      std::uint64_t length) {
  if (!tls) {
    co_return co_await SendFileOverTcp(lowest.socket(), fd, offset, length, w.timeout,
                                       w.bytes_sent);
  }
  std::vector<char> buf(static_cast<std::size_t>(std::min<std::uint64_t>(256 * 1024, length)));
  std::uint64_t done = 0;
  while (done < length) {
    std::size_t want = static_cast<std::size_t>(std::min<std::uint64_t>(buf.size(), length - done));
    ssize_t n = ::pread(fd, buf.data(), want, static_cast<off_t>(offset + done));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) co_return false;
    if (!co_await WriteAll(stream, lowest, w,
                           std::string_view(buf.data(), static_cast<std::size_t>(n)))) {
      co_return false;
    }
    done += static_cast<std::uint64_t>(n);
  }
  co_return true;
}

// After answering a request whose body we will not read (401, 413, 503), closing at
// once would make the kernel reset the connection while the client is still
// sending, and the client might never see the answer. So, like nginx's lingering
// close: stop sending, then read and discard for a short while before closing.
template <typename Stream>
boost::asio::awaitable<void> LingeringClose(Stream& stream, boost::beast::tcp_stream& lowest) {
  boost::beast::error_code ignored;
  lowest.socket().shutdown(boost::asio::ip::tcp::socket::shutdown_send, ignored);
  lowest.expires_after(std::chrono::seconds(2));
  std::array<char, 16 * 1024> sink;
  std::uint64_t drained = 0;
  while (drained < (64ull << 20)) {
    auto [ec, n] = co_await stream.async_read_some(boost::asio::buffer(sink), kTuple);
    if (ec) break;
    drained += n;
  }
}

// Reads a body of `length` bytes into `body` (cleared first; its capacity reused),
// starting with what `buffered` holds past the headers. The string grows with the
// bytes that arrive -- doubling from 64 KiB, never sized from the declared length
// before they come. False when the connection failed or timed out.
template <typename Stream>
boost::asio::awaitable<bool> ReadBody(Stream& stream, boost::beast::flat_buffer& buffered,
                                      std::uint64_t length, std::string& body) {
  constexpr std::size_t kFirst = 64 * 1024;
  body.clear();
  const std::size_t want = static_cast<std::size_t>(length);
  std::size_t have = std::min<std::size_t>(buffered.size(), want);
  body.resize(std::min(want, std::max({kFirst, have, body.capacity()})));
  std::memcpy(body.data(), buffered.data().data(), have);
  buffered.consume(have);
  while (have < want) {
    if (have == body.size()) body.resize(std::min(want, body.size() * 2));
    auto [ec, n] = co_await stream.async_read_some(
        boost::asio::buffer(body.data() + have, body.size() - have), kTuple);
    if (ec) co_return false;
    have += n;
  }
  body.resize(want);
  co_return true;
}

}  // namespace depot::http::stream_io
