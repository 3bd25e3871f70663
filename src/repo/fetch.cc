#include "repo/fetch.h"

#include <unistd.h>

#include <algorithm>
#include <memory>
#include <mutex>

#include "core/atomic_batch.h"
#include "core/background_sync.h"
#include "core/log.h"
#include "core/parallel.h"
#include "core/random.h"
#include "repo/chunk_download.h"
#include "repo/fetch_local.h"
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

// Verified chunks are made durable in the cache every so often (by count, and by
// time even while the source sends nothing), so an interrupted fetch keeps what it
// verified.
constexpr std::size_t kCacheCommitEvery = 2048;
constexpr auto kCacheCommitInterval = std::chrono::seconds(1);

constexpr std::string_view kStagingInfix = ".depot-staging-";
constexpr std::string_view kPartialSuffix = ".depot-partial";

// One fetch, as a sequence of named phases (Run). Each phase leaves its results in
// the members the next one reads; the first error ends the fetch.
class Fetcher {
 public:
  Fetcher(core::Env* env, core::Clock* clock, core::RepoSource* source, const FetchRequest& req)
      : env_(env),
        clock_(clock),
        source_(source),
        req_(req),
        phase_start_(std::chrono::steady_clock::now()) {}

  core::Result<FetchResult> Run() {
    DEPOT_RETURN_IF_ERROR(Start());
    DEPOT_RETURN_IF_ERROR(Metadata());
    result_.metadata_s = Lap();
    DEPOT_RETURN_IF_ERROR(Prepare());
    DEPOT_RETURN_IF_ERROR(TakeLocal());
    result_.prepare_s = Lap();
    Status transferred = Transfer();
    result_.transfer_s = Lap();
    DEPOT_RETURN_IF_ERROR(Finish(std::move(transferred)));
    result_.finish_s = Lap();
    core::Log(core::LogLevel::kInfo, "fetch.done",
              {{"package", result_.package},
               {"version", std::to_string(result_.version)},
               {"from_cache", std::to_string(result_.cache_bytes)},
               {"fetched", std::to_string(result_.fetched_bytes)}});
    return std::move(result_);
  }

 private:
  // Marks an error as this machine's (see FetchDiagnostics::local_failure).
  Status Local(Status s) const {
    if (!s.ok() && req_.diagnostics) req_.diagnostics->local_failure = true;
    return s;
  }
  // Seconds since the previous call (or the start).
  double Lap() {
    auto now = std::chrono::steady_clock::now();
    double s = std::chrono::duration<double>(now - phase_start_).count();
    phase_start_ = now;
    return s;
  }
  // The first error of the parallel phases; a cancellation counts as one, so every
  // exit path sees it.
  void Fail(Status s, bool is_local) {
    std::lock_guard<std::mutex> lock(mu_);
    if (!first_error_.ok()) return;
    first_error_ = std::move(s);
    first_error_local_ = is_local;
  }
  bool Failed() {
    std::lock_guard<std::mutex> lock(mu_);
    if (first_error_.ok() && req_.cancel != nullptr && req_.cancel->load()) {
      first_error_ = Status::Unavailable("fetch of " + req_.package + " cancelled");
    }
    return !first_error_.ok();
  }
  Status FirstError() {
    std::lock_guard<std::mutex> lock(mu_);
    return first_error_local_ ? Local(first_error_) : first_error_;
  }
  void MissingVersion(std::int64_t newest) {
    if (!req_.diagnostics) return;
    req_.diagnostics->newest_available = newest;
    req_.diagnostics->version_missing = true;
  }

  Status Start();
  Status Metadata();
  core::Result<std::int64_t> PickVersion(const tuf::Client& client);
  Status Prepare();
  Status TakeLocal();
  Status Transfer();
  Status DeliverChunk(std::size_t i, core::Result<std::string>& frame, std::string* scratch);
  void CommitCache();
  void Place(std::size_t i, std::string_view data);
  Status Finish(Status transferred);

  core::Env* env_;
  core::Clock* clock_;
  core::RepoSource* source_;
  const FetchRequest& req_;
  std::chrono::steady_clock::time_point phase_start_;
  std::uint64_t transfer_start_ = 0;

