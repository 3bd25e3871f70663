// What a DP knows about the versions it is assigned (internal to the dp component):
// the site's assignment, and per version a local state driven by a transition table,
// its backoff, progress and the verify request it answered. Every part of the DP (the
// poller, the syncer, the reporter, the scrubber, the server's pull-through) reads
// and changes versions only through a VersionBook.
//
// A version's local life:
//
//   pending --start--> syncing --synced--> ready
//      |                  |                  |
//      |                  +--failed--> failed (retried after its backoff: start)
//      +--found_published--> ready           |
//   ready --damaged--> pending (the scrubber removed something it used)
//   ready --verify_requested--> ready (worked on at once; `verified` answers it)
//
// Thread safety: every method may be called from any thread; the book holds one
// mutex, and Wait blocks on it through the clock seam (a ManualClock in tests).
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "core/backoff.h"
#include "core/clock.h"
#include "core/status.h"
#include "store/chunk_store.h"

namespace depot::dp {

// One assigned version, as the site describes it.
struct Assigned {
  std::string target;  // "tools/3.json"
  std::string package, package_id, manifest_id;
  std::int64_t version = 0;
  std::uint64_t manifest_bytes = 0, bytes = 0;
  std::int64_t retry_at_ms = 0;  // the site's retry time for a version that failed here (wall)
  // The site's request to re-verify this version (an agent found it stale or bad):
  // its sequence number (0: none) and the chunks to check first.
  std::int64_t verify_seq = 0;
  std::vector<store::ChunkId> verify_chunks;
};

// The versions of an assignment answer, by target; malformed entries are skipped
// (the site wrote them; a DP must not stop over one bad row), at most 64 verify
// chunks each.
std::map<std::string, Assigned> ParseAssignment(const nlohmann::json& j);

enum class VersionState { kPending, kSyncing, kReady, kFailed };
enum class VersionEvent { kStart, kSynced, kFailed, kFoundPublished, kDamaged };

std::string_view VersionStateName(VersionState s);
// The state `event` leads to from `from`; nullopt when the table has no such move.
std::optional<VersionState> NextVersionState(VersionState from, VersionEvent event);

// What the DP knows locally about a version it syncs.
struct Local {
  explicit Local(core::Clock* clock, core::BackoffPolicy policy) : retry(clock, policy) {}
  VersionState state = VersionState::kPending;
  core::Backoff retry;             // local failures (monotonic)
  std::int64_t site_retry_ms = 0;  // the site's retry time (wall), authoritative when later
  bool urgent = false;             // a verify request: worked on at once, whatever the backoff
  std::uint64_t bytes_done = 0, bytes_total = 0, chunks_done = 0, chunks_total = 0;
  std::string error;
  // A report is due while `changes` is ahead of `reported` (the count of changes the
  // site has acknowledged). A count, not a flag: a change made while a report is in
  // flight must not be cleared by that report's answer.
  std::uint64_t changes = 1;
  std::uint64_t reported = 0;
  // The site's latest verify request this DP has answered for the version; a ready
  // report carries it ("verified"), and only that brings a withheld copy back.
  std::int64_t verified_seq = 0;
};

// A version the syncer should work on now, and whether the site asked for it to be
// re-checked (every chunk re-hashed before syncing).
struct Pick {
  Assigned a;
  bool check = false;
};

// What an assignment changed.
struct AssignmentDelta {
  std::vector<std::string> removed, added;
  std::vector<Assigned> to_verify;  // new verify requests from the site
};

// One version's row of a report to the site.
struct ReportRow {
  std::string target;
  nlohmann::json json;
  std::uint64_t changes = 0;  // Local::changes when the row was taken
};

class VersionBook {
 public:
  // `clock` must outlive the book; `retry` is the local backoff of failed syncs.
  VersionBook(core::Clock* clock, core::BackoffPolicy retry);

  // Replaces the assignment; new verify requests make their versions urgent.
  AssignmentDelta Apply(std::map<std::string, Assigned> next);
  bool HaveAssignment();
  std::vector<Assigned> AssignedVersions();
  std::optional<Assigned> Find(const std::string& target);
  // The assigned version whose published manifest path (targets/...) is `rel`.
  std::optional<Assigned> FindByManifestPath(std::string_view rel);
  bool StillAssigned(const std::string& target);

  // Applies `event` to `target`'s local state (and `fn` to its fields when the table
  // allows the move); false when the version is not assigned or the move is not in
  // the table. A change makes the version's report due and wakes the waiters.
  bool Move(const std::string& target, VersionEvent event,
            const std::function<void(Local&)>& fn = nullptr);
  // Changes fields without a state move (progress).
  void Update(const std::string& target, const std::function<void(Local&)>& fn);
  // A sync failed: backoff, error, state failed. Returns the error it replaces ("" when
  // the version had none: its first failure since it last synced).
  std::string Failed(const std::string& target, const std::string& error);
  // Every ready version goes back to pending (the scrubber removed something), or
  // those of `package` only.
  void Damaged(const std::string& package = "");

  // The next version to work on: not ready (or ready with an unanswered verify
  // request), its backoff and the site's retry time passed; in target order.
  std::optional<Pick> NextWork();
  // Pending versions (not yet known to be published here).
  std::vector<Assigned> Pending();

  // The chunks of known assigned manifests, with their sizes (for repair and
  // pull-through); 0 when unknown.
  void Want(const std::vector<std::pair<store::ChunkId, std::uint32_t>>& chunks);
  std::uint32_t WantedSize(const store::ChunkId& id);

  // The version being synced now, and its live progress counters (the mirror
  // updates them on its threads).
  void SetSyncing(const std::string& target);
  std::atomic<std::uint64_t>& sync_bytes() { return sync_bytes_; }
  std::atomic<std::uint64_t>& sync_chunks() { return sync_chunks_; }

  // Versions whose report is due (or that are syncing), and marking them sent: a row
  // acknowledged by the site clears what it reported, not a change made since.
  std::vector<ReportRow> DueReports();
  void Reported(const std::vector<ReportRow>& rows);

  // Local states counted, for /metrics.
  std::map<std::string, int> CountByState();

  // Stop: every Sleep and WaitForWork returns true from now on.
  void Stop();
  bool Stopping();
  // Waits on the clock up to `d` or until Stop; returns whether stopping.
  bool Sleep(core::Duration d);
  // The syncer's wait (one caller only): up to `d`, or until Stop, a new assignment,
  // damage, or Wake; returns whether stopping.
  bool WaitForWork(core::Duration d);
  void Wake();

 private:
  Local& LocalOf(const std::string& target);  // mu_ held

  core::Clock* clock_;
  core::BackoffPolicy retry_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;
  bool woken_ = false;
  bool have_assignment_ = false;
  std::map<std::string, Assigned> assigned_;  // by target
  std::map<std::string, Local> local_;        // by target
  std::unordered_map<store::ChunkId, std::uint32_t, store::ChunkIdHash> wanted_;
  std::string syncing_;
  std::atomic<std::uint64_t> sync_bytes_{0}, sync_chunks_{0};
};

}  // namespace depot::dp
