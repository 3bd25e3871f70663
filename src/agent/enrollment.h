// Joining a site and telling it about this machine (internal to the agent component).
#pragma once

#include <string>

#include "agent/config_file.h"
#include "agent/state_store.h"
#include "core/env.h"
#include "core/status.h"
#include "http/client.h"

namespace depot::agent {

// What the agent reports about its machine: os, kernel, arch, hostname, os_release,
// non-loopback addresses, agent version and the configured tags, as the JSON text
// the site's attribute API takes.
std::string CollectAttributes(const AgentConfig& config);

struct Enrollment {
  Identity identity;
  std::string trusted_root;  // the site's root.json, to pin
  std::string attributes;    // what was reported
};

// Enrolls with `config.site` using `enroll_token`. InvalidArgument without a token
// (saying where to get one), the site's refusal (PermissionDenied for a bad token),
// Unavailable when it cannot be reached, Corruption for an answer that is not one.
core::Result<Enrollment> Enroll(const AgentConfig& config, const std::string& enroll_token);

// Persists an enrollment in `data_dir`: the pinned root first (an identity without
// its root would be unusable), then agent.json, then the attributes reported.
core::Status RecordEnrollment(core::Env* env, const std::string& data_dir, StateStore* state,
                              const AgentConfig& config, const Enrollment& enrollment);

// The pinned root's file in a data directory.
std::string TrustedRootPath(const std::string& data_dir);

// Reports the attributes when they differ from what the site last accepted (kept in
// `state`); a failure is retried at the next poll.
void SyncAttributes(StateStore* state, http::Client* site, const AgentConfig& config);

}  // namespace depot::agent
