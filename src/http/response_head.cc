#include "http/response_head.h"

#include <cctype>
#include <charconv>

namespace depot::http {

namespace {

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(a[i])) !=
        std::tolower(static_cast<unsigned char>(b[i]))) {
      return false;
    }
  }
  return true;
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

}  // namespace

// Parses "HTTP/1.1 200 OK\r\nName: value\r\n...\r\n\r\n" (without the final empty
// line's CRLF pair being required twice). False when malformed.
bool ParseResponseHead(std::string_view text, ResponseHead* h) {
  std::size_t eol = text.find("\r\n");
  std::string_view line = text.substr(0, eol);
  if (line.size() < 12 || line.compare(0, 5, "HTTP/") != 0 || line[8] != ' ') return false;
  bool http10 = line.compare(5, 3, "1.0") == 0;
  if (!http10 && line.compare(5, 3, "1.1") != 0) return false;
  auto [p, ec] = std::from_chars(line.data() + 9, line.data() + 12, h->status);
  if (ec != std::errc() || p != line.data() + 12 || h->status < 100) return false;
  h->close = http10;
  std::string_view rest = eol == std::string_view::npos ? std::string_view() : text.substr(eol + 2);
  while (!rest.empty()) {
    eol = rest.find("\r\n");
    line = rest.substr(0, eol);
    rest = eol == std::string_view::npos ? std::string_view() : rest.substr(eol + 2);
    if (line.empty()) continue;
    auto colon = line.find(':');
    if (colon == std::string_view::npos || colon == 0) return false;
    std::string_view name = line.substr(0, colon);
    std::string_view value = Trim(line.substr(colon + 1));
    if (EqualsIgnoreCase(name, "content-length")) {
      std::uint64_t n = 0;
      auto [q, ec2] = std::from_chars(value.data(), value.data() + value.size(), n);
      if (ec2 != std::errc() || q != value.data() + value.size()) return false;
      if (h->has_length && n != h->length)
        return false;  // conflicting lengths: request smuggling shape
      h->has_length = true;
      h->length = n;
    } else if (EqualsIgnoreCase(name, "transfer-encoding")) {
      h->unsupported = "a Transfer-Encoding body";
    } else if (EqualsIgnoreCase(name, "content-encoding")) {
      if (!EqualsIgnoreCase(value, "identity"))
        h->unsupported = "a Content-Encoding it did not ask for";
    } else if (EqualsIgnoreCase(name, "connection")) {
      if (EqualsIgnoreCase(value, "close")) h->close = true;
      if (EqualsIgnoreCase(value, "keep-alive")) h->close = false;
    }
  }
  bool bodiless = h->status == 204 || h->status == 304 || h->status < 200;
  if (bodiless) {
    h->has_length = true;
    h->length = 0;
  } else if (!h->has_length && h->unsupported.empty()) {
    h->unsupported = "a body without Content-Length";
  }
  return true;
}

}  // namespace depot::http
