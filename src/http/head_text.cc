#include "http/head_text.h"

#include <cstdio>
#include <ctime>
#include <mutex>

namespace depot::http {

namespace {

// "Sun, 06 Nov 1994 08:49:37 GMT", recomputed at most once a second.
std::string HttpDate() {
  static std::mutex mu;
  static std::time_t cached_at = 0;
  static std::string cached;
  std::time_t now = std::time(nullptr);
  std::lock_guard<std::mutex> lock(mu);
  if (now != cached_at) {
    std::tm tm;
    gmtime_r(&now, &tm);
    char buf[64];
    std::strftime(buf, sizeof(buf), "%a, %d %b %Y %H:%M:%S GMT", &tm);
    cached = buf;
    cached_at = now;
  }
  return cached;
}

bool ValidHeaderText(std::string_view s) {
  for (char c : s) {
    if (c == '\r' || c == '\n' || c == '\0') return false;
  }
  return true;
}

}  // namespace

std::string HeadText(const Response& r, std::string_view server_name, std::uint64_t content_length,
                     bool keep_alive) {
  std::string h;
  h.reserve(256);
  h += "HTTP/1.1 ";
  h += std::to_string(r.status);
  h += ' ';
  h += ReasonPhrase(r.status);
  h += "\r\nServer: ";
  h += server_name;
  h += "\r\nDate: ";
  h += HttpDate();
  for (const Header& hd : r.headers) {
    if (!ValidHeaderText(hd.name) || !ValidHeaderText(hd.value)) continue;
    h += "\r\n";
    h += hd.name;
    h += ": ";
    h += hd.value;
  }
  if (r.status != 304 && r.status >= 200 && r.status != 204) {
    h += "\r\nContent-Length: ";
    h += std::to_string(content_length);
  }
  if (!keep_alive) h += "\r\nConnection: close";
  h += "\r\n\r\n";
  return h;
}

}  // namespace depot::http
