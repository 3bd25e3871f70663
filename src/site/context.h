// State shared by the site's modules (internal to the site component). One
// SiteContext per running site; every module is a set of functions over it.
//
// Thread safety: the members are either immutable after start, internally
// synchronised (Db, Registry, Server, atomics) or guarded by the mutex next to them.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>

#include "catalog/db.h"
#include "core/clock.h"
#include "core/env.h"
#include "core/metrics.h"
#include "http/server.h"
#include "http/static_files.h"
#include "repo/repository.h"
#include "site/config.h"
#include "store/chunk_filter.h"
#include "store/chunk_intake.h"

namespace depot::site {

enum class Role { kNone, kReadOnly, kOperator, kAdmin, kEnroll, kDp, kAgent, kChild };

// Who is calling: resolved from the bearer token of a request.
struct Principal {
  Role role = Role::kNone;
  std::int64_t token_id = 0;
  std::int64_t subject_id = 0;  // the DP or client the token belongs to
  std::string name;             // the token's name (for messages)
};

struct CachedToken {
  Principal principal;
  std::int64_t expires_at_ms = 0;  // 0: never
  core::MonoTime cached_at;        // ctx.clock->Monotonic()
  core::MonoTime last_use_written;
};

struct CachedPolicy {
  std::uint64_t revision = 0;
  std::string etag;
  std::string body;
};

struct SiteContext {
  core::Env* env = nullptr;
  core::Clock* clock = nullptr;
  std::string data_dir;
  SiteConfig config;
  std::string public_url;  // base URL DPs and agents use, no trailing slash
  std::unique_ptr<catalog::Db> db;
  std::unique_ptr<repo::Repository> repo;
  std::unique_ptr<http::StaticTree> repo_tree;  // the library's public tree, served at /repo/
  // Uploaded chunks, verified and made durable in group commits; a version commit
  // flushes it first. Declared after `repo` so it is destroyed (and flushed) first.
  std::unique_ptr<store::ChunkIntake> intake;
  // Which chunks the library may hold: lets a missing-chunk query skip the lookup of
  // ids it certainly lacks. Every chunk an upload stages is added first; loaded from
  // the store by the housekeeping thread at start (until then it answers "maybe").
  std::unique_ptr<store::ChunkFilter> chunk_filter;
  core::Registry metrics;
  http::Server* server = nullptr;  // set while serving; under server_mu

  // Bumped by every change that can alter some client's policy or DP's assignment;
  // policy and assignment caches are valid for one revision.
  std::atomic<std::uint64_t> revision{1};

  // The console's revision: the time (microseconds, strictly increasing here) this
  // process last learnt of a change; GET /api/v1/changes answers when it passes the
  // caller's. Each process keeps its own; they agree to within their clocks' skew.
  std::atomic<std::int64_t> console_revision{0};

  // Serialises signing within this process; LockSigner (processes.h) takes it and
  // the catalog's lock that excludes the other processes.
  std::mutex publish_mu;

  std::mutex tokens_mu;
  std::unordered_map<std::string, CachedToken> token_cache;  // by secret hash
  // Bumped by every ForgetCachedTokens: a lookup that read the catalog before a
  // revocation committed must not put what it read into the cache after it.
  std::uint64_t token_generation = 0;  // under tokens_mu

  std::mutex policy_mu;
  std::unordered_map<std::int64_t, CachedPolicy> policy_cache;  // by client id

  // last_seen_at of DPs and clients and last_used_at of tokens: recorded in memory on every request
  // and written in one transaction per flush (FlushSeen), not one per poll.
  std::mutex seen_mu;
  std::unordered_map<std::int64_t, std::int64_t> dp_seen;      // dp id -> ms
  std::unordered_map<std::int64_t, std::int64_t> client_seen;  // client id -> ms
  std::unordered_map<std::int64_t, std::int64_t> token_used;   // token id -> ms (last_used_at)

  std::mutex root_mu;
  std::string trusted_root;  // newest root.json, handed to enrolling agents

  // Counters for /metrics.
  core::Counter* chunks_received = nullptr;
  core::Counter* chunk_bytes_received = nullptr;
  core::Counter* chunks_rejected = nullptr;
  core::Counter* policy_polls = nullptr;
  core::Counter* policy_not_modified = nullptr;

  std::int64_t NowMs() const {
    return std::chrono::duration_cast<std::chrono::milliseconds>(clock->Now().time_since_epoch())
        .count();
  }
  // Version creations of this process between reserving a number and recording the
  // version: while any runs, recovery leaves this process's reservations alone.
  std::atomic<int> reserving{0};

  // This process's id in site_processes (processes.h): random, new at every start.
  std::string process_id;
  // Leases this process holds, by "process id/lease name": until when (wall ms), as
  // last written (HoldLease, Heartbeat). Lets HoldLease skip the catalog while a lease
  // has more than half its ttl left.
  std::mutex leases_mu;
  std::unordered_map<std::string, std::int64_t> leases_until;  // under leases_mu
  // Guards `server` for threads that wake long polls (the catalog's listener).
  std::mutex server_mu;

  // Marks every cached policy/assignment stale and wakes long polls, in every process
  // on the catalog (a "changed" notification; processes.cc). Call after the change
  // committed.
  void Changed();
  // The same in this process only (what the notification does on arrival).
  void ChangedHere();
  // Something a console shows changed (a report, a message, a DP's health): wakes the
  // console's change streams in every process (an "activity" notification). Changed
  // does this too. Call after the change committed.
  void Activity();
  // The same in this process only: advances console_revision and wakes the streams.
  void ActivityHere();
};

// Milliseconds since the epoch -> "2026-11-22T03:04:05Z"; 0 -> "".
std::string FormatMs(std::int64_t ms);

}  // namespace depot::site
