#include "tuf/canonical_json.h"

#include <new>
#include <utility>
#include <vector>

#include "tuf/json_internal.h"

namespace depot::tuf {
namespace internal {
namespace {

using core::Result;
using core::Status;

// Shortens untrusted text quoted in an error message.
std::string Excerpt(std::string_view s, std::size_t max = 40) {
  std::string out;
  for (char c : s.substr(0, max)) {
    out.push_back(static_cast<unsigned char>(c) < 0x20 ? '?' : c);
  }
  if (s.size() > max) out += "...";
  return out;
}

// Builds a DOM from SAX events, refusing what TUF metadata must not contain. It never
// throws: a violation records a message and returns false, which stops the parser.
class StrictSax final : public nlohmann::json_sax<Json> {
 public:
  explicit StrictSax(Json* root) : root_(root) {}

  bool null() override { return Put(Json(nullptr)); }
  bool boolean(bool v) override { return Put(Json(v)); }
  bool number_integer(number_integer_t v) override {
    // nlohmann reports only numbers written with a leading '-' here (even "-0").
    return Fail("negative number " + std::to_string(v) + " (only integers 0..2^53 are allowed)");
  }
  bool number_unsigned(number_unsigned_t v) override {
    if (v > kMaxJsonInteger) {
      return Fail("integer " + std::to_string(v) + " is larger than 2^53");
    }
    return Put(Json(v));
  }
  bool number_float(number_float_t /*v*/, const string_t& s) override {
    return Fail("number '" + Excerpt(s) +
                "' is not an integer (floating-point numbers are not allowed)");
  }
  bool string(string_t& v) override { return Put(Json(std::move(v))); }
  bool binary(binary_t& /*v*/) override { return Fail("binary values are not allowed"); }

  bool start_object(std::size_t /*elements*/) override { return Open(Json::object()); }
  bool key(string_t& k) override {
    Json* obj = stack_.back();
    if (obj->contains(k)) return Fail("duplicate object key '" + Excerpt(k) + "'");
    pending_ = &(*obj)[k];
    return true;
  }
  bool end_object() override {
    stack_.pop_back();
    return true;
  }
  bool start_array(std::size_t /*elements*/) override { return Open(Json::array()); }
  bool end_array() override {
    stack_.pop_back();
    return true;
  }

  bool parse_error(std::size_t position, const std::string& last_token,
                   const nlohmann::detail::exception& ex) override {
    // ex.what() is "[json.exception.parse_error.101] parse error at line 1, column 5:
    // syntax error ..."; keep the human part.
    std::string_view what = ex.what();
    auto pos = what.find("] ");
    if (pos != std::string_view::npos) what.remove_prefix(pos + 2);
    error_ = "not valid JSON at byte " + std::to_string(position) + " (near '" +
             Excerpt(last_token) + "'): " + std::string(what.substr(0, 200));
    return false;
  }

  const std::string& error() const { return error_; }

 private:
  bool Fail(std::string msg) {
    error_ = std::move(msg);
    return false;
  }

  bool Open(Json value) {
    if (static_cast<int>(stack_.size()) >= kMaxJsonDepth) {
      return Fail("nested deeper than " + std::to_string(kMaxJsonDepth) + " levels");
    }
    Json* placed = Place(std::move(value));
    stack_.push_back(placed);
    return true;
  }

  bool Put(Json value) {
    Place(std::move(value));
    return true;
  }

  // Stores `value` where the grammar says it goes and returns its address. Pointers
  // to open containers stay valid: a container's parent is not modified until the
  // container is closed.
  Json* Place(Json value) {
    if (stack_.empty()) {
      *root_ = std::move(value);
      return root_;
    }
    Json* top = stack_.back();
    if (top->is_array()) {
      top->push_back(std::move(value));
      return &top->back();
    }
    *pending_ = std::move(value);
    return pending_;
  }

