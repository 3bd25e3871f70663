// INTERNAL to src/tuf: the pieces metadata_parse.cc and metadata_encode.cc share --
// the strict JSON Reader that names the file and location of every problem, the
// signed envelope and common fields every role file carries, and the exception guard.
// Only tuf .cc files include this header (it pulls in nlohmann/json via json_internal.h).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/clock.h"
#include "core/hex.h"
#include "core/status.h"
#include "tuf/json_internal.h"
#include "tuf/metadata.h"

namespace depot::tuf::internal {

using core::Result;
using core::Status;

// Length of a SHA-256 digest (and so of a keyid) in hex.
inline constexpr std::size_t kSha256HexLength = 64;

// Quotes untrusted text for an error message: bounded, control characters escaped.
std::string Quote(std::string_view s);

// ---------------------------------------------------------------------------------
// Decoding helpers. Each names the file and the JSON location of a problem.

// Reads typed fields out of a parsed metadata file; every error names the file.
class Reader {
 public:
  // `file` names the metadata file in every error.
  explicit Reader(std::string_view file) : file_(file) {}

  // The InvalidArgument error for a problem at `where` in the file.
  Status Bad(std::string_view where, std::string_view what) const {
    return Status::InvalidArgument(file_ + ": " + std::string(where) + ": " + std::string(what));
  }
  // The file name errors carry.
  const std::string& file() const { return file_; }

  // The member `key` of `obj`; an error when it is missing.
  Result<const Json*> Field(const Json& obj, const std::string& key, std::string_view where) const {
    auto it = obj.find(key);
    if (it == obj.end()) return Bad(where, "missing field '" + key + "'");
    return &*it;
  }

  // The member `key` of `obj`, which must be an object.
  Result<const Json*> Object(const Json& obj, const std::string& key,
                             std::string_view where) const {
    DEPOT_ASSIGN_OR_RETURN(const Json* v, Field(obj, key, where));
    if (!v->is_object()) return Bad(where, "'" + key + "' is not an object");
    return v;
  }

  // The member `key` of `obj`, which must be an array.
  Result<const Json*> Array(const Json& obj, const std::string& key, std::string_view where) const {
    DEPOT_ASSIGN_OR_RETURN(const Json* v, Field(obj, key, where));
    if (!v->is_array()) return Bad(where, "'" + key + "' is not an array");
    return v;
  }

  // The member `key` of `obj`, which must be a string.
  Result<std::string> String(const Json& obj, const std::string& key,
                             std::string_view where) const {
    DEPOT_ASSIGN_OR_RETURN(const Json* v, Field(obj, key, where));
    if (!v->is_string()) return Bad(where, "'" + key + "' is not a string");
    return v->get<std::string>();
  }

  // `v` as a non-negative integer in min..max; `name` labels it in errors.
  Result<std::uint64_t> Integer(const Json& v, std::string_view where, std::string_view name,
                                std::uint64_t min, std::uint64_t max) const {
    std::uint64_t n;
    if (v.is_number_unsigned()) {
      n = v.get<std::uint64_t>();
    } else if (v.is_number_integer() && v.get<std::int64_t>() >= 0) {
      n = static_cast<std::uint64_t>(v.get<std::int64_t>());
    } else {
      return Bad(where, "'" + std::string(name) + "' is not a non-negative integer");
    }
    if (n < min || n > max) {
      return Bad(where, "'" + std::string(name) + "' is " + std::to_string(n) + ", outside " +
                            std::to_string(min) + ".." + std::to_string(max));
    }
    return n;
  }

  // The member `key` of `obj` as an integer in min..max.
  Result<std::uint64_t> IntegerField(const Json& obj, const std::string& key,
                                     std::string_view where, std::uint64_t min,
                                     std::uint64_t max) const {
    DEPOT_ASSIGN_OR_RETURN(const Json* v, Field(obj, key, where));
    return Integer(*v, where, key, min, max);
  }

  // The "version" member of `obj`: 1..kMaxVersion.
  Result<std::int64_t> Version(const Json& obj, std::string_view where) const {
    DEPOT_ASSIGN_OR_RETURN(std::uint64_t v, IntegerField(obj, "version", where, 1,
                                                         static_cast<std::uint64_t>(kMaxVersion)));
    return static_cast<std::int64_t>(v);
  }

  // The sha256 hex from the "hashes" member of `obj` (other algorithms are checked
  // for shape only).
  Result<std::string> Sha256Hashes(const Json& obj, std::string_view where) const {
    DEPOT_ASSIGN_OR_RETURN(const Json* hashes, Object(obj, "hashes", where));
    if (hashes->empty()) return Bad(where, "'hashes' is empty");
    if (hashes->size() > 16) return Bad(where, "'hashes' has more than 16 entries");
    for (const auto& [alg, value] : hashes->get_ref<const Json::object_t&>()) {
      if (!value.is_string()) return Bad(where, "hash " + Quote(alg) + " is not a string");
    }
    auto it = hashes->find("sha256");
    if (it == hashes->end()) {
      return Bad(where, "'hashes' has no sha256 (depot verifies sha256 only)");
    }
    std::string hex = it->get<std::string>();
    if (!core::IsLowerHex(hex, kSha256HexLength)) {
      return Bad(where, "hashes.sha256 is not 64 lowercase hex characters");
    }
    return hex;
  }

 private:
  std::string file_;
};

// A metadata file's outer object: the "signed" body, its canonical bytes (what the
// signatures cover) and the signatures.
struct Envelope {
  Json signed_json;
  std::string canonical;
  std::vector<Signature> signatures;
};

// Parses and checks the outer {"signatures": [...], "signed": {...}} object.
Result<Envelope> ParseEnvelope(std::string_view bytes, const Reader& r);

// The fields every role's "signed" object carries.
struct Common {
  std::int64_t version;
  core::TimePoint expires;
};

// Checks _type and spec_version, then reads version and expires.
Result<Common> ParseCommon(const Json& s, Role role, const Reader& r);

// Reads one snapshot/timestamp "meta" entry (version, optional length and hashes).
Result<MetaFile> ParseMetaFile(const Json& v, const std::string& where, const Reader& r);

// nlohmann::json only throws on misuse, which the checks above rule out; the guard
// makes sure that, whatever happens, no exception leaves the component.
template <typename F>
auto Guarded(std::string_view what, F&& f) -> decltype(f()) {
  try {
    return f();
  } catch (const std::exception& e) {
    return Status::InvalidArgument(std::string(what) + ": cannot process metadata: " + e.what());
  }
}

}  // namespace depot::tuf::internal
