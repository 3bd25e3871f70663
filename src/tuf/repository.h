// The repository (signing) side of TUF: creates the keys and metadata of a depot
// repository and re-signs them as targets are published.
//
// On-disk layout (the metadata directory is served over HTTP as "metadata/", the
// targets directory as "targets/"):
//
//   <metadata_dir>/1.root.json, 2.root.json, ...   every root version ever signed
//   <metadata_dir>/root.json                       copy of the newest root
//   <metadata_dir>/N.targets.json                  every targets version (consistent
//   <metadata_dir>/N.snapshot.json                 snapshots; nothing is overwritten)
//   <metadata_dir>/timestamp.json                  the one mutable file, written last
//   <targets_dir>/dir/<sha256>.name                target "dir/name" (written by the
//                                                  caller, see ConsistentTargetPath)
//   <keys_dir>/{root,targets,snapshot,timestamp}.pem  Ed25519 keys, 0600, dir 0700
//
// root.pem may be moved away and kept offline: publishing and refreshing only need the
// three online keys; root operations (RotateKeys, ResignRoot) then fail with NotFound
// naming the file to put back.
//
// Every file is written with Env::WriteFileAtomic, in the order that keeps the
// repository consistent for a reader at every instant: targets, then snapshot, then
// (root,) then timestamp. A crash leaves at most unreferenced new files behind; their
// version numbers are skipped, never reused, so a published file never changes.
//
// Trust: the writer treats its metadata directory like its keys directory -- storage
// only the repository's operator can write. It re-checks every signature when it
// opens a repository (catching corruption and naive tampering), but a party able to
// rewrite the whole root chain there could get its content re-signed; clients would
// still refuse any root not chained from the root they pinned.
//
// Thread safety: a RepositoryWriter is used by one thread at a time, and there must
// be one writer per repository (the caller holds the lock, e.g. the site's catalog
// transaction). The static functions may be called from any thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "core/clock.h"
#include "core/env.h"
#include "core/status.h"
#include "tuf/metadata.h"

namespace depot::tuf {

// How long each role's signature stays valid. Every value must be positive.
struct Expiry {
  core::Duration root = std::chrono::hours(24 * 365);
  core::Duration targets = std::chrono::hours(24 * 365);
  core::Duration snapshot = std::chrono::hours(24 * 30);
  core::Duration timestamp = std::chrono::hours(24 * 7);
};

// "<keys_dir>/<role>.pem".
std::string KeyFilePath(const std::string& keys_dir, Role role);

// Returns the newest root.json of the repository in `metadata_dir`, verified as
// signed by itself: the trust anchor to hand to clients (Client::Initialize).
// NotFound when the directory holds no repository; Corruption when the root does not
// verify.
core::Result<std::string> ReadTrustedRoot(core::Env* env, const std::string& metadata_dir);

class RepositoryWriter {
 public:
  // Creates a repository: four fresh keys in `keys_dir` (created 0700, files 0600)
  // and version 1 of every role, with no targets. InvalidArgument when the metadata
  // directory already holds a repository or a key file already exists (nothing is
  // overwritten); IOError from the disk. `env` and `clock` are not owned.
  static core::Status Init(core::Env* env, core::Clock* clock, const std::string& keys_dir,
                           const std::string& metadata_dir, const Expiry& expiry);

  // Loads the current metadata and checks it: the newest root verifies with itself,
  // and timestamp -> snapshot -> targets are linked by version, length and hash and
  // signed by the keys root lists (or, after a key rotation interrupted by a crash,
  // the keys of the previous root; the next write re-signs them). Does not need any
  // private key. NotFound when there is no repository; Corruption when the metadata
  // on disk was altered. `env` and `clock` must outlive the writer.
  static core::Result<RepositoryWriter> Open(core::Env* env, core::Clock* clock,
                                             std::string keys_dir, std::string metadata_dir,
                                             const Expiry& expiry);

  RepositoryWriter(RepositoryWriter&&) = default;
  RepositoryWriter& operator=(RepositoryWriter&&) = default;

