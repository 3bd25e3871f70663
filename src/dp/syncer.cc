#include "dp/syncer.h"

#include "core/crash_point.h"
#include "core/log.h"
#include "core/messages.h"
#include "core/path.h"
#include "core/sha256.h"
#include "dp/collector.h"
#include "dp/version_check.h"
#include "repo/mirror.h"
#include "store/manifest.h"

namespace depot::dp {

using core::Status;
using Json = nlohmann::json;

namespace {

// How often the metadata is refreshed while nothing needs syncing (a new timestamp
// is mirrored for clients that read it from this DP).
constexpr core::Duration kIdleRefresh = std::chrono::seconds(30);
constexpr core::Duration kIdleWait = std::chrono::seconds(1);

}  // namespace

void Syncer::Run() {
  VersionBook& book = ctx_->book;
  tuf::Client client(ctx_->env, ctx_->clock, ctx_->upstream.get(), ctx_->tuf_dir);
  core::Backoff trust(ctx_->clock, {ctx_->cfg.retry_base, ctx_->cfg.retry_max});
  core::Backoff metadata(ctx_->clock, {std::chrono::seconds(1), ctx_->cfg.retry_max});
  bool initialized = false;
  std::optional<core::MonoTime> last_refresh;
  while (!book.Stopping()) {
    if (!initialized) {
      if (!trust.Due() && book.Sleep(trust.Remaining())) return;
      Status s = InitTrust(&client);
      if (!s.ok()) {
        core::Log(core::LogLevel::kWarn, "dp.trust_failed", {{"error", s.ToString()}});
        trust.Failed();
        continue;
      }
      initialized = true;
    }
    if (!book.HaveAssignment()) {
      if (book.WaitForWork(kIdleWait)) return;
      continue;
    }
    FindPublished();
    auto pick = book.NextWork();
    // Outside the link's windows nothing is copied; metadata still is (below), and a
    // version cut off mid-copy stays syncing and resumes where it stopped.
    const bool open = ctx_->schedule.Open();
    ctx_->metrics.window_open->Set(open ? 1 : 0);
    if (!open) pick.reset();
    const core::MonoTime now = ctx_->clock->Monotonic();
    if (pick || !last_refresh || now - *last_refresh > kIdleRefresh) {
      if (!metadata.Due()) {
        if (book.WaitForWork(metadata.Remaining())) return;
        continue;
      }
      Status s = client.Refresh();
      if (s.ok()) s = MirrorMetadata(client);
      if (!s.ok()) {
        core::Log(core::LogLevel::kWarn, "dp.metadata_failed", {{"error", s.ToString()}});
        if (pick) Failed(pick->a, s);
        metadata.Failed();
        continue;
      }
      metadata.Succeeded();
      last_refresh = now;
    }
    if (!pick) {
      CollectGarbage(ctx_);
      if (book.WaitForWork(kIdleWait)) return;
      continue;
    }
    Status s = SyncOne(client, *pick);
    if (s.ok()) {
      ctx_->KeepDiskReserve();
    } else if (book.StillAssigned(pick->a.target)) {  // else cancelled: the assignment dropped it
      Failed(pick->a, s);
    }
  }
}

Status Syncer::InitTrust(tuf::Client* client) {
  auto existing = ctx_->env->ReadFile(core::JoinPath(ctx_->tuf_dir, "root.json"), 1 << 20);
  if (existing.ok()) return client->Initialize({});
  DEPOT_ASSIGN_OR_RETURN(auto c, ctx_->SiteClient(30));
  DEPOT_ASSIGN_OR_RETURN(http::ClientResponse r, c->Do("GET", "/api/v1/dp/trust"));
  DEPOT_RETURN_IF_ERROR(http::ApiError(r, "trust"));
  Json j = Json::parse(r.body, nullptr, false);
  if (j.is_discarded() || !j.contains("trusted_root") || !j["trusted_root"].is_string()) {
    return Status::Unavailable("the site's trust answer has no root");
  }
  return client->Initialize(j["trusted_root"].get<std::string>());
}

Status Syncer::MirrorMetadata(tuf::Client& client) {
  return repo::PublishTrustedMetadata(ctx_->env, client, ctx_->tuf_dir, ctx_->layout.metadata())
      .status();
}

void Syncer::FindPublished() {
  for (const auto& a : ctx_->book.Pending()) {
    if (!PublishedComplete(a)) continue;
    // Recorded too: a DP killed between publishing and recording it would otherwise
    // never collect the version once it is unassigned.
    Status s = Record(a);
    if (!s.ok()) core::Log(core::LogLevel::kWarn, "dp.state_failed", {{"error", s.ToString()}});
    ctx_->book.Move(a.target, VersionEvent::kFoundPublished, [](Local& l) { l.error.clear(); });
  }
}

Status Syncer::Record(const Assigned& a) {
  return ctx_->db->Transaction([&](catalog::Tx& tx) {
    return tx
        .Exec(
            "INSERT INTO versions (target, package, version, manifest_id, published_at) VALUES (?, "
            "?, ?, ?, ?) "
            "ON CONFLICT (target) DO UPDATE SET manifest_id = excluded.manifest_id, published_at = "
            "excluded.published_at, removed_at = NULL",
            {a.target, a.package, a.version, a.manifest_id, core::UnixMillis(ctx_->clock->Now())})
        .status();
  });
}

bool Syncer::PublishedComplete(const Assigned& a) {
  auto bytes = ctx_->env->ReadFile(ctx_->PublishedPath(a.package, a.version, a.manifest_id),
                                   a.manifest_bytes);
  if (!bytes.ok() || core::Sha256::HashHex(*bytes) != a.manifest_id) return false;
  auto m = store::ParseManifest(*bytes);
  if (!m.ok()) return false;
  std::vector<std::pair<store::ChunkId, std::uint32_t>> want;
  for (const auto& c : m->UniqueChunks()) {
    auto has = ctx_->chunks.Has(c.id);
    if (!has.ok() || !*has) return false;
    want.emplace_back(c.id, c.size);
  }
  ctx_->book.Want(want);
  return true;
}

core::Result<std::string> Syncer::ManifestBytes(tuf::Client& client, const Assigned& a) {
  auto local_copy = ctx_->ManifestBytesLocal(a);
  if (local_copy.ok()) return local_copy;
  DEPOT_ASSIGN_OR_RETURN(tuf::TargetInfo info, client.GetTarget(a.target));
  if (info.sha256 != a.manifest_id) {
    return Status::Corruption("the signed metadata names manifest " + info.sha256 + " for " +
                              a.target + ", the site's assignment " + a.manifest_id +
                              "; retrying after the next refresh");
  }
  DEPOT_ASSIGN_OR_RETURN(std::string bytes, client.FetchTarget(info));
  DEPOT_RETURN_IF_ERROR(ctx_->env->WriteFileAtomic(ctx_->StagedPath(a.manifest_id), bytes, 0644));
  return bytes;
}

Status Syncer::SyncOne(tuf::Client& client, const Pick& pick) {
  const Assigned& a = pick.a;
  VersionBook& book = ctx_->book;
  DEPOT_ASSIGN_OR_RETURN(std::string bytes, ManifestBytes(client, a));
  DEPOT_ASSIGN_OR_RETURN(store::Manifest m, store::ParseManifest(bytes));
  if (m.package_name != a.package || m.version != a.version) {
    return Status::Corruption("manifest " + a.target + " describes " + m.package_name +
                              " version " + std::to_string(m.version));
  }
  std::vector<store::ChunkRef> refs = m.UniqueChunks();
  std::uint64_t total = 0;
  std::vector<std::pair<store::ChunkId, std::uint32_t>> want;
  for (const auto& c : refs) {
    total += c.size;
    want.emplace_back(c.id, c.size);
  }
  book.Want(want);
  if (!book.Move(a.target, VersionEvent::kStart, [&](Local& l) {
        l.urgent = false;
        l.bytes_total = total;
        l.chunks_total = refs.size();
      })) {
    return Status::Ok();  // no longer assigned
  }
  auto unassigned = [&] { return !book.StillAssigned(a.target); };
  VersionCheck checked;
  if (pick.check) {
    checked = CheckVersionChunks(&ctx_->chunks, refs, a.verify_chunks, unassigned);
    for (const auto& d : checked.damaged_objects) {
      ctx_->Post(core::msg::kDpScrubDamage, a.package, a.version,
                 {{"object", d.substr(0, d.find(':'))}, {"error", d.substr(d.find(':') + 2)}});
    }
    if (checked.damaged > 0 && ctx_->tree) ctx_->tree->CloseKeptFiles();
  }
  // MirrorChunks counts what is already here first, then each chunk it stores.
  book.SetSyncing(a.target);
  repo::MirrorOptions o;
  o.parallel = ctx_->cfg.parallel;
  // Durable progress often: a kill refetches at most this much plus what was in flight.
  o.commit_bytes = 4ull << 20;
  o.commit_interval = std::chrono::milliseconds(500);
  o.limiter = ctx_->schedule.limiter();  // shared with pull-through
  o.progress_bytes = &book.sync_bytes();
  o.progress_chunks = &book.sync_chunks();
  o.cancelled = [&] { return unassigned() || !ctx_->schedule.Open(); };
  o.on_rejected = [&](const store::ChunkId& id, const Status& s) {
    ctx_->metrics.rejected->Inc();
    ctx_->Post(core::msg::kDpUpstreamRejected, a.package, a.version,
               {{"object", "chunks/" + store::ChunkRelPath(id)},
                {"upstream", ctx_->upstream->Describe()},
                {"error", s.message()}});
  };
  auto r = repo::MirrorChunks(ctx_->env, ctx_->clock, ctx_->upstream.get(), &ctx_->chunks, refs, o);
  book.SetSyncing("");
  if (!r.ok() && !unassigned() && !ctx_->schedule.Open()) {
    // The window closed: not a failure. What was verified is kept (MirrorChunks
    // commits it) and the copy resumes when the window opens.
    core::Log(core::LogLevel::kInfo, "dp.sync_paused",
              {{"target", a.target}, {"reason", "outside the link's transfer windows"}});
    return Status::Ok();
  }
  if (!r.ok()) return r.status();
  ctx_->metrics.synced_bytes->Inc(r->bytes);
  ctx_->metrics.synced_chunks->Inc(r->chunks);
  DEPOT_RETURN_IF_ERROR(Publish(a, bytes));
  book.Move(a.target, VersionEvent::kSynced, [&](Local& l) {
    l.retry.Succeeded();
    l.error.clear();
    l.bytes_done = total;
    l.chunks_done = refs.size();
    // Everything was re-checked above when the site asked: this ready answers it.
    if (pick.check) l.verified_seq = std::max(l.verified_seq, a.verify_seq);
  });
  Announce(pick, checked, *r);
  return Status::Ok();
}

void Syncer::Announce(const Pick& pick, const VersionCheck& checked, const repo::MirrorResult& r) {
  const Assigned& a = pick.a;
  if (pick.check) {
    ctx_->Post(core::msg::kDpVersionVerified, a.package, a.version,
               {{"checked", std::to_string(checked.checked)},
                {"damaged", std::to_string(checked.damaged + checked.missing)},
                {"repaired", std::to_string(r.chunks)}});
  } else {
    ctx_->Post(core::msg::kDpSyncComplete, a.package, a.version, {});
  }
  core::Log(core::LogLevel::kInfo, "dp.synced",
            {{"target", a.target},
             {"fetched_bytes", std::to_string(r.bytes)},
             {"transfer_bytes", std::to_string(r.transfer_bytes)}});
}

// Everything is present and durable: the manifest is published, last.
Status Syncer::Publish(const Assigned& a, const std::string& manifest_bytes) {
  core::CrashPoint("dp.before_publish");
  std::string published = ctx_->PublishedPath(a.package, a.version, a.manifest_id);
  DEPOT_RETURN_IF_ERROR(ctx_->env->CreateDirs(std::string(core::Dirname(published))));
  DEPOT_RETURN_IF_ERROR(ctx_->env->WriteFileAtomic(published, manifest_bytes, 0644));
  core::CrashPoint("dp.published");
  DEPOT_RETURN_IF_ERROR(Record(a));
  ctx_->env->Remove(ctx_->StagedPath(a.manifest_id)).IgnoreError();
  return Status::Ok();
}

void Syncer::Failed(const Assigned& a, const Status& s) {
  core::Log(core::LogLevel::kWarn, "dp.sync_failed",
            {{"target", a.target}, {"error", s.ToString()}});
  auto disk_full = [](std::string_view error) {
    return error.find("No space") != std::string_view::npos;
  };
  const bool full = s.IsIOError() && disk_full(s.message());
  if (full) ctx_->GiveUpDiskReserve();  // room for the message below
  const std::string before = ctx_->book.Failed(a.target, s.ToString());
  // One message per episode: retries that find the disk still full add nothing the
  // operator does not know yet (a sync, or another error, ends the episode).
  if (full && !disk_full(before)) {
    ctx_->Post(core::msg::kDpDiskFull, a.package, a.version, {{"error", s.message()}});
  }
}

}  // namespace depot::dp
