#include "core/path.h"

#include <cstdint>
#include <string>

namespace depot::core {
namespace {
std::string Quote(std::string_view p) {
  std::string out = "'";
  for (char c : p.substr(0, 200)) {
    if (static_cast<unsigned char>(c) < 0x20) {
      out += "\\x";
      out += "0123456789abcdef"[(c >> 4) & 0xf];
      out += "0123456789abcdef"[c & 0xf];
    } else {
      out.push_back(c);
    }
  }
  if (p.size() > 200) out += "...";
  return out + "'";
}
}  // namespace

bool IsValidUtf8(std::string_view s) {
  std::size_t i = 0;
  while (i < s.size()) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    std::size_t len;
    std::uint32_t cp;
    if (c < 0x80) {
      ++i;
      continue;
    } else if ((c & 0xe0) == 0xc0) {
      len = 2;
      cp = c & 0x1f;
    } else if ((c & 0xf0) == 0xe0) {
      len = 3;
      cp = c & 0x0f;
    } else if ((c & 0xf8) == 0xf0) {
      len = 4;
      cp = c & 0x07;
    } else {
      return false;
    }
    if (i + len > s.size()) return false;
    for (std::size_t k = 1; k < len; ++k) {
      unsigned char cc = static_cast<unsigned char>(s[i + k]);
      if ((cc & 0xc0) != 0x80) return false;
      cp = (cp << 6) | (cc & 0x3f);
    }
    // Overlong forms, surrogates and values past U+10FFFF are not UTF-8.
    if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
        cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) {
      return false;
    }
    i += len;
  }
  return true;
}

Status ValidateRelativePath(std::string_view path) {
  auto bad = [&](std::string_view why) {
    return Status::InvalidArgument("path " + Quote(path) + " " + std::string(why));
  };
  if (path.empty()) return Status::InvalidArgument("empty path");
  if (path.size() > kMaxPathLength) return bad("is longer than 4096 bytes");
  if (path.front() == '/') return bad("is absolute (paths must be relative)");
  for (char c : path) {
    if (c == '\0') return bad("contains a NUL byte");
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f)
      return bad("contains a control character");
    if (c == '\\') return bad("contains a backslash (use '/')");
  }
  if (!IsValidUtf8(path)) return bad("is not valid UTF-8");
  std::size_t start = 0;
  while (start <= path.size()) {
    std::size_t end = path.find('/', start);
    if (end == std::string_view::npos) end = path.size();
    std::string_view comp = path.substr(start, end - start);
    if (comp.empty()) return bad("has an empty component ('//' or a trailing '/')");
    if (comp == ".") return bad("has a '.' component");
    if (comp == "..") return bad("has a '..' component (paths must stay inside the tree)");
    if (comp.size() > kMaxComponentLength) return bad("has a component longer than 255 bytes");
    start = end + 1;
  }
  return Status::Ok();
}

}  // namespace depot::core
