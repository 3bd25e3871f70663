// Request framing by RFC 9112 section 6, checked on the headers before any body byte
// is read. Beast parses the message; this decides what Beast would otherwise take
// leniently, where a lenient reading lets a body be run as a second request on the
// same connection (request smuggling).
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "http/server.h"

namespace depot::http {

// Why a request with `headers` (names lowercase, in order received) must be refused
// with 400 and the connection closed, or nullopt when its framing is sound:
//  - a Transfer-Encoding other than exactly "chunked" (any other coding, "chunked"
//    twice or not last, an empty list): the body's length could not be known;
//  - Transfer-Encoding together with Content-Length (section 6.3: ambiguous);
//  - Content-Length more than once, as a list, or not a plain decimal number.
// Pure; any thread.
std::optional<std::string> FramingError(const std::vector<Header>& headers);

}  // namespace depot::http