  // The targets as currently signed, by path.
  const std::map<std::string, TargetInfo>& targets() const { return targets_.targets; }
  std::int64_t root_version() const { return root_.version; }
  std::int64_t targets_version() const { return targets_.version; }
  std::int64_t snapshot_version() const { return snapshot_.version; }
  std::int64_t timestamp_version() const { return timestamp_.version; }
  core::TimePoint root_expires() const { return root_.expires; }
  core::TimePoint targets_expires() const { return targets_.expires; }
  core::TimePoint snapshot_expires() const { return snapshot_.expires; }
  core::TimePoint timestamp_expires() const { return timestamp_.expires; }
  const RootMetadata& root() const { return root_; }
  // The bytes of the newest root.json (the clients' trust anchor).
  const std::string& root_json() const { return root_json_; }

  // Adds (or replaces) `add` and removes `remove`, then writes targets N+1, snapshot
  // N+1 and timestamp, in that order, each atomically. The caller must already have
  // written each added target's bytes at ConsistentTargetPath(path, sha256) under the
  // targets directory. InvalidArgument for a bad path, hash or custom JSON, a path
  // both added and removed or given twice; NotFound for removing a path that is not
  // a target; NotFound/PermissionDenied/Corruption for a missing or wrong online key.
  // On error nothing visible to clients has changed and the writer's state is as
  // before.
  core::Status Publish(const std::vector<TargetInfo>& add, const std::vector<std::string>& remove);

  // Keeps the repository alive: re-signs snapshot and timestamp with fresh expiry,
  // targets too when it is within a quarter of its lifetime of expiring (or was signed
  // by a key since rotated), and root when it is within a quarter of its lifetime and
  // root.pem is present (otherwise root is left alone: check root_expires()).
  core::Status Refresh();

  // Replaces the keys of `roles` ("root", "targets", "snapshot", "timestamp") with
  // fresh ones and publishes root N+1 -- signed by the old root key and, when root is
  // rotated, the new one too, so clients can follow the chain -- then re-signs the
  // affected roles plus snapshot and timestamp. Requires root.pem (NotFound naming it
  // otherwise). InvalidArgument for an empty or unknown role list.
  // Crash safety: new keys are written as "<role>.pem.new" before root N+1 is
  // published and renamed over the old key afterwards; a writer opened after a crash
  // in between picks the right file.
  core::Status RotateKeys(const std::vector<std::string>& roles);

  // Re-signs root as version N+1 with fresh expiry and unchanged keys. Requires
  // root.pem.
  core::Status ResignRoot();

 private:
  RepositoryWriter(core::Env* env, core::Clock* clock, std::string keys_dir,
                   std::string metadata_dir, const Expiry& expiry);

  struct Pending;  // files signed in memory, written in order by Commit()

  core::Status Load();
  core::Result<PrivateKey> LoadRoleKey(Role role);
  core::Result<std::int64_t> NextFreeVersion(Role role, std::int64_t from);
  core::TimePoint ExpiresAt(core::Duration lifetime) const;
  bool TargetsStale() const;
  core::Status BuildChain(const RootMetadata& root, std::optional<TargetsMetadata> new_targets,
                          const std::map<Role, const PrivateKey*>& signers, Pending* pending);
  core::Status Commit(Pending* pending);
  core::Status PublishRoot(RootMetadata new_root, const PrivateKey& old_root_key,
                           std::map<Role, PrivateKey> new_keys, bool resign_targets);

  core::Env* env_;
  core::Clock* clock_;
  std::string keys_dir_;
  std::string metadata_dir_;
  Expiry expiry_;

  RootMetadata root_;
  std::string root_json_;
  TargetsMetadata targets_;
  SnapshotMetadata snapshot_;
  TimestampMetadata timestamp_;
  // Keyids that signed the current targets file. When the current root no longer
  // trusts enough of them (a rotation interrupted by a crash), the next write
  // re-signs targets.
  std::vector<std::string> targets_signers_;
};

}  // namespace depot::tuf
