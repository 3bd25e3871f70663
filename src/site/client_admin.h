// Managed clients as operators see them (internal to the site component).
#pragma once

#include <string>

#include "site/context.h"
#include "site/json.h"

namespace depot::site {

// GET /api/v1/clients: every client with its attributes and whether it was seen
// within offline_after.
core::Result<Json> ListClients(SiteContext& ctx);
// GET /api/v1/clients/{id or name}: attributes, collections, reports, current policy.
// NotFound for an unknown client, InvalidArgument for a name several share.
core::Result<Json> ShowClient(SiteContext& ctx, const std::string& id_or_name);

}  // namespace depot::site