  // Start: the cache and the trusted metadata directory.
  std::unique_ptr<store::ChunkStore> cache_;
  std::string trusted_dir_;
  // Metadata: the verified manifest.
  std::int64_t newest_signed_ = 0;
  store::Manifest manifest_;
  FetchResult result_;
  // Prepare: where the tree is assembled, and what earlier fetches left.
  std::string parent_, staging_, partial_;
  std::vector<std::string> leftovers_;
  std::unique_ptr<store::Assembler> assembler_;
  unsigned threads_ = 1;
  std::unique_ptr<core::AtomicBatch> cache_batch_;
  std::unique_ptr<core::BackgroundSync> background_sync_;
  // TakeLocal: the chunks still to fetch.
  std::vector<std::size_t> missing_;
  // Transfer.
  std::atomic<std::uint64_t> fetched_bytes_{0}, fetched_chunks_{0}, since_commit_{0};
  std::atomic<bool> committing_{false};
  std::mutex bad_mu_;

  std::mutex mu_;
  Status first_error_;
  bool first_error_local_ = false;
};

// The destination, the cache and the trusted metadata. TUF state is kept per trust
// anchor, so one cache can serve several repositories without mixing their metadata.
Status Fetcher::Start() {
  DEPOT_RETURN_IF_ERROR(store::ValidatePackageName(req_.package));
  if (req_.dest.empty()) return Status::InvalidArgument("no destination given");
  auto exists = env_->Exists(req_.dest);
  if (!exists.ok()) return Local(exists.status());
  if (*exists) {
    return Status::InvalidArgument("destination " + req_.dest +
                                   " already exists; remove it or choose another path");
  }
  if (!req_.cache_dir.empty()) {
    cache_ = std::make_unique<store::ChunkStore>(env_, core::JoinPath(req_.cache_dir, "chunks"),
                                                 store::kDefaultCompressionLevel);
    DEPOT_RETURN_IF_ERROR(Local(cache_->Create().WithContext("cache " + req_.cache_dir)));
    // What an interrupted fetch was still writing when it died.
    auto swept = cache_->SweepAbandonedTemps();
    if (swept.ok() && *swept > 0) {
      core::Log(core::LogLevel::kInfo, "fetch.cache_temps_removed",
                {{"count", std::to_string(*swept)}});
    }
    trusted_dir_ = core::JoinPath(req_.cache_dir,
                                  "tuf/" + core::Sha256::HashHex(req_.trusted_root).substr(0, 16));
    DEPOT_RETURN_IF_ERROR(Local(env_->CreateDirs(trusted_dir_, 0700)));
  }
  transfer_start_ = source_->BytesFetched();
  return Status::Ok();
}

// The requested version, or the newest one signed; NotFound naming what exists.
core::Result<std::int64_t> Fetcher::PickVersion(const tuf::Client& client) {
  std::vector<std::int64_t> versions;
  for (const auto& t : client.Targets()) {
    auto info = ParseVersionTarget(t);
    if (info.ok() && info->package == req_.package) versions.push_back(info->version);
  }
  std::sort(versions.begin(), versions.end());
  if (versions.empty()) {
    MissingVersion(0);
    return Status::NotFound("package " + req_.package + " has no signed versions in " +
                            source_->Describe());
  }
  std::int64_t version = req_.version ? req_.version : versions.back();
  if (!std::binary_search(versions.begin(), versions.end(), version)) {
    std::string list;
    for (auto v : versions) list += (list.empty() ? "" : ", ") + std::to_string(v);
    MissingVersion(versions.back());
    return Status::NotFound("package " + req_.package + " has no version " +
                            std::to_string(version) + " in " + source_->Describe() +
                            " (signed versions: " + list + ")");
  }
  newest_signed_ = versions.back();
  return version;
}

