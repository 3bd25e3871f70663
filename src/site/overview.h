// `depot status`: the whole site at a glance (internal to the site component).
#pragma once

#include "site/context.h"
#include "site/json.h"

namespace depot::site {

// GET /api/v1/status: packages with DP coverage, DPs and those not ready, the
// distribution queue, active deployments with client counts, silent clients.
core::Result<Json> StatusOverview(SiteContext& ctx);

}  // namespace depot::site
