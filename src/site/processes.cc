#include "site/processes.h"

#include <signal.h>
#include <unistd.h>

#include <cerrno>

#include "core/log.h"
#include "site/api.h"
#include "site/auth.h"

namespace depot::site {

using core::Status;

std::string ProcessHost() {
  char name[256] = {};
  ::gethostname(name, sizeof(name) - 1);
  char ns[64] = {};
  const ssize_t n = ::readlink("/proc/self/ns/pid", ns, sizeof(ns) - 1);
  return std::string(name) + (n > 0 ? " " + std::string(ns, static_cast<std::size_t>(n)) : "");
}

bool PidGone(std::int64_t pid) {
  return pid > 0 && ::kill(static_cast<pid_t>(pid), 0) != 0 && errno == ESRCH;
}

namespace {

std::int64_t TtlMs(const SiteContext& ctx) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(ctx.config.lease_ttl).count();
}

void LogNotifyFailure(std::string_view what, const Status& s) {
  core::Log(core::LogLevel::kWarn, "site.notify_failed",
            {{"what", std::string(what)}, {"error", s.ToString()}});
}

}  // namespace

void SiteContext::ChangedHere() {
  revision.fetch_add(1);
  {
    std::lock_guard<std::mutex> lock(server_mu);
    if (server != nullptr) server->Notify("assignments");
  }
  ActivityHere();
}

void SiteContext::Activity() {
  Status s = db->Notify("activity");
  if (!s.ok()) LogNotifyFailure("activity", s);
}

void SiteContext::ActivityHere() {
  const std::int64_t now_us = NowMs() * 1000;
  std::int64_t seen = console_revision.load();
  while (!console_revision.compare_exchange_weak(seen, std::max(now_us, seen + 1))) {
  }
  std::lock_guard<std::mutex> lock(server_mu);
  if (server != nullptr) server->Notify(kConsoleTopic);
}

void SiteContext::Changed() {
  Status s = db->Notify("changed");
  if (!s.ok()) LogNotifyFailure("changed", s);
}

Status RegisterProcess(SiteContext& ctx) {
  const std::string host = ProcessHost();
  const std::int64_t now = ctx.NowMs();
  return ctx.db->Transaction([&](catalog::Tx& tx) -> Status {
    DEPOT_ASSIGN_OR_RETURN(catalog::Rows rows,
                           tx.Query("SELECT id, pid FROM site_processes WHERE host = ?", {host}));
    for (const auto& r : rows) {
      if (!PidGone(r.Int(1))) continue;
      DEPOT_RETURN_IF_ERROR(
          tx.Exec("DELETE FROM site_processes WHERE id = ?", {r.Text(0)}).status());
      DEPOT_RETURN_IF_ERROR(
          tx.Exec("UPDATE leases SET expires_at = 0 WHERE holder = ?", {r.Text(0)}).status());
    }
    return tx
        .Exec(
            "INSERT INTO site_processes (id, host, pid, url, started_at, seen_at) "
            "VALUES (?, ?, ?, '', ?, ?)",
            {ctx.process_id, host, static_cast<std::int64_t>(::getpid()), now, now})
        .status();
  });
}

void Heartbeat(SiteContext& ctx) {
  const std::int64_t now = ctx.NowMs();
  catalog::Rows renewed;
  Status s = ctx.db->Transaction([&](catalog::Tx& tx) -> Status {
    renewed.clear();
    DEPOT_ASSIGN_OR_RETURN(std::int64_t n,
                           tx.Exec("UPDATE site_processes SET seen_at = ?, url = ? WHERE id = ?",
                                   {now, ctx.public_url, ctx.process_id}));
    if (n > 0) {
      // Its leases stay its own while it lives (a job may run longer than the ttl).
      DEPOT_ASSIGN_OR_RETURN(renewed, tx.Query("UPDATE leases SET expires_at = ? WHERE holder = ? "
                                               "RETURNING name",
                                               {now + TtlMs(ctx), ctx.process_id}));
      return Status::Ok();
    }
    return tx
        .Exec(
            "INSERT INTO site_processes (id, host, pid, url, started_at, seen_at) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            {ctx.process_id, ProcessHost(), static_cast<std::int64_t>(::getpid()), ctx.public_url,
             now, now})
        .status();
  });
  if (!s.ok()) {
    core::Log(core::LogLevel::kWarn, "site.heartbeat_failed", {{"error", s.ToString()}});
    return;
  }
  // What the catalog renewed is held; what it did not (taken over while this process
  // stalled) is not.
  std::lock_guard<std::mutex> lock(ctx.leases_mu);
  const std::string prefix = ctx.process_id + "/";
  std::erase_if(ctx.leases_until, [&](const auto& e) { return e.first.rfind(prefix, 0) == 0; });
  for (const auto& r : renewed) ctx.leases_until[prefix + r.Text(0)] = now + TtlMs(ctx);
}