// TUF all the way down: root -> timestamp -> snapshot -> targets -> the manifest,
// checked by length and hash, then parsed strictly.
Status Fetcher::Metadata() {
  tuf::Client client(env_, clock_, source_, trusted_dir_);
  DEPOT_RETURN_IF_ERROR(Local(client.Initialize(req_.trusted_root).WithContext("trusted root")));
  if (req_.reference_clock)
    client.SetReferenceClock(req_.reference_clock->name, req_.reference_clock->offset);
  if (Status refreshed = client.Refresh(); !refreshed.ok()) {
    if (req_.diagnostics && client.refused_older()) req_.diagnostics->source_behind = true;
    return refreshed.WithContext("metadata from " + source_->Describe());
  }
  DEPOT_ASSIGN_OR_RETURN(std::int64_t version, PickVersion(client));
  DEPOT_ASSIGN_OR_RETURN(tuf::TargetInfo target,
                         client.GetTarget(ManifestTargetPath(req_.package, version)));
  auto fetched = client.FetchTarget(target);
  if (!fetched.ok()) {
    if (fetched.status().IsNotFound()) MissingVersion(newest_signed_);
    return fetched.status().WithContext("manifest " + target.path);
  }
  auto parsed = store::ParseManifest(*fetched);
  if (!parsed.ok()) {
    // Signed but unparsable: never act on it.
    if (req_.diagnostics) req_.diagnostics->manifest_refused = true;
    return Status::Corruption(parsed.status().message() + " (signed manifest " + target.path +
                              " from " + source_->Describe() + ")");
  }
  manifest_ = std::move(*parsed);
  if (manifest_.package_name != req_.package || manifest_.version != version) {
    if (req_.diagnostics) req_.diagnostics->manifest_refused = true;
    return Status::Corruption("manifest " + target.path + " describes " + manifest_.package_name +
                              " version " + std::to_string(manifest_.version) +
                              ", not what it is signed as");
  }
  result_.package = manifest_.package_name;
  result_.version = manifest_.version;
  result_.manifest_id = target.sha256;
  result_.manifest = std::move(*fetched);
  result_.programs = manifest_.programs;
  result_.files = manifest_.FileCount();
  result_.bytes = manifest_.TotalFileBytes();
  if (req_.progress_total) *req_.progress_total = result_.bytes;
  return Status::Ok();
}

// The staging tree, named after this process so that one left behind by a killed
// fetch is recognised by the next fetch to the same place (which takes what it can
// from it, verified, and removes it, as it does with a partial tree).
Status Fetcher::Prepare() {
  parent_ = std::string(core::Dirname(req_.dest));
  const std::string staging_prefix =
      "." + std::string(core::Basename(req_.dest)) + std::string(kStagingInfix);
  partial_ = PartialPath(req_.dest);
  leftovers_ = AbandonedStaging(env_, parent_.empty() ? "." : parent_, staging_prefix);
  auto partial_exists = env_->Exists(partial_);
  if (partial_exists.ok() && *partial_exists) leftovers_.push_back(partial_);
  staging_ = core::JoinPath(parent_,
                            staging_prefix + std::to_string(::getpid()) + "-" + core::RandomHex(6));
  assembler_ = std::make_unique<store::Assembler>(env_, &manifest_, staging_);
  DEPOT_RETURN_IF_ERROR(Local(assembler_->Prepare()));
  result_.chunks = assembler_->chunks().size();
  threads_ = req_.threads ? req_.threads : core::DefaultConcurrency();
  if (cache_ && req_.cache_fetched)
    cache_batch_ = std::make_unique<core::AtomicBatch>(env_, cache_->root());
  if (req_.background_sync_bytes != 0) {
    background_sync_ = std::make_unique<core::BackgroundSync>(env_, parent_.empty() ? "." : parent_,
                                                              req_.background_sync_bytes);
  }
  return Status::Ok();
}

void Fetcher::Place(std::size_t i, std::string_view data) {
  Status s = assembler_->Place(i, data);
  if (!s.ok()) Fail(std::move(s), /*is_local=*/true);
  if (req_.progress_bytes) *req_.progress_bytes = assembler_->bytes_placed();
  if (background_sync_) background_sync_->Wrote(data.size());
}

