// The agent's settings and identity, kept in DIR/agent.json (mode 0600: it holds the
// agent's credential). Internal to the agent component, apart from the structs the
// CLI fills.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/clock.h"
#include "core/env.h"
#include "core/source.h"
#include "core/status.h"

namespace depot::agent {

struct AgentConfig {
  std::string site;  // site base URL
  // More URLs of the same site (its other processes, docs/scale-out.md), tried in turn
  // when one fails.
  std::vector<std::string> more_sites;
  std::string ca;                           // CA bundle to trust for the site and DPs (private CA)
  std::string name;                         // client name; "" = the host name
  std::map<std::string, std::string> tags;  // reported as attributes tag.NAME
  core::Duration poll_interval{0};          // 0: what the site says
  // While idle, hold each poll at the site up to this long (at most 110 s): a change
  // arrives at once instead of at the next poll. 0: plain polls.
  core::Duration long_poll{0};
  std::uint64_t cache_max_bytes = 4ull << 30;
  core::Duration purge_grace = std::chrono::hours(1);       // content kept after leaving the policy
  unsigned parallel = 8;                                    // concurrent chunk downloads
  std::uint64_t max_rate = 0;                               // bytes/s per transfer, 0 = none
  core::Duration stall_timeout = std::chrono::seconds(30);  // < 1 KiB/s this long: source abandoned
  core::Duration retry_base = std::chrono::seconds(60);
  core::Duration retry_max = std::chrono::hours(6);
  int max_attempts = 10;
  core::Duration source_penalty = std::chrono::minutes(10);  // a failed source goes last this long
};

// Settings given on the command line: each one that is set replaces the stored one
// (and is saved), so a later start with fewer flags keeps the rest.
struct AgentOverrides {
  std::string site, ca, name;                          // "" = keep
  std::optional<std::vector<std::string>> more_sites;  // replaces the saved list when set
  std::map<std::string, std::string> tags;
  std::optional<core::Duration> poll_interval, long_poll, purge_grace, stall_timeout, retry_base,
      retry_max, source_penalty;
  std::optional<std::uint64_t> cache_max_bytes, max_rate;
  std::optional<unsigned> parallel;
  std::optional<int> max_attempts;
};

// Set once by enrollment, kept in agent.json.
struct Identity {
  std::string client;  // uid the site assigned
  std::string token;   // the agent credential
  std::string site_code;
};

// Opens a repository source for a URL (the network seam: tests inject faults).
using SourceFactory = std::function<core::Result<std::unique_ptr<core::RepoSource>>(
    const std::string& url, const AgentConfig& config)>;

// Reads DIR/agent.json into `config` and `id`. NotFound when there is none;
// Corruption or InvalidArgument naming the file for a malformed one.
core::Status LoadAgentConfig(core::Env* env, const std::string& data_dir, AgentConfig* config,
                             Identity* id);
// Writes DIR/agent.json (temp file, fsync, rename; mode 0600).
core::Status SaveAgentConfig(core::Env* env, const std::string& data_dir, const AgentConfig& config,
                             const Identity& id);
// `config` with every set override applied, validated. A relative --ca is made
// absolute, so the agent finds it whatever directory it is started from.
// InvalidArgument naming the setting at fault.
core::Result<AgentConfig> ApplyOverrides(AgentConfig config, const AgentOverrides& overrides);

}  // namespace depot::agent
