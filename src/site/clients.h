// Managed clients, collections, deployments and policies (internal to the site
// component).
//
// Membership of rule collections is kept current incrementally: when a client's
// attributes change, only that client is evaluated against every rule; when a
// rule changes, only that rule is evaluated against every client. Nothing scans
// periodically.
//
// A policy is everything one client must do: every applicable deployment with its
// package version, manifest id, program, schedule and content sources in order --
// DPs whose boundaries contain the client's address, then other DPs holding the
// version, then the site. It is cached per client for one catalog revision and
// answered 304 to a matching If-None-Match.
#pragma once

#include <string>

#include "http/server.h"
#include "site/context.h"
#include "site/json.h"

namespace depot::site {

// Agent API.
core::Result<Json> Enroll(SiteContext& ctx, const Principal& who, const http::Request& req,
                          const Json& body);
core::Result<Json> UpdateAttributes(SiteContext& ctx, std::int64_t client_id,
                                    const http::Request& req, const Json& body);
void HandlePolicy(SiteContext& ctx, std::int64_t client_id, const http::Request& req,
                  http::Response* resp);
core::Result<Json> AgentStatus(SiteContext& ctx, std::int64_t client_id, const Json& body);

// Admin API.
core::Result<Json> ListClients(SiteContext& ctx);
core::Result<Json> ShowClient(SiteContext& ctx, const std::string& id_or_name);
core::Result<Json> CreateCollection(SiteContext& ctx, const Json& body);
core::Result<Json> ListCollections(SiteContext& ctx);
core::Result<Json> ShowCollection(SiteContext& ctx, const std::string& name);
core::Result<Json> DeleteCollection(SiteContext& ctx, const std::string& name);
core::Result<Json> ChangeCollection(SiteContext& ctx, const std::string& name, const Json& body);
core::Result<Json> CreateDeployment(SiteContext& ctx, const Json& body);
core::Result<Json> ListDeployments(SiteContext& ctx);
core::Result<Json> ShowDeployment(SiteContext& ctx, std::int64_t id);
core::Result<Json> CancelDeployment(SiteContext& ctx, std::int64_t id);
core::Result<Json> StatusOverview(SiteContext& ctx);

// The policy document of one client (uncached), for tests and `depot client show`.
core::Result<Json> BuildPolicy(SiteContext& ctx, std::int64_t client_id);

}  // namespace depot::site
