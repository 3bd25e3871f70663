#include "tuf/metadata.h"

#include <algorithm>
#include <set>
#include <utility>

#include "core/env.h"
#include "core/hex.h"
#include "core/path.h"
#include "core/sha256.h"
#include "tuf/json_internal.h"

namespace depot::tuf {
namespace {

using core::Result;
using core::Status;
using internal::Json;

constexpr std::size_t kSha256HexLength = 64;
constexpr std::size_t kMaxSignatureHexLength = 1024;
// "<64 hex>." is prepended to a target's file name in its consistent path.
constexpr std::size_t kConsistentPrefixLength = kSha256HexLength + 1;

// Quotes untrusted text for an error message: bounded, control characters escaped.
std::string Quote(std::string_view s) {
  std::string out = "'";
  for (char c : s.substr(0, 120)) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f) {
      static constexpr char kHex[] = "0123456789abcdef";
      out += "\\x";
      out += kHex[u >> 4];
      out += kHex[u & 0xf];
    } else {
      out.push_back(c);
    }
  }
  if (s.size() > 120) out += "...";
  return out + "'";
}

// Strict UTF-8 (RFC 3629): no overlong forms, no surrogates, nothing above U+10FFFF.
bool IsValidUtf8(std::string_view s) {
  std::size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      ++i;
      continue;
    }
    std::size_t n;
    std::uint32_t cp;
    if ((c & 0xe0) == 0xc0) {
      n = 1;
      cp = c & 0x1f;
    } else if ((c & 0xf0) == 0xe0) {
      n = 2;
      cp = c & 0x0f;
    } else if ((c & 0xf8) == 0xf0) {
      n = 3;
      cp = c & 0x07;
    } else {
      return false;
    }
    if (s.size() - i <= n) return false;  // truncated sequence
    for (std::size_t k = 1; k <= n; ++k) {
      const auto cc = static_cast<unsigned char>(s[i + k]);
      if ((cc & 0xc0) != 0x80) return false;
      cp = (cp << 6) | (cc & 0x3f);
    }
    if ((n == 1 && cp < 0x80) || (n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) ||
        cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) {
      return false;
    }
    i += n + 1;
  }
  return true;
}

std::string EscapeCanonical(std::string_view s) {
  std::string out;
  out.reserve(s.size() + 2);
  out.push_back('"');
  for (char c : s) {
    if (c == '"' || c == '\\') out.push_back('\\');
    out.push_back(c);
  }
  out.push_back('"');
  return out;
}

// ---------------------------------------------------------------------------------
// Decoding helpers. Each names the file and the JSON location of a problem.

class Reader {
 public:
  explicit Reader(std::string_view file) : file_(file) {}

  Status Bad(std::string_view where, std::string_view what) const {
    return Status::InvalidArgument(file_ + ": " + std::string(where) + ": " + std::string(what));
  }
  const std::string& file() const { return file_; }

  Result<const Json*> Field(const Json& obj, const std::string& key, std::string_view where) const {
    auto it = obj.find(key);
    if (it == obj.end()) return Bad(where, "missing field '" + key + "'");
    return &*it;
  }

  Result<const Json*> Object(const Json& obj, const std::string& key,
                             std::string_view where) const {
    DEPOT_ASSIGN_OR_RETURN(const Json* v, Field(obj, key, where));
    if (!v->is_object()) return Bad(where, "'" + key + "' is not an object");
    return v;
  }

  Result<const Json*> Array(const Json& obj, const std::string& key, std::string_view where) const {
    DEPOT_ASSIGN_OR_RETURN(const Json* v, Field(obj, key, where));
    if (!v->is_array()) return Bad(where, "'" + key + "' is not an array");
    return v;
  }

  Result<std::string> String(const Json& obj, const std::string& key,
                             std::string_view where) const {
    DEPOT_ASSIGN_OR_RETURN(const Json* v, Field(obj, key, where));
    if (!v->is_string()) return Bad(where, "'" + key + "' is not a string");
    return v->get<std::string>();
  }

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

  Result<std::uint64_t> IntegerField(const Json& obj, const std::string& key,
                                     std::string_view where, std::uint64_t min,
                                     std::uint64_t max) const {
    DEPOT_ASSIGN_OR_RETURN(const Json* v, Field(obj, key, where));
    return Integer(*v, where, key, min, max);
  }

