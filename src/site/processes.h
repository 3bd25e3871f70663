// Several `depot site serve` processes on one catalog (docs/scale-out.md): who is
// alive, who drives which background job, who signs, and how a change made in one
// process reaches the caches and long polls of the others.
//
// - Liveness: each process has a row in site_processes (its id is ctx.process_id)
//   whose seen_at it renews every second or so (Heartbeat). One not seen for
//   lease_ttl is dead; so is one on this host whose pid is gone (a restarted single
//   site recovers at once, without waiting out the ttl).
// - Leases: a background job (DP probes, housekeeping, metadata refresh) runs in the
//   process holding its lease (HoldLease), renewed while it lives and taken over by
//   another when it lapses -- each record is driven by one process at a time.
// - Signing: LockSigner excludes every other signer of the library, in this process
//   (a mutex) and in every other (the catalog's named lock "signer").
// - Signals: a change (Changed), a token revocation (ForgetCachedTokens) and stored
//   chunks (AnnounceChunks) are sent through Db::Notify; SubscribeSignals applies
//   them to this process's caches and wakes its long polls. A lost listener ("")
//   counts as everything changed.
//
// On an SQLite catalog the same code runs with one process: leases are always held,
// signals are delivered locally.
//
// Thread safety: any thread.
#pragma once

#include <memory>
#include <mutex>
#include <string_view>
#include <vector>

#include "catalog/db.h"
#include "core/sha256.h"
#include "core/status.h"
#include "site/context.h"

namespace depot::site {

// Where a pid names one process (site_processes.host): the host name and the pid
// namespace, so containers or machines that share a host name still differ.
std::string ProcessHost();
// Whether process `pid` of this ProcessHost() is gone (not merely another user's).
bool PidGone(std::int64_t pid);

// Adds this process to site_processes (after removing the rows of processes of this
// host that are gone). Errors from the catalog.
core::Status RegisterProcess(SiteContext& ctx);
// Renews this process's seen_at (and re-adds its row if another process removed it
// as dead while it was stalled).
void Heartbeat(SiteContext& ctx);
// Removes this process's row and gives up its leases (a graceful stop).
void UnregisterProcess(SiteContext& ctx);

// Whether this process holds lease `name` now: takes it when free or lapsed, renews
// it when already held (for lease_ttl from now). False when another process holds it
// or the catalog cannot be reached.
bool HoldLease(SiteContext& ctx, std::string_view name);

// The SQL condition "process `column` is alive" with one parameter, the oldest
// seen_at that counts (LiveSince): e.g. versions.reserved_by.
std::string AliveSql(std::string_view column);
std::int64_t LiveSince(const SiteContext& ctx);

// Held while signing or unsigning anything in the library.
class SignerLock {
 public:
  SignerLock(std::unique_lock<std::mutex> local, std::unique_ptr<catalog::NamedLock> shared)
      : local_(std::move(local)), shared_(std::move(shared)) {}

 private:
  std::unique_lock<std::mutex> local_;
  std::unique_ptr<catalog::NamedLock> shared_;  // released before local_
};
// Waits for the signer lock. IOError when the catalog cannot be reached.
core::Result<SignerLock> LockSigner(SiteContext& ctx);

// Applies the catalog's notifications to this process's caches (call once, at open).
void SubscribeSignals(SiteContext& ctx);
// Tells every process (this one included) that `ids` are stored in the library, so
// their chunk filters stop reporting them missing.
void AnnounceChunks(SiteContext& ctx, const std::vector<core::Digest>& ids);

}  // namespace depot::site
