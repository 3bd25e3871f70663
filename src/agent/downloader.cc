#include "agent/downloader.h"

#include "core/hex.h"
#include "core/log.h"
#include "core/messages.h"
#include "core/parallel.h"
#include "core/path.h"

namespace depot::agent {

using core::Status;

Downloader::Downloader(
    core::Env* env, core::Clock* clock, const AgentConfig* config, std::string data_dir,
    SourceFactory sources,
    std::function<core::Result<store::Manifest>(const std::string&)> load_manifest)
    : env_(env),
      clock_(clock),
      config_(config),
      data_dir_(std::move(data_dir)),
      sources_(std::move(sources)),
      load_manifest_(std::move(load_manifest)) {}

Downloader::~Downloader() {
  cancel_ = true;
  if (worker_.joinable()) worker_.join();
}

std::vector<Source> Downloader::Order(const std::vector<Source>& policy_order) {
  std::vector<Source> good, bad;
  const core::MonoTime now = clock_->Monotonic();
  std::lock_guard<std::mutex> lock(mu_);
  for (const auto& s : policy_order) {
    auto it = penalised_until_.find(s.url);
    (it != penalised_until_.end() && it->second > now ? bad : good).push_back(s);
  }
  good.insert(good.end(), bad.begin(), bad.end());
  return good;
}

void Downloader::Start(const Deployment& d, const std::string& dest,
                       const std::vector<SeedSpec>& seeds,
                       std::optional<core::Duration> site_clock) {
  std::vector<Source> order = Order(d.sources);
  std::lock_guard<std::mutex> lock(mu_);
  if (running_ || done_) return;
  if (worker_.joinable()) worker_.join();
  running_ = true;
  job_ = d.id;
  job_version_ = d.version;
  cancel_ = false;
  bytes_ = 0;
  total_ = 0;
  worker_ = std::thread([this, d, dest, order, seeds, site_clock] {
    DownloadOutcome o = Run(d, dest, order, seeds, site_clock);
    std::lock_guard<std::mutex> guard(mu_);
    done_ = std::move(o);
    running_ = false;
    cv_.notify_all();
  });
}

std::vector<catalog::OutboxMessage> Downloader::DropUnless(
    const std::function<bool(std::int64_t id, std::int64_t version)>& wanted) {
  std::unique_lock<std::mutex> lock(mu_);
  if (!done_) return {};
  const std::int64_t id = job_, version = job_version_;
  lock.unlock();
  if (wanted(id, version)) return {};
  lock.lock();
  if (!done_ || job_ != id) return {};
  std::vector<catalog::OutboxMessage> events = std::move(done_->events);
  done_.reset();
  lock.unlock();
  if (worker_.joinable()) worker_.join();
  return events;
}

std::optional<DownloadOutcome> Downloader::Take(std::int64_t id) {
  std::unique_lock<std::mutex> lock(mu_);
  if (!done_ || job_ != id) return std::nullopt;
  std::optional<DownloadOutcome> out = std::move(done_);
  done_.reset();
  lock.unlock();
  if (worker_.joinable()) worker_.join();
  return out;
}

bool Downloader::Holds(std::int64_t id) {
  std::lock_guard<std::mutex> lock(mu_);
  return (running_ || done_) && job_ == id;
}

bool Downloader::Running(std::int64_t* id, std::int64_t* version) {
  std::lock_guard<std::mutex> lock(mu_);
  if (id) *id = job_;
  if (version) *version = job_version_;
  return running_;
}

void Downloader::Cancel(std::int64_t id) {
  std::lock_guard<std::mutex> lock(mu_);
  if (running_ && job_ == id) cancel_ = true;
}

void Downloader::Wait(core::Duration d, const std::atomic<bool>* stop, bool real_time) {
  std::unique_lock<std::mutex> lock(mu_);
  core::Clock* clock = real_time ? core::Clock::Real() : clock_;
  clock->WaitFor(lock, cv_, d,
                 [&] { return done_.has_value() || (stop != nullptr && stop->load()); });
}

DownloadOutcome Downloader::Run(const Deployment& d, const std::string& dest,
                                const std::vector<Source>& order,
                                const std::vector<SeedSpec>& seed_specs,
                                std::optional<core::Duration> site_clock) {
  DownloadOutcome out;
  out.status = env_->CreateDirs(std::string(core::Dirname(dest)), 0750);
  if (!out.status.ok()) return out;
  // Manifests of the seeds; one that is gone or damaged only means fewer local chunks.
  std::vector<store::Manifest> seed_manifests;
  std::vector<repo::FetchSeed> seeds;
  seed_manifests.reserve(seed_specs.size());
  for (const auto& spec : seed_specs) {
    auto m = load_manifest_(spec.manifest_id);
    if (!m.ok()) continue;
    seed_manifests.push_back(std::move(*m));
    seeds.push_back({spec.dir, nullptr});
  }
  for (std::size_t i = 0; i < seeds.size(); ++i) seeds[i].manifest = &seed_manifests[i];
  repo::FetchRequest req;
  req.package = d.package;
  req.version = d.version;
  req.dest = dest;
  req.trusted_root = trusted_root_;
  req.cache_dir = core::JoinPath(data_dir_, "cache");
  // The assembled tree is the agent's copy of the version's chunks (a seed for the
  // next download); an interrupted or failed download keeps its partial tree.
  req.seeds = seeds;
  req.cache_fetched = false;
  req.keep_partial = true;
  req.parallel = config_->parallel;
  req.max_rate = config_->max_rate;
  req.threads = std::min(4u, core::DefaultConcurrency());
  req.max_rounds = 2;
  req.first_backoff = std::chrono::milliseconds(200);
  req.progress_bytes = &bytes_;
  req.progress_total = &total_;
  req.cancel = &cancel_;
  if (site_clock) req.reference_clock = repo::FetchRequest::ReferenceClock{"the site", *site_clock};
  for (const Source& src : order) {
    if (cancel_) break;
    if (TryOne(d, src, req, &out)) return out;
  }
  if (out.status.ok()) out.status = Status::Unavailable("no source to download from");
  if (cancel_) out.cancelled = true;
  return out;
}

bool Downloader::TryOne(const Deployment& d, const Source& src, repo::FetchRequest req,
                        DownloadOutcome* out) {
  auto message = [&](int code, std::map<std::string, std::string> params) {
    out->events.push_back(DeploymentMessage(clock_, code, d, std::move(params)));
  };
  auto source = sources_(src.url, *config_);
  if (!source.ok()) {
    message(core::msg::kAgentSourceFailed,
            {{"source", src.url}, {"error", source.status().message()}});
    return false;
  }
  repo::FetchDiagnostics diag;
  req.diagnostics = &diag;
  auto r = repo::FetchVersion(env_, clock_, source->get(), req);
  if (r.ok()) {
    auto ms = [](double s) { return std::to_string(static_cast<std::int64_t>(s * 1000)); };
    core::Log(core::LogLevel::kInfo, "agent.fetched",
              {{"package", d.package},
               {"version", std::to_string(d.version)},
               {"source", src.url},
               {"fetched_bytes", std::to_string(r->fetched_bytes)},
               {"metadata_ms", ms(r->metadata_s)},
               {"prepare_ms", ms(r->prepare_s)},
               {"transfer_ms", ms(r->transfer_s)},
               {"finish_ms", ms(r->finish_s)}});
    out->status = Status::Ok();
    out->result = std::move(*r);
    out->source = src.url;
    return true;
  }
  out->status = r.status();
  if (cancel_) {
    out->cancelled = true;
    return true;
  }
  if (diag.manifest_refused) {
    out->refused = true;
    return true;
  }
  const Status& s = r.status();
  // Local trouble (a disk error, a directory removed underneath): no source is to blame.
  if (diag.local_failure || s.IsIOError() || s.IsInvalidArgument()) return true;
  {
    std::lock_guard<std::mutex> lock(mu_);
    penalised_until_[src.url] = clock_->Monotonic() + config_->source_penalty;
  }
  if (diag.version_missing || diag.source_behind) {
    std::string has = diag.version_missing
                          ? (diag.newest_available ? std::to_string(diag.newest_available) : "none")
                          : "older signed metadata";
    message(core::msg::kAgentSourceStale,
            {{"source", src.url}, {"source_version", has}, {"error", s.message()}});
  } else if (s.IsCorruption() || !diag.bad_chunks.empty()) {
    // Bad bytes, or chunks missing from a source that offers the version: named,
    // so the site has the source check those first.
    std::string chunks;
    for (const auto& id : diag.bad_chunks)
      chunks += (chunks.empty() ? "" : ",") + core::DigestHex(id);
    std::map<std::string, std::string> p = {
        {"source", src.url},
        {"object", d.package + " version " + std::to_string(d.version)},
        {"error", s.message()}};
    if (!chunks.empty()) p["chunks"] = chunks;
    message(core::msg::kAgentVerificationFailed, std::move(p));
  } else {
    message(core::msg::kAgentSourceFailed, {{"source", src.url}, {"error", s.message()}});
  }
  core::Log(core::LogLevel::kWarn, "agent.source_failed",
            {{"source", src.url}, {"package", d.package}, {"error", s.ToString()}});
  return false;
}

}  // namespace depot::agent
