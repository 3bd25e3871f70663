// TUF 1.0 metadata: the four top-level roles as plain structs, their strict parsers,
// their canonical encoders, and signature-threshold verification.
//
// Wire format (spec_version "1.0.31"; every file is canonical JSON):
//   {"signatures":[{"keyid":"<64 hex>","sig":"<128 hex>"},...],"signed":{...}}
// where each signature is Ed25519 over the canonical JSON bytes of "signed".
//
// Parsing is strict: a file must have the right "_type", every required field with
// the right JSON type, versions 1..2^53, expiry "YYYY-MM-DDTHH:MM:SSZ", sha256 hashes
// as 64 lowercase hex characters, keyids that really are the SHA-256 of their key,
// only ed25519 keys, exactly the four top-level roles, no delegations, and sizes
// within the limits below. Unknown extra fields are allowed (TUF requires it) and are
// covered by the signatures because signatures are checked over the canonical form
// of the whole parsed "signed" object. Parsing never trusts: callers check
// signatures with VerifyThreshold() and versions/expiry themselves (see client.h).
//
// Errors name the file ("3.snapshot.json: signed.meta: ...").
// InvalidArgument: malformed or unsupported content. Corruption: signatures.
//
// Thread safety: values and pure functions; call from any thread.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/clock.h"
#include "core/status.h"
#include "tuf/keys.h"

namespace depot::tuf {

// The spec version depot writes. Readers accept any 1.x.y.
inline constexpr std::string_view kSpecVersion = "1.0.31";

// Bounds on what a parser accepts, so hostile metadata cannot exhaust memory or CPU.
inline constexpr std::size_t kMaxKeys = 10'000;            // keys in root.json
inline constexpr std::size_t kMaxTargets = 1'000'000;      // entries in targets.json
inline constexpr std::size_t kMaxSignatures = 64;          // signatures per file
inline constexpr std::size_t kMaxMetaEntries = 10'000;     // entries in snapshot meta
inline constexpr std::size_t kMaxCustomBytes = 64 * 1024;  // canonical "custom" per target
inline constexpr std::int64_t kMaxVersion = std::int64_t{1} << 53;
inline constexpr std::uint64_t kMaxLength = std::uint64_t{1} << 53;

// Download and read caps ("endless data" protection). Root and timestamp have no
// referring metadata to state their length, so they get fixed caps; snapshot and
// targets are capped by the length their referrer signed, and never above these.
inline constexpr std::uint64_t kMaxRootBytes = 512 * 1024;
inline constexpr std::uint64_t kMaxTimestampBytes = 16 * 1024;
inline constexpr std::uint64_t kMaxSnapshotBytes = 32 * 1024 * 1024;
inline constexpr std::uint64_t kMaxTargetsBytes = 256 * 1024 * 1024;
// Longest root rotation chain a client follows in one update (TUF's "Y").
inline constexpr int kMaxRootRotations = 1024;

enum class Role { kRoot, kTargets, kSnapshot, kTimestamp };
inline constexpr Role kAllRoles[] = {Role::kRoot, Role::kTargets, Role::kSnapshot,
                                     Role::kTimestamp};

// "root", "targets", "snapshot", "timestamp".
std::string_view RoleName(Role role);
// "root.json", ... -- the name other metadata refers to the role's file by.
std::string RoleFileName(Role role);
// Inverse of RoleName; InvalidArgument for anything else.
core::Result<Role> ParseRole(std::string_view name);
// "N.root.json": the consistent-snapshot name of version `version` of `role`.
std::string VersionedFileName(Role role, std::int64_t version);

// The keys trusted for one role and how many of them must sign.
struct RoleKeys {
  std::vector<std::string> keyids;
  std::int64_t threshold = 1;

  friend bool operator==(const RoleKeys&, const RoleKeys&) = default;
};

// One target file as signed in targets.json.
struct TargetInfo {
  std::string path;          // relative path, core::ValidateRelativePath rules, UTF-8
  std::uint64_t length = 0;  // exact size in bytes
  std::string sha256;        // 64 lowercase hex characters
  std::string custom_json;   // canonical JSON object text, or "" when absent

  friend bool operator==(const TargetInfo&, const TargetInfo&) = default;
};

// What one metadata file says about another (snapshot.json's entry for targets.json,
// timestamp.json's entry for snapshot.json).
struct MetaFile {
  std::int64_t version = 1;
  std::optional<std::uint64_t> length;  // exact size in bytes, when given
  std::string sha256;                   // "" when not given