  Result<std::int64_t> Version(const Json& obj, std::string_view where) const {
    DEPOT_ASSIGN_OR_RETURN(std::uint64_t v, IntegerField(obj, "version", where, 1,
                                                         static_cast<std::uint64_t>(kMaxVersion)));
    return static_cast<std::int64_t>(v);
  }

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

struct Envelope {
  Json signed_json;
  std::string canonical;
  std::vector<Signature> signatures;
};

Result<Envelope> ParseEnvelope(std::string_view bytes, const Reader& r) {
  DEPOT_ASSIGN_OR_RETURN(Json doc, internal::ParseStrictJson(bytes, r.file()));
  if (!doc.is_object()) return r.Bad("top level", "not a JSON object");
  DEPOT_ASSIGN_OR_RETURN(const Json* signed_json, r.Object(doc, "signed", "top level"));
  DEPOT_ASSIGN_OR_RETURN(const Json* sigs, r.Array(doc, "signatures", "top level"));
  if (sigs->size() > kMaxSignatures) {
    return r.Bad("signatures", std::to_string(sigs->size()) + " signatures, more than the " +
                                   std::to_string(kMaxSignatures) + " allowed");
  }
  Envelope env;
  std::set<std::string> seen;
  for (std::size_t i = 0; i < sigs->size(); ++i) {
    const Json& s = (*sigs)[i];
    const std::string where = "signatures[" + std::to_string(i) + "]";
    if (!s.is_object()) return r.Bad(where, "not an object");
    DEPOT_ASSIGN_OR_RETURN(std::string keyid, r.String(s, "keyid", where));
    DEPOT_ASSIGN_OR_RETURN(std::string sig, r.String(s, "sig", where));
    if (!core::IsLowerHex(keyid, kSha256HexLength)) {
      return r.Bad(where, "keyid is not 64 lowercase hex characters");
    }
    if (sig.size() % 2 != 0 || sig.size() > kMaxSignatureHexLength ||
        (!sig.empty() && !core::IsLowerHex(sig))) {
      return r.Bad(where, "sig is not lowercase hex of at most 512 bytes");
    }
    if (!seen.insert(keyid).second) {
      return r.Bad(where, "a second signature by key " + keyid +
                              " (the TUF spec allows one signature per keyid)");
    }
    env.signatures.push_back(Signature{std::move(keyid), std::move(sig)});
  }
  env.signed_json = *signed_json;
  DEPOT_ASSIGN_OR_RETURN(env.canonical, internal::EncodeCanonical(env.signed_json, r.file()));
  return env;
}

// Accepts "1.x" and "1.x.y" (TUF: clients match the major version).
bool SpecVersionSupported(std::string_view v) {
  int parts = 0;
  std::size_t start = 0;
  while (start <= v.size()) {
    std::size_t end = v.find('.', start);
    if (end == std::string_view::npos) end = v.size();
    std::string_view part = v.substr(start, end - start);
    if (part.empty() || part.size() > 9 ||
        !std::all_of(part.begin(), part.end(), [](char c) { return c >= '0' && c <= '9'; })) {
      return false;
    }
    if (parts == 0 && part != "1") return false;
    ++parts;
    start = end + 1;
  }
  return parts == 2 || parts == 3;
}

struct Common {
  std::int64_t version;
  core::TimePoint expires;
};

Result<Common> ParseCommon(const Json& s, Role role, const Reader& r) {
  DEPOT_ASSIGN_OR_RETURN(std::string type, r.String(s, "_type", "signed"));
  if (type != RoleName(role)) {
    return r.Bad("signed",
                 "_type is " + Quote(type) + ", expected '" + std::string(RoleName(role)) + "'");
  }
  DEPOT_ASSIGN_OR_RETURN(std::string spec, r.String(s, "spec_version", "signed"));
  if (!SpecVersionSupported(spec)) {
    return r.Bad("signed", "spec_version " + Quote(spec) +
                               " is not supported (depot reads TUF 1.x metadata)");
  }
  Common c;
  DEPOT_ASSIGN_OR_RETURN(c.version, r.Version(s, "signed"));
  DEPOT_ASSIGN_OR_RETURN(std::string expires, r.String(s, "expires", "signed"));
  auto t = core::ParseUtc(expires);
  if (!t.ok()) return r.Bad("signed.expires", t.status().message());
  c.expires = *t;
  return c;
}

Result<MetaFile> ParseMetaFile(const Json& v, const std::string& where, const Reader& r) {
  if (!v.is_object()) return r.Bad(where, "not an object");
  MetaFile m;
  DEPOT_ASSIGN_OR_RETURN(m.version, r.Version(v, where));
  if (v.contains("length")) {
    DEPOT_ASSIGN_OR_RETURN(m.length, r.IntegerField(v, "length", where, 1, kMaxLength));
  }
  if (v.contains("hashes")) {
    DEPOT_ASSIGN_OR_RETURN(m.sha256, r.Sha256Hashes(v, where));
  }
  return m;
}

// ---------------------------------------------------------------------------------
// Encoding helpers.

Json ExpiresJson(core::TimePoint t) { return core::FormatUtc(t); }

Json CommonJson(Role role, std::int64_t version, core::TimePoint expires) {
  return Json{{"_type", std::string(RoleName(role))},
              {"spec_version", std::string(kSpecVersion)},
              {"version", version},
              {"expires", ExpiresJson(expires)}};
}

Status CheckVersion(std::int64_t version, std::string_view what) {
  if (version < 1 || version > kMaxVersion) {
    return Status::InvalidArgument(std::string(what) + ": version " + std::to_string(version) +
                                   " is outside 1..2^53");
  }
  return Status::Ok();
}

Result<Json> MetaFileJson(const MetaFile& m, std::string_view what) {
  DEPOT_RETURN_IF_ERROR(CheckVersion(m.version, what));
  Json j = {{"version", m.version}};
  if (m.length) {
    if (*m.length < 1 || *m.length > kMaxLength) {
      return Status::InvalidArgument(std::string(what) + ": length " + std::to_string(*m.length) +
                                     " is outside 1..2^53");
    }
    j["length"] = *m.length;
  }
  if (!m.sha256.empty()) {
    if (!core::IsLowerHex(m.sha256, kSha256HexLength)) {
      return Status::InvalidArgument(std::string(what) +
                                     ": sha256 is not 64 lowercase hex characters");
    }
    j["hashes"] = Json{{"sha256", m.sha256}};
  }
  return j;
}

// Canonical bytes of a "signed" object, refusing strings whose raw control characters
// would make the file invalid JSON (canonical JSON escapes only '"' and '\').
Result<std::string> FinishSigned(const Json& j, std::string_view what) {
  DEPOT_ASSIGN_OR_RETURN(std::string out, internal::EncodeCanonical(j, what));
  // Canonical JSON has no whitespace outside strings, so any control byte is inside one.
  for (char c : out) {
    if (static_cast<unsigned char>(c) < 0x20) {
      return Status::InvalidArgument(
          std::string(what) +
          ": a string contains a control character, which canonical JSON cannot carry "
          "as valid JSON");
    }
  }
  return out;
}

Status ValidateTargetInfo(const std::string& key, const TargetInfo& t) {
  if (key != t.path) {
    return Status::InvalidArgument("targets: entry " + Quote(key) + " holds info for path " +
                                   Quote(t.path));
  }
  DEPOT_RETURN_IF_ERROR(ValidateTargetPath(t.path));
  if (!core::IsLowerHex(t.sha256, kSha256HexLength)) {
    return Status::InvalidArgument("target " + Quote(t.path) +
                                   ": sha256 is not 64 lowercase hex characters");
  }
  if (t.length > kMaxLength) {
    return Status::InvalidArgument("target " + Quote(t.path) + ": length is larger than 2^53");
  }
  return Status::Ok();
}

}  // namespace

