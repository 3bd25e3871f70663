// Canonical JSON (the OLPC dialect TUF and securesystemslib sign over): object keys
// sorted by byte value, no insignificant whitespace, only non-negative integers up to
// 2^53 (no floats), strings escaped only for '"' and '\' with every other byte raw,
// and the literals true, false and null.
//
// depot restricts input to text that is also strict JSON (RFC 8259): valid UTF-8,
// no duplicate object keys, at most 64 levels of nesting. Canonical bytes of a
// string holding a control character are not valid JSON (the character is raw), so
// depot's repository writer refuses to publish such strings; see metadata.h.
//
// Thread safety: pure functions; call from any thread.
#pragma once

#include <string>
#include <string_view>

#include "core/status.h"

namespace depot::tuf {

// Parses JSON `text` and returns its canonical encoding. InvalidArgument (naming
// `what` and the reason) for malformed JSON, floats, negative or >2^53 integers,
// duplicate keys or excessive nesting. Used to normalise "custom" target data
// before it is signed.
core::Result<std::string> CanonicalizeJson(std::string_view text, std::string_view what = "JSON");

// OK when `bytes` is already exactly the canonical encoding of the value it
// holds; InvalidArgument naming `what` (and why) otherwise.
core::Status ValidateCanonicalJson(std::string_view bytes, std::string_view what = "JSON");

}  // namespace depot::tuf
