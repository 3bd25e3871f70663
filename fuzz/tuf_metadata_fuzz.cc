// TUF metadata as a client receives it from any mirror, before any signature check:
// each role's parser must refuse or accept, nothing else.
#include <cstdint>
#include <string_view>

#include "tuf/metadata.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view bytes(reinterpret_cast<const char*>(data), size);
  depot::tuf::ParseRoot(bytes, "root.json").status().IgnoreError();
  depot::tuf::ParseTargets(bytes, "targets.json").status().IgnoreError();
  depot::tuf::ParseSnapshot(bytes, "snapshot.json").status().IgnoreError();
  depot::tuf::ParseTimestamp(bytes, "timestamp.json").status().IgnoreError();
  return 0;
}
