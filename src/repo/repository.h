// Repository: a depot content library on local disk -- chunk store, manifests and
// signed TUF metadata in the layout of layout.h. It turns source directories into
// signed package versions and checks its own integrity. The site server's content
// library is one of these.
//
// Thread safety: a Repository may be used from several threads; AddVersion calls are
// serialised by an exclusive lock on DIR/.lock, which also keeps other processes'
// writers out.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/clock.h"
#include "core/env.h"
#include "core/status.h"
#include "repo/layout.h"
#include "store/chunk_store.h"
#include "store/chunker.h"
#include "store/compress.h"
#include "store/manifest.h"
#include "store/snapshot.h"
#include "tuf/repository.h"

namespace depot::repo {

struct RepoSettings {
  store::ChunkerParams chunker;
  int compression_level = store::kDefaultCompressionLevel;
  tuf::Expiry expiry;
};

struct AddRequest {
  std::string package;
  std::string source_dir;
  std::vector<store::Program> programs;
  std::string description;
  unsigned threads = 0;  // 0: all cores
  // Optional progress counters for a CLI progress bar.
  std::atomic<std::uint64_t>* progress_bytes = nullptr;
  std::atomic<std::uint64_t>* progress_files = nullptr;
  std::atomic<std::uint64_t>* progress_total = nullptr;
  // Snapshot retry tuning (tests shorten it).
  int max_attempts = 5;
  core::Duration first_backoff = std::chrono::milliseconds(100);
};

struct AddResult {
  std::string package;
  std::string package_id;
  std::int64_t version = 0;
  std::string manifest_id;  // SHA-256 of the manifest bytes
  std::string target_path;  // "tools/3.json"
  std::uint64_t manifest_bytes = 0;
  store::SnapshotStats stats;
};

// One package version as listed by the signed targets.
struct VersionInfo {
  std::string package;
  std::string package_id;
  std::int64_t version = 0;
  std::string manifest_id;
  std::uint64_t manifest_bytes = 0;
};

struct Damage {
  std::string object;  // path relative to the repository's public tree
  std::string problem;
};

struct GcReport {
  std::uint64_t live_chunks = 0;
  std::uint64_t chunks_removed = 0;
  std::uint64_t bytes_removed = 0;      // stored bytes of removed chunks
  std::uint64_t manifests_removed = 0;  // manifest files no signed target names
  std::uint64_t temp_removed = 0;       // temp files of crashed writers
};

struct VerifyReport {
  std::uint64_t chunks_checked = 0;
  std::uint64_t chunk_bytes = 0;  // stored (compressed) bytes read
  std::uint64_t manifests_checked = 0;
  std::vector<Damage> damage;
};

class Repository {
 public:
  // Creates a repository in `dir` (which must not exist or be empty): settings, TUF
  // keys and metadata version 1, an empty chunk store. `env`, `clock` not owned.
  static core::Status Init(core::Env* env, core::Clock* clock, const std::string& dir,
                           const RepoSettings& settings);

  // Creates a replica of another site's library in `dir` (a child site's,
  // docs/hierarchy.md): settings, an empty chunk store and the other library's root
  // metadata (`root_json`, exact bytes) -- and no keys: a replica's metadata is
  // mirrored, never signed here. InvalidArgument when `dir` is not empty.
  static core::Status InitReplica(core::Env* env, const std::string& dir,
                                  const RepoSettings& settings, const std::string& root_json);
  // Opens an existing repository. NotFound when `dir` holds none (with a hint to run
  // `depot repo init`); InvalidArgument for unreadable settings.
  static core::Result<std::unique_ptr<Repository>> Open(core::Env* env, core::Clock* clock,
                                                        const std::string& dir);

  const RepoLayout& layout() const { return layout_; }
  const RepoSettings& settings() const { return settings_; }
  // How long each timestamp it signs from now on stays valid (the site's
  // `timestamp_lifetime` setting; not written back to the repository's settings).
  // Call before the repository is shared between threads.
  void SetTimestampLifetime(core::Duration d) { settings_.expiry.timestamp = d; }
  store::ChunkStore* chunks() { return &chunks_; }

  // Snapshots the source as the next version of the package, stores only missing
  // chunks, writes the manifest and publishes it through TUF -- all or nothing.
  core::Result<AddResult> AddVersion(const AddRequest& request);

