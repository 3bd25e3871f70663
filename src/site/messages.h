// The status message store (internal to the site component): the site's own
// messages, batches ingested from DPs and agents, and queries (docs/messages.md).
#pragma once

#include <map>
#include <optional>
#include <string>

#include "catalog/db.h"
#include "http/server.h"
#include "site/context.h"
#include "site/json.h"

namespace depot::site {

struct MessageSubject {
  std::string package;
  std::optional<std::int64_t> version;
  std::string dp;
  std::string client;
  std::optional<std::int64_t> deployment;
};

// Records message `code` from the site in `tx`. With a `dedup_key`, a message with
// the same key becomes one record whose count grows (a retry is a counter, not a new
// message); its text, params and last_at are refreshed.
core::Status PostMessage(SiteContext& ctx, catalog::Tx& tx, int code, const MessageSubject& subject,
                         const std::map<std::string, std::string>& params,
                         const std::string& dedup_key = {});

// Ingests {"messages":[{"seq":N,"code":C,"time_ms":T,"package":...,"version":...,
// "deployment":...,"params":{...}}]} from a DP or agent. Idempotent by (source, seq):
// a re-sent batch changes nothing. Codes must belong to the sender's component.
// Returns {"accepted":n,"duplicates":m,"last_seq":k}.
core::Result<Json> IngestMessages(SiteContext& ctx, const std::string& source,
                                  const std::string& component, const std::string& dp_name,
                                  const std::string& client_uid, const Json& body);

// GET /api/v1/messages?since=&severity=&package=&dp=&client=&deployment=&code=&limit=
core::Result<Json> QueryMessages(SiteContext& ctx, const http::Request& req);

}  // namespace depot::site
