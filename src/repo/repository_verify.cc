// Repository::Verify: the full offline check of a repository. Every chunk is
// decompressed and re-hashed, the signed metadata is walked by an independent TUF
// client from the first root, and every manifest is fetched through it, parsed
// strictly and checked for chunks that are missing or damaged.
#include <algorithm>
#include <atomic>
#include <mutex>

#include "core/hex.h"
#include "core/parallel.h"
#include "core/source.h"
#include "repo/repository.h"
#include "tuf/client.h"

namespace depot::repo {

using core::Status;

namespace {

// The damage found, collected from any thread.
class DamageLog {
 public:
  explicit DamageLog(VerifyReport* report) : report_(report) {}

  // Records that `object` (a path under the public root) has `problem`.
  void Add(std::string object, std::string problem) {
    std::lock_guard<std::mutex> lock(mu_);
    report_->damage.push_back(Damage{std::move(object), std::move(problem)});
  }

 private:
  std::mutex mu_;
  VerifyReport* report_;
};

// 1. Every chunk: decompress and re-hash. The ids of the sound ones go to *valid.
Status VerifyChunks(store::ChunkStore& chunks, const RepoLayout& layout, unsigned threads,
                    std::atomic<std::uint64_t>* progress_bytes, VerifyReport* report,
                    DamageLog& damaged, store::ChunkIdSet* valid) {
  std::vector<std::pair<store::ChunkId, std::uint64_t>> all;
  DEPOT_RETURN_IF_ERROR(chunks.ForEach(
      [&](const store::ChunkId& id, std::uint64_t size) {
        all.emplace_back(id, size);
        return true;
      },
      [&](const std::string& stray) {
        damaged.Add(stray.substr(layout.public_root().size() + 1),
                    "not a chunk file (unexpected name)");
      }));
  std::vector<char> good(all.size(), 0);
  std::atomic<std::size_t> next{0};
  core::RunParallel(threads ? threads : core::DefaultConcurrency(), [&](unsigned) {
    for (;;) {
      std::size_t i = next++;
      if (i >= all.size()) return;
      const auto& [id, stored] = all[i];
      auto data = chunks.Get(id, UINT64_MAX, /*verify=*/true);
      if (data.ok()) {
        good[i] = 1;
      } else {
        damaged.Add(std::string(kChunksDir) + "/" + store::ChunkRelPath(id),
                    data.status().message());
      }
      if (progress_bytes) *progress_bytes += stored;
    }
  });
  report->chunks_checked = all.size();
  for (std::size_t i = 0; i < all.size(); ++i) {
    report->chunk_bytes += all[i].second;
    if (good[i]) valid->insert(all[i].first);
  }
  return Status::Ok();
}

// 3. One manifest: hash and length through TUF, strict parse, chunks present.
void VerifyManifest(tuf::Client& client, const tuf::TargetInfo& target,
                    const store::ChunkIdSet& valid, DamageLog& damaged) {
  std::string object =
      std::string(kTargetsDir) + "/" + tuf::ConsistentTargetPath(target.path, target.sha256);
  auto bytes = client.FetchTarget(target);
  if (!bytes.ok()) {
    damaged.Add(object, bytes.status().message());
    return;
  }
  auto m = store::ParseManifest(*bytes);
  if (!m.ok()) {
    damaged.Add(object, m.status().message());
    return;
  }
  std::uint64_t missing = 0;
  std::string first_missing;
  for (const auto& c : m->UniqueChunks()) {
    if (!valid.count(c.id)) {
      if (missing++ == 0) first_missing = core::DigestHex(c.id);
    }
  }
  if (missing) {
    damaged.Add(object, std::to_string(missing) +
                            " of its chunks are missing or damaged (first: " + first_missing + ")");
  }
}

}  // namespace

core::Result<VerifyReport> Repository::Verify(unsigned threads,
                                              std::atomic<std::uint64_t>* progress_bytes) {
  VerifyReport report;
  DamageLog damaged(&report);

  store::ChunkIdSet valid;
  DEPOT_RETURN_IF_ERROR(
      VerifyChunks(chunks_, layout_, threads, progress_bytes, &report, damaged, &valid));

  // 2. The signed metadata, walked by an independent client from the first root, so
  // the whole rotation chain is checked too.
  core::DirSource source(env_, layout_.public_root());
  auto first_root = env_->ReadFile(core::JoinPath(layout_.metadata(), "1.root.json"), 1 << 20);
  if (!first_root.ok()) {
    damaged.Add("metadata/1.root.json", first_root.status().message());
    return report;
  }
  tuf::Client client(env_, clock_, &source, "");
  Status s = client.Initialize(*first_root);
  if (s.ok()) s = client.Refresh();
  if (!s.ok()) {
    damaged.Add("metadata", s.message());
    return report;
  }

  for (const auto& target : client.Targets()) {
    ++report.manifests_checked;
    VerifyManifest(client, target, valid, damaged);
  }
  std::sort(report.damage.begin(), report.damage.end(),
            [](const Damage& a, const Damage& b) { return a.object < b.object; });
  return report;
}

}  // namespace depot::repo
