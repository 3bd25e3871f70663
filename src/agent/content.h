// What the agent keeps on disk besides its state (internal to the agent component):
// the content directories of versions (DIR/content/<package>/<version>), the signed
// manifests of versions it holds (DIR/manifests/<id>.json), and the chunk cache
// (DIR/cache/chunks) -- and the rules for keeping and dropping them: versions being
// worked on and installed ones stay; a superseded version's chunks go to the cache;
// the cache stays under its limit, least recently used versions first; content of
// deployments that left the policy goes after the purge grace.
//
// Thread safety: the driver's thread only (the downloader reads manifests through
// LoadManifest, which touches no shared state).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "agent/config_file.h"
#include "agent/downloader.h"
#include "agent/state_store.h"
#include "core/env.h"
#include "store/chunk_store.h"
#include "store/manifest.h"

namespace depot::agent {

class ContentStore {
 public:
  // None of the pointers is owned; all must outlive the store.
  ContentStore(core::Env* env, core::Clock* clock, StateStore* state, const AgentConfig* config,
               std::string data_dir);

  std::string Dir(const std::string& package, std::int64_t version) const;
  std::string ManifestPath(const std::string& manifest_id) const;
  store::ChunkStore Cache() const;

  // A held version's manifest, checked against its id. Any thread.
  core::Result<store::Manifest> LoadManifest(const std::string& manifest_id) const;
  core::Status SaveManifest(const std::string& manifest_id, const std::string& bytes);

  // The content directories a download of `d` may take chunks from: every other
  // version whose directory is here, the same package's first, then the most recently
  // used (at most 16: each costs its manifest's parse).
  std::vector<SeedSpec> SeedsFor(const Deployment& d);
  // Moves a version's content directory to where the next fetch of it looks for a
  // partial tree, so the fetch re-verifies and reuses what is there.
  void SetAside(const std::string& package, std::int64_t version);
  // Removes content directories of `package` that are neither installed, worked on,
  // nor `busy` (being written), with their partial and staging trees. With
  // `cache_chunks`, a removed version's chunks go into the cache first.
  void RemoveOtherVersions(const std::string& package, bool cache_chunks,
                           std::optional<std::int64_t> busy);
  // Deployments that left the policy before `cutoff_ms` and that `may_purge` lets go:
  // their rows, and content and cache entries nothing else needs (4011 per version).
  // `busy` names the version of a package a download is writing, if any.
  core::Status Purge(
      std::int64_t cutoff_ms, const std::function<bool(const Deployment&)>& may_purge,
      const std::function<std::optional<std::int64_t>(const std::string& package)>& busy);
  // Keeps the cache under its limit: chunks nothing refers to go first, then those of
  // the least recently used versions; chunks of pinned versions always stay.
  void EnforceCacheLimit();

 private:
  store::ChunkIdSet ChunksOf(const std::string& manifest_id) const;
  void CacheChunksOf(const std::string& package, std::int64_t version, const std::string& dir);
  core::Status EvictVersions(const std::vector<std::string>& manifest_ids,
                             const std::set<std::string>& pinned);

  core::Env* env_;
  core::Clock* clock_;
  StateStore* state_;
  const AgentConfig* config_;
  std::string data_dir_;
};

}  // namespace depot::agent
