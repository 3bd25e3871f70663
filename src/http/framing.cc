#include "http/framing.h"

#include <string_view>

namespace depot::http {

namespace {

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

bool IsChunked(std::string_view coding) {
  if (coding.size() != 7) return false;
  constexpr std::string_view kChunked = "chunked";
  for (std::size_t i = 0; i < 7; ++i) {
    char c = coding[i];
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    if (c != kChunked[i]) return false;
  }
  return true;
}

}  // namespace

std::optional<std::string> FramingError(const std::vector<Header>& headers) {
  int codings = 0, chunked = 0, lengths = 0;
  for (const Header& h : headers) {
    if (h.name == "transfer-encoding") {
      std::string_view rest = h.value;
      int here = 0;
      for (;;) {
        std::size_t comma = rest.find(',');
        std::string_view coding = Trim(rest.substr(0, comma));
        // Empty list elements are allowed by the list syntax and carry nothing.
        if (!coding.empty()) {
          ++here;
          if (IsChunked(coding)) ++chunked;
        }
        if (comma == std::string_view::npos) break;
        rest.remove_prefix(comma + 1);
      }
      // "Transfer-Encoding:" with no coding at all counts as one unknown coding.
      codings += here == 0 ? 2 : here;
    } else if (h.name == "content-length") {
      ++lengths;
      std::string_view v = Trim(h.value);
      if (v.empty() || v.size() > 19 || v.find_first_not_of("0123456789") != std::string_view::npos)
        return "Content-Length must be one decimal number";
    }
  }
  if (codings > 0 && (codings != 1 || chunked != 1)) {
    return "unsupported Transfer-Encoding: only chunked, alone, is accepted";
  }
  if (codings > 0 && lengths > 0) {
    return "a request may not carry both Transfer-Encoding and Content-Length";
  }
  if (lengths > 1) return "Content-Length given more than once";
  return std::nullopt;
}

}  // namespace depot::http