  Json* root_;
  std::vector<Json*> stack_;
  Json* pending_ = nullptr;
  std::string error_;
};

Status AppendCanonical(const Json& v, std::string_view what, int depth, std::string* out);

// Appends `s` as a canonical JSON string: quoted, only '"' and '\\' escaped. A
// control character would go out raw (canonical JSON has no other escapes), which no
// JSON parser -- depot's, tuf-js's -- reads back: such a string is refused, so nothing
// gets signed that its clients cannot parse. (Found by fuzz_canonical_json.)
Status AppendCanonicalString(const std::string& s, std::string_view what, std::string* out) {
  out->push_back('"');
  for (char c : s) {
    if (static_cast<unsigned char>(c) < 0x20) {
      return Status::InvalidArgument(std::string(what) + ": the string '" + Excerpt(s) +
                                     "' holds a control character, which canonical JSON "
                                     "cannot carry readably; remove it");
    }
    if (c == '"' || c == '\\') out->push_back('\\');
    out->push_back(c);
  }
  out->push_back('"');
  return Status::Ok();
}

// Appends an integer, refusing what canonical JSON cannot carry (negative, > 2^53).
Status AppendCanonicalInteger(const Json& v, std::string_view what, std::string* out) {
  if (v.type() == Json::value_t::number_unsigned) {
    const std::uint64_t n = v.get<std::uint64_t>();
    if (n > kMaxJsonInteger) {
      return Status::InvalidArgument(std::string(what) + ": integer " + std::to_string(n) +
                                     " is larger than 2^53");
    }
    out->append(std::to_string(n));
    return Status::Ok();
  }
  // Values built in code (json j = 5) are signed; the wire form is the same.
  const std::int64_t n = v.get<std::int64_t>();
  if (n < 0 || static_cast<std::uint64_t>(n) > kMaxJsonInteger) {
    return Status::InvalidArgument(std::string(what) + ": integer " + std::to_string(n) +
                                   " is outside 0..2^53");
  }
  out->append(std::to_string(n));
  return Status::Ok();
}

Status AppendCanonicalArray(const Json& v, std::string_view what, int depth, std::string* out) {
  out->push_back('[');
  bool first = true;
  for (const auto& e : v) {
    if (!first) out->push_back(',');
    first = false;
    DEPOT_RETURN_IF_ERROR(AppendCanonical(e, what, depth + 1, out));
  }
  out->push_back(']');
  return Status::Ok();
}

Status AppendCanonicalObject(const Json& v, std::string_view what, int depth, std::string* out) {
  // nlohmann's object_t is a std::map<std::string, ...>: iteration is in
  // std::char_traits<char> order, which compares as unsigned char, i.e. by
  // byte value -- exactly the canonical order.
  out->push_back('{');
  bool first = true;
  for (const auto& [key, value] : v.get_ref<const Json::object_t&>()) {
    if (!first) out->push_back(',');
    first = false;
    DEPOT_RETURN_IF_ERROR(AppendCanonicalString(key, what, out));
    out->push_back(':');
    DEPOT_RETURN_IF_ERROR(AppendCanonical(value, what, depth + 1, out));
  }
  out->push_back('}');
  return Status::Ok();
}

Status AppendCanonical(const Json& v, std::string_view what, int depth, std::string* out) {
  if (depth > kMaxJsonDepth) {
    return Status::InvalidArgument(std::string(what) + ": nested deeper than " +
                                   std::to_string(kMaxJsonDepth) + " levels");
  }
  switch (v.type()) {
    case Json::value_t::null:
      out->append("null");
      return Status::Ok();
    case Json::value_t::boolean:
      out->append(v.get<bool>() ? "true" : "false");
      return Status::Ok();
    case Json::value_t::number_unsigned:
    case Json::value_t::number_integer:
      return AppendCanonicalInteger(v, what, out);
    case Json::value_t::number_float:
      return Status::InvalidArgument(std::string(what) +
                                     ": floating-point numbers have no canonical form");
    case Json::value_t::string:
      return AppendCanonicalString(v.get_ref<const Json::string_t&>(), what, out);
    case Json::value_t::array:
      return AppendCanonicalArray(v, what, depth, out);
    case Json::value_t::object:
      return AppendCanonicalObject(v, what, depth, out);
    case Json::value_t::binary:
    case Json::value_t::discarded:
      break;
  }
  return Status::InvalidArgument(std::string(what) + ": value has no JSON form");
}

}  // namespace

Result<Json> ParseStrictJson(std::string_view text, std::string_view what) {
  try {
    Json root;
    StrictSax sax(&root);
    const bool ok =
        Json::sax_parse(text.begin(), text.end(), &sax, nlohmann::detail::input_format_t::json,
                        /*strict=*/true, /*ignore_comments=*/false);
    if (!ok) {
      return Status::InvalidArgument(std::string(what) + ": " +
                                     (sax.error().empty() ? "not valid JSON" : sax.error()));
    }
    return root;
  } catch (const std::bad_alloc&) {
    return Status::InvalidArgument(std::string(what) + ": out of memory while parsing " +
                                   std::to_string(text.size()) + " bytes of JSON");
  } catch (const std::exception& e) {
    return Status::InvalidArgument(std::string(what) + ": not valid JSON: " + e.what());
  }
}

Result<std::string> EncodeCanonical(const Json& value, std::string_view what) {
  try {
    std::string out;
    DEPOT_RETURN_IF_ERROR(AppendCanonical(value, what, 0, &out));
    return out;
  } catch (const std::exception& e) {
    return Status::InvalidArgument(std::string(what) + ": cannot encode: " + e.what());
  }
}

}  // namespace internal

core::Result<std::string> CanonicalizeJson(std::string_view text, std::string_view what) {
  DEPOT_ASSIGN_OR_RETURN(internal::Json value, internal::ParseStrictJson(text, what));
  return internal::EncodeCanonical(value, what);
}

core::Status ValidateCanonicalJson(std::string_view bytes, std::string_view what) {
  DEPOT_ASSIGN_OR_RETURN(std::string canonical, CanonicalizeJson(bytes, what));
  if (canonical == bytes) return core::Status::Ok();
  std::size_t i = 0;
  while (i < canonical.size() && i < bytes.size() && canonical[i] == bytes[i]) ++i;
  return core::Status::InvalidArgument(std::string(what) +
                                       ": not in canonical form (first difference at byte " +
                                       std::to_string(i) + ")");
}

}  // namespace depot::tuf
