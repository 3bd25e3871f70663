// Keeping the agent's deployments in line with its policy (internal to the agent
// component): polls the site (with the ETag of the last answer, so an unchanged
// policy costs a 304), and on a change inserts new deployments, moves a deployment
// whose version changed back to the start, and marks those that left the policy
// removed (their content is purged after a grace period). Level-triggered: a poll
// after any outage brings the rows to the policy as it is now.
//
// Polls are scheduled on the monotonic clock: every poll interval (the agent's own,
// or what the site says), and after a failure with core::Backoff.
//
// Thread safety: one thread (the agent's driver).
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "agent/config_file.h"
#include "agent/state_store.h"
#include "core/backoff.h"
#include "core/clock.h"
#include "http/client.h"

namespace depot::agent {

class PolicySync {
 public:
  // `state`, `clock` and `config` must outlive the sync.
  PolicySync(StateStore* state, core::Clock* clock, const AgentConfig* config);

  // Polls when due (or always, with `force`), reporting attributes first when they
  // changed. The poll's status (OK when not due). Deployments whose work must stop
  // (another version, or gone from the policy) are added to *stop.
  core::Status MaybePoll(http::Client* site, bool force, std::vector<std::int64_t>* stop);

  // The site's clock minus ours, from the Date of its last answer (whole seconds);
  // unset until a poll got an answer.
  std::optional<core::Duration> site_clock_offset() const { return site_clock_offset_; }
  core::Duration poll_interval() const;
  // Whether polls may be held at the site (config long_poll, while the agent is idle):
  // then the next poll follows each answer at once.
  void SetLongPoll(bool on) { long_poll_ = on; }

 private:
  core::Status Poll(http::Client* site, std::vector<std::int64_t>* stop);
  // *deferred: a version change waits for a running program (the next poll asks again).
  core::Status Reconcile(const std::vector<PolicyItem>& items, std::vector<std::int64_t>* stop,
                         bool* deferred);

  StateStore* state_;
  core::Clock* clock_;
  const AgentConfig* config_;
  std::string etag_;
  core::Duration site_interval_ = std::chrono::seconds(60);
  std::optional<core::Duration> site_clock_offset_;
  std::optional<core::MonoTime> next_poll_;
  bool long_poll_ = false;
  core::Backoff failures_;
};

// The deployments of a policy document; malformed items are skipped (logged).
// Corruption when the document is not a policy at all.
core::Result<std::vector<PolicyItem>> ParsePolicy(std::string_view body,
                                                  core::Duration* poll_interval);

}  // namespace depot::agent
