#include "site/json.h"

#include <charconv>

#include "core/json_text.h"
#include "core/path.h"

namespace depot::site {

using core::Status;

core::Result<Json> ParseJsonBody(std::string_view body, bool allow_array, int max_depth) {
  if (body.empty()) return Status::InvalidArgument("request body is empty; expected JSON");
  if (!core::IsValidUtf8(body)) return Status::InvalidArgument("request body is not valid UTF-8");
  bool too_deep = false;
  std::string repeated;                     // a key an object has twice
  std::vector<std::set<std::string>> keys;  // of each object being parsed
  Json j = Json::parse(
      body.begin(), body.end(),
      [&](int depth, Json::parse_event_t event, Json& parsed) {
        if (depth > max_depth) too_deep = true;
        if (event == Json::parse_event_t::object_start) keys.emplace_back();
        if (event == Json::parse_event_t::object_end && !keys.empty()) keys.pop_back();
        if (event == Json::parse_event_t::key && !keys.empty() && parsed.is_string() &&
            !keys.back().insert(parsed.get_ref<const std::string&>()).second && repeated.empty()) {
          repeated = parsed.get_ref<const std::string&>().substr(0, 64);
        }
        return true;
      },
      /*allow_exceptions=*/false);
  if (too_deep) {
    return Status::InvalidArgument("request JSON nests deeper than " + std::to_string(max_depth) +
                                   " levels");
  }
  if (!repeated.empty() && !j.is_discarded()) {
    return Status::InvalidArgument("request JSON has the key `" + repeated +
                                   "` twice in one object; give each key once");
  }
  if (j.is_discarded()) return Status::InvalidArgument("request body is not valid JSON");
  if (!j.is_object() && !(allow_array && j.is_array())) {
    return Status::InvalidArgument("request body must be a JSON object");
  }
  return j;
}

std::string Dump(const Json& j) { return core::DumpJson(j); }

core::Result<std::optional<std::int64_t>> IntQueryParam(const http::Request& req, const char* name,
                                                        std::int64_t lo, std::int64_t hi) {
  auto v = req.QueryParam(name);
  if (!v) return std::optional<std::int64_t>();
  std::optional<std::int64_t> n = ParseDecimal(*v, lo, hi);
  if (!n) {
    return Status::InvalidArgument("query parameter `" + std::string(name) +
                                   "` must be an integer from " + std::to_string(lo) + " to " +
                                   std::to_string(hi) + ", not `" + v->substr(0, 40) + "`");
  }
  return n;
}

std::optional<std::int64_t> ParseDecimal(std::string_view s, std::int64_t lo, std::int64_t hi) {
  if (s.empty() || (s[0] == '-' && lo >= 0)) return std::nullopt;
  std::int64_t n = 0;
  auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), n);
  if (ec != std::errc() || ptr != s.data() + s.size() || n < lo || n > hi) return std::nullopt;
  return n;
}

ObjectReader::ObjectReader(const Json& obj, std::string what) : obj_(obj), what_(std::move(what)) {
  if (!obj_.is_object()) status_ = Status::InvalidArgument(what_ + " must be a JSON object");
}

void ObjectReader::Fail(const char* key, const std::string& rule) {
  if (status_.ok()) status_ = Status::InvalidArgument(what_ + ": field `" + key + "` " + rule);
}

const Json* ObjectReader::Get(const char* key, bool required) {
  known_.insert(key);
  if (!status_.ok()) return nullptr;
  auto it = obj_.find(key);
  if (it == obj_.end() || it->is_null()) {
    if (required) Fail(key, "is required");
    return nullptr;
  }
  return &*it;
}

std::string ObjectReader::String(const char* key, bool required, std::size_t max_len,
                                 std::string def) {
  const Json* v = Get(key, required);
  if (v == nullptr) return def;
  if (!v->is_string()) {
    Fail(key, "must be a string");
    return def;
  }
  const std::string& s = v->get_ref<const std::string&>();
  if (s.size() > max_len) {
    Fail(key, "is longer than " + std::to_string(max_len) + " bytes");
    return def;
  }
  if (s.find('\0') != std::string::npos) {
    Fail(key, "contains a NUL character");
    return def;
  }
  return s;
}

std::optional<std::string> ObjectReader::OptString(const char* key, std::size_t max_len) {
  const Json* v = Get(key, false);
  if (v == nullptr) return std::nullopt;
  std::string s = String(key, false, max_len);
  if (!status_.ok()) return std::nullopt;
  return s;
}

std::int64_t ObjectReader::Int(const char* key, bool required, std::int64_t lo, std::int64_t hi,
                               std::int64_t def) {
  const Json* v = Get(key, required);
  if (v == nullptr) return def;
  if (!v->is_number_integer()) {
    Fail(key, "must be an integer");
    return def;
  }
  const bool too_big = v->is_number_unsigned() && v->get<std::uint64_t>() > INT64_MAX;
  const std::int64_t n = too_big ? 0 : v->get<std::int64_t>();
  if (too_big || n < lo || n > hi) {
    Fail(key, "must be from " + std::to_string(lo) + " to " + std::to_string(hi));
    return def;
  }
  return n;
}

std::optional<std::int64_t> ObjectReader::OptInt(const char* key, std::int64_t lo,
                                                 std::int64_t hi) {
  const Json* v = Get(key, false);
  if (v == nullptr) return std::nullopt;
  std::int64_t n = Int(key, false, lo, hi);
  if (!status_.ok()) return std::nullopt;
  return n;
}

bool ObjectReader::Bool(const char* key, bool def) {
  const Json* v = Get(key, false);
  if (v == nullptr) return def;
  if (!v->is_boolean()) {
    Fail(key, "must be true or false");
    return def;
  }
  return v->get<bool>();
}

std::vector<std::string> ObjectReader::Strings(const char* key, bool required,
                                               std::size_t max_items, std::size_t max_len) {
  std::vector<std::string> out;
  const Json* v = Get(key, required);
  if (v == nullptr) return out;
  if (!v->is_array()) {
    Fail(key, "must be a list of strings");
    return out;
  }
  if (v->size() > max_items) {
    Fail(key, "has more than " + std::to_string(max_items) + " items");
    return out;
  }
  for (const Json& item : *v) {
    if (!item.is_string() || item.get_ref<const std::string&>().size() > max_len) {
      Fail(key, "must be a list of strings of at most " + std::to_string(max_len) + " bytes");
      return {};
    }
    out.push_back(item.get<std::string>());
  }
  return out;
}

const Json* ObjectReader::Raw(const char* key) { return Get(key, false); }

Status ObjectReader::Finish() {
  if (!status_.ok()) return status_;
  for (auto it = obj_.begin(); it != obj_.end(); ++it) {
    if (!known_.count(it.key())) {
      return Status::InvalidArgument(what_ + ": unknown field `" + it.key() + "`");
    }
  }
  return Status::Ok();
}

}  // namespace depot::site
