// RepositoryWriter's root changes: key rotation and re-signing root as version N+1,
// with the online roles re-signed under the new root.
#include <algorithm>
#include <map>
#include <optional>
#include <set>
#include <utility>

#include "core/path.h"
#include "tuf/repository.h"
#include "tuf/repository_internal.h"

namespace depot::tuf {

using core::Status;

Status RepositoryWriter::ResignRoot() {
  DEPOT_ASSIGN_OR_RETURN(PrivateKey root_key, LoadRoleKey(Role::kRoot));
  return PublishRoot(root_, root_key, {}, /*resign_targets=*/false);
}

Status RepositoryWriter::RotateKeys(const std::vector<std::string>& roles) {
  if (roles.empty()) return Status::InvalidArgument("rotate keys: no role given");
  std::set<Role> rotate;
  for (const auto& name : roles) {
    DEPOT_ASSIGN_OR_RETURN(Role role, ParseRole(name));
    rotate.insert(role);
  }
  // Fail before generating anything when the (offline) root key is not here.
  DEPOT_ASSIGN_OR_RETURN(PrivateKey root_key, LoadRoleKey(Role::kRoot));

  std::map<Role, PrivateKey> fresh;
  for (Role role : rotate) {
    DEPOT_ASSIGN_OR_RETURN(PrivateKey key, PrivateKey::Generate());
    Status s = key.Save(env_, KeyFilePath(keys_dir_, role) + ".new");
    if (!s.ok()) {
      for (const auto& [r, k] : fresh)
        env_->Remove(KeyFilePath(keys_dir_, r) + ".new").IgnoreError();
      return s;
    }
    fresh.emplace(role, std::move(key));
  }

  RootMetadata next = root_;
  for (const auto& [role, key] : fresh) {
    next.roles[role] = RoleKeys{{key.keyid()}, 1};
    next.keys.emplace(key.keyid(), key.public_key());
  }
  // Drop keys no role uses any more.
  std::set<std::string> used;
  for (const auto& [role, rk] : next.roles) used.insert(rk.keyids.begin(), rk.keyids.end());
  for (auto it = next.keys.begin(); it != next.keys.end();) {
    it = used.count(it->first) ? std::next(it) : next.keys.erase(it);
  }

  const std::int64_t old_version = root_.version;
  Status s = PublishRoot(std::move(next), root_key, std::move(fresh), /*resign_targets=*/false);
  if (!s.ok() && root_.version == old_version) {
    // Root N+1 was never published: the staged keys are useless.
    for (Role role : rotate) env_->Remove(KeyFilePath(keys_dir_, role) + ".new").IgnoreError();
  }
  return s;
}

Status RepositoryWriter::PublishRoot(RootMetadata next, const PrivateKey& old_root_key,
                                     std::map<Role, PrivateKey> new_keys, bool resign_targets) {
  next.version = root_.version + 1;
  next.expires = ExpiresAt(expiry_.root);
  next.consistent_snapshot = true;

  // Root N+1 must satisfy the thresholds of root N (old key) and of itself (new key).
  std::vector<const PrivateKey*> root_signers = {&old_root_key};
  auto new_root_key = new_keys.find(Role::kRoot);
  if (new_root_key != new_keys.end()) root_signers.push_back(&new_root_key->second);
  DEPOT_ASSIGN_OR_RETURN(std::string canonical, EncodeSigned(next));
  DEPOT_ASSIGN_OR_RETURN(std::string root_bytes, SignEnvelope(canonical, root_signers));
  const std::string what = "new " + VersionedFileName(Role::kRoot, next.version);
  DEPOT_ASSIGN_OR_RETURN(Signed<RootMetadata> parsed, ParseRoot(root_bytes, what));
  DEPOT_RETURN_IF_ERROR(
      VerifyThreshold(root_, Role::kRoot, parsed.canonical, parsed.signatures, what));
  DEPOT_RETURN_IF_ERROR(
      VerifyThreshold(next, Role::kRoot, parsed.canonical, parsed.signatures, what));

  // The online keys that will sign for the new root: fresh ones where rotated.
  std::map<Role, PrivateKey> loaded;
  std::map<Role, const PrivateKey*> signers;
  for (Role role : {Role::kTargets, Role::kSnapshot, Role::kTimestamp}) {
    auto it = new_keys.find(role);
    if (it != new_keys.end()) {
      signers[role] = &it->second;
      continue;
    }
    DEPOT_ASSIGN_OR_RETURN(PrivateKey key, LoadRoleKey(role));
    signers[role] = &loaded.emplace(role, std::move(key)).first->second;
  }

  // Targets must be re-signed when its signer is no longer trusted by the new root.
  const RoleKeys& new_targets_keys = next.roles.at(Role::kTargets);
  std::int64_t still_trusted = 0;
  for (const auto& id : targets_signers_) {
    if (std::find(new_targets_keys.keyids.begin(), new_targets_keys.keyids.end(), id) !=
        new_targets_keys.keyids.end()) {
      ++still_trusted;
    }
  }
  std::optional<TargetsMetadata> targets;
  if (resign_targets || still_trusted < new_targets_keys.threshold) {
    targets = targets_;
    targets->expires = ExpiresAt(expiry_.targets);
  }

  Pending pending;
  DEPOT_RETURN_IF_ERROR(BuildChain(next, std::move(targets), signers, &pending));
  pending.root_file =
      Pending::File{VersionedFileName(Role::kRoot, next.version), std::move(root_bytes)};
  pending.root = std::move(next);
  for (const auto& [role, key] : new_keys) {
    const std::string path = KeyFilePath(keys_dir_, role);
    pending.key_renames.emplace_back(path + ".new", path);
  }
  // Never overwrite a published root version (a failed earlier attempt may have left
  // one behind that clients could already have fetched).
  DEPOT_ASSIGN_OR_RETURN(bool exists,
                         env_->Exists(core::JoinPath(metadata_dir_, pending.root_file->name)));
  if (exists) {
    return Status::InvalidArgument(core::JoinPath(metadata_dir_, pending.root_file->name) +
                                   " already exists; reopen the repository to load it");
  }
  return Commit(&pending);
}

}  // namespace depot::tuf
