// The agent's durable state (internal to the agent component): every deployment in
// (or recently in) its policy with its state-machine state, the programs that
// succeeded, the installed version of each package, the versions whose manifests it
// holds, and the outbox of status messages -- one SQLite file, DIR/state.db. All of
// the agent's SQL is here.
//
// A transition and what it causes are committed together: the new state, the
// columns it changes, the report sequence number the site deduplicates by, the rows
// it adds (installed, succeeded, held) and its status messages. Nothing acts on a
// state before it is stored.
//
// Thread safety: as catalog::Db (any thread; transactions serialise).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "agent/machine.h"
#include "catalog/db.h"
#include "catalog/outbox.h"
#include "core/clock.h"
#include "core/time_windows.h"

namespace depot::agent {

struct Source {
  std::string kind, name, url;
};

// One deployment of the policy, as the site sent it (PolicyItem) and as the agent
// keeps working on it (Deployment).
struct PolicyItem {
  std::int64_t id = 0, version = 0, bytes = 0;
  std::string package, package_id, manifest_id, program, kind;
  std::string policy_json;  // the whole item, kept for its schedule and sources
};

struct Deployment {
  std::int64_t id = 0, version = 0, attempts = 0, next_try_ms = 0, run_started_ms = 0;
  std::int64_t bytes_done = 0, bytes_total = 0, policy_bytes = 0;
  std::optional<std::int64_t> exit_code;
  std::string package, package_id, manifest_id, program, kind, run_dir, last_error, output;
  State state = State::kWaiting;
  bool requested = false, removed = false;
  std::int64_t start_ms = 0;
  std::optional<std::int64_t> deadline_ms;
  std::vector<Source> sources;
  std::vector<core::Window> windows;
  bool required() const { return kind == "required"; }
};

// What a transition changes besides the state (unset members change nothing).
struct Changes {
  std::optional<std::int64_t> attempts, next_try_ms;
  bool set_error = false;  // write `error` (nullopt clears it)
  std::optional<std::string> error;
  bool set_exit = false;  // write exit_code and output
  std::optional<std::int64_t> exit_code;
  std::string output;
  bool clear_run = false;  // forget the previous attempt's run directory
  // A verified download: its manifest, sizes, and the version becomes held.
  struct Downloaded {
    std::string manifest_id;
    std::int64_t bytes = 0;
  };
  std::optional<Downloaded> downloaded;
  // The program succeeded: recorded (never run again for this version) and the
  // version becomes the package's installed one (unless a newer one is).
  bool installed = false;
  // The policy names another version: the row starts over with this item.
  std::optional<PolicyItem> new_version;
};

// A deployment's state as the site should hear it next.
struct Report {
  std::int64_t deployment = 0, seq = 0, version = 0, next_try_ms = 0;
  State state = State::kWaiting;
  std::optional<std::int64_t> exit_code;
  std::string detail;
};

struct HeldVersion {
  std::string manifest_id, package;
  std::int64_t version = 0, last_used_ms = 0;
};

// A status message about deployment `d`, stamped now.
catalog::OutboxMessage DeploymentMessage(core::Clock* clock, int code, const Deployment& d,
                                         std::map<std::string, std::string> params = {});

class StateStore {
 public:
  // Opens (creating and migrating) the state database at `path`. `clock` stamps rows.
  static core::Result<std::unique_ptr<StateStore>> Open(core::Clock* clock,
                                                        const std::string& path);

  // Deployments.
  core::Result<std::optional<Deployment>> Get(std::int64_t id);
  core::Result<std::vector<Deployment>> Live();  // not removed from the policy, by id
  core::Result<std::vector<Deployment>> All();
  core::Result<std::vector<Deployment>> RemovedBefore(std::int64_t cutoff_ms);
  // A deployment new to the policy: waiting.
  core::Status Insert(const PolicyItem& item);
  // The same version in a newer policy: program, kind and schedule may have changed;
  // a deployment that had left the policy is back.
  core::Status Refresh(const PolicyItem& item);
  // Moves deployment `id` by `event`, applying `changes` and appending `messages` in
  // the same transaction. Returns the new state, or nullopt when the event does not
  // apply there (nothing changed).
  core::Result<std::optional<State>> Transition(
      std::int64_t id, Event event, const Changes& changes,
      const std::vector<catalog::OutboxMessage>& messages);
  // Left the policy at `now_ms`: the row stays until purged (with `message`).
  core::Status MarkRemoved(std::int64_t id, const catalog::OutboxMessage& message);
  core::Status Delete(std::int64_t id);
  core::Status SetRun(std::int64_t id, const std::string& run_dir, std::int64_t started_ms);
  core::Status SetProgress(std::int64_t id, std::uint64_t done, std::uint64_t total);
  core::Status SetNextTry(std::int64_t id, std::int64_t next_try_ms);
  // A retry time later than `latest_ms` was persisted by a clock that has since gone
  // back (or was wrong): brought to `latest_ms` (now + retry_max, at start).
  core::Status ClampRetries(std::int64_t latest_ms);
  // Marks the available deployments of `package` as requested; how many there are.
  core::Result<std::int64_t> Request(const std::string& package);

  // Whether deployment `id`'s program already succeeded for `version`.
  core::Result<bool> Succeeded(std::int64_t id, std::int64_t version);
  // Whether the content directory of d's version is in use: it is the installed
  // version of the package, or another live deployment has it downloaded, installing
  // or succeeded.
  core::Result<bool> ContentInUse(const Deployment& d);

  // Installed versions and held manifests.
  core::Result<std::optional<std::int64_t>> InstalledVersion(const std::string& package);
  core::Result<std::vector<std::pair<std::string, std::int64_t>>>
  Installed();  // (package, version)
  core::Status Uninstall(const std::string& package);
  core::Result<std::vector<HeldVersion>> Held();  // least recently used first
  core::Result<std::vector<HeldVersion>> HeldOf(const std::string& package);
  core::Status Forget(const std::string& manifest_id);
  // Versions whose chunks must stay: installed content and every version a live
  // deployment is working towards.
  core::Result<std::set<std::string>> Pinned();
  // Versions of `package` whose directories must stay (installed, or being worked on).
  core::Result<std::set<std::int64_t>> VersionsInUse(const std::string& package);
  core::Result<std::int64_t> DeploymentsOf(const std::string& package);  // removed or not

  // Messages and reports.
  core::Status Post(const catalog::OutboxMessage& m);
  core::Result<catalog::OutboxBatch> PendingMessages(std::size_t limit);
  core::Status AckMessages(std::int64_t last_seq);
  core::Result<std::int64_t> OutboxDepth();
  core::Result<std::vector<Report>> PendingReports(std::size_t limit);
  core::Status MarkReported(const std::vector<Report>& reports);

  // Small named values (the attributes the site last accepted).
  core::Result<std::optional<std::string>> Meta(const std::string& key);
  core::Status SetMeta(const std::string& key, const std::string& value);

 private:
  StateStore(core::Clock* clock, std::unique_ptr<catalog::Db> db)
      : clock_(clock), db_(std::move(db)) {}
  std::int64_t NowMs() const { return core::UnixMillis(clock_->Now()); }
  core::Status ApplyChanges(catalog::Tx& tx, const Deployment& d, const Changes& c);

  core::Clock* clock_;
  std::unique_ptr<catalog::Db> db_;
};

}  // namespace depot::agent
