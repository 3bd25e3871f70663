// Request heads as the server reads them off a socket: Beast's parser with the
// server's header limit, then depot's own checks on what it parsed -- framing
// (RFC 9112 section 6) and the percent-decoded target.
#include <boost/beast/http.hpp>
#include <cstdint>
#include <string>
#include <string_view>

#include "http/framing.h"
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
  std::vector<depot::http::Header> headers;
  for (const auto& f : parser.get()) {
    std::string name(f.name_string());
    for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    headers.push_back({std::move(name), std::string(f.value())});
  }
  depot::http::FramingError(headers);
  std::string_view target = parser.get().target();
  auto decoded = depot::http::PercentDecode(target.substr(0, target.find('?')));
  if (decoded.ok()) depot::http::PercentEncode(*decoded, true);
  return 0;
}