void UnregisterProcess(SiteContext& ctx) {
  ctx.db
      ->Transaction([&](catalog::Tx& tx) -> Status {
        DEPOT_RETURN_IF_ERROR(
            tx.Exec("DELETE FROM site_processes WHERE id = ?", {ctx.process_id}).status());
        return tx.Exec("DELETE FROM leases WHERE holder = ?", {ctx.process_id}).status();
      })
      .IgnoreError();
  std::lock_guard<std::mutex> lock(ctx.leases_mu);
  ctx.leases_until.clear();
}

bool HoldLease(SiteContext& ctx, std::string_view name) {
  const std::int64_t now = ctx.NowMs();
  const std::string key = ctx.process_id + "/" + std::string(name);
  {
    // Held with more than half the ttl left (the catalog agrees: nobody else may take
    // it before its expiry): no transaction.
    std::lock_guard<std::mutex> lock(ctx.leases_mu);
    auto it = ctx.leases_until.find(key);
    if (it != ctx.leases_until.end() && now < it->second - TtlMs(ctx) / 2) return true;
  }
  std::int64_t changed = 0;
  Status s = ctx.db->Transaction([&](catalog::Tx& tx) -> Status {
    // Taken when free or lapsed, renewed when ours; left alone when another's.
    DEPOT_ASSIGN_OR_RETURN(changed,
                           tx.Exec("INSERT INTO leases (name, holder, expires_at) VALUES (?, ?, ?) "
                                   "ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, "
                                   "expires_at = excluded.expires_at "
                                   "WHERE leases.holder = excluded.holder OR leases.expires_at < ?",
                                   {std::string(name), ctx.process_id, now + TtlMs(ctx), now}));
    return Status::Ok();
  });
  std::lock_guard<std::mutex> lock(ctx.leases_mu);
  if (!s.ok() || changed == 0) {
    ctx.leases_until.erase(key);
    if (!s.ok()) {
      core::Log(core::LogLevel::kWarn, "site.lease_failed",
                {{"lease", std::string(name)}, {"error", s.ToString()}});
    }
    return false;
  }
  ctx.leases_until[key] = now + TtlMs(ctx);
  return true;
}

std::string AliveSql(std::string_view column) {
  return std::string(column) + " IN (SELECT id FROM site_processes WHERE seen_at >= ?)";
}

std::int64_t LiveSince(const SiteContext& ctx) { return ctx.NowMs() - TtlMs(ctx); }

core::Result<SignerLock> LockSigner(SiteContext& ctx) {
  std::unique_lock<std::mutex> local(ctx.publish_mu);
  DEPOT_ASSIGN_OR_RETURN(auto shared, ctx.db->Lock("signer"));
  return SignerLock(std::move(local), std::move(shared));
}

void SubscribeSignals(SiteContext& ctx) {
  SiteContext* c = &ctx;
  ctx.db->Subscribe([c](std::string_view m) {
    if (m == "changed") {
      c->ChangedHere();
    } else if (m == "activity") {
      c->ActivityHere();
    } else if (m == "tokens") {
      ForgetCachedTokensHere(*c);
    } else if (m.rfind("chunks:", 0) == 0) {
      m.remove_prefix(7);
      while (!m.empty()) {
        const auto comma = m.find(',');
        auto id = core::ParseDigestHex(m.substr(0, comma));
        if (id.ok()) c->chunk_filter->Add(*id);
        if (comma == std::string_view::npos) break;
        m.remove_prefix(comma + 1);
      }
    } else if (m.empty()) {
      // Notifications were lost: whatever they said may have happened. (Chunks stored
      // meanwhile may be reported missing here and sent again: harmless.)
      ForgetCachedTokensHere(*c);
      c->ChangedHere();
    }
  });
}

void AnnounceChunks(SiteContext& ctx, const std::vector<core::Digest>& ids) {
  constexpr std::size_t kPerMessage = 100;  // 100 * 65 bytes: within a notification
  for (std::size_t i = 0; i < ids.size(); i += kPerMessage) {
    std::string m = "chunks:";
    for (std::size_t j = i; j < std::min(ids.size(), i + kPerMessage); ++j) {
      if (j > i) m += ',';
      m += core::DigestHex(ids[j]);
    }
    Status s = ctx.db->Notify(m);
    if (!s.ok()) {
      LogNotifyFailure("chunks", s);
      return;
    }
  }
}

}  // namespace depot::site
