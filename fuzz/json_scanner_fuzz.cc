// The streaming JSON scanner the manifest parser is built on: any bytes, walked as
// a generic document, must end in a verdict, never a crash or a hang.
#include <cstdint>
#include <string>
#include <string_view>

#include "store/json_scanner.h"

namespace {

// Walks one value; false once the scanner failed.
bool Walk(depot::store::JsonScanner& s, int depth) {
  std::string_view skipped;
  if (depth > 40) return s.SkipValue(&skipped);
  if (s.BeginObject()) {
    for (bool done = false;;) {
      std::string key;
      if (!s.NextKey(&key, &done)) return false;
      if (done) return true;
      if (!Walk(s, depth + 1)) return false;
    }
  }
  if (s.failed()) return false;
  if (s.BeginArray()) {
    for (bool done = false;;) {
      if (!s.NextElement(&done)) return false;
      if (done) return true;
      if (!Walk(s, depth + 1)) return false;
    }
  }
  if (s.failed()) return false;
  std::string str;
  if (s.String(&str, 1 << 20)) return true;
  if (s.failed()) return false;
  std::int64_t n;
  if (s.Int(&n, INT64_MIN, INT64_MAX)) return true;
  if (s.failed()) return false;
  return s.SkipValue(&skipped);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  depot::store::JsonScanner s(std::string_view(reinterpret_cast<const char*>(data), size));
  if (Walk(s, 0)) s.AtEnd();
  return 0;
}
