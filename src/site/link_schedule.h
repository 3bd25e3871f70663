// Bandwidth schedules of the links below a site (internal to the site component,
// docs/hierarchy.md): a child site's link and a DP's link each have a rate shared by
// all their transfers and daily windows outside which only metadata and status move.
// They are set here and carried down in the child's feed or the DP's assignment, so
// a change applies at the next poll, without a restart.
//
// Thread safety: every function may be called from any thread (the catalog
// serialises writers).
#pragma once

#include <optional>
#include <string>

#include "catalog/db.h"
#include "site/context.h"
#include "site/json.h"

namespace depot::site {

// A schedule as an add or change request gives it; an absent field is left as is.
struct LinkSchedule {
  std::optional<std::int64_t> max_rate;  // bytes/s, 0: none
  std::optional<Json> windows;           // [{start, duration_s, tz}], checked
};

// Reads "max_rate" and "windows" from `r` and checks them; the caller reads its own
// fields and calls r.Finish() first (`finish`), so an unknown field is named before
// a bad window is. InvalidArgument naming the field at fault.
core::Result<LinkSchedule> ReadLinkSchedule(ObjectReader& r,
                                            const std::function<core::Status()>& finish);

// Writes the given fields of `s` to the row `id` of `table` ("children" or "dps").
core::Status StoreLinkSchedule(catalog::Tx& tx, const char* table, std::int64_t id,
                               const LinkSchedule& s);

// The schedule as the feed and the assignment carry it: {"max_rate", "windows"}, from
// the stored columns.
Json LinkScheduleJson(std::int64_t max_rate, const std::string& windows_text);

// Admin API: changes a DP's schedule ({"max_rate", "windows"}); the DP applies it at
// its next assignment poll, which this change answers at once. NotFound for an
// unknown DP.
core::Result<Json> ChangeDp(SiteContext& ctx, const std::string& name, const Json& body);

}  // namespace depot::site
