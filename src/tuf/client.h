// The client side of TUF 1.0: the detailed client workflow of the specification
// (section 5) over a depot repository with consistent snapshots.
//
// Refresh() walks root -> timestamp -> snapshot -> targets:
//   root      fetch N+1.root.json, N+2, ... (cap kMaxRootBytes each, at most
//             kMaxRootRotations) until NotFound; each must be signed by a threshold of
//             the previous root's root keys AND of its own, with version exactly N+1;
//             then the final root must not be expired. If the timestamp or snapshot
//             keys changed, the trusted timestamp and snapshot are discarded
//             (recovery from a fast-forward attack).
//   timestamp fetch timestamp.json (cap kMaxTimestampBytes); threshold signatures;
//             version >= trusted (equal: keep the trusted one); its snapshot version
//             >= the trusted timestamp's; not expired.
//   snapshot  fetch V.snapshot.json (cap: the length timestamp signed); length and
//             sha256 as timestamp says; signatures; version == V; no targets.json
//             version rollback against the trusted snapshot; not expired.
//   targets   fetch V.targets.json (cap: the length snapshot signed); length and
//             sha256 as snapshot says; signatures; version == V; not expired.
// Each role is persisted to `trusted_dir` (atomically) only after every check on it
// passed. A trusted snapshot or targets that is exactly what its referrer names is
// reused instead of downloaded again.
//
// Errors (each naming the file and the fix where there is one):
//   Corruption        bad signature/threshold, hash or length mismatch, version
//                     rollback or mismatch, a download longer than its cap;
//   PermissionDenied  expired metadata (possible freeze attack);
//   InvalidArgument   malformed or unsupported metadata, or API misuse;
//   Unavailable/...   passed through from the RepoSource.
//
// Thread safety: not thread-safe; one thread at a time per Client. Different Clients
// may share a source (RepoSource::Fetch is thread-safe) but not a trusted_dir.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/clock.h"
#include "core/env.h"
#include "core/source.h"
#include "core/status.h"
#include "tuf/metadata.h"

namespace depot::tuf {

class Client {
 public:
  // `source` serves the repository's public tree: "metadata/<file>" and
  // "targets/<consistent path>". `trusted_dir` keeps the trusted metadata between
  // runs (root.json, timestamp.json, snapshot.json, targets.json); "" keeps it in
  // memory only. `env`, `clock` and `source` are not owned and must outlive the
  // client.
  Client(core::Env* env, core::Clock* clock, core::RepoSource* source, std::string trusted_dir);

  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  // Loads the trusted root: trusted_dir/root.json when present (the newest root this
  // client ever accepted), else `bootstrap_root_json` (the operator's pinned root),
  // which is then persisted. The root must be signed by a threshold of its own root
  // keys; its expiry does not matter yet. Also loads any trusted timestamp, snapshot
  // and targets that still verify (for rollback protection). InvalidArgument when
  // there is neither a stored nor a bootstrap root, or it is malformed; Corruption
  // when its signatures fail (the message says how to re-bootstrap).
  core::Status Initialize(std::string_view bootstrap_root_json);

  // Runs the update workflow above with the clock read once at the start. On success
  // the targets are trusted until the next Refresh(); on any error no target is
  // trusted (GetTarget fails) until a Refresh() succeeds.
  core::Status Refresh();

  // Whether the last Refresh() failed because the source offered metadata older than
  // what this client already trusts (a Corruption): a mirror that is behind, or one
  // replaying old metadata -- a stale source rather than a broken one. Reset by each
  // Refresh(). One thread, like every method.
  bool refused_older() const { return refused_older_; }

  // The trusted info for `path`. NotFound when it is not a target; InvalidArgument
  // when no Refresh() has succeeded.
  core::Result<TargetInfo> GetTarget(std::string_view path) const;
  // Every trusted target, sorted by path; empty when no Refresh() has succeeded.
  std::vector<TargetInfo> Targets() const;

  // Downloads targets/<ConsistentTargetPath(info.path, info.sha256)> with a cap of
  // info.length bytes and checks its length and sha256. `info` must be a current
  // trusted target (as returned by GetTarget): NotFound/InvalidArgument otherwise.
  // Corruption when the bytes do not match; source errors pass through.
  core::Result<std::string> FetchTarget(const TargetInfo& info);

  // What a trusted peer's clock reads relative to this client's: `offset` is its time
  // minus ours when observed (the agent takes it from the Date of its site's last
  // answer). Used only to say, when metadata appears expired, whose clock is wrong:
  // it never changes what is accepted.
  void SetReferenceClock(std::string name, core::Duration offset);

  // Versions of the trusted metadata (0 when none), for status reports.
  std::int64_t root_version() const;
  std::int64_t timestamp_version() const;
  std::int64_t snapshot_version() const;
  std::int64_t targets_version() const;

 private:
  template <typename T>
  struct Trusted {
    Signed<T> meta;
    std::string bytes;  // exactly as received, so hashes can be rechecked
  };

  // The Corruption that refuses metadata older than the trusted state (`what` says
  // which); sets refused_older_.
  core::Status RefuseOlder(std::string what);
  core::Status Expired(std::string_view file, std::int64_t version, core::TimePoint expires,
                       core::TimePoint now, Role role) const;
  core::Status UpdateRoot(core::TimePoint now);
  void OnRootReplaced(const RootMetadata& previous);
  core::Status UpdateTimestamp(core::TimePoint now);
  core::Status UpdateSnapshot(core::TimePoint now);
  core::Status UpdateTargets(core::TimePoint now);
  core::Result<std::string> FetchCapped(const std::string& path, std::uint64_t max_bytes);
  core::Status Persist(Role role, const std::string& bytes);
  void Forget(Role role);
  void LoadTrustedRoles();

  core::Env* env_;
  core::Clock* clock_;
  core::RepoSource* source_;
  std::string trusted_dir_;

  std::optional<Trusted<RootMetadata>> root_;
  std::optional<Trusted<TimestampMetadata>> timestamp_;
  std::optional<Trusted<SnapshotMetadata>> snapshot_;
  std::optional<Trusted<TargetsMetadata>> targets_;
  bool refreshed_ = false;
  bool refused_older_ = false;
  struct Reference {
    std::string name;
    core::Duration offset;
  };
  std::optional<Reference> reference_;
};

}  // namespace depot::tuf