// Chunks already here: in the seeds and in what earlier fetches left, then in the
// cache. Everything is re-verified: local copies are only hints.
Status Fetcher::TakeLocal() {
  const auto& chunks = assembler_->chunks();
  std::vector<char> hit(chunks.size(), 0);
  auto place = [this](std::size_t i, std::string_view data) { Place(i, data); };
  auto stop = [this] { return Failed(); };
  std::vector<FetchSeed> seeds = req_.seeds;
  for (const auto& dir : leftovers_) seeds.push_back({dir, &manifest_});
  LocalTake from_seeds = TakeFromSeeds(env_, seeds, chunks, threads_, &hit, place, stop);
  result_.seed_chunks = from_seeds.chunks;
  result_.seed_bytes = from_seeds.bytes;
  DEPOT_RETURN_IF_ERROR(FirstError());
  LocalTake from_cache;
  if (cache_) from_cache = TakeFromCache(cache_.get(), chunks, threads_, &hit, place, stop);
  for (std::size_t i = 0; i < chunks.size(); ++i) {
    if (!hit[i]) missing_.push_back(i);
  }
  result_.cache_chunks = chunks.size() - missing_.size();
  result_.cache_bytes = from_cache.bytes + from_seeds.bytes;
  // From here on the staging tree holds at least what the leftovers gave, so it may
  // replace them (keep_partial); a failure before this point leaves them as they are.
  return FirstError();
}

// One chunk from the source, on a download worker: verified, cached, placed. Bytes
// that fail verification are never written anywhere; the chunk is tried again in the
// next round (the source may have been mid-repair) and named in the diagnostics.
Status Fetcher::DeliverChunk(std::size_t i, core::Result<std::string>& frame,
                             std::string* scratch) {
  const store::ChunkRef& c = assembler_->chunks()[i];
  auto note_bad = [&] {
    if (req_.diagnostics == nullptr) return;
    std::lock_guard<std::mutex> lock(bad_mu_);
    auto& bad = req_.diagnostics->bad_chunks;
    if (bad.size() < FetchDiagnostics::kMaxBadChunks &&
        std::find(bad.begin(), bad.end(), c.id) == bad.end()) {
      bad.push_back(c.id);
    }
  };
  if (Failed()) return FirstError();
  if (!frame.ok()) {
    const Status& s = frame.status();
    if (s.IsNotFound()) note_bad();  // the source offers the version but lacks the chunk
    return s.IsUnavailable() || s.IsCorruption()
               ? s
               : s.WithContext("chunk " + core::DigestHex(c.id) + " from " + source_->Describe());
  }
  core::Result<std::string_view> data = store::VerifyFrameInto(c.id, c.size, *frame, scratch);
  if (!data.ok()) {
    core::Log(core::LogLevel::kWarn, "fetch.bad_chunk",
              {{"chunk", core::DigestHex(c.id)},
               {"source", source_->Describe()},
               {"error", data.status().message()}});
    note_bad();
    return Status::Corruption("chunk " + core::DigestHex(c.id) + " from " + source_->Describe() +
                              ": " + data.status().message());
  }
  if (cache_batch_) {
    // Verified just now: the frame is cached as received.
    Status s = cache_->PutFrameTrusted(c.id, *frame, cache_batch_.get());
    if (!s.ok()) {
      Fail(s.WithContext("cache"), /*is_local=*/true);
      return FirstError();
    }
  }
  Place(i, *data);
  source_->Recycle(std::move(*frame));
  ++fetched_chunks_;
  fetched_bytes_ += c.size;
  if (cache_batch_ && ++since_commit_ >= kCacheCommitEvery) CommitCache();
  return FirstError();
}

// Makes the chunks verified so far durable in the cache, unless another thread is
// at it already (then they go in its commit or the next one).
void Fetcher::CommitCache() {
  if (committing_.exchange(true)) return;
  since_commit_ = 0;
  Status s = cache_batch_->Commit();
  committing_ = false;
  if (!s.ok()) Fail(s.WithContext("cache"), /*is_local=*/true);
}