  friend bool operator==(const MetaFile&, const MetaFile&) = default;
};

struct RootMetadata {
  std::int64_t version = 1;
  core::TimePoint expires;
  bool consistent_snapshot = true;
  std::map<std::string, PublicKey> keys;  // keyid -> key
  std::map<Role, RoleKeys> roles;         // exactly the four top-level roles

  friend bool operator==(const RootMetadata&, const RootMetadata&) = default;
};

struct TargetsMetadata {
  std::int64_t version = 1;
  core::TimePoint expires;
  std::map<std::string, TargetInfo> targets;  // path -> info (info.path == path)

  friend bool operator==(const TargetsMetadata&, const TargetsMetadata&) = default;
};

struct SnapshotMetadata {
  std::int64_t version = 1;
  core::TimePoint expires;
  std::map<std::string, MetaFile> meta;  // "targets.json" -> ...

  friend bool operator==(const SnapshotMetadata&, const SnapshotMetadata&) = default;
};

struct TimestampMetadata {
  std::int64_t version = 1;
  core::TimePoint expires;
  MetaFile snapshot;  // the "snapshot.json" entry, the only one allowed

  friend bool operator==(const TimestampMetadata&, const TimestampMetadata&) = default;
};

struct Signature {
  std::string keyid;  // 64 lowercase hex
  std::string sig;    // lowercase hex

  friend bool operator==(const Signature&, const Signature&) = default;
};

// A parsed metadata file whose signatures have NOT been checked yet.
template <typename T>
struct Signed {
  T body;                             // the "signed" object, decoded
  std::string canonical;              // canonical JSON of "signed": what signatures cover
  std::vector<Signature> signatures;  // as found in the file (keyids unique)
};

// Parse one metadata file. `file` names it in errors ("2.root.json").
core::Result<Signed<RootMetadata>> ParseRoot(std::string_view bytes, std::string_view file);
core::Result<Signed<TargetsMetadata>> ParseTargets(std::string_view bytes, std::string_view file);
core::Result<Signed<SnapshotMetadata>> ParseSnapshot(std::string_view bytes, std::string_view file);
core::Result<Signed<TimestampMetadata>> ParseTimestamp(std::string_view bytes,
                                                       std::string_view file);

// Canonical JSON of the "signed" object of each role (with "_type", "spec_version"
// kSpecVersion). InvalidArgument when the struct is not publishable: bad target path
// (see ValidateTargetPath), bad hash, custom data that is not a JSON object, a string
// with a control character (its canonical form would not be valid JSON), a keyid
// that does not match its key, a missing role, sizes over the limits.
core::Result<std::string> EncodeSigned(const RootMetadata& root);
core::Result<std::string> EncodeSigned(const TargetsMetadata& targets);
core::Result<std::string> EncodeSigned(const SnapshotMetadata& snapshot);
core::Result<std::string> EncodeSigned(const TimestampMetadata& timestamp);

// Signs `canonical_signed` with every key in `keys` (none may be null) and returns
// the complete file: {"signatures":[...],"signed":<canonical_signed>}.
core::Result<std::string> SignEnvelope(std::string_view canonical_signed,
                                       const std::vector<const PrivateKey*>& keys);
// Wraps already-made signatures; the caller vouches that `canonical_signed` is
// canonical JSON of an object. Used by tests to build deliberately bad files.
std::string EncodeEnvelope(std::string_view canonical_signed,
                           const std::vector<Signature>& signatures);

// OK when at least root.roles[role].threshold distinct keys listed for `role` in
// `root` made a valid signature over `canonical_signed`. Signatures by unknown keys
// and invalid signatures are skipped, never counted; a key counts once however often
// it appears. Corruption naming `file`, the role and the counts otherwise.
core::Status VerifyThreshold(const RootMetadata& root, Role role, std::string_view canonical_signed,
                             const std::vector<Signature>& signatures, std::string_view file);

// OK when `path` may be a target path: core::ValidateRelativePath's rules, valid
// UTF-8, and a last component short enough (<= 190 bytes) to take the 65-byte
// "<sha256>." prefix of its consistent name. InvalidArgument naming the rule broken.
core::Status ValidateTargetPath(std::string_view path);

// The consistent-snapshot location of a target, relative to the targets directory:
// "dir/name" with sha256 H -> "dir/H.name". The caller writes the target bytes there
// before publishing; clients fetch "targets/" + this.
std::string ConsistentTargetPath(std::string_view target_path, std::string_view sha256_hex);

// True when metadata expiring at `expires` must no longer be trusted at `now`.
inline bool IsExpired(core::TimePoint expires, core::TimePoint now) { return now >= expires; }

}  // namespace depot::tuf
