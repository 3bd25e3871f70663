#include "repo/fetch.h"

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <mutex>
#include <thread>
#include <unordered_map>

#include "core/atomic_batch.h"
#include "core/background_sync.h"
#include "core/rate_limiter.h"
#include "core/log.h"
#include "core/parallel.h"
#include "core/random.h"
#include "repo/layout.h"
#include "repo/repository.h"
#include "store/assemble.h"
#include "store/chunk_store.h"
#include "store/compress.h"
#include "store/manifest.h"
#include "tuf/client.h"

namespace depot::repo {

using core::Status;

namespace {

// Verified chunks are made durable in the cache every so often (by count or by
// time, whichever comes first), so an interrupted fetch keeps what it verified.
constexpr std::size_t kCacheCommitEvery = 2048;
constexpr auto kCacheCommitInterval = std::chrono::seconds(1);

constexpr std::string_view kStagingInfix = ".depot-staging-";
constexpr std::string_view kPartialSuffix = ".depot-partial";

// Staging directories of fetches to the same destination whose owning process no
// longer exists (killed mid-fetch): what they hold is taken like a seed.
std::vector<std::string> AbandonedStaging(core::Env* env, const std::string& dir, const std::string& prefix) {
  std::vector<std::string> out;
  auto entries = env->ListDir(dir);
  if (!entries.ok()) return out;
  for (const auto& e : *entries) {
    if (e.name.rfind(prefix, 0) != 0) continue;
    long pid = std::strtol(e.name.c_str() + prefix.size(), nullptr, 10);
    if (pid <= 0 || (::kill(static_cast<pid_t>(pid), 0) != 0 && errno == ESRCH)) {
      out.push_back(core::JoinPath(dir, e.name));
    }
  }
  return out;
}

// The chunks of a version found in seeds: per seed file, which chunk sits at which
// offset. Each chunk is looked for at its first place in the seeds only.
struct SeedRead {
  std::size_t chunk;
  std::uint64_t offset;
};
struct SeedFile {
  std::string path;
  std::vector<SeedRead> reads;
};

std::vector<SeedFile> LocateInSeeds(const std::vector<FetchSeed>& seeds,
                                    const std::vector<store::ChunkRef>& chunks) {
  std::unordered_map<store::ChunkId, std::size_t, store::ChunkIdHash> wanted;
  wanted.reserve(chunks.size());
  for (std::size_t i = 0; i < chunks.size(); ++i) wanted.emplace(chunks[i].id, i);
  std::vector<SeedFile> files;
  for (const auto& seed : seeds) {
    if (seed.manifest == nullptr) continue;
    for (const auto& e : seed.manifest->entries) {
      if (e.type != store::EntryType::kFile || wanted.empty()) continue;
      SeedFile f;
      std::uint64_t offset = 0;
      for (const auto& c : e.chunks) {
        auto it = wanted.find(c.id);
        if (it != wanted.end() && chunks[it->second].size == c.size) {
          f.reads.push_back({it->second, offset});
          wanted.erase(it);
        }
        offset += c.size;
      }
      if (!f.reads.empty()) {
        f.path = core::JoinPath(seed.dir, e.path);
        files.push_back(std::move(f));
      }
    }
  }
  return files;
}

struct Work {
  std::size_t chunk = 0;
  core::Result<std::string> frame = Status::Unavailable("not fetched");
};

}  // namespace

std::string PartialPath(const std::string& dest) {
  std::string parent(core::Dirname(dest));
  return core::JoinPath(parent, "." + std::string(core::Basename(dest)) + std::string(kPartialSuffix));
}

std::string_view LeftoverOf(std::string_view name) {
  if (name.size() < 2 || name[0] != '.') return {};
  name.remove_prefix(1);
  if (name.size() > kPartialSuffix.size() && name.substr(name.size() - kPartialSuffix.size()) == kPartialSuffix) {
    return name.substr(0, name.size() - kPartialSuffix.size());
  }
  std::size_t infix = name.find(kStagingInfix);
  return infix == std::string_view::npos || infix == 0 ? std::string_view() : name.substr(0, infix);
}

core::Result<FetchResult> FetchVersion(core::Env* env, core::Clock* clock,
                                       core::RepoSource* source, const FetchRequest& req) {
  DEPOT_RETURN_IF_ERROR(store::ValidatePackageName(req.package));
  if (req.dest.empty()) return Status::InvalidArgument("no destination given");
  // Marks an error as this machine's (see FetchDiagnostics::local_failure).
  auto local = [&req](Status s) {
    if (!s.ok() && req.diagnostics) req.diagnostics->local_failure = true;
    return s;
  };
  auto exists = env->Exists(req.dest);
  if (!exists.ok()) return local(exists.status());
  if (*exists) {
    return Status::InvalidArgument("destination " + req.dest +
                                   " already exists; remove it or choose another path");
  }

  // Trusted metadata and cached chunks. TUF state is kept per trust anchor, so one
  // cache can serve several repositories without mixing their metadata.
  std::unique_ptr<store::ChunkStore> cache;
  std::string trusted_dir;
  if (!req.cache_dir.empty()) {
    cache = std::make_unique<store::ChunkStore>(env, core::JoinPath(req.cache_dir, "chunks"),
                                                store::kDefaultCompressionLevel);
    DEPOT_RETURN_IF_ERROR(local(cache->Create().WithContext("cache " + req.cache_dir)));
    // What an interrupted fetch was still writing when it died.
    auto swept = cache->SweepAbandonedTemps();
    if (swept.ok() && *swept > 0) {
      core::Log(core::LogLevel::kInfo, "fetch.cache_temps_removed", {{"count", std::to_string(*swept)}});
    }
    trusted_dir = core::JoinPath(
        req.cache_dir, "tuf/" + core::Sha256::HashHex(req.trusted_root).substr(0, 16));
    DEPOT_RETURN_IF_ERROR(local(env->CreateDirs(trusted_dir, 0700)));
  }

  const std::uint64_t transfer_start = source->BytesFetched();
  auto phase_start = std::chrono::steady_clock::now();
  // Seconds since the previous call (or the start).
  auto lap = [&phase_start] {
    auto now = std::chrono::steady_clock::now();
    double s = std::chrono::duration<double>(now - phase_start).count();
    phase_start = now;
    return s;
  };
  tuf::Client client(env, clock, source, trusted_dir);
  DEPOT_RETURN_IF_ERROR(local(client.Initialize(req.trusted_root).WithContext("trusted root")));
  if (req.reference_clock) client.SetReferenceClock(req.reference_clock->name, req.reference_clock->offset);
  if (Status refreshed = client.Refresh(); !refreshed.ok()) {
    if (req.diagnostics && client.refused_older()) req.diagnostics->source_behind = true;
    return refreshed.WithContext("metadata from " + source->Describe());
  }

  // The target: the requested version, or the newest one signed.
  std::vector<std::int64_t> versions;
  for (const auto& t : client.Targets()) {
    auto info = ParseVersionTarget(t);
    if (info.ok() && info->package == req.package) versions.push_back(info->version);
  }
  std::sort(versions.begin(), versions.end());
  if (versions.empty()) {
    if (req.diagnostics) {
      req.diagnostics->newest_available = 0;
      req.diagnostics->version_missing = true;
    }
    return Status::NotFound("package " + req.package + " has no signed versions in " +
                            source->Describe());
  }
  std::int64_t version = req.version ? req.version : versions.back();
  auto target = client.GetTarget(ManifestTargetPath(req.package, version));
  if (!target.ok()) {
    std::string list;
    for (auto v : versions) list += (list.empty() ? "" : ", ") + std::to_string(v);
    if (req.diagnostics) {
      req.diagnostics->newest_available = versions.back();
      req.diagnostics->version_missing = true;
    }
    return Status::NotFound("package " + req.package + " has no version " +
                            std::to_string(version) + " in " + source->Describe() +
                            " (signed versions: " + list + ")");
  }
  auto fetched_manifest = client.FetchTarget(*target);
  if (!fetched_manifest.ok()) {
    if (req.diagnostics && fetched_manifest.status().IsNotFound()) {
      req.diagnostics->newest_available = versions.back();
      req.diagnostics->version_missing = true;
    }
    return fetched_manifest.status().WithContext("manifest " + target->path);
  }
  std::string manifest_bytes = std::move(*fetched_manifest);
  auto parsed = store::ParseManifest(manifest_bytes);
  if (!parsed.ok()) {
    // Signed but unparsable: never act on it.
    if (req.diagnostics) req.diagnostics->manifest_refused = true;
    return Status::Corruption(parsed.status().message() + " (signed manifest " + target->path +
                              " from " + source->Describe() + ")");
  }
  const store::Manifest& m = *parsed;
  if (m.package_name != req.package || m.version != version) {
    if (req.diagnostics) req.diagnostics->manifest_refused = true;
    return Status::Corruption("manifest " + target->path + " describes " + m.package_name +
                              " version " + std::to_string(m.version) + ", not what it is signed as");
  }

  FetchResult result;
  result.package = m.package_name;
  result.version = m.version;
  result.manifest_id = target->sha256;
  result.manifest = manifest_bytes;
  result.programs = m.programs;
  result.files = m.FileCount();
  result.bytes = m.TotalFileBytes();
  if (req.progress_total) *req.progress_total = result.bytes;
  result.metadata_s = lap();

  // Staging directories are named after their owner's pid, so one left behind by a
  // killed fetch can be recognised by the next fetch to the same place, which takes
  // what it can from it (verified) and removes it, as it does with a partial tree.
  std::string parent(core::Dirname(req.dest));
  const std::string staging_prefix =
      "." + std::string(core::Basename(req.dest)) + std::string(kStagingInfix);
  const std::string partial = PartialPath(req.dest);
  std::vector<std::string> leftovers = AbandonedStaging(env, parent.empty() ? "." : parent, staging_prefix);
  {
    auto partial_exists = env->Exists(partial);
    if (partial_exists.ok() && *partial_exists) leftovers.push_back(partial);
  }
  auto remove_leftovers = [&] {
    for (const auto& dir : leftovers) {
      core::Log(core::LogLevel::kInfo, "fetch.staging_removed", {{"path", dir}});
      env->RemoveAll(dir).IgnoreError();
    }
  };
  std::string staging = core::JoinPath(
      parent, staging_prefix + std::to_string(::getpid()) + "-" + core::RandomHex(6));
  store::Assembler assembler(env, &m, staging);
  DEPOT_RETURN_IF_ERROR(local(assembler.Prepare()));
  const auto& chunks = assembler.chunks();
  result.chunks = chunks.size();
  const unsigned threads = req.threads ? req.threads : core::DefaultConcurrency();

  std::unique_ptr<core::AtomicBatch> cache_batch;
  if (cache && req.cache_fetched) cache_batch = std::make_unique<core::AtomicBatch>(env, cache->root());
  std::mutex mu;
  Status first_error;
  bool first_error_local = false;  // first_error is this machine's
  auto fail = [&](Status s, bool is_local = false) {
    std::lock_guard<std::mutex> lock(mu);
    if (!first_error.ok()) return;
    first_error = std::move(s);
    first_error_local = is_local;
  };
  auto fail_local = [&](Status s) { fail(std::move(s), /*is_local=*/true); };
  // The first error, marked as local when it was (workers have stopped by now).
  auto first = [&] { return first_error_local ? local(first_error) : first_error; };
  // A cancellation is the first error like any other, so every exit path sees it.
  auto failed = [&] {
    std::lock_guard<std::mutex> lock(mu);
    if (first_error.ok() && req.cancel != nullptr && req.cancel->load()) {
      first_error = Status::Unavailable("fetch of " + req.package + " cancelled");
    }
    return !first_error.ok();
  };
  std::unique_ptr<core::BackgroundSync> background_sync;
  if (req.background_sync_bytes != 0) {
    background_sync = std::make_unique<core::BackgroundSync>(
        env, parent.empty() ? "." : parent, req.background_sync_bytes);
  }
  auto place = [&](std::size_t i, std::string_view data) {
    Status s = assembler.Place(i, data);
    if (!s.ok()) fail_local(std::move(s));
    if (req.progress_bytes) *req.progress_bytes = assembler.bytes_placed();
    if (background_sync) background_sync->Wrote(data.size());
  };

  // 1. Chunks already here: in the seeds and leftovers of earlier fetches, then in
  // the cache. Everything is re-verified: local copies are only hints.
  std::vector<char> hit(chunks.size(), 0);
  {
    std::vector<FetchSeed> seeds = req.seeds;
    for (const auto& dir : leftovers) seeds.push_back({dir, &m});
    std::vector<SeedFile> files = LocateInSeeds(seeds, chunks);
    std::atomic<std::size_t> next{0};
    std::atomic<std::uint64_t> seed_bytes{0}, seed_chunks{0};
    core::RunParallel(threads, [&](unsigned) {
      std::string buffer;
      for (;;) {
        std::size_t k = next++;
        if (k >= files.size() || failed()) return;
        auto file = env->OpenForRead(files[k].path, /*no_follow=*/false);
        if (!file.ok()) continue;
        for (const auto& r : files[k].reads) {
          const auto& c = chunks[r.chunk];
          buffer.resize(c.size);
          if (!core::ReadExactlyAt(file->get(), r.offset, buffer.data(), c.size).ok() ||
              core::Sha256::Hash(buffer) != c.id) {
            continue;  // changed or cut short since: a miss
          }
          hit[r.chunk] = 1;
          seed_bytes += c.size;
          ++seed_chunks;
          place(r.chunk, buffer);
        }
      }
    });
    result.seed_chunks = seed_chunks;
    result.seed_bytes = seed_bytes;
  }
  DEPOT_RETURN_IF_ERROR(first());
  std::vector<std::size_t> missing;
  if (cache) {
    // Probing tens of thousands of absent chunks one open at a time costs more than
    // listing the cache, unless the cache is much larger than this version.
    store::ChunkIdSet listed;
    bool use_list = false;
    {
      auto entries = cache->EstimateEntries();
      if (entries.ok() && *entries <= 8 * chunks.size() + 4096) {
        use_list = cache->ListIds(&listed).ok();
      }
    }
    std::atomic<std::size_t> next{0};
    std::atomic<std::uint64_t> hit_bytes{0};
    core::RunParallel(threads, [&](unsigned) {
      for (;;) {
        std::size_t i = next++;
        if (i >= chunks.size() || failed()) return;
        if (hit[i]) continue;
        if (use_list && listed.count(chunks[i].id) == 0) continue;
        auto data = cache->Get(chunks[i].id, chunks[i].size, /*verify=*/true);
        if (data.ok()) {
          hit[i] = 1;
          hit_bytes += chunks[i].size;
          place(i, *data);
        } else if (data.status().IsCorruption()) {
          core::Log(core::LogLevel::kWarn, "fetch.cache_damaged",
                    {{"chunk", core::DigestHex(chunks[i].id)}, {"error", data.status().message()}});
          cache->Remove(chunks[i].id).IgnoreError();
        }
      }
    });
    result.cache_bytes = hit_bytes;
  }
  for (std::size_t i = 0; i < chunks.size(); ++i) {
    if (!hit[i]) missing.push_back(i);
  }
  result.cache_chunks = chunks.size() - missing.size();
  result.cache_bytes += result.seed_bytes;
  // From here on the staging tree holds at least what the leftovers gave, so it may
  // replace them (keep_partial); a failure before this point leaves them as they are.
  DEPOT_RETURN_IF_ERROR(first());

  result.prepare_s = lap();

  // 2. The rest from the source: the download thread (this one) hands frames to
  // workers that verify, cache and place them. Transient failures are retried in
  // later rounds with backoff; bad bytes are never written anywhere.
  std::atomic<std::uint64_t> fetched_bytes{0}, fetched_chunks{0}, since_commit{0};
  std::atomic<bool> committing{false};
  std::atomic<std::int64_t> last_commit{std::chrono::steady_clock::now().time_since_epoch().count()};
  core::Duration backoff = req.first_backoff;
  core::RateLimiter limiter(clock, req.max_rate);
  std::mutex bad_mu;
  auto note_bad = [&](const store::ChunkId& id) {
    if (req.diagnostics == nullptr) return;
    std::lock_guard<std::mutex> lock(bad_mu);
    auto& bad = req.diagnostics->bad_chunks;
    if (bad.size() < FetchDiagnostics::kMaxBadChunks && std::find(bad.begin(), bad.end(), id) == bad.end()) {
      bad.push_back(id);
    }
  };
  for (int round = 1; !missing.empty(); ++round) {
    std::vector<core::FetchRequest> requests;
    requests.reserve(missing.size());
    for (std::size_t i : missing) {
      requests.push_back({std::string(kChunksDir) + "/" + store::ChunkRelPath(chunks[i].id),
                          store::MaxFrameSize(chunks[i].size)});
    }
    std::vector<std::size_t> retry;
    std::mutex retry_mu;
    Status last_transient;
    // One queue per worker, and every chunk goes to the worker that owns the file it
    // lands in first: two threads writing one file contend on its inode lock. Chunks
    // are handed over kHandOff at a time (core::BatchPusher): one hand-off per chunk
    // cost ~36 k context switches per 1 GiB tree.
    constexpr std::size_t kHandOff = 8;
    std::vector<std::unique_ptr<core::BlockingQueue<std::vector<Work>>>> queues;
    std::vector<core::BatchPusher<Work>> pushers;
    for (unsigned w = 0; w < threads; ++w) {
      queues.push_back(std::make_unique<core::BlockingQueue<std::vector<Work>>>(128 / kHandOff));
      pushers.emplace_back(queues.back().get(), kHandOff);
    }
    std::vector<std::thread> workers;
    for (unsigned w = 0; w < threads; ++w) {
      workers.emplace_back([&, w] {
        std::string buffer;  // this worker's decompressed chunks, reused
        while (auto batch = queues[w]->Pop()) {
          for (Work& work : *batch) {
            std::size_t i = work.chunk;
            const auto& c = chunks[i];
            if (!work.frame.ok()) {
              const Status& s = work.frame.status();
              if (s.IsUnavailable() || s.IsCorruption()) {
                // A failed or cut-off transfer, or bytes that fail verification: try
                // again next round (the source may have been mid-repair).
                std::lock_guard<std::mutex> lock(retry_mu);
                retry.push_back(i);
                last_transient = s;
              } else {
                if (s.IsNotFound()) note_bad(c.id);
                fail(s.WithContext("chunk " + core::DigestHex(c.id) + " from " +
                                   source->Describe()));
              }
              continue;
            }
            core::Result<std::string_view> data =
                store::VerifyFrameInto(c.id, c.size, *work.frame, &buffer);
            if (data.ok() && cache && req.cache_fetched) {
              // Verified just now: the frame is cached as received.
              Status s = cache->PutFrameTrusted(c.id, *work.frame, cache_batch.get());
              if (!s.ok()) {
                fail_local(s.WithContext("cache"));
                continue;
              }
            }
            if (!data.ok()) {
              core::Log(core::LogLevel::kWarn, "fetch.bad_chunk",
                        {{"chunk", core::DigestHex(c.id)},
                         {"source", source->Describe()},
                         {"error", data.status().message()}});
              note_bad(c.id);
              std::lock_guard<std::mutex> lock(retry_mu);
              retry.push_back(i);
              last_transient =
                  Status::Corruption("chunk " + core::DigestHex(c.id) + " from " +
                                     source->Describe() + ": " + data.status().message());
              continue;
            }
            place(i, *data);
            source->Recycle(std::move(*work.frame));
            ++fetched_chunks;
            fetched_bytes += c.size;
            if (cache_batch) {
              auto now = std::chrono::steady_clock::now().time_since_epoch().count();
              bool due = ++since_commit >= kCacheCommitEvery ||
                         now - last_commit.load() >
                             std::chrono::steady_clock::duration(kCacheCommitInterval).count();
              if (due && !committing.exchange(true)) {
                since_commit = 0;
                last_commit = now;
                Status s = cache_batch->Commit();
                if (!s.ok()) fail_local(s.WithContext("cache"));
                committing = false;
              }
            }
          }
        }
      });
    }
    Status fetch_status = source->FetchMany(
        requests, req.parallel, [&](std::size_t k, core::Result<std::string> frame) {
          limiter.Throttle(frame.ok() ? frame->size() : 0, [&] { return req.cancel != nullptr && req.cancel->load(); });
          if (failed()) return false;
          std::size_t i = missing[k];
          return pushers[assembler.HomeFile(i) % threads].Push(Work{i, std::move(frame)});
        });
    for (unsigned w = 0; w < threads; ++w) {
      pushers[w].Flush();
      queues[w]->Close();
    }
    for (auto& t : workers) t.join();
    if (failed()) break;
    if (!fetch_status.ok()) {
      fail(fetch_status);
      break;
    }
    if (retry.empty()) break;
    if (round >= req.max_rounds) {
      fail(last_transient.WithContext(std::to_string(retry.size()) +
                                      " chunks still failing after " + std::to_string(round) +
                                      " attempts"));
      break;
    }
    core::Log(core::LogLevel::kWarn, "fetch.retry",
              {{"chunks", std::to_string(retry.size())},
               {"round", std::to_string(round)},
               {"error", last_transient.message()}});
    clock->SleepFor(backoff);
    backoff *= 2;
    std::sort(retry.begin(), retry.end());
    missing = std::move(retry);
  }
  result.fetched_chunks = fetched_chunks;
  result.fetched_bytes = fetched_bytes;
  result.transfer_bytes = source->BytesFetched() - transfer_start;
  result.transfer_s = lap();

  if (background_sync) {
    Status s = background_sync->Stop();
    if (!s.ok()) fail_local(s.WithContext("writing " + staging));
  }
  // Keep what was verified, whatever happens next.
  if (cache_batch) {
    Status s = cache_batch->Commit();
    if (!s.ok()) fail_local(s.WithContext("cache"));
  }
  Status done = first();
  if (done.ok()) {
    // A file that fails its hash after every chunk verified is the signed manifest's
    // own contradiction (every source serves the same); anything else here is local.
    done = assembler.Finish(threads);
    if (!done.IsCorruption()) done = local(done);
  }
  if (done.ok()) done = local(assembler.CommitTo(req.dest));
  if (!done.ok()) {
    if (req.keep_partial && assembler.bytes_placed() > 0) {
      remove_leftovers();
      Status kept = assembler.KeepUnfinished(partial);
      if (!kept.ok()) {
        core::Log(core::LogLevel::kWarn, "fetch.partial_not_kept", {{"path", partial}, {"error", kept.message()}});
      }
    }
    return done;
  }
  remove_leftovers();
  result.finish_s = lap();
  core::Log(core::LogLevel::kInfo, "fetch.done",
            {{"package", m.package_name},
             {"version", std::to_string(m.version)},
             {"from_cache", std::to_string(result.cache_bytes)},
             {"fetched", std::to_string(result.fetched_bytes)}});
  return result;
}

}  // namespace depot::repo
