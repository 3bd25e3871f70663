// Lowercase hexadecimal, the spelling of every id in depot (chunks, manifests, keys).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "core/status.h"

namespace depot::core {

// Returns the lowercase hex spelling of `data`.
std::string ToHex(std::string_view data);
std::string ToHex(const std::uint8_t* data, std::size_t size);

// Decodes hex (either case). InvalidArgument names the offending input on odd length
// or a non-hex character.
Result<std::string> FromHex(std::string_view hex);

// True when `s` is exactly `length` lowercase hex digits (length 0: any length > 0).
bool IsLowerHex(std::string_view s, std::size_t length = 0);

}  // namespace depot::core