std::string_view RoleName(Role role) {
  switch (role) {
    case Role::kRoot:
      return "root";
    case Role::kTargets:
      return "targets";
    case Role::kSnapshot:
      return "snapshot";
    case Role::kTimestamp:
      return "timestamp";
  }
  return "unknown";
}

std::string RoleFileName(Role role) { return std::string(RoleName(role)) + ".json"; }

Result<Role> ParseRole(std::string_view name) {
  for (Role r : kAllRoles) {
    if (RoleName(r) == name) return r;
  }
  return Status::InvalidArgument("unknown TUF role " + Quote(name) +
                                 " (expected root, targets, snapshot or timestamp)");
}

std::string VersionedFileName(Role role, std::int64_t version) {
  return std::to_string(version) + "." + RoleFileName(role);
}

Status ValidateTargetPath(std::string_view path) {
  Status s = core::ValidateRelativePath(path);
  if (!s.ok()) return Status::InvalidArgument("target " + s.message());
  if (!IsValidUtf8(path)) {
    return Status::InvalidArgument("target path " + Quote(path) + " is not valid UTF-8");
  }
  if (core::Basename(path).size() + kConsistentPrefixLength > core::kMaxComponentLength) {
    return Status::InvalidArgument(
        "target path " + Quote(path) + ": file name is longer than " +
        std::to_string(core::kMaxComponentLength - kConsistentPrefixLength) +
        " bytes (its consistent name gets a 65-byte hash prefix)");
  }
  return Status::Ok();
}