  // Publishes a manifest built elsewhere (the site's upload protocol): under the
  // writer lock, validates it, checks that every chunk it references is present,
  // that its version is above every signed version of the package, writes it and
  // signs it. The chunks must already be in the store (verified when they were put).
  // InvalidArgument for a bad manifest or version number, NotFound naming the first
  // missing chunk (and how many are missing). `known` vouches for chunks the caller
  // stored moments ago, as in VerifyManifestContent (only sound while garbage
  // collection cannot have removed them): those are not looked up again.
  core::Result<AddResult> PublishManifest(
      const store::Manifest& manifest,
      const std::function<bool(const store::ChunkId&, std::uint64_t)>& known = nullptr);

  // Checks a manifest built elsewhere against the stored chunks before the site signs
  // it: every chunk is present and its frame declares the listed size, and a file of
  // one chunk has that chunk's id as its hash. (Chunks were verified when they were
  // put. The hash of a file of several chunks is the uploader's statement: with
  // `full`, every such file is re-hashed from its chunks too; agents verify every
  // file whatever the site did.) NotFound for a missing chunk, Corruption naming the
  // first entry that disagrees. `known`, when given, vouches for chunks the caller
  // itself verified and stored moments ago (id and uncompressed size): those are not
  // opened again.
  core::Status VerifyManifestContent(
      const store::Manifest& manifest, unsigned threads, bool full,
      const std::function<bool(const store::ChunkId&, std::uint64_t)>& known = nullptr);

  // Removes package versions from the signed targets (retention, deletion). Absent
  // versions are skipped; with nothing to remove nothing is re-signed. Their content
  // stays until CollectGarbage.
  core::Status RemoveVersions(const std::vector<std::pair<std::string, std::int64_t>>& versions);

  // Every signed package version, ordered by package then version.
  core::Result<std::vector<VersionInfo>> ListVersions();

  // Re-hashes every chunk and manifest, checks every manifest's chunks are present,
  // and verifies the TUF metadata with an independent client walk. Damage is
  // reported, not repaired. `progress_bytes` counts stored bytes read.
  core::Result<VerifyReport> Verify(unsigned threads, std::atomic<std::uint64_t>* progress_bytes);

  // Removes what no signed version needs: chunks no manifest references, manifest
  // files left by adds that crashed before signing, and temp files. Holds the writer
  // lock, so no add runs meanwhile. Fails (removing nothing) if any signed manifest
  // cannot be read and parsed: collecting on partial knowledge would destroy data.
  // With `min_age`, chunks modified more recently are kept even when unreferenced:
  // they may belong to an upload whose version is not signed yet.
  core::Result<GcReport> CollectGarbage(core::Duration min_age = core::Duration::zero());
  // The same for a replica, which cannot trust its targets to name only what it holds:
  // the live manifests are `live` (paths under targets/ as ConsistentTargetPath gives
  // them, with their SHA-256), each of which must be present and intact.
  core::Result<GcReport> CollectGarbageKeeping(const std::map<std::string, std::string>& live,
                                               core::Duration min_age);

  // Re-signs snapshot and timestamp (and targets/root when near expiry). With
  // `root`, also re-signs root as a new version with fresh expiry (needs root.pem).
  core::Status Refresh(bool root = false);

  // Replaces the keys of `roles` ("root", "targets", "snapshot", "timestamp") and
  // publishes a new root signed by old and new root keys (needs root.pem). Clients
  // holding an older root follow the chain.
  core::Status RotateKeys(const std::vector<std::string>& roles);

  // The newest root.json: the trust anchor clients pin.
  core::Result<std::string> TrustedRoot();

 private:
  Repository(core::Env* env, core::Clock* clock, std::string dir, RepoSettings settings);
  // Writes `m` into the targets and signs it with `writer` (the caller holds the lock).
  core::Result<AddResult> SignManifest(tuf::RepositoryWriter& writer, const store::Manifest& m,
                                       const store::SnapshotStats& stats);

  core::Env* env_;
  core::Clock* clock_;
  RepoLayout layout_;
  RepoSettings settings_;
  store::ChunkStore chunks_;
};

// Parses the "custom" JSON depot puts on manifest targets.
core::Result<VersionInfo> ParseVersionTarget(const tuf::TargetInfo& target);

}  // namespace depot::repo
