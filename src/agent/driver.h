// Driving each deployment through the state machine (machine.h); internal to the
// agent component. One pass (Step) looks at every live deployment once and applies
// at most one transition to it, with that transition's action: the condition for
// the next event is read where it lives -- the clock and the schedule, the
// downloader's finished outcome, the installer's verdict on the program -- and the
// transition, its columns and its messages are stored together before the action
// that follows it (starting a download, starting a program). Nothing is carried from
// one pass to the next in the driver itself.
//
// Retries are scheduled with one core::Backoff per deployment on the monotonic
// clock, restored from the persisted attempts and retry time (clamped to now +
// retry_max) the first time a deployment is seen after a start.
//
// Thread safety: the agent's driving thread only.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "agent/content.h"
#include "agent/downloader.h"
#include "agent/installer.h"
#include "agent/state_store.h"
#include "core/backoff.h"
#include "core/time_windows.h"

namespace depot::agent {

// What a pass left under way, so the caller knows whether and how to wait for the next.
struct Activity {
  bool busy = false;     // a download or a program: come back soon
  bool program = false;  // a program: its end is no event the agent is told of, so poll
};

class Driver {
 public:
  // None of the pointers is owned; all must outlive the driver.
  Driver(core::Env* env, core::Clock* clock, const AgentConfig* config, StateStore* state,
         ContentStore* content, Installer* installer, Downloader* downloader,
         core::ZoneCache* zones);

  // One pass over the live deployments; what it left under way. `site_clock`: the
  // site's clock minus ours, passed to downloads for their messages.
  core::Result<Activity> Step(std::optional<core::Duration> site_clock);
  // Stops the work of deployments that changed version or left the policy.
  void Stop(const std::vector<std::int64_t>& ids);
  // Purges what left the policy longer than purge_grace ago.
  core::Status Purge();

  // Counters since ResetCounters: every transition, and whether any ended in failure
  // or success.
  std::uint64_t transitions() const { return transitions_; }
  bool any_failed() const { return any_failed_; }
  bool any_succeeded() const { return any_succeeded_; }
  void ResetCounters() { any_failed_ = any_succeeded_ = false; }

 private:
  core::Status DriveOne(const Deployment& d, bool* busy);
  core::Status OnWaiting(const Deployment& d, bool* busy);
  core::Status OnDownloading(const Deployment& d, bool* busy);
  core::Status OnDownloaded(const Deployment& d, bool* busy);
  core::Status OnInstalling(const Deployment& d);
  core::Status OnFailedRetry(const Deployment& d);

  // Applies a transition with its changes and messages; the new state or nullopt.
  core::Result<std::optional<State>> Move(const Deployment& d, Event event, const Changes& changes,
                                          const std::vector<catalog::OutboxMessage>& messages);
  // A failure that may be retried (failed_retry at the next backoff time, or
  // failed_final once the attempts are used up), and one that may not.
  core::Status Fail(const Deployment& d, Event event, const std::string& error,
                    std::optional<int> exit_code, const std::string& output);
  core::Status FailFinal(const Deployment& d, Event event, const std::string& error);
  core::Status FinishDownload(const Deployment& d, DownloadOutcome o);
  core::Status FinishProgram(const Deployment& d, const Verdict& v);
  core::Status StartAttempt(const Deployment& d, const store::Program& program);
  core::Backoff& RetryOf(const Deployment& d);
  std::optional<std::int64_t> BusyVersion(const std::string& package);

  core::Env* env_;
  core::Clock* clock_;
  const AgentConfig* config_;
  StateStore* state_;
  ContentStore* content_;
  Installer* installer_;
  Downloader* downloader_;
  core::ZoneCache* zones_;
  std::map<std::int64_t, core::Backoff> retries_;
  std::optional<core::Duration> site_clock_;
  std::uint64_t transitions_ = 0;
  bool any_failed_ = false, any_succeeded_ = false;
};

}  // namespace depot::agent
