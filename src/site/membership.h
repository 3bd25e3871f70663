// What a client says about itself and which rule collections that puts it in
// (internal to the site component). Membership of rule collections is kept current
// incrementally: when a client's attributes change, only that client is evaluated
// against every rule; when a rule changes, only that rule is evaluated against every
// client. Nothing scans periodically.
#pragma once

#include <string>
#include <vector>

#include "catalog/db.h"
#include "site/json.h"
#include "site/rules.h"

namespace depot::site {

// {"os":"linux","ips":["10.0.0.5"],"tags":{"site":"berlin"}} -> attributes, with tags
// flattened to "tag.site". InvalidArgument naming the attribute for a bad name, type
// or length, or more than 64 attributes.
core::Result<Attributes> ParseAttributes(const Json& j);
// Attributes as the catalog and the API show them (single values unwrapped).
Json AttributesJson(const Attributes& a);
// The attributes stored for a client (empty when unreadable).
Attributes LoadAttributes(const std::string& text);
// Stored attributes (a client row's `attributes` text) as the API shows them: the
// JSON object as stored, {} when unreadable.
Json StoredAttributesJson(const std::string& text);

// Re-evaluates every rule collection for one client, in `tx`.
core::Status EvaluateClient(catalog::Tx& tx, std::int64_t client_id, const Attributes& attrs);
// Re-evaluates one rule against every client, in `tx`; returns the member count.
core::Result<std::int64_t> EvaluateRule(catalog::Tx& tx, std::int64_t collection_id,
                                        const Rule& rule);
// Resolves client uids or names to ids; NotFound for an unknown one, InvalidArgument
// for a name several clients share (listing their ids).
core::Result<std::vector<std::int64_t>> ResolveClients(catalog::Tx& tx,
                                                       const std::vector<std::string>& refs);

}  // namespace depot::site
