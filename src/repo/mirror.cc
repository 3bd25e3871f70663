#include "repo/mirror.h"

#include <mutex>

#include "core/atomic_batch.h"
#include "core/crash_point.h"
#include "core/parallel.h"
#include "repo/chunk_download.h"

namespace depot::repo {

using core::Status;

core::Result<MirrorResult> MirrorChunks(core::Env* env, core::Clock* clock,
                                        core::RepoSource* source, store::ChunkStore* store,
                                        const std::vector<store::ChunkRef>& chunks,
                                        const MirrorOptions& o) {
  MirrorResult result;
  std::vector<std::size_t> missing;
  for (std::size_t i = 0; i < chunks.size(); ++i) {
    DEPOT_ASSIGN_OR_RETURN(bool has, store->Has(chunks[i].id));
    if (!has) {
      missing.push_back(i);
      continue;
    }
    if (o.progress_bytes) *o.progress_bytes += chunks[i].size;
    if (o.progress_chunks) ++*o.progress_chunks;
  }
  const std::uint64_t transfer_start = source->BytesFetched();
  core::AtomicBatch batch(env, store->root());
  std::mutex mu;  // guards batch commits and result
  std::uint64_t uncommitted = 0;
  Status tick_error;  // a failed commit on the tick, reported when the download ends
  auto commit_locked = [&]() -> Status {
    uncommitted = 0;
    Status s = batch.Commit();
    core::CrashPoint("mirror.chunks_committed");
    return s.WithContext("storing chunks");
  };
  DownloadOptions d;
  d.parallel = o.parallel;
  d.threads = o.threads ? o.threads : core::DefaultConcurrency();
  d.max_rounds = o.max_rounds;
  d.backoff = {o.first_backoff, o.first_backoff * 64};
  d.max_rate = o.max_rate;
  d.limiter = o.limiter;
  d.cancelled = o.cancelled;
  d.log_name = "mirror";
  // By time on the download's tick, so a stalled source does not hold verified chunks
  // back; by size on arrival (below).
  d.tick = [&] {
    std::lock_guard<std::mutex> lock(mu);
    if (uncommitted == 0) return;
    Status cs = commit_locked();
    if (!cs.ok() && tick_error.ok()) tick_error = cs;
  };
  d.tick_interval = o.commit_interval;
  Status s = DownloadChunks(
      clock, source, chunks, std::move(missing), d,
      [&](std::size_t i, core::Result<std::string>& frame, std::string*) -> Status {
        const store::ChunkRef& c = chunks[i];
        if (!frame.ok()) return frame.status().WithContext("chunk " + core::DigestHex(c.id));
        // PutFrame verifies (decompress to the listed size, hash to the id) before storing.
        Status put = store->PutFrame(c.id, c.size, *frame, &batch).status();
        if (!put.ok()) {
          if (put.IsIOError()) return put.WithContext("chunk " + core::DigestHex(c.id));
          Status bad = Status::Corruption("chunk " + core::DigestHex(c.id) + " from " +
                                          source->Describe() + ": " + put.message());
          if (o.on_rejected) o.on_rejected(c.id, bad);
          std::lock_guard<std::mutex> lock(mu);
          ++result.rejected;
          return bad;
        }
        std::lock_guard<std::mutex> lock(mu);
        ++result.chunks;
        result.bytes += c.size;
        uncommitted += c.size;
        if (o.progress_bytes) *o.progress_bytes += c.size;
        if (o.progress_chunks) ++*o.progress_chunks;
        if (uncommitted >= o.commit_bytes) DEPOT_RETURN_IF_ERROR(commit_locked());
        return Status::Ok();
      });
  // What was verified stays, whatever happened.
  {
    std::lock_guard<std::mutex> lock(mu);
    Status cs = commit_locked();
    if (s.ok()) s = !tick_error.ok() ? tick_error : cs;
  }
  result.transfer_bytes = source->BytesFetched() - transfer_start;
  if (!s.ok()) return s;
  return result;
}

core::Result<bool> PublishTrustedMetadata(core::Env* env, const tuf::Client& client,
                                          const std::string& trusted_dir,
                                          const std::string& metadata_dir) {
  struct File {
    const char* trusted;
    std::string public_name;
  };
  const std::vector<File> files = {
      {"root.json", std::to_string(client.root_version()) + ".root.json"},
      {"root.json", "root.json"},
      {"targets.json", std::to_string(client.targets_version()) + ".targets.json"},
      {"snapshot.json", std::to_string(client.snapshot_version()) + ".snapshot.json"},
      {"timestamp.json", "timestamp.json"},
  };
  bool root_changed = false;
  for (const File& f : files) {
    DEPOT_ASSIGN_OR_RETURN(std::string bytes,
                           env->ReadFile(core::JoinPath(trusted_dir, f.trusted), 64ull << 20));
    std::string dest = core::JoinPath(metadata_dir, f.public_name);
    auto existing = env->ReadFile(dest, 64ull << 20);
    if (existing.ok() && *existing == bytes) continue;
    DEPOT_RETURN_IF_ERROR(env->WriteFileAtomic(dest, bytes, 0644));
    if (f.public_name == "root.json") root_changed = true;
  }
  return root_changed;
}

}  // namespace depot::repo
