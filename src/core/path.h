// The path rules shared by manifests, repositories and HTTP routes. A valid relative
// path is non-empty, uses '/' separators, and has no empty, "." or ".." component, no
// leading '/', no NUL or control characters, valid UTF-8, at most kMaxPathLength bytes and at most
// kMaxComponentLength bytes per component. Such a path can never leave the
// directory it is joined to (barring symlinks, which callers handle).
#pragma once

#include <cstddef>
#include <string_view>

#include "core/status.h"

namespace depot::core {

inline constexpr std::size_t kMaxPathLength = 4096;
inline constexpr std::size_t kMaxComponentLength = 255;

// True when `s` is well-formed UTF-8 (JSON documents can carry nothing else).
bool IsValidUtf8(std::string_view s);

// OK, or InvalidArgument naming the path and the rule it breaks.
Status ValidateRelativePath(std::string_view path);

}  // namespace depot::core
