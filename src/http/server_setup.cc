#include "http/server_setup.h"

#include <sys/resource.h>

#include <algorithm>
#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>
#include <string_view>

#include "core/log.h"

namespace depot::http {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using core::Status;

core::Result<tcp::endpoint> ListenEndpoint(const std::string& listen_text, asio::io_context& ioc) {
  // HOST:PORT, with [v6] brackets.
  std::string_view listen = listen_text;
  auto colon = listen.rfind(':');
  if (colon == std::string_view::npos) {
    return Status::InvalidArgument("listen address `" + listen_text +
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
    return Status::InvalidArgument("listen address `" + listen_text + "` has a bad port");
  }
  boost::system::error_code ec;
  auto addr = asio::ip::make_address(host, ec);
  if (ec) {
    // A name: resolve it (e.g. "localhost").
    tcp::resolver resolver(ioc);
    auto results = resolver.resolve(host, port_text, ec);
    if (ec || results.empty()) {
      return Status::InvalidArgument("listen address `" + listen_text +
                                     "`: cannot resolve host: " + ec.message());
    }
    addr = results.begin()->endpoint().address();
  }
  return tcp::endpoint(addr, static_cast<std::uint16_t>(port));
}

core::Result<std::unique_ptr<asio::ssl::context>> TlsServerContext(const std::string& cert_file,
                                                                   const std::string& key_file) {
  if (cert_file.empty() || key_file.empty()) {
    return Status::InvalidArgument("TLS needs both a certificate and a key file");
  }
  boost::system::error_code ec;
  auto ssl = std::make_unique<asio::ssl::context>(asio::ssl::context::tls_server);
  ssl->set_options(asio::ssl::context::default_workarounds | asio::ssl::context::no_sslv2 |
                   asio::ssl::context::no_sslv3 | asio::ssl::context::no_tlsv1 |
                   asio::ssl::context::no_tlsv1_1 | asio::ssl::context::single_dh_use);
  ssl->use_certificate_chain_file(cert_file, ec);
  if (ec) {
    return Status::InvalidArgument("TLS certificate " + cert_file + ": " + ec.message());
  }
  ssl->use_private_key_file(key_file, asio::ssl::context::pem, ec);
  if (ec) {
    return Status::InvalidArgument("TLS key " + key_file + ": " + ec.message());
  }
  return ssl;
}

Status BindAcceptor(tcp::acceptor& acceptor, const tcp::endpoint& ep, const std::string& listen) {
  boost::system::error_code ec;
  acceptor.open(ep.protocol(), ec);
  if (!ec) acceptor.set_option(tcp::acceptor::reuse_address(true), ec);
  if (!ec) acceptor.bind(ep, ec);
  if (!ec) acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    std::string msg = "listen on " + listen + ": " + ec.message();
    if (ec == asio::error::address_in_use) {
      return Status::Unavailable(msg + " (another process uses the port; pick another --listen)");
    }
    if (ec == asio::error::access_denied) return Status::PermissionDenied(msg);
    return Status::IOError(msg);
  }
  return Status::Ok();
}

std::size_t FitConnectionsToFileLimit(std::size_t connections, std::size_t reserve) {
  // Connections take four fifths of what is not reserved; kept-open files of served
  // trees the last fifth (StaticTree keeps at most a fifth of the limit open).
  auto need = [reserve](std::size_t c) { return static_cast<rlim_t>(c + c / 4 + reserve); };
  struct rlimit lim;
  if (::getrlimit(RLIMIT_NOFILE, &lim) != 0) return connections;
  const rlim_t want = need(connections);
  if (lim.rlim_cur != RLIM_INFINITY && lim.rlim_cur < want) {
    const rlim_t raised = lim.rlim_max == RLIM_INFINITY ? want : std::min(want, lim.rlim_max);
    struct rlimit next = lim;
    next.rlim_cur = raised;
    if (raised > lim.rlim_cur && ::setrlimit(RLIMIT_NOFILE, &next) == 0) lim.rlim_cur = raised;
  }
  if (lim.rlim_cur == RLIM_INFINITY || lim.rlim_cur >= want) return connections;
  const auto have = static_cast<std::size_t>(lim.rlim_cur);
  const std::size_t fit =
      have > 2 * reserve ? (have - reserve) * 4 / 5 : std::max<std::size_t>(1, have / 4);
  core::Log(
      core::LogLevel::kWarn, "http.connection_limit_lowered",
      {{"max_connections", std::to_string(connections)},
       {"now", std::to_string(fit)},
       {"open_files_limit", std::to_string(have)},
       {"fix", "raise the hard limit of open files (ulimit -Hn, LimitNOFILE= in systemd) to " +
                   std::to_string(want) + " or lower max_connections"}});
  return fit;
}

}  // namespace depot::http
