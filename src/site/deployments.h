// Deployments: a package's program for a collection, required or available, with a
// schedule (start, deadline, maintenance windows), following the newest version or
// pinned to one (internal to the site component).
#pragma once

#include <string>

#include "site/context.h"
#include "site/json.h"

namespace depot::site {

// Checks a list of daily windows ([{"start": "HH:MM", "duration": "4h", "tz": zone}],
// at most 16) and returns it normalised. InvalidArgument naming the window at fault.
// Deployments' maintenance windows and links' bandwidth windows both use it.
core::Result<Json> ParseWindows(const Json* raw);

// InvalidArgument when the program is not in the deployed version, for a bad kind,
// time or window; NotFound for an unknown package or collection.
core::Result<Json> CreateDeployment(SiteContext& ctx, const Json& body);
// Every deployment with its client counts per state.
core::Result<Json> ListDeployments(SiteContext& ctx);
// One deployment: its counts, windows and client reports (the first 1000 here and
// 10000 of the subtree); `with_attributes` adds each reporting client's attributes
// (the console's attribute columns). NotFound for an unknown id.
core::Result<Json> ShowDeployment(SiteContext& ctx, std::int64_t id, bool with_attributes = false);
// Out of every policy at once.
core::Result<Json> CancelDeployment(SiteContext& ctx, std::int64_t id);

}  // namespace depot::site
