// What Server::Start prepares before it serves: the endpoint to listen on (from
// ServerOptions::listen), the TLS context, the bound acceptor. Internal to the http
// component (server.cc).
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <memory>
#include <string>

#include "core/status.h"

namespace depot::http {

// The endpoint `listen` names: HOST:PORT or [V6]:PORT, "" and "*" meaning 0.0.0.0,
// a host name resolved with `ioc`. InvalidArgument naming `listen` otherwise.
core::Result<boost::asio::ip::tcp::endpoint> ListenEndpoint(const std::string& listen,
                                                            boost::asio::io_context& ioc);

// A TLS server context (TLS 1.2 and later) with the PEM chain `cert_file` and the
// key `key_file`; InvalidArgument when either is missing or unreadable.
core::Result<std::unique_ptr<boost::asio::ssl::context>> TlsServerContext(
    const std::string& cert_file, const std::string& key_file);

// Opens `acceptor`, binds it to `ep` and listens. The error names `listen`;
// Unavailable when the port is taken, PermissionDenied when not allowed.
core::Status BindAcceptor(boost::asio::ip::tcp::acceptor& acceptor,
                          const boost::asio::ip::tcp::endpoint& ep, const std::string& listen);

// Raises this process's soft RLIMIT_NOFILE so that `connections` sockets fit beside
// `reserve` other descriptors (the catalog, upstream transfers, ...) and the files
// served trees keep open (a fifth of the limit at most, see StaticTree). Returns the
// connections that fit: `connections`, or fewer when the hard limit is lower, which
// is logged (http.connection_limit_lowered) with the limit and how to raise it.
std::size_t FitConnectionsToFileLimit(std::size_t connections, std::size_t reserve);

}  // namespace depot::http