// The rest from the source, through the shared chunk downloader.
Status Fetcher::Transfer() {
  DownloadOptions d;
  d.parallel = req_.parallel;
  d.threads = threads_;
  d.max_rounds = req_.max_rounds;
  d.backoff = {req_.first_backoff, req_.first_backoff * 64};
  d.max_rate = req_.max_rate;
  d.cancelled = [this] { return req_.cancel != nullptr && req_.cancel->load(); };
  // Every chunk goes to the worker that owns the file it lands in first: two threads
  // writing one file contend on its inode lock.
  d.worker_of = [this](std::size_t i) { return static_cast<std::size_t>(assembler_->HomeFile(i)); };
  d.log_name = "fetch";
  if (cache_batch_) {
    // Also while the source sends nothing: a source that stalls after some chunks
    // must not keep what was verified out of the cache until the fetch is killed.
    d.tick = [this] {
      if (cache_batch_->size() > 0) CommitCache();
    };
    d.tick_interval = kCacheCommitInterval;
  }
  Status s =
      DownloadChunks(clock_, source_, assembler_->chunks(), missing_, d,
                     [this](std::size_t i, core::Result<std::string>& frame, std::string* scratch) {
                       return DeliverChunk(i, frame, scratch);
                     });
  if (!s.ok()) Fail(s, /*is_local=*/false);
  Failed();  // a cancellation during the transfer is the error
  result_.fetched_chunks = fetched_chunks_;
  result_.fetched_bytes = fetched_bytes_;
  result_.transfer_bytes = source_->BytesFetched() - transfer_start_;
  if (background_sync_) {
    Status bs = background_sync_->Stop();
    if (!bs.ok()) Fail(bs.WithContext("writing " + staging_), /*is_local=*/true);
  }
  // Keep what was verified, whatever happens next.
  if (cache_batch_) {
    Status cs = cache_batch_->Commit();
    if (!cs.ok()) Fail(cs.WithContext("cache"), /*is_local=*/true);
  }
  return FirstError();
}

// Syncs, checks and renames the tree into place. A file that fails its hash after
// every chunk verified is the signed manifest's own contradiction (every source
// serves the same); anything else here is local. On failure the unfinished tree is
// kept as DEST's partial tree when asked (keep_partial).
Status Fetcher::Finish(Status transferred) {
  Status done = std::move(transferred);
  if (done.ok()) {
    done = assembler_->Finish(threads_);
    if (!done.IsCorruption()) done = Local(done);
  }
  if (done.ok()) done = Local(assembler_->CommitTo(req_.dest));
  auto remove_leftovers = [&] {
    for (const auto& dir : leftovers_) {
      core::Log(core::LogLevel::kInfo, "fetch.staging_removed", {{"path", dir}});
      env_->RemoveAll(dir).IgnoreError();
    }
  };
  if (!done.ok()) {
    if (req_.keep_partial && assembler_->bytes_placed() > 0) {
      remove_leftovers();
      Status kept = assembler_->KeepUnfinished(partial_);
      if (!kept.ok()) {
        core::Log(core::LogLevel::kWarn, "fetch.partial_not_kept",
                  {{"path", partial_}, {"error", kept.message()}});
      }
    }
    return done;
  }
  remove_leftovers();
  return Status::Ok();
}

}  // namespace

std::string PartialPath(const std::string& dest) {
  std::string parent(core::Dirname(dest));
  return core::JoinPath(parent,
                        "." + std::string(core::Basename(dest)) + std::string(kPartialSuffix));
}

std::string_view LeftoverOf(std::string_view name) {
  if (name.size() < 2 || name[0] != '.') return {};
  name.remove_prefix(1);
  if (name.size() > kPartialSuffix.size() &&
      name.substr(name.size() - kPartialSuffix.size()) == kPartialSuffix) {
    return name.substr(0, name.size() - kPartialSuffix.size());
  }
  std::size_t infix = name.find(kStagingInfix);
  return infix == std::string_view::npos || infix == 0 ? std::string_view() : name.substr(0, infix);
}

core::Result<FetchResult> FetchVersion(core::Env* env, core::Clock* clock, core::RepoSource* source,
                                       const FetchRequest& req) {
  return Fetcher(env, clock, source, req).Run();
}

}  // namespace depot::repo
