// Collection rules: a small expression language over client attributes
// (docs/collections.md).
//
//   os == "linux" and arch in ["x86_64", "aarch64"]
//   ips in 10.20.0.0/16 or tag.site == "berlin"
//   not (hostname == "build-1")
//
// Operators: `==`, `!=` (string equality), `in [..]` (membership in a list of
// strings), `in CIDR` (an address attribute inside a block), `and`, `or`, `not`,
// parentheses. An attribute may hold several values (ips): `==`, `in` match when any
// value matches; `!=` when none does. A missing attribute has no values.
//
// Thread safety: a parsed Rule is immutable; Matches may be called concurrently.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"

namespace depot::site {

using Attributes = std::map<std::string, std::vector<std::string>>;

class Rule {
 public:
  // InvalidArgument with the position and what was expected on a syntax error.
  static core::Result<Rule> Parse(std::string_view text);
  bool Matches(const Attributes& attributes) const;
  const std::string& text() const { return text_; }

  struct Node;

 private:
  std::string text_;
  std::shared_ptr<const Node> root_;
};

}  // namespace depot::site
