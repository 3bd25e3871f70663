#include "tuf/metadata.h"

#include <set>
#include <string>

#include "core/path.h"
#include "tuf/metadata_internal.h"

namespace depot::tuf {
namespace {

using core::Result;
using core::Status;
using internal::kSha256HexLength;
using internal::Quote;

// "<64 hex>." is prepended to a target's file name in its consistent path.
constexpr std::size_t kConsistentPrefixLength = kSha256HexLength + 1;

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
