// The catalog of status messages: every state change a depot component reports has a
// stable numeric id, a severity, a component and a text template. Ids never change
// meaning and are never reused; scripts and dashboards key on them. Ranges:
//   1000-1999 package   (site: versions created, deleted, retired, collected)
//   2000-2999 distribution (site: assignments and per-DP reconciliation)
//   3000-3999 dp        (distribution points: sync, serving, scrub, repair)
//   4000-4999 agent     (clients: download, install, cleanup)
//   5000-5999 site      (tokens, clients, collections, deployments, the server)
//   6000-6999 hierarchy (child sites: links, replication from the parent)
// Templates name parameters as {name}; FormatMessage fills them from a string map.
//
// Thread safety: immutable data.
#pragma once

#include <map>
#include <string>
#include <string_view>

namespace depot::core {

enum class Severity { kInfo, kWarning, kError };
std::string_view SeverityName(Severity s);  // "info", "warning", "error"
// Parses "info|warning|error" (also "warn"); false otherwise.
bool ParseSeverity(std::string_view s, Severity* out);

struct MessageSpec {
  int id;
  Severity severity;
  std::string_view component;  // "package", "distribution", "dp", "agent", "site", "hierarchy"
  std::string_view name;       // stable identifier, e.g. "version_created"
  std::string_view text;       // template with {param} placeholders
};

namespace msg {
// package
inline constexpr int kVersionCreated = 1001;
inline constexpr int kPackageDeleted = 1002;
inline constexpr int kVersionRetired = 1003;
inline constexpr int kContentCollected = 1004;
inline constexpr int kUploadRejected = 1005;
// distribution
inline constexpr int kAssigned = 2001;
inline constexpr int kUnassigned = 2002;
inline constexpr int kDpVersionSyncing = 2003;
inline constexpr int kDpVersionReady = 2004;
inline constexpr int kDpVersionFailed = 2005;
inline constexpr int kDpUnreachable = 2006;
inline constexpr int kDpReachable = 2007;
inline constexpr int kDpAdded = 2008;
inline constexpr int kDpRemoved = 2009;
inline constexpr int kDpVersionWithheld = 2010;
inline constexpr int kDpVersionRestored = 2011;
// dp
inline constexpr int kDpSyncComplete = 3001;
inline constexpr int kDpUpstreamRejected = 3002;
inline constexpr int kDpScrubDamage = 3003;
inline constexpr int kDpRepaired = 3004;
inline constexpr int kDpDiskFull = 3005;
inline constexpr int kDpContentPurged = 3006;
inline constexpr int kDpVersionVerified = 3007;
inline constexpr int kDpScrubPass = 3008;
// agent
inline constexpr int kAgentDownloadStarted = 4001;
inline constexpr int kAgentDownloaded = 4002;
inline constexpr int kAgentSourceFailed = 4003;
inline constexpr int kAgentSourceStale = 4004;
inline constexpr int kAgentInstallStarted = 4005;
inline constexpr int kAgentInstallSucceeded = 4006;
inline constexpr int kAgentInstallRebootRequired = 4007;
inline constexpr int kAgentInstallFailedRetry = 4008;
inline constexpr int kAgentInstallFailed = 4009;
inline constexpr int kAgentDeploymentRemoved = 4010;
inline constexpr int kAgentContentPurged = 4011;
inline constexpr int kAgentVerificationFailed = 4012;
// site
inline constexpr int kSiteStarted = 5001;
inline constexpr int kTokenCreated = 5002;
inline constexpr int kTokenRevoked = 5003;
inline constexpr int kClientEnrolled = 5004;
inline constexpr int kClientAttributesChanged = 5005;
inline constexpr int kCollectionChanged = 5006;
inline constexpr int kDeploymentCreated = 5007;
inline constexpr int kDeploymentCancelled = 5008;
inline constexpr int kClockAhead = 5009;
// hierarchy
inline constexpr int kChildAdded = 6001;
inline constexpr int kChildRemoved = 6002;
inline constexpr int kLinkDegraded = 6003;
inline constexpr int kLinkFailed = 6004;
inline constexpr int kLinkActive = 6005;
inline constexpr int kVersionReplicated = 6006;
inline constexpr int kParentRejected = 6007;
inline constexpr int kReplicationFailed = 6008;
}  // namespace msg

// The spec of `id`, or nullptr for an unknown id.
const MessageSpec* FindMessage(int id);
// Every spec, ordered by id (for docs and `depot messages --catalog`).
const MessageSpec* AllMessages(std::size_t* count);

// Fills the template of `id` with `params`; unknown placeholders are left as
// "{name}". An unknown id gives "message <id>".
std::string FormatMessage(int id, const std::map<std::string, std::string>& params);

}  // namespace depot::core