std::string ConsistentTargetPath(std::string_view target_path, std::string_view sha256_hex) {
  const std::string_view dir = core::Dirname(target_path);
  std::string name = std::string(sha256_hex) + "." + std::string(core::Basename(target_path));
  return dir.empty() ? name : core::JoinPath(dir, name);
}

namespace {

// ---------------------------------------------------------------------------------
// Parsers.

Result<Signed<RootMetadata>> ParseRootImpl(std::string_view bytes, std::string_view file) {
  const Reader r(file);
  DEPOT_ASSIGN_OR_RETURN(Envelope env, ParseEnvelope(bytes, r));
  const Json& s = env.signed_json;
  Signed<RootMetadata> out;
  RootMetadata& root = out.body;
  DEPOT_ASSIGN_OR_RETURN(Common c, ParseCommon(s, Role::kRoot, r));
  root.version = c.version;
  root.expires = c.expires;
  root.consistent_snapshot = false;  // TUF: absent means false
  if (s.contains("consistent_snapshot")) {
    const Json& cs = s["consistent_snapshot"];
    if (!cs.is_boolean()) return r.Bad("signed", "'consistent_snapshot' is not a boolean");
    root.consistent_snapshot = cs.get<bool>();
  }

  DEPOT_ASSIGN_OR_RETURN(const Json* keys, r.Object(s, "keys", "signed"));
  if (keys->size() > kMaxKeys) {
    return r.Bad("signed.keys", std::to_string(keys->size()) + " keys, more than the " +
                                    std::to_string(kMaxKeys) + " allowed");
  }
  for (const auto& [keyid, kj] : keys->get_ref<const Json::object_t&>()) {
    const std::string where = "signed.keys." + keyid.substr(0, 64);
    if (!core::IsLowerHex(keyid, kSha256HexLength)) {
      return r.Bad("signed.keys", "keyid " + Quote(keyid) + " is not 64 lowercase hex");
    }
    if (!kj.is_object()) return r.Bad(where, "not an object");
    PublicKey key;
    DEPOT_ASSIGN_OR_RETURN(key.keytype, r.String(kj, "keytype", where));
    DEPOT_ASSIGN_OR_RETURN(key.scheme, r.String(kj, "scheme", where));
    DEPOT_ASSIGN_OR_RETURN(const Json* keyval, r.Object(kj, "keyval", where));
    DEPOT_ASSIGN_OR_RETURN(key.public_hex, r.String(*keyval, "public", where + ".keyval"));
    Status valid = ValidatePublicKey(key);
    if (!valid.ok()) return r.Bad(where, valid.message());
    // TUF: clients MUST check that each keyid is the hash of its key, so one keyid
    // can never stand for two keys. Extra fields in the key object are part of it.
    DEPOT_ASSIGN_OR_RETURN(std::string canonical_key, internal::EncodeCanonical(kj, file));
    if (core::Sha256::HashHex(canonical_key) != keyid) {
      return r.Bad(where, "keyid is not the SHA-256 of the key's canonical JSON");
    }
    root.keys.emplace(keyid, std::move(key));
  }

  DEPOT_ASSIGN_OR_RETURN(const Json* roles, r.Object(s, "roles", "signed"));
  for (const auto& [name, rj] : roles->get_ref<const Json::object_t&>()) {
    auto role = ParseRole(name);
    if (!role.ok()) return r.Bad("signed.roles", role.status().message());
    const std::string where = "signed.roles." + name;
    if (!rj.is_object()) return r.Bad(where, "not an object");
    RoleKeys rk;
    DEPOT_ASSIGN_OR_RETURN(const Json* ids, r.Array(rj, "keyids", where));
    if (ids->size() > kMaxKeys) return r.Bad(where, "too many keyids");
    std::set<std::string> seen;
    for (const Json& id : *ids) {
      if (!id.is_string()) return r.Bad(where, "a keyid is not a string");
      std::string keyid = id.get<std::string>();
      if (!root.keys.count(keyid)) {
        return r.Bad(where, "keyid " + Quote(keyid) + " is not in signed.keys");
      }
      if (!seen.insert(keyid).second) return r.Bad(where, "keyid " + keyid + " is listed twice");
      rk.keyids.push_back(std::move(keyid));
    }
    DEPOT_ASSIGN_OR_RETURN(std::uint64_t threshold,
                           r.IntegerField(rj, "threshold", where, 1, kMaxKeys));
    rk.threshold = static_cast<std::int64_t>(threshold);
    root.roles.emplace(*role, std::move(rk));
  }
  for (Role role : kAllRoles) {
    if (!root.roles.count(role)) {
      return r.Bad("signed.roles", "the '" + std::string(RoleName(role)) + "' role is missing");
    }
  }
  out.canonical = std::move(env.canonical);
  out.signatures = std::move(env.signatures);
  return out;
}

Result<Signed<TargetsMetadata>> ParseTargetsImpl(std::string_view bytes, std::string_view file) {
  const Reader r(file);
  DEPOT_ASSIGN_OR_RETURN(Envelope env, ParseEnvelope(bytes, r));
  const Json& s = env.signed_json;
  Signed<TargetsMetadata> out;
  TargetsMetadata& t = out.body;
  DEPOT_ASSIGN_OR_RETURN(Common c, ParseCommon(s, Role::kTargets, r));
  t.version = c.version;
  t.expires = c.expires;

  if (s.contains("delegations")) {
    const Json& d = s["delegations"];
    if (!d.is_object()) return r.Bad("signed.delegations", "not an object");
    for (const auto& [k, v] : d.get_ref<const Json::object_t&>()) {
      const bool empty = (k == "keys" && v.is_object() && v.empty()) ||
                         (k == "roles" && v.is_array() && v.empty());
      if (!empty) {
        return r.Bad("signed.delegations",
                     "delegated targets roles are not supported by depot (found a non-empty "
                     "'" +
                         k.substr(0, 40) + "')");
      }
    }
  }

  DEPOT_ASSIGN_OR_RETURN(const Json* targets, r.Object(s, "targets", "signed"));
  if (targets->size() > kMaxTargets) {
    return r.Bad("signed.targets", std::to_string(targets->size()) + " targets, more than the " +
                                       std::to_string(kMaxTargets) + " allowed");
  }
  for (const auto& [path, tj] : targets->get_ref<const Json::object_t&>()) {
    const std::string where = "signed.targets." + Quote(path);
    Status valid = ValidateTargetPath(path);
    if (!valid.ok()) return r.Bad("signed.targets", valid.message());
    if (!tj.is_object()) return r.Bad(where, "not an object");
    TargetInfo info;
    info.path = path;
    DEPOT_ASSIGN_OR_RETURN(info.length, r.IntegerField(tj, "length", where, 0, kMaxLength));
    DEPOT_ASSIGN_OR_RETURN(info.sha256, r.Sha256Hashes(tj, where));
    if (tj.contains("custom")) {
      const Json& custom = tj["custom"];
      if (!custom.is_object()) return r.Bad(where, "'custom' is not an object");
      DEPOT_ASSIGN_OR_RETURN(info.custom_json, internal::EncodeCanonical(custom, file));
      if (info.custom_json.size() > kMaxCustomBytes) {
        return r.Bad(where,
                     "'custom' is larger than " + std::to_string(kMaxCustomBytes) + " bytes");
      }
    }
    t.targets.emplace_hint(t.targets.end(), path, std::move(info));
  }
  out.canonical = std::move(env.canonical);
  out.signatures = std::move(env.signatures);
  return out;
}

Result<Signed<SnapshotMetadata>> ParseSnapshotImpl(std::string_view bytes, std::string_view file) {
  const Reader r(file);
  DEPOT_ASSIGN_OR_RETURN(Envelope env, ParseEnvelope(bytes, r));
  const Json& s = env.signed_json;
  Signed<SnapshotMetadata> out;
  SnapshotMetadata& snap = out.body;
  DEPOT_ASSIGN_OR_RETURN(Common c, ParseCommon(s, Role::kSnapshot, r));
  snap.version = c.version;
  snap.expires = c.expires;
  DEPOT_ASSIGN_OR_RETURN(const Json* meta, r.Object(s, "meta", "signed"));
  if (meta->size() > kMaxMetaEntries) return r.Bad("signed.meta", "too many entries");
  for (const auto& [name, mj] : meta->get_ref<const Json::object_t&>()) {
    DEPOT_ASSIGN_OR_RETURN(MetaFile m, ParseMetaFile(mj, "signed.meta." + Quote(name), r));
    snap.meta.emplace_hint(snap.meta.end(), name, std::move(m));
  }
  if (!snap.meta.count(RoleFileName(Role::kTargets))) {
    return r.Bad("signed.meta", "does not list targets.json");
  }
  out.canonical = std::move(env.canonical);
  out.signatures = std::move(env.signatures);
  return out;
}

Result<Signed<TimestampMetadata>> ParseTimestampImpl(std::string_view bytes,
                                                     std::string_view file) {
  const Reader r(file);
  DEPOT_ASSIGN_OR_RETURN(Envelope env, ParseEnvelope(bytes, r));
  const Json& s = env.signed_json;
  Signed<TimestampMetadata> out;
  TimestampMetadata& ts = out.body;
  DEPOT_ASSIGN_OR_RETURN(Common c, ParseCommon(s, Role::kTimestamp, r));
  ts.version = c.version;
  ts.expires = c.expires;
  DEPOT_ASSIGN_OR_RETURN(const Json* meta, r.Object(s, "meta", "signed"));
  const std::string snapshot_name = RoleFileName(Role::kSnapshot);
  if (meta->size() != 1 || !meta->contains(snapshot_name)) {
    return r.Bad("signed.meta", "must describe exactly one file, snapshot.json");
  }
  DEPOT_ASSIGN_OR_RETURN(ts.snapshot,
                         ParseMetaFile((*meta)[snapshot_name], "signed.meta.snapshot.json", r));
  out.canonical = std::move(env.canonical);
  out.signatures = std::move(env.signatures);
  return out;
}

// ---------------------------------------------------------------------------------
// Encoders.

Result<std::string> EncodeRoot(const RootMetadata& root) {
  DEPOT_RETURN_IF_ERROR(CheckVersion(root.version, "root"));
  if (root.keys.size() > kMaxKeys) return Status::InvalidArgument("root: too many keys");
  Json j = CommonJson(Role::kRoot, root.version, root.expires);
  j["consistent_snapshot"] = root.consistent_snapshot;
  Json keys = Json::object();
  for (const auto& [keyid, key] : root.keys) {
    Status valid = ValidatePublicKey(key);
    if (!valid.ok()) return Status::InvalidArgument("root: key " + keyid + ": " + valid.message());
    if (KeyId(key) != keyid) {
      return Status::InvalidArgument("root: keyid " + Quote(keyid) + " is not the id of its key (" +
                                     KeyId(key) + ")");
    }
    keys[keyid] = Json{
        {"keytype", key.keytype}, {"scheme", key.scheme}, {"keyval", {{"public", key.public_hex}}}};
  }
  j["keys"] = std::move(keys);
  Json roles = Json::object();
  for (Role role : kAllRoles) {
    auto it = root.roles.find(role);
    const std::string name(RoleName(role));
    if (it == root.roles.end()) {
      return Status::InvalidArgument("root: the '" + name + "' role is missing");
    }
    const RoleKeys& rk = it->second;
    if (rk.threshold < 1 || static_cast<std::uint64_t>(rk.threshold) > kMaxKeys) {
      return Status::InvalidArgument("root: role '" + name + "': threshold " +
                                     std::to_string(rk.threshold) + " is out of range");
    }
    std::set<std::string> seen;
    for (const auto& id : rk.keyids) {
      if (!root.keys.count(id)) {
        return Status::InvalidArgument("root: role '" + name + "' lists keyid " + Quote(id) +
                                       ", which is not in keys");
      }
      if (!seen.insert(id).second) {
        return Status::InvalidArgument("root: role '" + name + "' lists keyid " + id + " twice");
      }
    }
    roles[name] = Json{{"keyids", rk.keyids}, {"threshold", rk.threshold}};
  }
  if (root.roles.size() != 4) return Status::InvalidArgument("root: unexpected roles");
  j["roles"] = std::move(roles);
  return FinishSigned(j, "root");
}

Result<std::string> EncodeTargets(const TargetsMetadata& targets) {
  DEPOT_RETURN_IF_ERROR(CheckVersion(targets.version, "targets"));
  if (targets.targets.size() > kMaxTargets) {
    return Status::InvalidArgument("targets: " + std::to_string(targets.targets.size()) +
                                   " targets, more than the " + std::to_string(kMaxTargets) +
                                   " clients accept");
  }
  Json j = CommonJson(Role::kTargets, targets.version, targets.expires);
  Json list = Json::object();
  for (const auto& [path, info] : targets.targets) {
    DEPOT_RETURN_IF_ERROR(ValidateTargetInfo(path, info));
    Json tj = {{"length", info.length}, {"hashes", {{"sha256", info.sha256}}}};
    if (!info.custom_json.empty()) {
      const std::string what = "target " + Quote(path) + ": custom";
      DEPOT_ASSIGN_OR_RETURN(Json custom, internal::ParseStrictJson(info.custom_json, what));
      if (!custom.is_object()) return Status::InvalidArgument(what + ": not a JSON object");
      DEPOT_ASSIGN_OR_RETURN(std::string canonical, internal::EncodeCanonical(custom, what));
      if (canonical.size() > kMaxCustomBytes) {
        return Status::InvalidArgument(what + ": larger than " + std::to_string(kMaxCustomBytes) +
                                       " bytes");
      }
      tj["custom"] = std::move(custom);
    }
    list[path] = std::move(tj);
  }
  j["targets"] = std::move(list);
  return FinishSigned(j, "targets");
}

Result<std::string> EncodeSnapshot(const SnapshotMetadata& snapshot) {
  DEPOT_RETURN_IF_ERROR(CheckVersion(snapshot.version, "snapshot"));
  if (!snapshot.meta.count(RoleFileName(Role::kTargets))) {
    return Status::InvalidArgument("snapshot: meta does not list targets.json");
  }
  if (snapshot.meta.size() > kMaxMetaEntries) {
    return Status::InvalidArgument("snapshot: too many meta entries");
  }
  Json j = CommonJson(Role::kSnapshot, snapshot.version, snapshot.expires);
  Json meta = Json::object();
  for (const auto& [name, m] : snapshot.meta) {
    DEPOT_ASSIGN_OR_RETURN(meta[name], MetaFileJson(m, "snapshot: meta " + Quote(name)));
  }
  j["meta"] = std::move(meta);
  return FinishSigned(j, "snapshot");
}

Result<std::string> EncodeTimestamp(const TimestampMetadata& timestamp) {
  DEPOT_RETURN_IF_ERROR(CheckVersion(timestamp.version, "timestamp"));
  Json j = CommonJson(Role::kTimestamp, timestamp.version, timestamp.expires);
  DEPOT_ASSIGN_OR_RETURN(Json snap, MetaFileJson(timestamp.snapshot, "timestamp: snapshot.json"));
  j["meta"] = Json{{RoleFileName(Role::kSnapshot), std::move(snap)}};
  return FinishSigned(j, "timestamp");
}

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

}  // namespace

