#include "http/tcp_send.h"

#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <algorithm>
#include <boost/asio.hpp>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <cerrno>

namespace depot::http {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;

std::size_t SendNow(tcp::socket& s, std::string_view a, std::string_view b, bool more,
                    core::Counter* bytes_sent) {
  iovec iov[2] = {{const_cast<char*>(a.data()), a.size()}, {const_cast<char*>(b.data()), b.size()}};
  msghdr m{};
  m.msg_iov = iov;
  m.msg_iovlen = b.empty() ? 1 : 2;
  ssize_t n = ::sendmsg(s.native_handle(), &m, MSG_DONTWAIT | MSG_NOSIGNAL | (more ? MSG_MORE : 0));
  if (n <= 0) return 0;
  if (bytes_sent) bytes_sent->Inc(static_cast<std::uint64_t>(n));
  return static_cast<std::size_t>(n);
}

asio::awaitable<bool> SendFileOverTcp(tcp::socket& s, int fd, std::uint64_t offset,
                                      std::uint64_t length, std::chrono::milliseconds write_timeout,
                                      core::Counter* bytes_sent) {
  using namespace asio::experimental::awaitable_operators;
  constexpr auto kTuple = asio::as_tuple(asio::use_awaitable);
  // The socket is non-blocking once it has served an asynchronous read; ask
  // (a system call) only when it is not.
  if (!s.native_non_blocking()) {
    boost::system::error_code ec;
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
    timer.expires_after(write_timeout);
    auto which =
        co_await (s.async_wait(tcp::socket::wait_write, kTuple) || timer.async_wait(kTuple));
    if (which.index() == 1) co_return false;  // write timeout
    auto [wec] = std::get<0>(which);
    if (wec) co_return false;
  }
  co_return true;
}

}  // namespace depot::http
