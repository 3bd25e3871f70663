// Structured logging to stderr: one line per event, either
//   2026-11-22T03:04:05.123Z info repo.add package=tools version=3
// or, with SetLogJson(true), one JSON object per line for log shippers.
// Fields are key/value strings; event names are dotted, stable identifiers.
//
// Thread safety: all functions may be called concurrently.
#pragma once

#include <initializer_list>
#include <string>
#include <string_view>
#include <utility>

namespace depot::core {

enum class LogLevel { kDebug = 0, kInfo = 1, kWarn = 2, kError = 3, kOff = 4 };

using LogField = std::pair<std::string_view, std::string>;

void SetLogLevel(LogLevel level);
void SetLogJson(bool json);
bool LogEnabled(LogLevel level);
// Parses "debug|info|warn|error|off"; returns false on anything else.
bool ParseLogLevel(std::string_view s, LogLevel* out);

void Log(LogLevel level, std::string_view event, std::initializer_list<LogField> fields = {});

}  // namespace depot::core
