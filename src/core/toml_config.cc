#include "core/toml_config.h"

#include <map>
#include <sstream>

namespace depot::core {

Result<toml::table> ReadTomlFile(Env* env, const std::string& path,
                                 const std::string& missing_hint) {
  auto text = env->ReadFile(path, 1 << 20);
  if (!text.ok()) {
    if (text.status().IsNotFound()) return Status::NotFound(path + " not found: " + missing_hint);
    return text.status();
  }
  try {
    return toml::parse(*text, path);
  } catch (const toml::parse_error& e) {
    std::ostringstream where;
    where << e.source().begin;
    return Status::InvalidArgument(path + ":" + where.str() + ": " + std::string(e.description()));
  }
}

TomlTable::TomlTable(const toml::table* t, std::string name, std::string path, std::string docs)
    : t_(t), name_(std::move(name)), path_(std::move(path)), docs_(std::move(docs)) {}

const toml::node* TomlTable::Get(const char* key) {
  seen_.insert(key);
  return t_ == nullptr ? nullptr : t_->get(key);
}

Status TomlTable::Bad(const std::string& key, const std::string& rule) const {
  return Status::InvalidArgument(path_ + ": " + (name_.empty() ? "" : "[" + name_ + "] ") + key +
                                 " " + rule);
}

Status TomlTable::String(const char* key, std::string* out) {
  const toml::node* n = Get(key);
  if (n == nullptr) return Status::Ok();
  auto v = n->value<std::string>();
  if (!v) return Bad(key, "must be a string");
  *out = *v;
  return Status::Ok();
}

Status TomlTable::Strings(const char* key, std::vector<std::string>* out) {
  const toml::node* n = Get(key);
  if (n == nullptr) return Status::Ok();
  const toml::array* a = n->as_array();
  if (a == nullptr) return Bad(key, "must be an array of strings");
  std::vector<std::string> v;
  for (const toml::node& e : *a) {
    auto text = e.value<std::string>();
    if (!text) return Bad(key, "must be an array of strings");
    v.push_back(*text);
  }
  *out = std::move(v);
  return Status::Ok();
}

Status TomlTable::Int(const char* key, std::int64_t lo, std::int64_t hi, std::int64_t* out) {
  const toml::node* n = Get(key);
  if (n == nullptr) return Status::Ok();
  auto v = n->value<std::int64_t>();
  if (!v || *v < lo || *v > hi) {
    return Bad(key, "must be an integer from " + std::to_string(lo) + " to " + std::to_string(hi));
  }
  *out = *v;
  return Status::Ok();
}

Status TomlTable::Uint(const char* key, std::uint64_t lo, std::uint64_t hi, std::uint64_t* out) {
  std::int64_t v = static_cast<std::int64_t>(*out);
  const std::int64_t max = static_cast<std::int64_t>(std::min<std::uint64_t>(hi, INT64_MAX));
  DEPOT_RETURN_IF_ERROR(Int(key, static_cast<std::int64_t>(lo), max, &v));
  *out = static_cast<std::uint64_t>(v);
  return Status::Ok();
}

Status TomlTable::Duration(const char* key, core::Duration* out) {
  std::string text;
  DEPOT_RETURN_IF_ERROR(String(key, &text));
  if (text.empty()) return Status::Ok();
  auto d = ParseDuration(text);
  if (!d.ok() || d->count() <= 0)
    return Bad(key, "must be a duration like 250ms, 90s, 15m, 12h or 30d");
  *out = *d;
  return Status::Ok();
}

Status TomlTable::Bool(const char* key, bool* out) {
  const toml::node* n = Get(key);
  if (n == nullptr) return Status::Ok();
  auto v = n->value<bool>();
  if (!v) return Bad(key, "must be true or false");
  *out = *v;
  return Status::Ok();
}

Status TomlTable::Size(const char* key, std::uint64_t* out) {
  std::string text;
  DEPOT_RETURN_IF_ERROR(String(key, &text));
  if (text.empty()) return Status::Ok();
  auto n = ParseSize(text);
  if (!n.ok() || *n == 0) return Bad(key, "must be a size like 64MiB");
  *out = *n;
  return Status::Ok();
}

Status TomlTable::Finish() {
  if (t_ == nullptr) return Status::Ok();
  for (auto&& [k, v] : *t_) {
    std::string key(k.str());
    if (!seen_.count(key)) {
      return Status::InvalidArgument(path_ + ": unknown key `" + key + "`" +
                                     (name_.empty() ? "" : " in [" + name_ + "]") +
                                     " (check the spelling; " + docs_ + " lists the keys)");
    }
  }
  return Status::Ok();
}

std::string TomlQuote(std::string_view s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out + "\"";
}

Result<std::uint64_t> ParseSize(std::string_view s) {
  std::uint64_t n = 0;
  std::size_t i = 0;
  while (i < s.size() && s[i] >= '0' && s[i] <= '9') {
    n = n * 10 + static_cast<std::uint64_t>(s[i] - '0');
    if (n > (1ull << 50)) return Status::InvalidArgument("size too large");
    ++i;
  }
  if (i == 0) return Status::InvalidArgument("size must start with a number");
  std::string_view unit = s.substr(i);
  static const std::map<std::string_view, std::uint64_t> kUnits = {
      {"", 1}, {"B", 1}, {"KiB", 1ull << 10}, {"MiB", 1ull << 20}, {"GiB", 1ull << 30}};
  auto it = kUnits.find(unit);
  if (it == kUnits.end()) return Status::InvalidArgument("size unit must be B, KiB, MiB or GiB");
  if (n > (1ull << 50) / it->second) return Status::InvalidArgument("size too large");
  return n * it->second;
}

std::string FormatSize(std::uint64_t n) {
  if (n != 0 && n % (1ull << 30) == 0) return std::to_string(n >> 30) + "GiB";
  if (n != 0 && n % (1ull << 20) == 0) return std::to_string(n >> 20) + "MiB";
  if (n != 0 && n % (1ull << 10) == 0) return std::to_string(n >> 10) + "KiB";
  return std::to_string(n) + "B";
}

}  // namespace depot::core