Result<Signed<RootMetadata>> ParseRoot(std::string_view bytes, std::string_view file) {
  return Guarded(file, [&] { return ParseRootImpl(bytes, file); });
}
Result<Signed<TargetsMetadata>> ParseTargets(std::string_view bytes, std::string_view file) {
  return Guarded(file, [&] { return ParseTargetsImpl(bytes, file); });
}
Result<Signed<SnapshotMetadata>> ParseSnapshot(std::string_view bytes, std::string_view file) {
  return Guarded(file, [&] { return ParseSnapshotImpl(bytes, file); });
}
Result<Signed<TimestampMetadata>> ParseTimestamp(std::string_view bytes, std::string_view file) {
  return Guarded(file, [&] { return ParseTimestampImpl(bytes, file); });
}
Result<std::string> EncodeSigned(const RootMetadata& root) {
  return Guarded("root", [&] { return EncodeRoot(root); });
}
Result<std::string> EncodeSigned(const TargetsMetadata& targets) {
  return Guarded("targets", [&] { return EncodeTargets(targets); });
}
Result<std::string> EncodeSigned(const SnapshotMetadata& snapshot) {
  return Guarded("snapshot", [&] { return EncodeSnapshot(snapshot); });
}
Result<std::string> EncodeSigned(const TimestampMetadata& timestamp) {
  return Guarded("timestamp", [&] { return EncodeTimestamp(timestamp); });
}

