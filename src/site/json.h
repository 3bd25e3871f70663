// JSON helpers for the site's API handlers (internal to the site component: it pulls
// in nlohmann-json, which stays out of widely included headers). nlohmann is used in
// its non-throwing forms only: parse with allow_exceptions=false, and typed access
// through ObjectReader, which checks every type before reading it.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "core/status.h"
#include "http/server.h"

namespace depot::site {

using Json = nlohmann::json;

// Parses `body` as a JSON object (or array with `allow_array`). InvalidArgument for
// malformed JSON, invalid UTF-8, nesting deeper than `max_depth`, a key given twice in
// one object (no "last one wins": a proxy and the site must not read different
// requests), or another type.
core::Result<Json> ParseJsonBody(std::string_view body, bool allow_array = false,
                                 int max_depth = 32);

// `s` as a decimal integer from `lo` to `hi` (digits, a '-' only where `lo` is
// negative); nullopt for anything else.
std::optional<std::int64_t> ParseDecimal(std::string_view s, std::int64_t lo, std::int64_t hi);

// Query parameter `name` of `req` as an integer from `lo` to `hi`; nullopt when
// absent; InvalidArgument naming it and the range for anything else.
core::Result<std::optional<std::int64_t>> IntQueryParam(const http::Request& req, const char* name,
                                                        std::int64_t lo, std::int64_t hi);

// Compact serialization that never throws (invalid UTF-8 is replaced).
std::string Dump(const Json& j);

// Reads the fields of one JSON object strictly: wrong types, out-of-range values and
// (at Finish) fields that were never asked for are errors naming `what` and the field.
// The first error sticks; later reads return defaults.
class ObjectReader {
 public:
  ObjectReader(const Json& obj, std::string what);

  std::string String(const char* key, bool required, std::size_t max_len = 1024,
                     std::string def = {});
  std::optional<std::string> OptString(const char* key, std::size_t max_len = 1024);
  std::int64_t Int(const char* key, bool required, std::int64_t lo, std::int64_t hi,
                   std::int64_t def = 0);
  std::optional<std::int64_t> OptInt(const char* key, std::int64_t lo, std::int64_t hi);
  bool Bool(const char* key, bool def = false);
  std::vector<std::string> Strings(const char* key, bool required, std::size_t max_items,
                                   std::size_t max_len = 1024);
  // The raw value (or nullptr when absent); marks the key as known.
  const Json* Raw(const char* key);

  bool ok() const { return status_.ok(); }
  // The first error, or InvalidArgument for an unknown field; OK otherwise.
  core::Status Finish();
  // The first error, ignoring fields never asked for: for an object read in parts, or
  // sent by a newer depot (a parent site upgraded before its children).
  core::Status FinishKnown() const { return status_; }

 private:
  const Json* Get(const char* key, bool required);
  void Fail(const char* key, const std::string& rule);

  const Json& obj_;
  std::string what_;
  std::set<std::string> known_;
  core::Status status_;
};

}  // namespace depot::site
