// The agent API of the site (internal to the site component): enrollment, attribute
// updates, policies and status reports.
//
// A policy is everything one client must do: every applicable deployment with its
// package version, manifest id, program, schedule and content sources in order --
// DPs whose boundaries contain the client's address, then other DPs holding the
// version (only ready copies), then the site. It is cached per client for one
// catalog revision and answered 304 to a matching If-None-Match.
#pragma once

#include <string>

#include "http/server.h"
#include "site/context.h"
#include "site/json.h"

namespace depot::site {

// POST /api/v1/agent/enroll (enroll token): a new client and its credential.
core::Result<Json> Enroll(SiteContext& ctx, const Principal& who, const http::Request& req,
                          const Json& body);
// POST /api/v1/agent/attributes: re-evaluates the client's rule collections on a change.
core::Result<Json> UpdateAttributes(SiteContext& ctx, std::int64_t client_id,
                                    const http::Request& req, const Json& body);
// GET /api/v1/agent/policy, with ETag and 304.
void HandlePolicy(SiteContext& ctx, std::int64_t client_id, const http::Request& req,
                  http::Response* resp);
// POST /api/v1/agent/status: messages (idempotent by sequence) and deployment reports
// (only a newer report replaces an older one).
core::Result<Json> AgentStatus(SiteContext& ctx, std::int64_t client_id, const Json& body);

// The policy document of one client (uncached), for tests and `depot client show`.
core::Result<Json> BuildPolicy(SiteContext& ctx, std::int64_t client_id);

}  // namespace depot::site
