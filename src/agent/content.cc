#include "agent/content.h"

#include <algorithm>
#include <cstdlib>
#include <unordered_map>

#include "core/atomic_batch.h"
#include "core/log.h"
#include "core/messages.h"
#include "core/path.h"
#include "core/sha256.h"
#include "repo/fetch.h"

namespace depot::agent {

using core::Status;

namespace {
// Content directories one download looks through for chunks it already has: each
// costs its manifest's parse, and beyond a handful few chunks are found only there.
constexpr std::size_t kMaxSeeds = 16;
}  // namespace

ContentStore::ContentStore(core::Env* env, core::Clock* clock, StateStore* state,
                           const AgentConfig* config, std::string data_dir)
    : env_(env), clock_(clock), state_(state), config_(config), data_dir_(std::move(data_dir)) {}

std::string ContentStore::Dir(const std::string& package, std::int64_t version) const {
  return core::JoinPath(data_dir_, "content/" + package + "/" + std::to_string(version));
}

std::string ContentStore::ManifestPath(const std::string& manifest_id) const {
  return core::JoinPath(data_dir_, "manifests/" + manifest_id + ".json");
}

store::ChunkStore ContentStore::Cache() const {
  return store::ChunkStore(env_, core::JoinPath(data_dir_, "cache/chunks"), 3);
}

core::Result<store::Manifest> ContentStore::LoadManifest(const std::string& manifest_id) const {
  DEPOT_ASSIGN_OR_RETURN(std::string bytes,
                         env_->ReadFile(ManifestPath(manifest_id), 512ull << 20));
  if (core::Sha256::HashHex(bytes) != manifest_id) {
    return Status::Corruption("stored manifest " + manifest_id + " does not match its id");
  }
  return store::ParseManifest(bytes);
}

Status ContentStore::SaveManifest(const std::string& manifest_id, const std::string& bytes) {
  DEPOT_RETURN_IF_ERROR(env_->CreateDirs(core::JoinPath(data_dir_, "manifests"), 0750));
  return env_->WriteFileAtomic(ManifestPath(manifest_id), bytes, 0644);
}

std::vector<SeedSpec> ContentStore::SeedsFor(const Deployment& d) {
  std::vector<SeedSpec> out;
  auto held = state_->Held();
  if (!held.ok()) return out;
  // The same package first, then the most recently used.
  std::stable_sort(held->begin(), held->end(), [&](const HeldVersion& a, const HeldVersion& b) {
    if ((a.package == d.package) != (b.package == d.package)) return a.package == d.package;
    return a.last_used_ms > b.last_used_ms;
  });
  for (const auto& h : *held) {
    if (h.package == d.package && h.version == d.version) continue;
    std::string dir = Dir(h.package, h.version);
    auto exists = env_->Exists(dir);
    if (!exists.ok() || !*exists) continue;
    out.push_back({dir, h.manifest_id});
    if (out.size() >= kMaxSeeds) break;
  }
  return out;
}

void ContentStore::SetAside(const std::string& package, std::int64_t version) {
  std::string dir = Dir(package, version);
  auto exists = env_->Exists(dir);
  if (!exists.ok() || !*exists) return;
  std::string partial = repo::PartialPath(dir);
  env_->RemoveAll(partial).IgnoreError();
  if (!env_->Rename(dir, partial).ok()) env_->RemoveAll(dir).IgnoreError();
}

void ContentStore::RemoveOtherVersions(const std::string& package, bool cache_chunks,
                                       std::optional<std::int64_t> busy) {
  auto in_use = state_->VersionsInUse(package);
  if (!in_use.ok()) return;
  std::set<std::int64_t> keep = *in_use;
  if (busy) keep.insert(*busy);  // what the downloader is writing right now
  std::string dir = core::JoinPath(data_dir_, "content/" + package);
  auto entries = env_->ListDir(dir);
  if (!entries.ok()) return;
  for (const auto& e : *entries) {
    // "<version>", or a fetch's partial or staging tree of "<version>".
    std::string_view leftover_of = repo::LeftoverOf(e.name);
    std::string version(leftover_of.empty() ? std::string_view(e.name) : leftover_of);
    char* end = nullptr;
    long long v = std::strtoll(version.c_str(), &end, 10);
    if (version.empty() || *end != '\0' || keep.count(v)) continue;
    std::string path = core::JoinPath(dir, e.name);
    if (leftover_of.empty() && cache_chunks) CacheChunksOf(package, v, path);
    env_->RemoveAll(path).IgnoreError();
    core::Log(core::LogLevel::kInfo, "agent.content_removed",
              {{"package", package}, {"entry", e.name}});
  }
}

// Before a superseded version's directory goes: its chunks that no pinned version
// uses are put into the cache (read back, verified, at most the cache's limit), so a
// return to that version (a rollback, another deployment of it) finds them here.
// Chunks of pinned versions need no copy: their directories are seeds.
void ContentStore::CacheChunksOf(const std::string& package, std::int64_t version,
                                 const std::string& dir) {
  auto held = state_->HeldOf(package);
  auto pinned = state_->Pinned();
  if (!held.ok() || !pinned.ok()) return;
  store::ChunkIdSet skip;
  for (const auto& id : *pinned) {
    auto c = ChunksOf(id);
    skip.insert(c.begin(), c.end());
  }
  store::ChunkStore cache = Cache();
  core::AtomicBatch batch(env_, cache.root());
  std::uint64_t cached = 0;
  std::string buffer;
  for (const auto& h : *held) {
    if (h.version != version) continue;
    auto m = LoadManifest(h.manifest_id);
    if (!m.ok()) continue;
    for (const auto& e : m->entries) {
      if (e.type != store::EntryType::kFile || e.chunks.empty()) continue;
      auto file = env_->OpenForRead(core::JoinPath(dir, e.path), /*no_follow=*/true);
      if (!file.ok()) continue;
      std::uint64_t offset = 0;
      for (const auto& c : e.chunks) {
        std::uint64_t at = offset;
        offset += c.size;
        if (!skip.insert(c.id).second) continue;
        if (cached + c.size > config_->cache_max_bytes) break;
        buffer.resize(c.size);
        if (!core::ReadExactlyAt(file->get(), at, buffer.data(), c.size).ok()) continue;
        if (cache.Put(c.id, buffer, &batch).ok()) cached += c.size;  // Put verifies the id
      }
    }
  }
  Status s = batch.Commit();
  core::Log(s.ok() ? core::LogLevel::kInfo : core::LogLevel::kWarn, "agent.cached_superseded",
            {{"package", package},
             {"version", std::to_string(version)},
             {"bytes", std::to_string(cached)},
             {"error", s.ok() ? "" : s.message()}});
}

Status ContentStore::Purge(
    std::int64_t cutoff_ms, const std::function<bool(const Deployment&)>& may_purge,
    const std::function<std::optional<std::int64_t>(const std::string&)>& busy) {
  DEPOT_ASSIGN_OR_RETURN(std::vector<Deployment> gone, state_->RemovedBefore(cutoff_ms));
  std::set<std::string> packages;
  for (const Deployment& d : gone) {
    if (!may_purge(d)) continue;
    DEPOT_RETURN_IF_ERROR(state_->Delete(d.id));
    packages.insert(d.package);
  }
  for (const auto& package : packages) {
    DEPOT_ASSIGN_OR_RETURN(std::int64_t live, state_->DeploymentsOf(package));
    if (live == 0) {
      // Nothing refers to the package any more: its content and its place in the
      // installed table go with it.
      DEPOT_RETURN_IF_ERROR(env_->RemoveAll(core::JoinPath(data_dir_, "content/" + package)));
      DEPOT_RETURN_IF_ERROR(state_->Uninstall(package));
    } else {
      RemoveOtherVersions(package, /*cache_chunks=*/false, busy(package));
    }
    // Cache entries of its versions nothing pins any more.
    DEPOT_ASSIGN_OR_RETURN(std::set<std::string> pinned, state_->Pinned());
    DEPOT_ASSIGN_OR_RETURN(std::vector<HeldVersion> held, state_->HeldOf(package));
    std::vector<std::string> release;
    for (const auto& h : held) {
      if (pinned.count(h.manifest_id)) continue;
      release.push_back(h.manifest_id);
      state_
          ->Post({core::msg::kAgentContentPurged,
                  core::UnixMillis(clock_->Now()),
                  package,
                  h.version,
                  0,
                  {}})
          .IgnoreError();
    }
    DEPOT_RETURN_IF_ERROR(EvictVersions(release, pinned));
  }
  return Status::Ok();
}

store::ChunkIdSet ContentStore::ChunksOf(const std::string& manifest_id) const {
  store::ChunkIdSet out;
  auto m = LoadManifest(manifest_id);
  if (!m.ok()) return out;
  for (const auto& c : m->UniqueChunks()) out.insert(c.id);
  return out;
}

// Removes the given versions from the cache: their chunks unless a pinned version
// uses them, their manifests and held records.
Status ContentStore::EvictVersions(const std::vector<std::string>& manifest_ids,
                                   const std::set<std::string>& pinned) {
  if (manifest_ids.empty()) return Status::Ok();
  store::ChunkIdSet keep;
  for (const auto& id : pinned) {
    auto c = ChunksOf(id);
    keep.insert(c.begin(), c.end());
  }
  store::ChunkStore cache = Cache();
  for (const auto& id : manifest_ids) {
    for (const auto& c : ChunksOf(id)) {
      if (!keep.count(c)) cache.Remove(c).IgnoreError();
    }
    DEPOT_RETURN_IF_ERROR(state_->Forget(id));
    env_->Remove(ManifestPath(id)).IgnoreError();
  }
  return Status::Ok();
}

void ContentStore::EnforceCacheLimit() {
  store::ChunkStore cache = Cache();
  std::vector<std::pair<store::ChunkId, std::uint64_t>> all;
  std::uint64_t total = 0;
  Status s = cache.ForEach([&](const store::ChunkId& id, std::uint64_t bytes) {
    all.emplace_back(id, bytes);
    total += bytes;
    return true;
  });
  if (!s.ok() || total <= config_->cache_max_bytes) return;
  auto pinned = state_->Pinned();
  auto held = state_->Held();
  if (!pinned.ok() || !held.ok()) return;
  // Each chunk's recency: the newest use among the versions holding it.
  std::unordered_map<store::ChunkId, std::int64_t, store::ChunkIdHash> recency;
  std::vector<std::string> unpinned;
  for (const auto& h : *held) {
    bool pin = pinned->count(h.manifest_id) > 0;
    if (!pin) unpinned.push_back(h.manifest_id);
    for (const auto& c : ChunksOf(h.manifest_id)) {
      auto& r = recency[c];
      r = std::max(r, pin ? INT64_MAX : h.last_used_ms);
    }
  }
  auto recency_of = [&](const store::ChunkId& id) {
    auto it = recency.find(id);
    return it == recency.end() ? std::int64_t{0} : it->second;
  };
  std::sort(all.begin(), all.end(), [&](const auto& a, const auto& b) {
    return recency_of(a.first) < recency_of(b.first);
  });
  std::uint64_t removed = 0;
  store::ChunkIdSet gone;
  for (const auto& [id, bytes] : all) {
    if (total <= config_->cache_max_bytes) break;
    if (recency_of(id) == INT64_MAX) break;  // only pinned chunks left
    if (cache.Remove(id).ok()) {
      total -= bytes;
      removed += bytes;
      gone.insert(id);
    }
  }
  // Versions that lost chunks are no longer whole in the cache: forget them.
  for (const auto& id : unpinned) {
    for (const auto& c : ChunksOf(id)) {
      if (!gone.count(c)) continue;
      state_->Forget(id).IgnoreError();
      env_->Remove(ManifestPath(id)).IgnoreError();
      break;
    }
  }
  core::Log(core::LogLevel::kInfo, "agent.cache_evicted",
            {{"bytes", std::to_string(removed)},
             {"cache_bytes", std::to_string(total)},
             {"limit", std::to_string(config_->cache_max_bytes)}});
}

}  // namespace depot::agent
