// The HTTP server's access log: one JSON line per answered request
// ({"time","remote","method","target","status","bytes","ms"}) appended to a file.
// Internal to the http component (server.cc).
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

#include "core/status.h"
#include "http/server.h"

namespace depot::http {

class AccessLog {
 public:
  AccessLog() = default;
  ~AccessLog();
  AccessLog(const AccessLog&) = delete;
  AccessLog& operator=(const AccessLog&) = delete;

  // Opens `path` for appending (O_APPEND: logrotate's copytruncate and several
  // processes are safe). Until it is, Write does nothing.
  core::Status Open(const std::string& path);
  // Logs `req` answered with `status` and `bytes` of body; `start` is when its
  // headers were read. One write(2) per line, so lines from the server's threads
  // never interleave; a failed write is logged, not returned.
  void Write(const Request& req, int status, std::uint64_t bytes,
             std::chrono::steady_clock::time_point start);

 private:
  int fd_ = -1;  // the access log, or -1
};

}  // namespace depot::http
