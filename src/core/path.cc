#include "core/path.h"

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

Status ValidateRelativePath(std::string_view path) {
  auto bad = [&](std::string_view why) {
    return Status::InvalidArgument("path " + Quote(path) + " " + std::string(why));
  };
  if (path.empty()) return Status::InvalidArgument("empty path");
  if (path.size() > kMaxPathLength) return bad("is longer than 4096 bytes");
  if (path.front() == '/') return bad("is absolute (paths must be relative)");
  for (char c : path) {
    if (c == '\0') return bad("contains a NUL byte");
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) return bad("contains a control character");
    if (c == '\\') return bad("contains a backslash (use '/')");
  }
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
