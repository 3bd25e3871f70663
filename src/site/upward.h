// What flows up a hierarchy (internal to the site component, docs/hierarchy.md): the
// child's side (what changed, as a durable queue) and the parent's side (applying a
// child's report).
//
// Durable and bounded: a change to a client, a client's deployment report, a DP's
// state, a status message or the link marks that thing in `up_dirty` inside the
// transaction that changed it, with the next number of a site-wide sequence. Each
// thing has one row, so the queue holds at most one entry per thing however often it
// changes. The child sends the current state of the oldest marked things in batches;
// the parent applies each item whose sequence number is above the highest it applied
// from that child, in one transaction, and answers that number; the child then drops
// the rows at or below it (a thing marked again meanwhile has a higher number and
// stays). A batch sent twice (a kill after the parent applied it) is applied once:
// its items carry absolute state -- a message's count, not an increment.
//
// Thread safety: any thread; the catalog serialises writers.
#pragma once

#include <string>
#include <string_view>

#include "catalog/db.h"
#include "site/context.h"
#include "site/json.h"

namespace depot::site {

// At a child site: marks thing `key` of `kind` ("client", "cd", "dp", "msg", "link",
// and for things of the subtree "tclient", "tcd", "tdp", "tlink") changed. A no-op
// at the top site.
core::Status MarkUp(SiteContext& ctx, catalog::Tx& tx, std::string_view kind,
                    const std::string& key);

// The keys the kinds use.
std::string ClientDeploymentKey(const std::string& client_uid, std::int64_t deployment);
std::string TreeKey(const std::string& site, const std::string& rest);

struct UpBatch {
  Json items = Json::array();
  std::int64_t last_seq = 0;  // the highest sequence number in `items`
  std::int64_t pending = 0;   // marked things not acknowledged yet (including these)
};
// The current state of the oldest `max_items` marked things, stopping early once the
// items pass kMaxUpBatchBytes serialised (the parent takes 16 MiB per report; one item
// is at most about 8 MiB).
inline constexpr std::size_t kMaxUpBatchBytes = 6u << 20;
core::Result<UpBatch> BuildUpBatch(SiteContext& ctx, std::size_t max_items);
// Drops the marks the parent acknowledged (sequence numbers up to `acked`).
core::Status AckUp(SiteContext& ctx, std::int64_t acked);

// At a parent: applies a report of child `child_id` ({"items": [...]}) and answers
// {"acked": N}. InvalidArgument naming the item at fault (nothing is applied then).
core::Result<Json> ApplyChildReport(SiteContext& ctx, std::int64_t child_id, const Json& body);

}  // namespace depot::site