std::string EncodeEnvelope(std::string_view canonical_signed,
                           const std::vector<Signature>& signatures) {
  // Keys in canonical order: "signatures" < "signed"; in each signature "keyid" < "sig".
  std::string out = "{\"signatures\":[";
  bool first = true;
  for (const auto& s : signatures) {
    if (!first) out.push_back(',');
    first = false;
    out += "{\"keyid\":" + EscapeCanonical(s.keyid) + ",\"sig\":" + EscapeCanonical(s.sig) + "}";
  }
  out += "],\"signed\":";
  out.append(canonical_signed);
  out.push_back('}');
  return out;
}

Result<std::string> SignEnvelope(std::string_view canonical_signed,
                                 const std::vector<const PrivateKey*>& keys) {
  std::vector<Signature> sigs;
  std::set<std::string> seen;
  for (const PrivateKey* key : keys) {
    if (key == nullptr) return Status::InvalidArgument("SignEnvelope: null key");
    if (!seen.insert(key->keyid()).second) continue;
    DEPOT_ASSIGN_OR_RETURN(std::string sig, key->Sign(canonical_signed));
    sigs.push_back(Signature{key->keyid(), std::move(sig)});
  }
  return EncodeEnvelope(canonical_signed, sigs);
}

Status VerifyThreshold(const RootMetadata& root, Role role, std::string_view canonical_signed,
                       const std::vector<Signature>& signatures, std::string_view file) {
  const std::string name(RoleName(role));
  auto it = root.roles.find(role);
  if (it == root.roles.end()) {
    return Status::Corruption(std::string(file) + ": root.json (version " +
                              std::to_string(root.version) + ") defines no '" + name + "' role");
  }
  const RoleKeys& rk = it->second;
  const std::set<std::string> authorized(rk.keyids.begin(), rk.keyids.end());
  // Count distinct public keys, not keyids or signatures: a duplicated signature, or
  // one key listed under two ids, must not count twice toward the threshold.
  std::set<std::string> good_keys;
  std::set<std::string> seen_keyids;
  std::size_t untrusted = 0, invalid = 0;
  for (const Signature& sig : signatures) {
    if (!seen_keyids.insert(sig.keyid).second) continue;
    auto key = root.keys.find(sig.keyid);
    if (!authorized.count(sig.keyid) || key == root.keys.end()) {
      ++untrusted;
      continue;
    }
    if (good_keys.count(key->second.public_hex)) continue;
    if (VerifySignature(key->second, canonical_signed, sig.sig).ok()) {
      good_keys.insert(key->second.public_hex);
      if (static_cast<std::int64_t>(good_keys.size()) >= rk.threshold) return Status::Ok();
    } else {
      ++invalid;
    }
  }
  return Status::Corruption(
      std::string(file) + ": " + std::to_string(good_keys.size()) + " valid signature(s) by " +
      name + " keys, " + std::to_string(rk.threshold) + " required by root.json version " +
      std::to_string(root.version) + " (" + std::to_string(invalid) + " invalid, " +
      std::to_string(untrusted) + " by keys not trusted for the " + name +
      " role); the file was not signed by the repository's keys or was altered");
}

}  // namespace depot::tuf
