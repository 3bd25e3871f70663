// INTERNAL to src/tuf: the nlohmann::json seam. Only tuf .cc files include this
// header, so nlohmann/json.hpp never leaks into depot's public headers.
//
// Two jobs:
//   ParseStrictJson  - text -> DOM, refusing everything TUF metadata must not contain
//                      (floats, negative or >2^53 integers, duplicate keys, nesting
//                      deeper than kMaxJsonDepth, invalid UTF-8, trailing bytes).
//   EncodeCanonical  - DOM -> the OLPC canonical JSON bytes signatures are made over.
//
// Neither function throws: nlohmann is driven through its SAX interface with a handler
// that never throws, and every call that could allocate is wrapped.
//
// Thread safety: pure functions; call from any thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "core/status.h"

namespace depot::tuf::internal {

using Json = nlohmann::json;

// Largest integer canonical JSON may carry: 2^53, the largest integer every JSON
// implementation (JavaScript's in particular) represents exactly.
inline constexpr std::uint64_t kMaxJsonInteger = std::uint64_t{1} << 53;
// Deepest nesting of arrays/objects accepted; TUF metadata needs about 6 levels,
// the rest is headroom for "custom" target data.
inline constexpr int kMaxJsonDepth = 64;

// Parses `text` strictly (see above). `what` names the input in error messages
// ("timestamp.json"). InvalidArgument on any violation.
core::Result<Json> ParseStrictJson(std::string_view text, std::string_view what);

// Returns the canonical JSON encoding of `value`: object keys sorted by byte value,
// no whitespace, strings escaped only for '"' and '\' (all other bytes raw),
// integers in decimal. InvalidArgument (naming `what`) for floats, negative or
// too-large integers, binary values, or nesting deeper than kMaxJsonDepth.
core::Result<std::string> EncodeCanonical(const Json& value, std::string_view what);

}  // namespace depot::tuf::internal
