// A request head as Beast parsed it, turned into depot's Request: lowercased header
// names, the percent-decoded path and the raw query. Internal to the http component
// (server.cc, and the fuzz target that feeds it request heads).
#pragma once

#include <boost/beast/http.hpp>
#include <chrono>
#include <string>

#include "http/server.h"

namespace depot::http {

// The Request of headers `h` (names lowercased), from peer `remote`, without its
// path, query and body.
Request RequestOf(const boost::beast::http::request<boost::beast::http::string_body>& h,
                  const std::string& remote, bool tls,
                  std::chrono::steady_clock::time_point received);

// Sets the percent-decoded path and the raw query of `req` from its target. False
// when the path is empty, does not start with '/' or does not decode.
bool SplitTarget(Request* req);

}  // namespace depot::http
