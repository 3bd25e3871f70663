// Decoding TUF metadata files: the four role parsers on top of the shared Reader.

#include <set>
#include <utility>

#include "core/hex.h"
#include "core/sha256.h"
#include "tuf/json_internal.h"
#include "tuf/metadata.h"
#include "tuf/metadata_internal.h"

namespace depot::tuf {
namespace {

using core::Result;
using core::Status;
using internal::Common;
using internal::Envelope;
using internal::Guarded;
using internal::Json;
using internal::kSha256HexLength;
using internal::ParseCommon;
using internal::ParseEnvelope;
using internal::ParseMetaFile;
using internal::Quote;
using internal::Reader;

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

}  // namespace depot::tuf
