// A durable message outbox for a component that reports to its site (a DP, an
// agent): status messages are appended inside the caller's transaction, so a state
// change and the message about it are committed together, and delivered later, at
// least once, in sequence order. The site drops duplicates by (sender, seq).
//
// The owner's schema must have the tables of kOutboxTablesSql below, the one
// definition: a new component's first migration embeds it; the agent's and the DP's
// shipped migrations (immutable) built the same tables, and CheckOutboxSchema, run
// when they open their state, proves it.
//
// Thread safety: as the Db (any thread).
#pragma once

#include <cstdint>
#include <map>
#include <string>

#include "catalog/db.h"
#include "core/status.h"

namespace depot::catalog {

// The outbox's tables, generated from the column list in outbox.cc (the one
// definition): meta (key, value) holds 'next_seq'; outbox (seq, code, time_ms,
// package, version, deployment, params) the undelivered messages.
std::string OutboxTablesSql();

// Ok when `db`'s meta and outbox tables have exactly the columns (names, types,
// NOT NULL, primary key) of the definition; Corruption naming the difference
// otherwise (a migration that drifted from it). SQLite only (InvalidArgument else).
core::Status CheckOutboxSchema(Db* db);

struct OutboxMessage {
  int code = 0;  // a code from core/messages.h
  std::int64_t time_ms = 0;
  std::string package;          // "" for none
  std::int64_t version = 0;     // 0 for none
  std::int64_t deployment = 0;  // 0 for none
  std::map<std::string, std::string> params;
};

// Appends `m` with the next sequence number (returned). Errors from the database.
core::Result<std::int64_t> AppendOutbox(Tx& tx, const OutboxMessage& m);

// A batch of the oldest undelivered messages as the JSON array the site's message
// endpoints take ([{"seq","code","time_ms","package"?,"version"?,"deployment"?,
// "params"}]), with the last sequence number in it; empty `json` array ("[]") and
// last_seq 0 when there is nothing to send.
struct OutboxBatch {
  std::string json;
  std::size_t count = 0;
  std::int64_t last_seq = 0;
};
core::Result<OutboxBatch> ReadOutbox(Db* db, std::size_t limit);

// Removes every message up to and including `last_seq` (the site acknowledged them).
core::Status AckOutbox(Db* db, std::int64_t last_seq);

// Undelivered messages.
core::Result<std::int64_t> OutboxDepth(Db* db);

}  // namespace depot::catalog
