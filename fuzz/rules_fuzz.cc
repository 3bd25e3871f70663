// Collection rules: operators type them, the site stores and evaluates them against
// attributes clients assert. The first line is the rule, the rest attributes
// (key=value per line); whatever parses is evaluated and its text parses again.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "site/rules.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  std::size_t nl = in.find('\n');
  auto rule = depot::site::Rule::Parse(in.substr(0, nl));
  if (!rule.ok()) return 0;
  depot::site::Attributes attrs;
  for (std::string_view rest = nl == std::string_view::npos ? "" : in.substr(nl + 1);
       !rest.empty();) {
    std::size_t end = rest.find('\n');
    std::string_view line = rest.substr(0, end);
    rest = end == std::string_view::npos ? "" : rest.substr(end + 1);
    std::size_t eq = line.find('=');
    if (eq == std::string_view::npos) continue;
    attrs[std::string(line.substr(0, eq))].emplace_back(line.substr(eq + 1));
  }
  rule->Matches(attrs);
  if (!depot::site::Rule::Parse(rule->text()).ok()) std::abort();
  return 0;
}
