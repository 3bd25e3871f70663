#include "http/access_log.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ctime>

#include "core/errors.h"
#include "core/log.h"

namespace depot::http {

namespace {

std::string JsonString(std::string_view s) {
  std::string out = "\"";
  for (char c : s) {
    auto u = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (u < 0x20 || u >= 0x7f) {
      // Request targets are bytes, not UTF-8: escape anything outside printable ASCII.
      char buf[8];
      std::snprintf(buf, sizeof(buf), "\\u%04x", u);
      out += buf;
    } else {
      out += c;
    }
  }
  return out + "\"";
}

std::string LogLine(const Request& req, int status, std::uint64_t bytes,
                    std::chrono::steady_clock::time_point start) {
  auto now = std::chrono::system_clock::now();
  std::time_t secs = std::chrono::system_clock::to_time_t(now);
  int ms_part = static_cast<int>(
      std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count() % 1000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char when[96];
  std::snprintf(when, sizeof(when), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ms_part);
  double ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  std::string line =
      "{\"time\":\"" + std::string(when) + "\",\"remote\":" + JsonString(req.remote_address) +
      ",\"method\":" + JsonString(req.method) + ",\"target\":" + JsonString(req.target) +
      ",\"status\":" + std::to_string(status) + ",\"bytes\":" + std::to_string(bytes);
  char tail[48];
  std::snprintf(tail, sizeof(tail), ",\"ms\":%.3f}\n", ms);
  line += tail;
  return line;
}

}  // namespace

AccessLog::~AccessLog() {
  if (fd_ >= 0) ::close(fd_);
}

core::Status AccessLog::Open(const std::string& path) {
  fd_ = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
  if (fd_ < 0) {
    return core::ErrnoStatus(errno, "access log " + path);
  }
  return core::Status::Ok();
}

void AccessLog::Write(const Request& req, int status, std::uint64_t bytes,
                      std::chrono::steady_clock::time_point start) {
  if (fd_ < 0) return;
  std::string line = LogLine(req, status, bytes, start);
  if (::write(fd_, line.data(), line.size()) < 0) {
    core::Log(core::LogLevel::kWarn, "http.access_log_failed", {{"error", std::strerror(errno)}});
  }
}

}  // namespace depot::http
