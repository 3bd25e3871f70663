// The head of an HTTP/1.1 response as the pipelined client (pipeline.cc) reads it:
// status, length and the properties that decide whether the answer can be taken in
// a pipeline. Internal to the http component.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace depot::http {

// One response head, parsed.
struct ResponseHead {
  int status = 0;
  bool has_length = false;
  std::uint64_t length = 0;
  bool close = false;
  std::string unsupported;  // why this answer cannot be taken in a pipeline
};

// Parses "HTTP/1.1 200 OK\r\nName: value\r\n...\r\n\r\n" (without the final empty
// line's CRLF pair being required twice). False when malformed.
bool ParseResponseHead(std::string_view text, ResponseHead* h);

}  // namespace depot::http
