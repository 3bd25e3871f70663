// The status line and headers of the HTTP server's responses, which it writes itself
// (so that file bodies can follow by sendfile). Internal to the http component
// (server.cc).
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

#include "http/server.h"

namespace depot::http {

// The status line and headers of `r`, ending in the empty line: Server, Date, the
// handler's headers (those holding CR, LF or NUL are dropped: no response
// splitting), Content-Length where the status has a body, Connection: close unless
// `keep_alive`.
std::string HeadText(const Response& r, std::string_view server_name, std::uint64_t content_length,
                     bool keep_alive);

}  // namespace depot::http
