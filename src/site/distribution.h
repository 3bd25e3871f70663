// Distribution points and the reconciler (internal to the site component).
//
// The reconciler keeps one record per (package version, DP) -- pending, syncing,
// ready or failed -- with its own attempt count and retry time. Records are created
// and removed from the assignment (distributions x active versions) and change
// state only on DP reports; a failure backs off that record alone, exponentially
// with jitter, and is one status message whose count grows, not one per retry.
// DPs pull: they long-poll their assignment and report per version. A DP that stops
// polling is probed by the site with its own per-DP backoff; nothing else changes.
#pragma once

#include <string>

#include "site/context.h"
#include "site/json.h"

namespace depot::site {

core::Result<Json> AddDp(SiteContext& ctx, const Json& body);
// The id of the DP named `name`; NotFound naming it and `depot dp list`.
core::Result<std::int64_t> DpId(catalog::Tx& tx, const std::string& name);
core::Result<Json> RemoveDp(SiteContext& ctx, const std::string& name);
core::Result<Json> ListDps(SiteContext& ctx);
core::Result<Json> ShowDp(SiteContext& ctx, const std::string& name);

// {"package": P, "to": [DP or group names, or "dp:NAME" / "group:NAME"], "remove": bool}
core::Result<Json> Distribute(SiteContext& ctx, const Json& body);

// Makes the package's records match its assignment: a pending record for every
// (active version, targeted DP) pair that lacks one; records of pairs no longer
// assigned are deleted (which cancels that work on the DP at once).
core::Status SyncRecords(SiteContext& ctx, catalog::Tx& tx, std::int64_t package_id);
core::Status DeleteRecordsOfVersion(SiteContext& ctx, catalog::Tx& tx, std::int64_t version_id);

// The DPs that are not ready, worst first, for `depot status`:
// [{"name","state","since","detail","versions":[{"package","version","state"}]}] with
// state "unreachable" (the site's probes fail; since: its last request), "failed"
// (a copy keeps failing), "withheld" (an agent reported a copy; it is re-verifying)
// or "behind" (copies pending or syncing); since: when the oldest of those began.
core::Result<Json> DpsNotReady(SiteContext& ctx);

// [{dp, state, attempts, bytes_done, bytes_total, last_error}] for one version.
core::Result<Json> VersionCoverage(SiteContext& ctx, std::int64_t version_id);
// [{"kind":"dp"|"group","name":...}] for one package.
core::Result<Json> DistributionTargets(SiteContext& ctx, std::int64_t package_id);

// The DP API. GET /api/v1/dp/assignment long-polls: with If-None-Match equal to the
// current ETag the request is parked until the assignment changes or `wait` seconds
// (default 30, at most 120) pass, then answered 304.
void HandleAssignment(SiteContext& ctx, std::int64_t dp_id, http::Request& req,
                      http::Response* resp);
// Records that DP `dp_id` spoke to the site just now (its own request: the only sign
// of life). Written in batches by FlushSeen.
void SeenDp(SiteContext& ctx, std::int64_t dp_id);

// Timer work: probe DPs that stopped polling (per-DP backoff).
void ProbeDps(SiteContext& ctx);
// Writes the last-seen times recorded since the last flush, in one transaction.
void FlushSeen(SiteContext& ctx);

// The name of a DP by id ("" if gone).
std::string DpName(SiteContext& ctx, std::int64_t dp_id);

}  // namespace depot::site
