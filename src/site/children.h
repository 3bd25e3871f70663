// The parent's side of the hierarchy (internal to the site component,
// docs/hierarchy.md): child sites, what each one pulls (its feed), and the health of
// each link.
//
// A child pulls, the way a DP does: it long-polls its feed -- the packages assigned to
// it with their active versions, the collections, the deployments of those packages
// and its link's bandwidth schedule -- and copies content from the parent's public
// /repo/ tree, verified against the top site's signatures. Nothing is queued at the
// parent for a child, so nothing can pile up here when a child is down.
//
// Thread safety: every function may be called from any thread (the catalog
// serialises writers).
#pragma once

#include <string>

#include "http/server.h"
#include "site/context.h"
#include "site/json.h"

namespace depot::site {

// Link health thresholds (docs/hierarchy.md), as Configuration Manager counts them:
// consecutive failed contacts before a link is degraded, then failed.
inline constexpr std::int64_t kLinkDegradedAfter = 12;
inline constexpr std::int64_t kLinkFailedAfter = 24;

// "active", "degraded" or "failed" for `failures` consecutive failed contacts.
const char* LinkHealth(std::int64_t failures);

// Registers the /metrics collectors of this site's links: each child's health and
// silence, the link to the parent (state, failures, versions and bytes behind), and
// each DP's reachability. Call once at start; `ctx` must outlive its metrics.
void AddLinkMetrics(SiteContext& ctx);

// Admin API. {"code", "max_rate" (bytes/s, 0: none), "windows" ([{start, duration,
// tz}]), "all_packages"}: adds a child and returns its token (shown once).
core::Result<Json> AddChild(SiteContext& ctx, const Json& body);
core::Result<Json> ListChildren(SiteContext& ctx);
core::Result<Json> ShowChild(SiteContext& ctx, const std::string& code);
// Changes the schedule or `all_packages`; the child applies it on its next poll.
core::Result<Json> ChangeChild(SiteContext& ctx, const std::string& code, const Json& body);
// Revokes the child's token (its feed and reports are refused from now on: all its
// work stops at once), drops its distributions and its subtree's records.
core::Result<Json> RemoveChild(SiteContext& ctx, const std::string& code);

// The child API. The trust a child pins at `site init --parent`: the root (exact
// bytes), the parent's code and its library settings.
core::Result<Json> ChildTrust(SiteContext& ctx);
// GET /api/v1/child/feed long-polls like the DP assignment: with If-None-Match equal
// to the current ETag the request is parked until the feed changes or `wait`
// seconds (default 30, at most 120) pass, then answered 304.
void HandleChildFeed(SiteContext& ctx, std::int64_t child_id, http::Request& req,
                     http::Response* resp);
// The feed of child `child_id` (see the header comment), with "etag".
core::Result<Json> ChildFeed(SiteContext& ctx, std::int64_t child_id);

// Timer work at a parent: moves each child's link health by how long it has been
// silent (one missed contact per minute without a feed poll or a report) and by the
// failures the child itself reports; a transition is one message (6003-6005).
void CheckChildren(SiteContext& ctx);

// For `depot status`: {"parent": this site's link to its parent (at a child),
// "children": every child with its health, worst first, "subtree": site -> clients,
// DPs not ready}.
core::Result<Json> HierarchyOverview(SiteContext& ctx);

}  // namespace depot::site
