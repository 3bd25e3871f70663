#include "store/snapshot.h"

#include <algorithm>
#include <cstring>
#include <memory>
#include <mutex>
#include <thread>

#include "core/atomic_batch.h"
#include "core/background_sync.h"
#include "core/backoff.h"
#include "core/hex.h"
#include "core/log.h"
#include "core/parallel.h"
#include "core/path.h"
#include "store/compress.h"

namespace depot::store {

using core::FileInfo;
using core::FileType;
using core::Status;

namespace {

// Linux stamps files from a coarse clock (one tick: 1-10 ms). A file whose ctime is
// this close to "now" could change again without its timestamps moving, so it is
// read only after the window has passed.
constexpr auto kRacyWindow = std::chrono::milliseconds(50);

// A set of chunk ids seen by this snapshot, sharded to keep workers off one lock.
class SeenSet {
 public:
  // True when `id` was not in the set (the caller is the first to see it).
  bool Insert(const ChunkId& id) {
    Shard& s = shards_[id[0] % kShards];
    std::lock_guard<std::mutex> lock(s.mu);
    return s.ids.insert(id).second;
  }

 private:
  static constexpr int kShards = 32;
  struct Shard {
    std::mutex mu;
    ChunkIdSet ids;
  };
  Shard shards_[kShards];
};

struct FileJob {
  std::string rel;
  std::uint64_t size_hint = 0;
  std::size_t entry_index = 0;
};

struct Shared {
  core::Env* env;
  ChunkStore* store;
  const Chunker* chunker;
  const SnapshotOptions* options;
  core::AtomicBatch* batch;
  core::BackgroundSync* background_sync = nullptr;
  std::string root;
  SeenSet seen;
  // The chunks the store held when the snapshot began, when listing them was
  // cheaper than one lookup per chunk (see ShouldListStore); null: ask the store.
  const ChunkIdSet* present = nullptr;
  std::atomic<bool> failed{false};
  std::mutex error_mu;
  Status first_error;
  std::atomic<std::uint64_t> new_chunks{0}, new_bytes{0}, stored_bytes{0}, retries{0};

  void Fail(Status s) {
    std::lock_guard<std::mutex> lock(error_mu);
    if (first_error.ok()) first_error = std::move(s);
    failed = true;
  }
};

std::string DescribeChange(const FileInfo& a, const FileInfo& b) {
  if (a.inode != b.inode || a.device != b.device) return "the file was replaced";
  if (a.size != b.size) {
    return "size " + std::to_string(a.size) + " -> " + std::to_string(b.size);
  }
  if (a.mtime_ns != b.mtime_ns) return "modification time changed";
  return "status change time changed";
}

// Outcome of one read attempt: an entry, a hard error, or "it changed, try again".
struct Attempt {
  Status status;
  bool changed = false;
  std::string change;
};

class Worker {
 public:
  explicit Worker(Shared* sh) : sh_(sh) {
    const std::size_t max = sh->chunker->params().max_size;
    buf_.resize(std::max<std::size_t>(4u << 20, 4 * max));
  }

  void Run(FileJob& job, Entry& entry) {
    const std::string full = core::JoinPath(sh_->root, job.rel);
    Attempt last;
    core::Backoff backoff(sh_->options->clock,
                          {sh_->options->first_backoff, sh_->options->first_backoff * 64});
    for (int attempt = 1; attempt <= sh_->options->max_attempts; ++attempt) {
      if (sh_->failed) return;
      last = ReadOnce(full, job.rel, entry);
      if (!last.changed) {
        if (!last.status.ok()) sh_->Fail(std::move(last.status));
        return;
      }
      ++sh_->retries;
      core::Log(core::LogLevel::kInfo, "snapshot.file_changed",
                {{"path", job.rel}, {"attempt", std::to_string(attempt)}, {"change", last.change}});
      if (attempt < sh_->options->max_attempts) sh_->options->clock->SleepFor(backoff.Failed());
    }
    sh_->Fail(Status::IOError(
        job.rel + ": file changed while being read (" + last.change + "), " +
        std::to_string(sh_->options->max_attempts) +
        " attempts; stop the program writing it, or move it out of the source directory"));
  }

