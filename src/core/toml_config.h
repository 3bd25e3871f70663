// Reading and writing depot's TOML configuration files (the site's site.toml, a DP's
// dp.toml): the one loader. Reading refuses unknown keys and names the file, the
// table and the key at fault with the rule it breaks; writing quotes strings and
// renders durations and sizes in the forms reading accepts.
//
// Thread safety: TomlTable is used by one thread; the functions are pure.
#pragma once

#include <toml++/toml.h>

#include <cstdint>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "core/clock.h"
#include "core/env.h"
#include "core/status.h"

namespace depot::core {

// Reads and parses `path` (at most 1 MiB). NotFound carrying `missing_hint` when the
// file does not exist; InvalidArgument "path:line:column: what" when it is not TOML.
Result<toml::table> ReadTomlFile(Env* env, const std::string& path,
                                 const std::string& missing_hint);

// Reads one table's keys. A key that is absent leaves the output as it was (the
// default); Finish refuses keys nobody asked for.
class TomlTable {
 public:
  // `t` may be null (an absent table: every key keeps its default). `name` is the
  // table's name ("" for the top level), `path` the file, `docs` the page that lists
  // the keys (named in errors).
  TomlTable(const toml::table* t, std::string name, std::string path, std::string docs);

  Status String(const char* key, std::string* out);
  // An array of strings (replaces `out` when present).
  Status Strings(const char* key, std::vector<std::string>* out);
  Status Int(const char* key, std::int64_t lo, std::int64_t hi, std::int64_t* out);
  Status Uint(const char* key, std::uint64_t lo, std::uint64_t hi, std::uint64_t* out);
  // A string like "250ms", "90s", "15m", "12h", "30d"; must be positive.
  Status Duration(const char* key, core::Duration* out);
  Status Bool(const char* key, bool* out);
  // A string like "64MiB" (B, KiB, MiB, GiB); must be positive.
  Status Size(const char* key, std::uint64_t* out);
  // InvalidArgument naming the first key that was not read.
  Status Finish();
  // An error about `key` in this table's terms.
  Status Bad(const std::string& key, const std::string& rule) const;

 private:
  const toml::node* Get(const char* key);

  const toml::table* t_;
  std::string name_, path_, docs_;
  std::set<std::string> seen_;
};

// A TOML basic string: quoted, with '"' and '\' escaped.
std::string TomlQuote(std::string_view s);
// The largest of "GiB", "MiB", "KiB", "B" that is exact.
std::string FormatSize(std::uint64_t n);
// Parses what FormatSize writes (a bare number is bytes).
Result<std::uint64_t> ParseSize(std::string_view s);

}  // namespace depot::core
