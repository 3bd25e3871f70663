// Request heads as the server reads them off a socket: Beast's parser with the
// server's header limit, then what the server makes of it: the Request (headers,
// percent-decoded path, query parameters) and the framing check (RFC 9112 section 6).
#include <boost/beast/http.hpp>
#include <cstdint>
#include <string>
#include <string_view>

#include "http/framing.h"
#include "http/request_head.h"
#include "http/server.h"

namespace bhttp = boost::beast::http;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  bhttp::request_parser<bhttp::string_body> parser;
  parser.header_limit(16 * 1024);
  parser.body_limit(64 * 1024);
  parser.eager(true);
  boost::beast::error_code ec;
  parser.put(boost::asio::buffer(data, size), ec);
  if (!parser.is_header_done()) return 0;
  depot::http::Request req =
      depot::http::RequestOf(parser.get(), "127.0.0.1", false, std::chrono::steady_clock::now());
  depot::http::FramingError(req.headers);
  if (depot::http::SplitTarget(&req)) {
    req.QueryParam("since");
    depot::http::PercentEncode(req.path, true);
  }
  return 0;
}