 private:
  Attempt ReadOnce(const std::string& full, const std::string& rel, Entry& entry) {
    Attempt a;
    auto opened = sh_->env->OpenForRead(full, /*no_follow=*/true);
    if (!opened.ok()) return OpenFailed(opened.status(), rel);
    auto file = std::move(*opened);
    auto before = file->StatAtOpen();
    if (!before.ok()) {
      a.status = before.status().WithContext(rel);
      return a;
    }
    if (before->type != FileType::kRegular) {
      a.status = Status::InvalidArgument(rel + ": is a " + std::string(FileTypeName(before->type)) +
                                         "; only regular files, directories and symlinks can be "
                                         "packaged");
      return a;
    }
    if (!WaitOutRacyWindow(*file, *before, rel, &a)) return a;

    entry.chunks.clear();
    file_hash_.Finish();  // drop what an earlier, abandoned attempt fed it
    const bool single = before->size <= sh_->chunker->params().min_size;
    std::uint64_t total = 0;
    if (!ReadChunks(*file, *before, rel, entry, single, &total, &a)) return a;
    if (!CheckUnchanged(*file, *before, full, rel, total, &a)) return a;
    entry.size = total;
    entry.mode = before->mode & 0777;
    if (single || entry.chunks.size() <= 1) {
      entry.sha256 = entry.chunks.empty() ? core::Sha256::Hash("") : entry.chunks[0].id;
      file_hash_.Finish();  // discard anything fed for a multi-chunk guess
    } else {
      entry.sha256 = file_hash_.Finish();
    }
    if (sh_->options->progress_files) ++*sh_->options->progress_files;
    return a;
  }

  // The attempt's outcome when the file could not be opened.
  static Attempt OpenFailed(const Status& s, const std::string& rel) {
    Attempt a;
    if (s.IsNotFound()) {
      a.status = Status::NotFound(rel + ": vanished while the snapshot was running");
    } else if (s.IsPermissionDenied()) {
      a.status = Status::PermissionDenied(rel + ": cannot be read (" + s.message() + ")");
    } else if (s.IsInvalidArgument()) {
      a.changed = true;  // became a symlink under us
      a.change = "the file was replaced by a symlink";
    } else {
      a.status = s.WithContext(rel);
    }
    return a;
  }

  // A file changed within the timestamp granularity window could change again
  // without its timestamps moving: wait the window out (real time: it is about the
  // filesystem's clock, not the caller's). If it changed meanwhile, it is in use.
  // False when the attempt ends here (*a says how).
  bool WaitOutRacyWindow(core::ReadableFile& file, const FileInfo& before, const std::string& rel,
                         Attempt* a) {
    auto now_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(
                      std::chrono::system_clock::now().time_since_epoch())
                      .count();
    auto window = std::chrono::duration_cast<std::chrono::nanoseconds>(kRacyWindow).count();
    std::int64_t newest = std::max(before.ctime_ns, before.mtime_ns);
    if (newest + window > now_ns) {
      std::this_thread::sleep_for(std::chrono::nanoseconds(newest + window - now_ns));
      auto again = file.Stat();
      if (!again.ok()) {
        a->status = again.status().WithContext(rel);
        return false;
      }
      if (!before.SameContentVersion(*again)) {
        a->changed = true;
        a->change = DescribeChange(before, *again);
        return false;
      }
    }
    return true;
  }

  // Reads the file through buf_, cutting and handling its chunks, and counts the
  // bytes cut in *total. False when the attempt ends here (*a says how, or the
  // snapshot already failed).
  bool ReadChunks(core::ReadableFile& file, const FileInfo& before, const std::string& rel,
                  Entry& entry, bool single, std::uint64_t* total, Attempt* a) {
    std::uint64_t read_total = 0;
    std::size_t have = 0;  // bytes in buf_ from its start
    // Reading stops at the size the file had when opened, without the read that
    // would return 0 (one system call per file saved): a file that grew meanwhile has
    // a new size and timestamps, which the check after the read catches.
    bool eof = before.size == 0;
    while (!eof || have > 0) {
      if (sh_->failed) return false;
      // Top up the buffer.
      while (!eof && have < buf_.size()) {
        const std::size_t want = static_cast<std::size_t>(
            std::min<std::uint64_t>(buf_.size() - have, before.size - read_total));
        auto n = file.Read(buf_.data() + have, want);
        if (!n.ok()) {
          a->status = n.status().WithContext(rel);
          return false;
        }
        have += *n;
        read_total += *n;
        if (*n == 0 || read_total == before.size) {
          eof = true;
          break;
        }
      }
      std::size_t off = 0;
      const auto* base = reinterpret_cast<const std::uint8_t*>(buf_.data());
      while (off < have) {
        std::size_t cut = sh_->chunker->NextCut(base + off, have - off, eof);
        if (!sh_->chunker->CutIsFinal(cut, have - off, eof)) break;
        std::string_view chunk(buf_.data() + off, cut);
        Status s = HandleChunk(chunk, entry, single);
        if (!s.ok()) {
          a->status = s.WithContext(rel);
          return false;
        }
        off += cut;
        *total += cut;
      }
      if (sh_->options->progress_bytes) *sh_->options->progress_bytes += off;
      std::memmove(buf_.data(), buf_.data() + off, have - off);
      have -= off;
    }
    return true;
  }

