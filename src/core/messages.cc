#include "core/messages.h"

#include <algorithm>
#include <iterator>

namespace depot::core {
namespace {

using S = Severity;

// Ordered by id (FindMessage bisects).
constexpr MessageSpec kMessages[] = {
    {msg::kVersionCreated, S::kInfo, "package", "version_created",
     "Package {package} version {version} created: {files} files, {bytes} bytes, manifest "
     "{manifest_id}"},
    {msg::kPackageDeleted, S::kInfo, "package", "package_deleted",
     "Package {package} deleted: removed from every assignment and policy; its content is "
     "collected after {grace}"},
    {msg::kVersionRetired, S::kInfo, "package", "version_retired",
     "Package {package} version {version} retired ({reason})"},
    {msg::kContentCollected, S::kInfo, "package", "content_collected",
     "Content library collected {chunks} unreferenced chunks ({bytes} bytes)"},
    {msg::kUploadRejected, S::kError, "package", "upload_rejected",
     "Upload of package {package} rejected: {error}"},
    {msg::kAssigned, S::kInfo, "distribution", "assigned",
     "Package {package} assigned to {target}"},
    {msg::kUnassigned, S::kInfo, "distribution", "unassigned",
     "Package {package} no longer assigned to {target}"},
    {msg::kDpVersionSyncing, S::kInfo, "distribution", "dp_version_syncing",
     "DP {dp} started copying package {package} version {version}"},
    {msg::kDpVersionReady, S::kInfo, "distribution", "dp_version_ready",
     "DP {dp} holds package {package} version {version} ({bytes} bytes)"},
    {msg::kDpVersionFailed, S::kWarning, "distribution", "dp_version_failed",
     "DP {dp} failed to copy package {package} version {version}: {error} (next retry "
     "{next_retry})"},
    {msg::kDpUnreachable, S::kWarning, "distribution", "dp_unreachable",
     "DP {dp} {silence} and does not answer at {url}: {error}"},
    {msg::kDpReachable, S::kInfo, "distribution", "dp_reachable", "DP {dp} is reachable again"},
    {msg::kDpAdded, S::kInfo, "distribution", "dp_added", "DP {dp} added at {url}"},
    {msg::kDpRemoved, S::kInfo, "distribution", "dp_removed",
     "DP {dp} removed; its work was cancelled"},
    {msg::kDpVersionWithheld, S::kWarning, "distribution", "dp_version_withheld",
     "DP {dp} withheld from policies for package {package} version {version}: client {client} "
     "found it {problem}; the DP is asked to re-verify it"},
    {msg::kDpVersionRestored, S::kInfo, "distribution", "dp_version_restored",
     "DP {dp} re-verified package {package} version {version}; it is back in policies"},
    {msg::kDpSyncComplete, S::kInfo, "dp", "sync_complete",
     "DP {dp} finished syncing package {package} version {version}"},
    {msg::kDpUpstreamRejected, S::kWarning, "dp", "upstream_rejected",
     "DP {dp} rejected {object} from {upstream}: {error}"},
    {msg::kDpScrubDamage, S::kError, "dp", "scrub_damage",
     "DP {dp} found {object} damaged: {error}"},
    {msg::kDpRepaired, S::kInfo, "dp", "repaired", "DP {dp} repaired {object} from {upstream}"},
    {msg::kDpDiskFull, S::kError, "dp", "disk_full", "DP {dp} is out of disk space: {error}"},
    {msg::kDpContentPurged, S::kInfo, "dp", "content_purged",
     "DP {dp} purged package {package} version {version}"},
    {msg::kDpVersionVerified, S::kInfo, "dp", "version_verified",
     "DP {dp} re-verified package {package} version {version} at the site's request: {checked} "
     "chunks checked, {damaged} damaged, {repaired} repaired"},
    {msg::kDpScrubPass, S::kInfo, "dp", "scrub_pass",
     "DP {dp} scrubbed {chunks} chunks ({bytes} bytes) and {manifests} manifests: {damaged} "
     "damaged, {repaired} repaired"},
    {msg::kAgentDownloadStarted, S::kInfo, "agent", "download_started",
     "Client {client} started downloading package {package} version {version}"},
    {msg::kAgentDownloaded, S::kInfo, "agent", "downloaded",
     "Client {client} downloaded and verified package {package} version {version}"},
    {msg::kAgentSourceFailed, S::kWarning, "agent", "source_failed",
     "Client {client} could not use {source} for package {package} version {version}: "
     "{error}"},
    {msg::kAgentSourceStale, S::kWarning, "agent", "source_stale",
     "Client {client} needs package {package} version {version} but {source} has only "
     "version {source_version}"},
    {msg::kAgentInstallStarted, S::kInfo, "agent", "install_started",
     "Client {client} started program {program} of package {package} version {version}"},
    {msg::kAgentInstallSucceeded, S::kInfo, "agent", "install_succeeded",
     "Client {client} installed package {package} version {version} (exit code "
     "{exit_code})"},
    {msg::kAgentInstallRebootRequired, S::kInfo, "agent", "install_reboot_required",
     "Client {client} installed package {package} version {version}; a reboot is required"},
    {msg::kAgentInstallFailedRetry, S::kWarning, "agent", "install_failed_retry",
     "Client {client} failed to install package {package} version {version}: {error}; retry "
     "{next_retry}"},
    {msg::kAgentInstallFailed, S::kError, "agent", "install_failed",
     "Client {client} failed to install package {package} version {version}: {error}"},
    {msg::kAgentDeploymentRemoved, S::kInfo, "agent", "deployment_removed",
     "Client {client} stopped work on deployment {deployment}: no longer in its policy"},
    {msg::kAgentContentPurged, S::kInfo, "agent", "cache_purged",
     "Client {client} purged package {package} version {version} from its cache"},
    {msg::kAgentVerificationFailed, S::kError, "agent", "verification_failed",
     "Client {client} rejected {object} from {source}: {error}"},
    {msg::kSiteStarted, S::kInfo, "site", "site_started", "Site {site} started on {listen}"},
    {msg::kTokenCreated, S::kInfo, "site", "token_created", "Token {token} ({kind}) created"},
    {msg::kTokenRevoked, S::kInfo, "site", "token_revoked", "Token {token} revoked"},
    {msg::kClientEnrolled, S::kInfo, "site", "client_enrolled",
     "Client {client} ({name}) enrolled from {address}"},
    {msg::kClientAttributesChanged, S::kInfo, "site", "client_attributes_changed",
     "Client {client} reported new attributes; collections re-evaluated"},
    {msg::kCollectionChanged, S::kInfo, "site", "collection_changed",
     "Collection {collection} {change} ({members} members)"},
    {msg::kDeploymentCreated, S::kInfo, "site", "deployment_created",
     "Deployment {deployment} of package {package} ({kind}) to collection {collection} "
     "created"},
    {msg::kDeploymentCancelled, S::kInfo, "site", "deployment_cancelled",
     "Deployment {deployment} cancelled"},
    {msg::kClockAhead, S::kWarning, "site", "clock_ahead",
     "The clock of {sender} is {ahead} ahead of the site's: its messages are dated when they "
     "arrived (the time it reported is kept as reported_time); correct its clock (NTP)"},
    {msg::kChildAdded, S::kInfo, "hierarchy", "child_added", "Child site {child} added"},
    {msg::kChildRemoved, S::kInfo, "hierarchy", "child_removed",
     "Child site {child} removed: its feed and reports are refused and its subtree's records "
     "are gone"},
    {msg::kLinkDegraded, S::kWarning, "hierarchy", "link_degraded",
     "Link {link} degraded: {failures} consecutive failed contacts (last: {error})"},
    {msg::kLinkFailed, S::kError, "hierarchy", "link_failed",
     "Link {link} failed: {failures} consecutive failed contacts (last: {error})"},
    {msg::kLinkActive, S::kInfo, "hierarchy", "link_active", "Link {link} is active again"},
    {msg::kVersionReplicated, S::kInfo, "hierarchy", "version_replicated",
     "Package {package} version {version} replicated from the parent site {parent}: "
     "{transfer_bytes} bytes moved"},
    {msg::kParentRejected, S::kWarning, "hierarchy", "parent_rejected",
     "The parent site {parent} served {object}, which failed verification: {error}"},
    {msg::kReplicationFailed, S::kWarning, "hierarchy", "replication_failed",
     "Replication from the parent site {parent} failed: {error} (next retry {next_retry})"},
};

}  // namespace

std::string_view SeverityName(Severity s) {
  switch (s) {
    case Severity::kInfo:
      return "info";
    case Severity::kWarning:
      return "warning";
    case Severity::kError:
      return "error";
  }
  return "info";
}

bool ParseSeverity(std::string_view s, Severity* out) {
  if (s == "info") {
    *out = Severity::kInfo;
  } else if (s == "warning" || s == "warn") {
    *out = Severity::kWarning;
  } else if (s == "error") {
    *out = Severity::kError;
  } else {
    return false;
  }
  return true;
}

const MessageSpec* FindMessage(int id) {
  auto it = std::lower_bound(std::begin(kMessages), std::end(kMessages), id,
                             [](const MessageSpec& m, int v) { return m.id < v; });
  return it != std::end(kMessages) && it->id == id ? &*it : nullptr;
}

const MessageSpec* AllMessages(std::size_t* count) {
  *count = std::size(kMessages);
  return kMessages;
}

std::string FormatMessage(int id, const std::map<std::string, std::string>& params) {
  const MessageSpec* spec = FindMessage(id);
  if (spec == nullptr) return "message " + std::to_string(id);
  std::string out;
  std::string_view t = spec->text;
  while (!t.empty()) {
    auto open = t.find('{');
    if (open == std::string_view::npos) {
      out.append(t);
      break;
    }
    auto close = t.find('}', open);
    if (close == std::string_view::npos) {
      out.append(t);
      break;
    }
    out.append(t.substr(0, open));
    std::string key(t.substr(open + 1, close - open - 1));
    auto it = params.find(key);
    if (it != params.end()) {
      out.append(it->second);
    } else {
      out.append(t.substr(open, close - open + 1));
    }
    t.remove_prefix(close + 1);
  }
  return out;
}

}  // namespace depot::core
