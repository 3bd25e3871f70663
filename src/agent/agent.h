// The agent (docs/agent.md, docs/architecture.md): runs on every managed machine,
// enrolls with a site, polls its policy, and drives each deployment in it through the
// state machine in machine.h -- download (TUF-verified, from the policy's sources in
// order, chunks already on the machine -- other versions' content, earlier partial
// downloads, the cache -- first), assemble and verify into
// content/<package>/<version>, run the signed program, report -- and cleans up what
// leaves its policy.
//
// Data directory:
//   DIR/agent.json       site URL, client id and credential, settings (mode 0600)
//   DIR/trusted_root.json the site's root.json pinned at enrollment
//   DIR/state.db         deployments, what succeeded, what is installed, the outbox
//   DIR/cache/           chunk cache (chunks/) and trusted TUF metadata (tuf/)
//   DIR/manifests/       signed manifests of versions the agent holds, by id
//   DIR/content/<package>/<version>/  installed content
//   DIR/runs/            one directory per program attempt (program.h)
//   DIR/agent.lock       held by the process driving the deployments
//
// Never: installs anything unverified, installs a version other than the one the
// policy names, runs a program again after it succeeded for that deployment and
// version, keeps working on (or asking for) content that left its policy.
//
// Thread safety: an Agent is driven by one thread (Run/RunOnce); downloads run on a
// worker thread it owns. LocalStatus/RequestInstall work on a data directory another
// process may be running.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "agent/config_file.h"
#include "core/clock.h"
#include "core/env.h"
#include "core/source.h"
#include "core/status.h"

namespace depot::agent {

struct DeploymentStatus {
  std::int64_t id = 0;
  std::string package, kind, program, state, last_error, output;
  std::int64_t version = 0, attempts = 0, next_try_ms = 0;
  std::int64_t bytes_done = 0, bytes_total = 0;
  std::optional<std::int64_t> exit_code;
  bool requested = false, removed = false;
};

struct LocalStatusReport {
  std::string site, client;
  std::vector<DeploymentStatus> deployments;
  std::map<std::string, std::int64_t> installed;  // package -> version
  std::uint64_t cache_bytes = 0, cache_max_bytes = 0, cache_chunks = 0;
  std::int64_t outbox = 0;
};

class Agent {
 public:
  // Opens the data directory (creating it) and loads agent.json when present; flags in
  // `overrides` that are set replace stored settings and are saved. Takes the agent
  // lock: Unavailable when another process drives this directory.
  static core::Result<std::unique_ptr<Agent>> Open(core::Env* env, core::Clock* clock,
                                                   const std::string& data_dir,
                                                   const AgentOverrides& overrides,
                                                   SourceFactory sources = nullptr);
  ~Agent();

  // Enrolls with the site when not enrolled yet (needs `enroll_token`); pins the
  // site's root. InvalidArgument without a token on first start; PermissionDenied
  // for a refused token; Unavailable when the site cannot be reached.
  core::Status EnsureEnrolled(const std::string& enroll_token);

  enum class Outcome { kNothingToDo, kSucceeded, kFailed };
  // One full cycle: poll, drive every deployment until it rests (finished, waiting
  // for its time, window, request or retry), deliver reports. kFailed when anything
  // failed (including reaching the site).
  core::Result<Outcome> RunOnce();

  // Cycles until *stop becomes true: polls at the poll interval, drives deployments
  // as their times come, delivers reports, purges what left the policy.
  core::Status Run(const std::atomic<bool>* stop);

  // Reads the state of a data directory (any process may be running it).
  static core::Result<LocalStatusReport> LocalStatus(core::Env* env, const std::string& data_dir);
  // Marks the available deployment of `package` as requested. NotFound when the
  // policy has no available deployment of it.
  static core::Status RequestInstall(core::Env* env, const std::string& data_dir,
                                     const std::string& package);

  struct Impl;

 private:
  explicit Agent(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Exit codes of `depot agent run --once`.
inline constexpr int kOnceSucceeded = 0;
inline constexpr int kOnceFailed = 1;
inline constexpr int kOnceNothingToDo = 4;

}  // namespace depot::agent
