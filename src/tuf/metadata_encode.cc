// Encoding TUF metadata: each role's canonical "signed" bytes and the signed envelope.

#include <set>
#include <utility>

#include "core/hex.h"
#include "tuf/json_internal.h"
#include "tuf/metadata.h"
#include "tuf/metadata_internal.h"

namespace depot::tuf {
namespace {

using core::Result;
using core::Status;
using internal::Guarded;
using internal::Json;
using internal::kSha256HexLength;
using internal::Quote;

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

}  // namespace

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

}  // namespace depot::tuf