  // Whether the file, and what its path names, are still the version read (and all
  // of it was read). False when the attempt ends here (*a says how).
  bool CheckUnchanged(core::ReadableFile& file, const FileInfo& before, const std::string& full,
                      const std::string& rel, std::uint64_t total, Attempt* a) {
    auto after = file.Stat();
    if (!after.ok()) {
      a->status = after.status().WithContext(rel);
      return false;
    }
    auto at_path = sh_->env->Lstat(full);
    FileInfo now_at_path;
    if (at_path.ok()) now_at_path = *at_path;
    if (!before.SameContentVersion(*after) || total != before.size || !at_path.ok() ||
        !before.SameContentVersion(now_at_path)) {
      a->changed = true;
      a->change = !before.SameContentVersion(*after) ? DescribeChange(before, *after)
                  : total != before.size
                      ? "read " + std::to_string(total) + " bytes of " + std::to_string(before.size)
                  : !at_path.ok() ? "the file was removed"
                                  : DescribeChange(before, now_at_path);
      if (sh_->options->progress_bytes) *sh_->options->progress_bytes -= total;
      return false;
    }
    return true;
  }

  Status HandleChunk(std::string_view chunk, Entry& entry, bool single) {
    ChunkId id = core::Sha256::Hash(chunk);
    if (!single) file_hash_.Update(chunk);
    entry.chunks.push_back(ChunkRef{id, static_cast<std::uint32_t>(chunk.size())});
    if (!sh_->seen.Insert(id)) return Status::Ok();
    if (sh_->options->sink != nullptr) {
      DEPOT_ASSIGN_OR_RETURN(
          std::string_view frame,
          CompressFrameInto(chunk, sh_->options->compression_level, &frame_buf_));
      ++sh_->new_chunks;
      sh_->new_bytes += chunk.size();
      sh_->stored_bytes += frame.size();
      return sh_->options->sink->Put(id, static_cast<std::uint32_t>(chunk.size()), frame);
    }
    if (sh_->present != nullptr) {
      if (sh_->present->count(id) != 0) return Status::Ok();
    } else {
      DEPOT_ASSIGN_OR_RETURN(bool present, sh_->store->Has(id));
      if (present) return Status::Ok();
    }
    DEPOT_ASSIGN_OR_RETURN(std::string_view frame,
                           CompressFrameInto(chunk, sh_->options->compression_level, &frame_buf_));
    ++sh_->new_chunks;
    sh_->new_bytes += chunk.size();
    sh_->stored_bytes += frame.size();
    // Each worker writes its own chunk files. (Handing them to one writer thread
    // cost a futex hand-off per chunk and a third thread on two cores, and the kernel
    // does not serialise creations in different directories.)
    DEPOT_RETURN_IF_ERROR(sh_->store->PutFrameTrusted(id, frame, sh_->batch)
                              .WithContext("storing chunk " + core::DigestHex(id)));
    if (sh_->background_sync != nullptr) sh_->background_sync->Wrote(frame.size());
    return Status::Ok();
  }

