// The HTTP server's fast paths for writing on plain TCP: a gathered send that does
// not wait, and sendfile(2) for file bodies. Internal to the http component
// (server.cc); TLS connections write through their stream instead.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "core/metrics.h"

namespace depot::http {

// Writes `a` then `b` on `s` right away if the socket takes them, and says how many
// bytes went (counted in `bytes_sent`, if any). `more` tells the kernel a body
// follows at once (sendfile), so the head and the body's first bytes share packets.
std::size_t SendNow(boost::asio::ip::tcp::socket& s, std::string_view a, std::string_view b,
                    bool more, core::Counter* bytes_sent);

// Sends `length` bytes of `fd` from `offset` on `s` with sendfile(2), waiting up to
// `write_timeout` each time the socket is full. False when the connection failed,
// the wait timed out or the file came up short.
boost::asio::awaitable<bool> SendFileOverTcp(boost::asio::ip::tcp::socket& s, int fd,
                                             std::uint64_t offset, std::uint64_t length,
                                             std::chrono::milliseconds write_timeout,
                                             core::Counter* bytes_sent);

}  // namespace depot::http
