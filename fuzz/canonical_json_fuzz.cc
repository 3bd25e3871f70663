// Canonical JSON (TUF's signed bytes): whatever canonicalizes must be canonical, and
// canonicalizing it again must change nothing.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "tuf/canonical_json.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  auto c = depot::tuf::CanonicalizeJson(text);
  depot::tuf::ValidateCanonicalJson(text).IgnoreError();
  if (!c.ok()) return 0;
  if (!depot::tuf::ValidateCanonicalJson(*c).ok()) std::abort();
  auto again = depot::tuf::CanonicalizeJson(*c);
  if (!again.ok() || *again != *c) std::abort();
  return 0;
}