  Shared* sh_;
  std::string buf_;
  std::string frame_buf_;  // reused for every frame this worker makes
  core::Sha256 file_hash_;
};

// Walks the tree depth-first, recording every entry (in walk order; SortByPath puts
// them in manifest order). Files get placeholder hashes until the workers fill them in.
Status Walk(core::Env* env, const std::string& root, const std::string& rel,
            std::vector<Entry>* entries, std::vector<FileJob>* jobs, SnapshotStats* stats) {
  const std::string dir = rel.empty() ? root : core::JoinPath(root, rel);
  auto listing = env->ListDirStat(dir);
  if (!listing.ok()) {
    const Status& s = listing.status();
    std::string what = rel.empty() ? "the source directory" : rel;
    if (s.IsNotFound()) return Status::NotFound(what + ": vanished while the snapshot was running");
    if (s.IsPermissionDenied()) {
      return Status::PermissionDenied(what + ": cannot be listed (" + s.message() + ")");
    }
    return s.WithContext(what);
  }
  auto names = std::move(*listing);
  std::sort(
      names.begin(), names.end(),
      [](const core::Env::StatEntry& a, const core::Env::StatEntry& b) { return a.name < b.name; });
  for (const auto& de : names) {
    std::string child = rel.empty() ? de.name : core::JoinPath(rel, de.name);
    DEPOT_RETURN_IF_ERROR(core::ValidateRelativePath(child).WithContext("cannot package"));
    const std::string full = core::JoinPath(root, child);
    if (de.vanished) return Status::NotFound(child + ": vanished while the snapshot was running");
    const FileInfo* info = &de.info;
    Entry e;
    e.path = child;
    e.mode = info->mode & 0777;
    switch (info->type) {
      case FileType::kDirectory:
        e.type = EntryType::kDirectory;
        entries->push_back(std::move(e));
        ++stats->dirs;
        DEPOT_RETURN_IF_ERROR(Walk(env, root, child, entries, jobs, stats));
        break;
      case FileType::kSymlink: {
        e.type = EntryType::kSymlink;
        e.mode = 0;
        auto target = env->ReadLink(full);
        if (!target.ok()) return target.status().WithContext(child);
        e.target = std::move(*target);
        entries->push_back(std::move(e));
        ++stats->symlinks;
        break;
      }
      case FileType::kRegular:
        e.type = EntryType::kFile;
        e.sha256 = core::Sha256::Hash("");  // placeholder until read
        jobs->push_back(FileJob{child, info->size, entries->size()});
        entries->push_back(std::move(e));
        ++stats->files;
        break;
      default:
        return Status::InvalidArgument(child + ": is a " + std::string(FileTypeName(info->type)) +
                                       "; only regular files, directories and symlinks can be "
                                       "packaged (move it out of the source directory)");
    }
  }
  return Status::Ok();
}

// Puts the entries in manifest order: bytewise by full path. The walk visits a
// directory's children right after it, which is not that order when a sibling's name
// continues the directory's name with a byte below '/' ("a", "a/b", "a.txt" walked;
// "a", "a.txt", "a/b" sorted). A parent still precedes everything inside it, since its
// path is a prefix of theirs. Jobs are re-pointed at their entries' new places.
void SortByPath(std::vector<Entry>* entries, std::vector<FileJob>* jobs) {
  std::vector<std::size_t> order(entries->size());
  for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::sort(order.begin(), order.end(),
            [&](std::size_t a, std::size_t b) { return (*entries)[a].path < (*entries)[b].path; });
  std::vector<std::size_t> new_index(order.size());
  std::vector<Entry> sorted;
  sorted.reserve(entries->size());
  for (std::size_t i = 0; i < order.size(); ++i) {
    new_index[order[i]] = i;
    sorted.push_back(std::move((*entries)[order[i]]));
  }
  *entries = std::move(sorted);
  for (auto& j : *jobs) j.entry_index = new_index[j.entry_index];
}

// Whether to list the store's chunks once (ChunkStore::ListIds) rather than look
// each new chunk up (Has). A lookup that misses costs a directory search (~1-2 us);
// listing costs a fraction of that per entry already stored. So list unless the
// store is many times larger than what this snapshot is about to check.
core::Result<bool> ShouldListStore(ChunkStore* store, const SnapshotOptions& options,
                                   std::size_t files, std::uint64_t bytes) {
  switch (options.presence) {
    case PresenceCheck::kList:
      return true;
    case PresenceCheck::kLookup:
      return false;
    case PresenceCheck::kAuto:
      break;
  }
  const std::uint64_t expected_chunks = files + bytes / options.chunker.avg_size;
  DEPOT_ASSIGN_OR_RETURN(std::uint64_t entries, store->EstimateEntries());
  return entries <= 8 * expected_chunks + 4096;
}

// Checks paths and symlinks before reading a single byte: an escaping link should
// not cost a gigabyte of hashing to report.
Status CheckTree(const std::vector<Entry>& entries, const SnapshotOptions& options,
                 const std::string& source_dir) {
  Manifest probe;
  probe.package_id = "probe";
  probe.package_name = "probe";
  probe.version = 1;
  probe.created = core::FormatUtc(core::Clock::Real()->Now());
  probe.chunker = options.chunker;
  probe.entries = entries;  // files are empty placeholders here
  return ValidateManifest(probe).WithContext("source " + source_dir);
}

// Lists the store's chunks into *present (and points `shared` at them) when that is
// cheaper than one lookup per new chunk.
Status ListStoreIfCheaper(ChunkStore* store, const SnapshotOptions& options,
                          const std::vector<FileJob>& jobs, ChunkIdSet* present, Shared* shared) {
  std::uint64_t bytes = 0;
  for (const auto& j : jobs) bytes += j.size_hint;
  DEPOT_ASSIGN_OR_RETURN(bool list, ShouldListStore(store, options, jobs.size(), bytes));
  if (list) {
    DEPOT_RETURN_IF_ERROR(store->ListIds(present).WithContext("listing " + store->root()));
    shared->present = present;
  }
  return Status::Ok();
}

// Reads every file job into its entry, on the configured number of threads.
void RunWorkers(Shared* shared, std::vector<FileJob>& jobs, std::vector<Entry>* entries) {
  const SnapshotOptions& options = *shared->options;
  std::atomic<std::size_t> next{0};
  unsigned threads = options.threads ? options.threads : core::DefaultConcurrency();
  threads =
      static_cast<unsigned>(std::min<std::size_t>(threads, std::max<std::size_t>(1, jobs.size())));
  core::RunParallel(threads, [&](unsigned) {
    Worker worker(shared);
    for (;;) {
      std::size_t i = next++;
      if (i >= jobs.size() || shared->failed) return;
      worker.Run(jobs[i], (*entries)[jobs[i].entry_index]);
    }
  });
}

// The snapshot's statistics, from the entries read and the workers' counters.
void FillStats(const Shared& shared, const std::vector<FileJob>& jobs, SnapshotResult* result) {
  auto& st = result->stats;
  for (const auto& j : jobs) st.bytes += result->entries[j.entry_index].size;
  for (const auto& j : jobs) st.chunk_refs += result->entries[j.entry_index].chunks.size();
  st.new_chunks = shared.new_chunks;
  st.new_bytes = shared.new_bytes;
  st.stored_bytes = shared.stored_bytes;
  // Bytes referenced that this snapshot did not have to store (already present, or
  // repeated within the tree).
  st.reused_bytes = st.bytes > st.new_bytes ? st.bytes - st.new_bytes : 0;
  st.retries = shared.retries;
}

}  // namespace

core::Result<SnapshotResult> Snapshot(core::Env* env, const std::string& source_dir,
                                      ChunkStore* store, const SnapshotOptions& options) {
  DEPOT_ASSIGN_OR_RETURN(Chunker chunker, Chunker::Create(options.chunker));
  auto root_info = env->Stat(source_dir);
  if (!root_info.ok()) {
    return root_info.status().WithContext("source directory " + source_dir);
  }
  if (root_info->type != FileType::kDirectory) {
    return Status::InvalidArgument("source " + source_dir + " is not a directory");
  }

  SnapshotResult result;
  std::vector<FileJob> jobs;
  DEPOT_RETURN_IF_ERROR(Walk(env, source_dir, "", &result.entries, &jobs, &result.stats));
  SortByPath(&result.entries, &jobs);

  DEPOT_RETURN_IF_ERROR(CheckTree(result.entries, options, source_dir));

  if (options.progress_total) {
    std::uint64_t total = 0;
    for (const auto& j : jobs) total += j.size_hint;
    *options.progress_total = total;
  }
  // Largest files first, so no core is left with one big file at the end.
  std::sort(jobs.begin(), jobs.end(),
            [](const FileJob& a, const FileJob& b) { return a.size_hint > b.size_hint; });

  const bool to_sink = options.sink != nullptr;
  if (!to_sink && store == nullptr)
    return Status::InvalidArgument("internal: snapshot needs a store or a sink");
  core::AtomicBatch batch(env, to_sink ? std::string() : store->root());
  Shared shared;
  shared.env = env;
  shared.store = store;
  shared.chunker = &chunker;
  shared.options = &options;
  shared.batch = &batch;
  shared.root = source_dir;

  ChunkIdSet present;
  if (!to_sink) DEPOT_RETURN_IF_ERROR(ListStoreIfCheaper(store, options, jobs, &present, &shared));

  std::unique_ptr<core::BackgroundSync> background_sync;
  if (options.background_sync_bytes != 0 && !to_sink) {
    background_sync =
        std::make_unique<core::BackgroundSync>(env, store->root(), options.background_sync_bytes);
    shared.background_sync = background_sync.get();
  }

  RunWorkers(&shared, jobs, &result.entries);
  if (background_sync) {
    Status s = background_sync->Stop();
    if (!s.ok()) shared.Fail(s.WithContext("storing chunks"));
  }
  if (shared.failed) {
    batch.Abort();
    return shared.first_error;
  }
  DEPOT_RETURN_IF_ERROR(batch.Commit().WithContext("storing chunks"));

  FillStats(shared, jobs, &result);
  return result;
}

}  // namespace depot::store
