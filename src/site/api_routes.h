// Route registration for the site's HTTP API (internal to the site component): the
// per-request ApiCall handed to handlers, and one function per resource area that adds
// that area's routes. SiteApi calls them in order; the first route that matches wins.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "http/server.h"
#include "site/context.h"
#include "site/json.h"

namespace depot::site {

// One request as a handler sees it: who is calling, the `{}` path segments, and where
// to write the response when the handler answers by itself (long polls, 304s).
struct ApiCall {
  SiteContext& ctx;
  http::Request& req;
  Principal who;
  std::vector<std::string> params;
  http::Response* resp;
  bool handled = false;  // the handler wrote *resp itself
  // A POST that changes nothing a console shows (chunk uploads before their version,
  // previews): no Activity() for it.
  bool quiet = false;
  int status = 200;

  // The request body as a JSON object.
  core::Result<Json> Body();
  // For requests that take no fields: an empty body or `{}`; anything else is a clear
  // error naming the request (`what`), not silently ignored.
  core::Status NoFields(const std::string& what);
};

// A route handler: the JSON to answer with (status in ApiCall::status), or an error.
using RouteFn = std::function<core::Result<Json>(ApiCall&)>;
// Adds one route: method, pattern (`{}` matches one segment), least role, body limit.
using AddRouteFn = std::function<void(std::string method, std::string pattern, Role need,
                                      std::uint64_t limit, RouteFn fn)>;

// Body limit of requests that carry a few fields.
inline constexpr std::uint64_t kSmallBody = 1 << 20;

// Tokens (admin).
void AddTokenRoutes(const AddRouteFn& add);
// Packages (operator to change, read-only to look); `upload` limits chunk uploads.
void AddPackageRoutes(const AddRouteFn& add, std::uint64_t upload);
// Distribution points (admin: they carry credentials) and distributions.
void AddDpAdminRoutes(const AddRouteFn& add);
// Clients, collections, deployments.
void AddClientRoutes(const AddRouteFn& add);
// Status: messages and the overview.
void AddStatusRoutes(const AddRouteFn& add);
// DP API: a DP sees only its own assignment.
void AddDpRoutes(const AddRouteFn& add);
// Agent API: an agent sees only its own policy and status.
void AddAgentRoutes(const AddRouteFn& add);
// Child sites (admin) and the child API (docs/hierarchy.md).
void AddHierarchyRoutes(const AddRouteFn& add);
// What the web console needs beyond the rest (docs/console.md): who the caller is,
// the change stream (a long poll on the console revision), rule previews.
void AddConsoleRoutes(const AddRouteFn& add);

}  // namespace depot::site
