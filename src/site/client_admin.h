// Managed clients as operators see them (internal to the site component).
#pragma once

#include <string>

#include "site/context.h"
#include "site/json.h"

namespace depot::site {

// GET /api/v1/clients[?q=&limit=]: the clients (this site's, then the subtree's)
// matching search `q` ("key=value": that attribute holds value; other text: in the
// name, id or any attribute value; case-insensitive; empty: all), at most `limit`
// of them (0: no limit), each with its attributes and whether it was seen within
// offline_after; `total` counts every client, `matched` those the search matched.
core::Result<Json> ListClients(SiteContext& ctx, const std::string& q = "", std::int64_t limit = 0);
// GET /api/v1/clients/{id or name}: attributes, collections, reports, current policy.
// NotFound for an unknown client, InvalidArgument for a name several share.
core::Result<Json> ShowClient(SiteContext& ctx, const std::string& id_or_name);

}  // namespace depot::site
