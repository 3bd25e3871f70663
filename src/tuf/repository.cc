#include "tuf/repository.h"

#include <algorithm>
#include <set>
#include <utility>

#include "core/crash_point.h"
#include "core/sha256.h"
#include "tuf/canonical_json.h"
#include "tuf/repository_internal.h"

namespace depot::tuf {
namespace {

using core::Result;
using core::Status;

// How many unreferenced leftover versions (from failed writes) a new version may skip.
constexpr std::int64_t kMaxSkippedVersions = 1000;

std::string Join(const std::vector<std::string>& v) {
  std::string out;
  for (const auto& s : v) {
    if (!out.empty()) out += ", ";
    out += s;
  }
  return out.empty() ? "(none)" : out;
}

// The newest root of a repository, read from its metadata directory.
struct RootChain {
  Signed<RootMetadata> root;
  std::string bytes;
  // The root before `root` (version - 1) when it exists on disk and links to it.
  std::optional<RootMetadata> previous;
  // True when root.json lags behind the newest N.root.json (a crash between the two
  // writes); Open repairs it.
  bool copy_stale = false;
};

Result<RootChain> LoadRootChain(core::Env* env, const std::string& metadata_dir) {
  const std::string copy_path = core::JoinPath(metadata_dir, RoleFileName(Role::kRoot));
  auto bytes = env->ReadFile(copy_path, kMaxRootBytes);
  if (!bytes.ok()) {
    if (bytes.status().IsNotFound()) {
      return Status::NotFound(copy_path +
                              ": not found; this is not a depot repository (create one with "
                              "'depot repo init')");
    }
    return bytes.status();
  }
  RootChain chain;
  DEPOT_ASSIGN_OR_RETURN(chain.root, ParseRoot(*bytes, copy_path));
  DEPOT_RETURN_IF_ERROR(VerifyThreshold(chain.root.body, Role::kRoot, chain.root.canonical,
                                        chain.root.signatures, copy_path));
  chain.bytes = std::move(*bytes);
  // root.json is written after N.root.json, so a newer versioned root may exist.
  for (int i = 0; i < kMaxRootRotations; ++i) {
    const std::int64_t next_version = chain.root.body.version + 1;
    const std::string path =
        core::JoinPath(metadata_dir, VersionedFileName(Role::kRoot, next_version));
    auto next_bytes = env->ReadFile(path, kMaxRootBytes);
    if (!next_bytes.ok()) {
      if (next_bytes.status().IsNotFound()) break;
      return next_bytes.status();
    }
    DEPOT_ASSIGN_OR_RETURN(Signed<RootMetadata> next, ParseRoot(*next_bytes, path));
    DEPOT_RETURN_IF_ERROR(
        VerifyThreshold(chain.root.body, Role::kRoot, next.canonical, next.signatures, path));
    DEPOT_RETURN_IF_ERROR(
        VerifyThreshold(next.body, Role::kRoot, next.canonical, next.signatures, path));
    if (next.body.version != next_version) {
      return Status::Corruption(path + ": holds root version " + std::to_string(next.body.version));
    }
    chain.previous = std::move(chain.root.body);
    chain.root = std::move(next);
    chain.bytes = std::move(*next_bytes);
    chain.copy_stale = true;
  }
  if (!chain.previous && chain.root.body.version > 1) {
    const std::int64_t prev_version = chain.root.body.version - 1;
    const std::string path =
        core::JoinPath(metadata_dir, VersionedFileName(Role::kRoot, prev_version));
    auto prev_bytes = env->ReadFile(path, kMaxRootBytes);
    if (prev_bytes.ok()) {
      auto prev = ParseRoot(*prev_bytes, path);
      // Only a real predecessor is trusted: signed by its own root keys (which a forger
      // cannot do with keys that also signed the current root) and linked to it.
      if (prev.ok() && prev->body.version == prev_version &&
          VerifyThreshold(prev->body, Role::kRoot, prev->canonical, prev->signatures, path).ok() &&
          VerifyThreshold(prev->body, Role::kRoot, chain.root.canonical, chain.root.signatures,
                          path)
              .ok()) {
        chain.previous = std::move(prev->body);
      }
    } else if (!prev_bytes.status().IsNotFound()) {
      return prev_bytes.status();
    }
  }
  return chain;
}

// Reads a metadata file referenced by `meta` and checks its length and hash.
Result<std::string> ReadReferenced(core::Env* env, const std::string& path, const MetaFile& meta,
                                   std::uint64_t max_bytes, std::string_view referrer) {
  DEPOT_ASSIGN_OR_RETURN(std::string bytes, env->ReadFile(path, max_bytes));
  if (meta.length && bytes.size() != *meta.length) {
    return Status::Corruption(path + ": " + std::to_string(bytes.size()) + " bytes, but " +
                              std::string(referrer) + " says " + std::to_string(*meta.length) +
                              "; the metadata directory was modified outside depot");
  }
  if (!meta.sha256.empty() && core::Sha256::HashHex(bytes) != meta.sha256) {
    return Status::Corruption(path + ": sha256 does not match " + std::string(referrer) +
                              "; the metadata directory was modified outside depot");
  }
  return bytes;
}

MetaFile DescribeFile(std::int64_t version, const std::string& bytes) {
  return MetaFile{version, bytes.size(), core::Sha256::HashHex(bytes)};
}

// Parses what we just signed and checks it as a client would: the writer must never
// publish a file its own clients would refuse.
template <typename T>
Status SelfCheck(const std::string& bytes, std::string_view canonical, const RootMetadata& root,
                 Role role, Result<Signed<T>> (*parse)(std::string_view, std::string_view)) {
  const std::string what = "newly signed " + RoleFileName(role);
  DEPOT_ASSIGN_OR_RETURN(Signed<T> parsed, parse(bytes, what));
  if (parsed.canonical != canonical) {
    return Status::InvalidArgument(what + ": does not read back as signed (internal error)");
  }
  return VerifyThreshold(root, role, parsed.canonical, parsed.signatures, what);
}

Status CheckSigner(const RootMetadata& root, Role role, const PrivateKey& key,
                   const std::string& key_path) {
  const RoleKeys& rk = root.roles.at(role);
  if (std::find(rk.keyids.begin(), rk.keyids.end(), key.keyid()) == rk.keyids.end()) {
    return Status::PermissionDenied(
        key_path + " holds key " + key.keyid() + ", but root.json version " +
        std::to_string(root.version) + " trusts " + Join(rk.keyids) + " for the " +
        std::string(RoleName(role)) +
        " role: this keys directory does not belong to this repository");
  }
  if (rk.threshold > 1) {
    return Status::InvalidArgument(
        "the " + std::string(RoleName(role)) + " role needs " + std::to_string(rk.threshold) +
        " signatures, but depot's repository writer signs with one key per role");
  }
  return Status::Ok();
}

template <typename T>
Result<std::string> SignChecked(const T& body, const RootMetadata& root, Role role,
                                const PrivateKey& key,
                                Result<Signed<T>> (*parse)(std::string_view, std::string_view)) {
  DEPOT_ASSIGN_OR_RETURN(std::string canonical, EncodeSigned(body));
  DEPOT_ASSIGN_OR_RETURN(std::string bytes, SignEnvelope(canonical, {&key}));
  DEPOT_RETURN_IF_ERROR(SelfCheck<T>(bytes, canonical, root, role, parse));
  return bytes;
}

Status ValidateExpiry(const Expiry& e) {
  if (e.root <= core::Duration::zero() || e.targets <= core::Duration::zero() ||
      e.snapshot <= core::Duration::zero() || e.timestamp <= core::Duration::zero()) {
    return Status::InvalidArgument(
        "every expiry period (root, targets, snapshot, timestamp) "
        "must be positive");
  }
  return Status::Ok();
}

}  // namespace

std::string KeyFilePath(const std::string& keys_dir, Role role) {
  return core::JoinPath(keys_dir, std::string(RoleName(role)) + ".pem");
}

Result<std::string> ReadTrustedRoot(core::Env* env, const std::string& metadata_dir) {
  DEPOT_ASSIGN_OR_RETURN(RootChain chain, LoadRootChain(env, metadata_dir));
  return std::move(chain.bytes);
}

RepositoryWriter::RepositoryWriter(core::Env* env, core::Clock* clock, std::string keys_dir,
                                   std::string metadata_dir, const Expiry& expiry)
    : env_(env),
      clock_(clock),
      keys_dir_(std::move(keys_dir)),
      metadata_dir_(std::move(metadata_dir)),
      expiry_(expiry) {}

core::TimePoint RepositoryWriter::ExpiresAt(core::Duration lifetime) const {
  // Whole seconds: the wire form has no fractions, and memory must equal disk.
  return std::chrono::floor<std::chrono::seconds>(clock_->Now() + lifetime);
}

bool RepositoryWriter::TargetsStale() const {
  const RoleKeys& rk = root_.roles.at(Role::kTargets);
  std::int64_t trusted = 0;
  for (const auto& id : targets_signers_) {
    if (std::find(rk.keyids.begin(), rk.keyids.end(), id) != rk.keyids.end()) ++trusted;
  }
  return trusted < rk.threshold;
}

Status RepositoryWriter::Init(core::Env* env, core::Clock* clock, const std::string& keys_dir,
                              const std::string& metadata_dir, const Expiry& expiry) {
  DEPOT_RETURN_IF_ERROR(ValidateExpiry(expiry));
  DEPOT_RETURN_IF_ERROR(env->CreateDirs(metadata_dir, 0755));
  for (const std::string& name :
       {RoleFileName(Role::kRoot), VersionedFileName(Role::kRoot, 1),
        RoleFileName(Role::kTimestamp), VersionedFileName(Role::kSnapshot, 1),
        VersionedFileName(Role::kTargets, 1)}) {
    const std::string path = core::JoinPath(metadata_dir, name);
    DEPOT_ASSIGN_OR_RETURN(bool exists, env->Exists(path));
    if (exists) {
      return Status::InvalidArgument(path + " already exists: " + metadata_dir +
                                     " already holds a repository, and init never overwrites "
                                     "one");
    }
  }
  DEPOT_RETURN_IF_ERROR(env->CreateDirs(keys_dir, 0700));
  DEPOT_RETURN_IF_ERROR(env->Chmod(keys_dir, 0700));
  for (Role role : kAllRoles) {
    const std::string path = KeyFilePath(keys_dir, role);
    DEPOT_ASSIGN_OR_RETURN(bool exists, env->Exists(path));
    if (exists) {
      return Status::InvalidArgument(path + " already exists; init never overwrites a key");
    }
  }

  std::map<Role, PrivateKey> keys;
  RootMetadata root;
  for (Role role : kAllRoles) {
    DEPOT_ASSIGN_OR_RETURN(PrivateKey key, PrivateKey::Generate());
    root.keys.emplace(key.keyid(), key.public_key());
    root.roles.emplace(role, RoleKeys{{key.keyid()}, 1});
    keys.emplace(role, std::move(key));
  }
  const core::TimePoint now = clock->Now();
  auto at = [&](core::Duration d) { return std::chrono::floor<std::chrono::seconds>(now + d); };
  root.version = 1;
  root.expires = at(expiry.root);
  root.consistent_snapshot = true;

  TargetsMetadata targets;
  targets.version = 1;
  targets.expires = at(expiry.targets);
  DEPOT_ASSIGN_OR_RETURN(
      std::string targets_bytes,
      SignChecked(targets, root, Role::kTargets, keys.at(Role::kTargets), &ParseTargets));
  SnapshotMetadata snapshot;
  snapshot.version = 1;
  snapshot.expires = at(expiry.snapshot);
  snapshot.meta[RoleFileName(Role::kTargets)] = DescribeFile(1, targets_bytes);
  DEPOT_ASSIGN_OR_RETURN(
      std::string snapshot_bytes,
      SignChecked(snapshot, root, Role::kSnapshot, keys.at(Role::kSnapshot), &ParseSnapshot));
  TimestampMetadata timestamp;
  timestamp.version = 1;
  timestamp.expires = at(expiry.timestamp);
  timestamp.snapshot = DescribeFile(1, snapshot_bytes);
  DEPOT_ASSIGN_OR_RETURN(
      std::string timestamp_bytes,
      SignChecked(timestamp, root, Role::kTimestamp, keys.at(Role::kTimestamp), &ParseTimestamp));
  DEPOT_ASSIGN_OR_RETURN(std::string root_bytes,
                         SignChecked(root, root, Role::kRoot, keys.at(Role::kRoot), &ParseRoot));

  // Keys first: metadata naming keys that were never saved would be unusable.
  for (auto& [role, key] : keys) DEPOT_RETURN_IF_ERROR(key.Save(env, KeyFilePath(keys_dir, role)));
  auto write = [&](const std::string& name, const std::string& bytes) {
    return env->WriteFileAtomic(core::JoinPath(metadata_dir, name), bytes, 0644);
  };
  DEPOT_RETURN_IF_ERROR(write(VersionedFileName(Role::kTargets, 1), targets_bytes));
  DEPOT_RETURN_IF_ERROR(write(VersionedFileName(Role::kSnapshot, 1), snapshot_bytes));
  DEPOT_RETURN_IF_ERROR(write(VersionedFileName(Role::kRoot, 1), root_bytes));
  DEPOT_RETURN_IF_ERROR(write(RoleFileName(Role::kRoot), root_bytes));
  return write(RoleFileName(Role::kTimestamp), timestamp_bytes);
}

Result<RepositoryWriter> RepositoryWriter::Open(core::Env* env, core::Clock* clock,
                                                std::string keys_dir, std::string metadata_dir,
                                                const Expiry& expiry) {
  DEPOT_RETURN_IF_ERROR(ValidateExpiry(expiry));
  RepositoryWriter w(env, clock, std::move(keys_dir), std::move(metadata_dir), expiry);
  DEPOT_RETURN_IF_ERROR(w.Load());
  return w;
}

Status RepositoryWriter::Load() {
  DEPOT_ASSIGN_OR_RETURN(RootChain chain, LoadRootChain(env_, metadata_dir_));
  if (chain.copy_stale) {
    DEPOT_RETURN_IF_ERROR(env_->WriteFileAtomic(
        core::JoinPath(metadata_dir_, RoleFileName(Role::kRoot)), chain.bytes, 0644));
  }
  root_ = std::move(chain.root.body);
  root_json_ = std::move(chain.bytes);

  // Accepts a role signed for the current root or, after a key rotation interrupted
  // by a crash, for the previous one (whose root keys signed the current root).
  auto verify = [&](Role role, std::string_view canonical, const std::vector<Signature>& sigs,
                    const std::string& path) -> Status {
    Status s = VerifyThreshold(root_, role, canonical, sigs, path);
    if (s.ok() || !chain.previous) return s;
    if (VerifyThreshold(*chain.previous, role, canonical, sigs, path).ok()) return Status::Ok();
    return s;
  };

  const std::string ts_path = core::JoinPath(metadata_dir_, RoleFileName(Role::kTimestamp));
  DEPOT_ASSIGN_OR_RETURN(std::string ts_bytes, env_->ReadFile(ts_path, kMaxTimestampBytes));
  DEPOT_ASSIGN_OR_RETURN(Signed<TimestampMetadata> ts, ParseTimestamp(ts_bytes, ts_path));
  DEPOT_RETURN_IF_ERROR(verify(Role::kTimestamp, ts.canonical, ts.signatures, ts_path));

  const std::string snap_path =
      core::JoinPath(metadata_dir_, VersionedFileName(Role::kSnapshot, ts.body.snapshot.version));
  DEPOT_ASSIGN_OR_RETURN(
      std::string snap_bytes,
      ReadReferenced(env_, snap_path, ts.body.snapshot, kMaxSnapshotBytes, "timestamp.json"));
  DEPOT_ASSIGN_OR_RETURN(Signed<SnapshotMetadata> snap, ParseSnapshot(snap_bytes, snap_path));
  DEPOT_RETURN_IF_ERROR(verify(Role::kSnapshot, snap.canonical, snap.signatures, snap_path));
  if (snap.body.version != ts.body.snapshot.version) {
    return Status::Corruption(snap_path + ": holds snapshot version " +
                              std::to_string(snap.body.version));
  }

  const MetaFile& targets_meta = snap.body.meta.at(RoleFileName(Role::kTargets));
  const std::string targets_path =
      core::JoinPath(metadata_dir_, VersionedFileName(Role::kTargets, targets_meta.version));
  DEPOT_ASSIGN_OR_RETURN(std::string targets_bytes, ReadReferenced(env_, targets_path, targets_meta,
                                                                   kMaxTargetsBytes, snap_path));
  DEPOT_ASSIGN_OR_RETURN(Signed<TargetsMetadata> targets,
                         ParseTargets(targets_bytes, targets_path));
  DEPOT_RETURN_IF_ERROR(
      verify(Role::kTargets, targets.canonical, targets.signatures, targets_path));
  if (targets.body.version != targets_meta.version) {
    return Status::Corruption(targets_path + ": holds targets version " +
                              std::to_string(targets.body.version));
  }

  timestamp_ = std::move(ts.body);
  snapshot_ = std::move(snap.body);
  targets_ = std::move(targets.body);
  targets_signers_.clear();
  for (const auto& s : targets.signatures) targets_signers_.push_back(s.keyid);
  return Status::Ok();
}

Result<PrivateKey> RepositoryWriter::LoadRoleKey(Role role) {
  const std::string path = KeyFilePath(keys_dir_, role);
  const std::string staged = path + ".new";
  const RoleKeys& rk = root_.roles.at(role);
  auto trusted = [&](const PrivateKey& k) {
    return std::find(rk.keyids.begin(), rk.keyids.end(), k.keyid()) != rk.keyids.end();
  };
  auto key = PrivateKey::Load(env_, path);
  if (key.ok() && trusted(*key)) return std::move(key).value();
  if (!key.ok() && !key.status().IsNotFound()) return std::move(key).status();

  // A rotation that published the new root but crashed before renaming the new key
  // into place leaves the trusted key in "<role>.pem.new": finish the rename.
  auto fresh = PrivateKey::Load(env_, staged);
  if (fresh.ok() && trusted(*fresh)) {
    DEPOT_RETURN_IF_ERROR(env_->Rename(staged, path));
    DEPOT_RETURN_IF_ERROR(env_->SyncDir(keys_dir_));
    return std::move(fresh).value();
  }

  if (!key.ok()) {
    if (role == Role::kRoot) {
      return Status::NotFound(path +
                              ": not found; the root key is kept offline -- put root.pem "
                              "back into " +
                              keys_dir_ + " for this root operation, then move it away again");
    }
    return Status::NotFound(path + ": not found; the " + std::string(RoleName(role)) +
                            " key is missing -- restore it from backup, or replace it with "
                            "'depot repo rotate-keys " +
                            std::string(RoleName(role)) + "' (needs the root key)");
  }
  DEPOT_RETURN_IF_ERROR(CheckSigner(root_, role, *key, path));
  return std::move(key).value();  // not reached: CheckSigner fails for an untrusted key
}

Result<std::int64_t> RepositoryWriter::NextFreeVersion(Role role, std::int64_t from) {
  for (std::int64_t v = from; v < from + kMaxSkippedVersions && v <= kMaxVersion; ++v) {
    DEPOT_ASSIGN_OR_RETURN(bool exists,
                           env_->Exists(core::JoinPath(metadata_dir_, VersionedFileName(role, v))));
    if (!exists) return v;
  }
  return Status::InvalidArgument(metadata_dir_ + ": no free version of " + RoleFileName(role) +
                                 " after " + std::to_string(from) +
                                 "; remove the unreferenced leftover files");
}

Status RepositoryWriter::BuildChain(const RootMetadata& root,
                                    std::optional<TargetsMetadata> new_targets,
                                    const std::map<Role, const PrivateKey*>& signers,
                                    Pending* pending) {
  for (Role role : {Role::kTargets, Role::kSnapshot, Role::kTimestamp}) {
    auto it = signers.find(role);
    if (it != signers.end()) {
      DEPOT_RETURN_IF_ERROR(CheckSigner(root, role, *it->second, KeyFilePath(keys_dir_, role)));
    }
  }
  MetaFile targets_meta = snapshot_.meta.at(RoleFileName(Role::kTargets));
  if (new_targets) {
    DEPOT_ASSIGN_OR_RETURN(new_targets->version,
                           NextFreeVersion(Role::kTargets, targets_.version + 1));
    const PrivateKey& key = *signers.at(Role::kTargets);
    DEPOT_ASSIGN_OR_RETURN(std::string bytes,
                           SignChecked(*new_targets, root, Role::kTargets, key, &ParseTargets));
    targets_meta = DescribeFile(new_targets->version, bytes);
    pending->targets_file =
        Pending::File{VersionedFileName(Role::kTargets, new_targets->version), std::move(bytes)};
    pending->targets_signers = {key.keyid()};
    pending->targets = std::move(new_targets);
  }

  SnapshotMetadata snapshot = snapshot_;
  DEPOT_ASSIGN_OR_RETURN(snapshot.version, NextFreeVersion(Role::kSnapshot, snapshot_.version + 1));
  snapshot.expires = ExpiresAt(expiry_.snapshot);
  snapshot.meta[RoleFileName(Role::kTargets)] = targets_meta;
  DEPOT_ASSIGN_OR_RETURN(
      std::string snapshot_bytes,
      SignChecked(snapshot, root, Role::kSnapshot, *signers.at(Role::kSnapshot), &ParseSnapshot));

  TimestampMetadata timestamp;
  timestamp.version = timestamp_.version + 1;
  timestamp.expires = ExpiresAt(expiry_.timestamp);
  timestamp.snapshot = DescribeFile(snapshot.version, snapshot_bytes);
  DEPOT_ASSIGN_OR_RETURN(std::string timestamp_bytes,
                         SignChecked(timestamp, root, Role::kTimestamp,
                                     *signers.at(Role::kTimestamp), &ParseTimestamp));

  pending->snapshot_file = Pending::File{VersionedFileName(Role::kSnapshot, snapshot.version),
                                         std::move(snapshot_bytes)};
  pending->snapshot = std::move(snapshot);
  pending->timestamp_file =
      Pending::File{RoleFileName(Role::kTimestamp), std::move(timestamp_bytes)};
  pending->timestamp = std::move(timestamp);
  return Status::Ok();
}

Status RepositoryWriter::Commit(Pending* p) {
  auto write = [&](const Pending::File& f) {
    return env_->WriteFileAtomic(core::JoinPath(metadata_dir_, f.name), f.bytes, 0644);
  };
  // Unreferenced until the timestamp names them: a reader never sees them early.
  if (p->targets_file) DEPOT_RETURN_IF_ERROR(write(*p->targets_file));
  DEPOT_RETURN_IF_ERROR(write(p->snapshot_file));
  if (p->root_file) {
    DEPOT_RETURN_IF_ERROR(write(*p->root_file));
    // Published: clients may fetch it from now on, so the writer must move on too
    // (root versions are never reused), whatever fails below.
    root_ = std::move(*p->root);
    root_json_ = p->root_file->bytes;
    DEPOT_RETURN_IF_ERROR(write(Pending::File{RoleFileName(Role::kRoot), p->root_file->bytes}));
    for (const auto& [from, to] : p->key_renames) DEPOT_RETURN_IF_ERROR(env_->Rename(from, to));
    if (!p->key_renames.empty()) DEPOT_RETURN_IF_ERROR(env_->SyncDir(keys_dir_));
  }
  core::CrashPoint("tuf.before_timestamp");
  DEPOT_RETURN_IF_ERROR(write(p->timestamp_file));
  if (p->targets) {
    targets_ = std::move(*p->targets);
    targets_signers_ = std::move(p->targets_signers);
  }
  snapshot_ = std::move(p->snapshot);
  timestamp_ = std::move(p->timestamp);
  return Status::Ok();
}

Status RepositoryWriter::Publish(const std::vector<TargetInfo>& add,
                                 const std::vector<std::string>& remove) {
  TargetsMetadata next = targets_;
  std::set<std::string> touched;
  for (const TargetInfo& t : add) {
    DEPOT_RETURN_IF_ERROR(ValidateTargetPath(t.path));
    if (!touched.insert(t.path).second) {
      return Status::InvalidArgument("publish: target '" + t.path + "' is listed twice");
    }
    TargetInfo info = t;
    if (!info.custom_json.empty()) {
      DEPOT_ASSIGN_OR_RETURN(info.custom_json,
                             CanonicalizeJson(t.custom_json, "target '" + t.path + "': custom"));
      if (info.custom_json.front() != '{') {
        return Status::InvalidArgument("target '" + t.path + "': custom is not a JSON object");
      }
    }
    next.targets.insert_or_assign(t.path, std::move(info));
  }
  for (const std::string& path : remove) {
    if (!touched.insert(path).second) {
      return Status::InvalidArgument("publish: target '" + path +
                                     "' is listed twice (added and removed, or removed twice)");
    }
    if (next.targets.erase(path) == 0) {
      return Status::NotFound("publish: cannot remove '" + path + "': not a current target");
    }
  }
  next.expires = ExpiresAt(expiry_.targets);

  DEPOT_ASSIGN_OR_RETURN(PrivateKey targets_key, LoadRoleKey(Role::kTargets));
  DEPOT_ASSIGN_OR_RETURN(PrivateKey snapshot_key, LoadRoleKey(Role::kSnapshot));
  DEPOT_ASSIGN_OR_RETURN(PrivateKey timestamp_key, LoadRoleKey(Role::kTimestamp));
  Pending pending;
  DEPOT_RETURN_IF_ERROR(BuildChain(root_, std::move(next),
                                   {{Role::kTargets, &targets_key},
                                    {Role::kSnapshot, &snapshot_key},
                                    {Role::kTimestamp, &timestamp_key}},
                                   &pending));
  return Commit(&pending);
}

Status RepositoryWriter::Refresh() {
  const core::TimePoint now = clock_->Now();
  const bool targets_due = targets_.expires - now < expiry_.targets / 4;
  if (root_.expires - now < expiry_.root / 4) {
    auto root_key = LoadRoleKey(Role::kRoot);
    if (root_key.ok()) {
      RootMetadata next = root_;
      return PublishRoot(std::move(next), *root_key, {}, targets_due);
    }
    // An offline root key is the normal case; the caller watches root_expires().
    if (!root_key.status().IsNotFound()) return std::move(root_key).status();
  }
  std::optional<TargetsMetadata> targets;
  if (TargetsStale() || targets_due) {
    targets = targets_;
    targets->expires = ExpiresAt(expiry_.targets);
  }
  std::optional<PrivateKey> targets_key;
  if (targets) {
    DEPOT_ASSIGN_OR_RETURN(targets_key, LoadRoleKey(Role::kTargets));
  }
  DEPOT_ASSIGN_OR_RETURN(PrivateKey snapshot_key, LoadRoleKey(Role::kSnapshot));
  DEPOT_ASSIGN_OR_RETURN(PrivateKey timestamp_key, LoadRoleKey(Role::kTimestamp));
  std::map<Role, const PrivateKey*> signers = {{Role::kSnapshot, &snapshot_key},
                                               {Role::kTimestamp, &timestamp_key}};
  if (targets_key) signers[Role::kTargets] = &*targets_key;
  Pending pending;
  DEPOT_RETURN_IF_ERROR(BuildChain(root_, std::move(targets), signers, &pending));
  return Commit(&pending);
}

}  // namespace depot::tuf
