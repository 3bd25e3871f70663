// Getting a deployment's version onto this machine (internal to the agent
// component): one download at a time on a worker thread, trying the policy's sources
// in order -- those that failed recently moved to the back for `source_penalty` --
// with repo::FetchVersion (TUF-verified, chunks from seed trees and the cache
// first). Each source that fails becomes a status message for the site: stale
// (4004), bad bytes or missing chunks (4012, naming them), or unusable (4003); a
// failure of this machine's own is blamed on no source.
//
// The driver starts a download for a deployment in `downloading` and, on a later
// pass, takes its outcome (Take) and applies the transition it calls for.
//
// Thread safety: every method is for the driver's thread; the worker thread is
// internal.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "agent/config_file.h"
#include "agent/state_store.h"
#include "core/clock.h"
#include "core/env.h"
#include "core/source.h"
#include "repo/fetch.h"

namespace depot::agent {

// The directory of a version another download may take chunks from.
struct SeedSpec {
  std::string dir;
  std::string manifest_id;
};

// What one download across the sources came to.
struct DownloadOutcome {
  core::Status status;
  bool refused = false;  // the signed content can never be installed
  bool cancelled = false;
  repo::FetchResult result;
  std::string source;                          // where the chunks came from
  std::vector<catalog::OutboxMessage> events;  // one per source that failed
};

class Downloader {
 public:
  // `env`, `clock` and `config` must outlive the downloader. `load_manifest` reads a
  // held manifest (for seeds) by id.
  Downloader(core::Env* env, core::Clock* clock, const AgentConfig* config, std::string data_dir,
             SourceFactory sources,
             std::function<core::Result<store::Manifest>(const std::string&)> load_manifest);
  ~Downloader();  // cancels and joins

  void SetTrustedRoot(std::string root) { trusted_root_ = std::move(root); }

  // Starts downloading `d` into `dest` (no-op while another download runs or waits to
  // be taken). `site_clock`: the site's clock minus ours, for expiry messages.
  void Start(const Deployment& d, const std::string& dest, const std::vector<SeedSpec>& seeds,
             std::optional<core::Duration> site_clock);
  // The outcome of deployment `id`'s download once it finished (taken once).
  std::optional<DownloadOutcome> Take(std::int64_t id);
  // A finished download its deployment no longer wants (`wanted` says no: it moved to
  // another version or left the policy) is dropped, freeing the worker; its messages
  // about the sources are returned for the outbox.
  std::vector<catalog::OutboxMessage> DropUnless(
      const std::function<bool(std::int64_t id, std::int64_t version)>& wanted);
  // Whether deployment `id`'s download runs or waits to be taken.
  bool Holds(std::int64_t id);
  // Whether a download runs now, and of which (deployment, version).
  bool Running(std::int64_t* id = nullptr, std::int64_t* version = nullptr);
  // Progress of the running download.
  std::uint64_t bytes() const { return bytes_; }
  std::uint64_t total() const { return total_; }
  // Stops deployment `id`'s download soon (what was verified stays).
  void Cancel(std::int64_t id);
  void CancelAll() { cancel_ = true; }

  // Waits up to `d` for a download to finish or `stop` to hold: on the agent's clock,
  // or with `real_time` on the real one (a program under way ends in real time, and
  // its end is polled, whatever clock the agent runs on).
  void Wait(core::Duration d, const std::atomic<bool>* stop, bool real_time = false);

  // The sources of `policy_order`, those that failed recently moved to the back.
  std::vector<Source> Order(const std::vector<Source>& policy_order);

 private:
  DownloadOutcome Run(const Deployment& d, const std::string& dest,
                      const std::vector<Source>& order, const std::vector<SeedSpec>& seed_specs,
                      std::optional<core::Duration> site_clock);
  // Tries one source; true when the download is over (done, refused, cancelled or a
  // local failure), false to try the next source.
  bool TryOne(const Deployment& d, const Source& src, repo::FetchRequest req, DownloadOutcome* out);

  core::Env* env_;
  core::Clock* clock_;
  const AgentConfig* config_;
  std::string data_dir_;
  SourceFactory sources_;
  std::function<core::Result<store::Manifest>(const std::string&)> load_manifest_;
  std::string trusted_root_;
  std::map<std::string, core::MonoTime> penalised_until_;  // worker writes under mu_

  std::mutex mu_;
  std::condition_variable cv_;
  std::thread worker_;
  std::int64_t job_ = 0, job_version_ = 0;
  bool running_ = false;
  std::optional<DownloadOutcome> done_;
  std::atomic<bool> cancel_{false};
  std::atomic<std::uint64_t> bytes_{0}, total_{0};
};

}  // namespace depot::agent
