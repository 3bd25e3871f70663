// Range headers on /repo/: a satisfiable range always lies inside the body.
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string_view>

#include "http/static_files.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 8) return 0;
  std::uint64_t body;
  std::memcpy(&body, data, 8);
  body %= (1ull << 40);
  std::string_view header(reinterpret_cast<const char*>(data + 8), size - 8);
  std::uint64_t first = 0, last = 0;
  bool unsatisfiable = false;
  if (depot::http::ParseByteRange(header, body, &first, &last, &unsatisfiable) && !unsatisfiable) {
    if (first > last || last >= body) std::abort();
  }
  return 0;
}
