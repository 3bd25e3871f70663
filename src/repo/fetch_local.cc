#include "repo/fetch_local.h"

#include <signal.h>

#include <cerrno>
#include <cstdlib>
#include <unordered_map>

#include "core/log.h"
#include "core/parallel.h"
#include "core/path.h"
#include "core/sha256.h"

namespace depot::repo {

namespace {

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
                                    const std::vector<store::ChunkRef>& chunks,
                                    const std::vector<char>& hit) {
  std::unordered_map<store::ChunkId, std::size_t, store::ChunkIdHash> wanted;
  wanted.reserve(chunks.size());
  for (std::size_t i = 0; i < chunks.size(); ++i) {
    if (!hit[i]) wanted.emplace(chunks[i].id, i);
  }
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

}  // namespace

std::vector<std::string> AbandonedStaging(core::Env* env, const std::string& dir,
                                          const std::string& prefix) {
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

LocalTake TakeFromSeeds(core::Env* env, const std::vector<FetchSeed>& seeds,
                        const std::vector<store::ChunkRef>& chunks, unsigned threads,
                        std::vector<char>* hit, const PlaceFn& place,
                        const std::function<bool()>& stop) {
  std::vector<SeedFile> files = LocateInSeeds(seeds, chunks, *hit);
  std::atomic<std::size_t> next{0};
  std::atomic<std::uint64_t> bytes{0}, count{0};
  core::RunParallel(threads, [&](unsigned) {
    std::string buffer;
    for (;;) {
      std::size_t k = next++;
      if (k >= files.size() || stop()) return;
      auto file = env->OpenForRead(files[k].path, /*no_follow=*/false);
      if (!file.ok()) continue;
      for (const auto& r : files[k].reads) {
        const auto& c = chunks[r.chunk];
        buffer.resize(c.size);
        if (!core::ReadExactlyAt(file->get(), r.offset, buffer.data(), c.size).ok() ||
            core::Sha256::Hash(buffer) != c.id) {
          continue;  // changed or cut short since: a miss
        }
        (*hit)[r.chunk] = 1;  // each chunk is read by one file's reader only
        bytes += c.size;
        ++count;
        place(r.chunk, buffer);
      }
    }
  });
  return {count.load(), bytes.load()};
}

LocalTake TakeFromCache(store::ChunkStore* cache, const std::vector<store::ChunkRef>& chunks,
                        unsigned threads, std::vector<char>* hit, const PlaceFn& place,
                        const std::function<bool()>& stop) {
  // Probing tens of thousands of absent chunks one open at a time costs more than
  // listing the cache, unless the cache is much larger than this version.
  store::ChunkIdSet listed;
  bool use_list = false;
  {
    auto entries = cache->EstimateEntries();
    if (entries.ok() && *entries <= 8 * chunks.size() + 4096)
      use_list = cache->ListIds(&listed).ok();
  }
  std::atomic<std::size_t> next{0};
  std::atomic<std::uint64_t> bytes{0}, count{0};
  core::RunParallel(threads, [&](unsigned) {
    for (;;) {
      std::size_t i = next++;
      if (i >= chunks.size() || stop()) return;
      if ((*hit)[i]) continue;
      if (use_list && listed.count(chunks[i].id) == 0) continue;
      auto data = cache->Get(chunks[i].id, chunks[i].size, /*verify=*/true);
      if (data.ok()) {
        (*hit)[i] = 1;
        bytes += chunks[i].size;
        ++count;
        place(i, *data);
      } else if (data.status().IsCorruption()) {
        core::Log(core::LogLevel::kWarn, "fetch.cache_damaged",
                  {{"chunk", core::DigestHex(chunks[i].id)}, {"error", data.status().message()}});
        cache->Remove(chunks[i].id).IgnoreError();
      }
    }
  });
  return {count.load(), bytes.load()};
}

}  // namespace depot::repo
