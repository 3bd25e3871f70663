// What DPs and agents report about the copies of versions on DPs, and how it moves
// the reconciliation records (internal to the site component).
//
// One record per (package version, DP), driven by a transition table (RecordNext):
//
//   pending ──DP syncing──▶ syncing ──DP ready──▶ ready ──agent: stale/bad bytes──▶ verifying
//      │                       │                   ▲  │                                │
//      └──────DP failed──▶ failed ◀──DP failed─────┘  └─DP syncing (re-sync) ▶ syncing  │
//                              └──DP ready─▶ ready ◀──DP ready, verified the latest request──┘
//
// Only ready records are sources in agents' policies. An agent that finds a DP stale
// (4004) or serving bad bytes (4012) gets the record withheld ('verifying') at once,
// so the next agent never touches that copy; the DP's assignment then asks it to
// re-verify the version (the reported chunks first) and repair it, and the record
// comes back only with a ready report that names that request (verify_seq). While
// verifying, the DP's syncing and failed reports update progress, errors and the
// record's backoff, never its state.
#pragma once

#include <map>
#include <optional>
#include <string>

#include "catalog/db.h"
#include "site/context.h"
#include "site/json.h"

namespace depot::site {

enum class RecordState { kPending, kSyncing, kReady, kFailed, kVerifying };
enum class RecordEvent {
  kDpSyncing,       // the DP is copying (or re-checking) the version
  kDpReady,         // the DP holds it complete and verified
  kDpFailed,        // the DP's copy failed; it backs off
  kDpReadyUnasked,  // while verifying: a ready report that does not answer the latest request
  kAgentReported,   // an agent found the DP stale or its bytes bad
};

std::string_view RecordStateName(RecordState s);  // "pending", ..., "verifying"
std::optional<RecordState> ParseRecordState(std::string_view s);
// The transition table above: the state `event` moves `from` to, or nullopt when the
// event does not apply (nothing changes).
std::optional<RecordState> RecordNext(RecordState from, RecordEvent event);

// POST /api/v1/dp/report {"versions":[{"package","version","state","bytes_done",
// "bytes_total","chunks_done","chunks_total","error","verified"}]}. `verified`: the
// verify request (seq) the DP has answered for that version.
core::Result<Json> DpReport(SiteContext& ctx, std::int64_t dp_id, const Json& body);

// Called for each new message an agent delivers (inside the ingesting transaction).
// A 4004 (stale) or 4012 (bad bytes) naming a DP's repository as its `source`
// withholds that DP's record of the version from policies and asks the DP to
// re-verify it, the chunks named in `chunks` (comma-separated ids) first -- provided
// the reporting client is targeted by a live deployment of the package (a client
// cannot steer what it is not given). Sets *changed when a record changed.
core::Status OnAgentReport(SiteContext& ctx, catalog::Tx& tx, const std::string& client_uid,
                           int code, const std::string& package,
                           std::optional<std::int64_t> version,
                           const std::map<std::string, std::string>& params, bool* changed);

}  // namespace depot::site
