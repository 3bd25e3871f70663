// The manifest parser: signed manifests come from sites, DPs and mirrors, and the
// site parses the drafts clients upload. Whatever parses must serialize and parse
// back to the same manifest.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "store/manifest.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view bytes(reinterpret_cast<const char*>(data), size);
  auto m = depot::store::ParseManifest(bytes);
  if (!m.ok()) return 0;
  auto again = depot::store::SerializeManifest(*m);
  if (!again.ok()) return 0;  // a parsed manifest may still break a serializer rule
  auto back = depot::store::ParseManifest(*again);
  if (!back.ok() || back->entries.size() != m->entries.size()) std::abort();
  depot::store::ParsePrograms(bytes).status().IgnoreError();
  return 0;
}
