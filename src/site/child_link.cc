#include "site/child_link.h"

#include <algorithm>

#include "core/backoff.h"
#include "core/log.h"
#include "core/messages.h"
#include "core/sha256.h"
#include "core/transfer_schedule.h"
#include "http/client.h"
#include "http/curl_source.h"
#include "repo/mirror.h"
#include "site/children.h"
#include "site/messages.h"
#include "site/processes.h"
#include "site/replica.h"
#include "site/upward.h"
#include "store/manifest.h"
#include "tuf/client.h"
#include "tuf/metadata.h"

namespace depot::site {

using core::Status;

namespace {

constexpr std::size_t kReportBatch = 500;
// With several processes of one child site (docs/scale-out.md), one drives the link:
// the holder of this lease; the others look again this often.
constexpr const char* kLinkLease = "parent_link";
constexpr auto kLeaseCheckEvery = std::chrono::seconds(1);

core::Result<std::unique_ptr<http::Client>> ParentClient(const std::string& url,
                                                         const std::string& token,
                                                         const std::string& ca, long timeout_s) {
  http::ClientOptions o;
  o.bearer_token = token;
  o.ca_file = ca;
  o.timeout_s = timeout_s;
  o.max_response_bytes = 64ull << 20;
  return http::Client::Create(url, o);
}

}  // namespace

struct ChildLink::State {
  SiteContext* ctx = nullptr;
  LinkTiming timing;
  std::string token;
  std::string ca;
  std::string tuf_dir;
  std::unique_ptr<http::CurlSource> upstream;
  std::atomic<bool> stop{false};
  std::mutex mu;
  std::condition_variable cv;
  // The link's schedule, from the feed (changes apply at the next poll).
  std::unique_ptr<core::TransferSchedule> schedule;
  // Consecutive failed contacts with the parent: feed polls, metadata refreshes and
  // reports all count.
  std::mutex health_mu;
  std::int64_t failures = 0;

  // Waits `d` on the clock, or until Stop. True when stopping.
  bool Sleep(core::Duration d) {
    std::unique_lock<std::mutex> lock(mu);
    ctx->clock->WaitFor(lock, cv, d, [this] { return stop.load(); });
    return stop.load();
  }
  // Whether bulk transfers may run now (core::TransferSchedule::Open).
  bool InWindow() { return schedule->Open(); }
  bool Failing() {
    std::lock_guard<std::mutex> lock(health_mu);
    return failures > 0;
  }
  void Contact(const Status& s);
  Status MirrorMetadata(tuf::Client& tuf);
  Status CopyVersion(tuf::Client& tuf, const MissingVersion& v);
  void SaveProgress(const std::vector<MissingVersion>& missing);
  int FeedWaitSeconds(const std::vector<MissingVersion>& missing, const core::Backoff& content);
  core::Result<std::optional<std::string>> PollFeed(http::Client& client, const std::string& etag,
                                                    int wait_s);
  Status TakeFeed(const std::string& body, std::vector<MissingVersion>* missing, std::string* etag);
  void CopyMissing(tuf::Client& tuf, core::Backoff& content, std::vector<MissingVersion>* missing);
};

// Counts a contact with the parent and moves the link's health; each transition is
// one message here and goes up with the link's state.
void ChildLink::State::Contact(const Status& s) {
  std::lock_guard<std::mutex> lock(health_mu);
  const std::string before = LinkHealth(failures);
  failures = s.ok() ? 0 : failures + 1;
  const std::string after = LinkHealth(failures);
  const std::string link = ctx->config.code + " -> " + ctx->config.parent_url;
  if (!s.ok()) {
    core::Log(core::LogLevel::kWarn, "site.parent_contact_failed",
              {{"failures", std::to_string(failures)}, {"error", s.ToString()}});
  }
  ctx->db
      ->Transaction([&](catalog::Tx& tx) -> Status {
        std::int64_t now = ctx->NowMs();
        DEPOT_RETURN_IF_ERROR(
            tx.Exec("UPDATE parent_link SET failures = ?, state = ?, last_error = ?, "
                    "state_since = CASE WHEN state = ? THEN state_since ELSE ? END, "
                    "last_contact_at = CASE WHEN ? THEN ? ELSE last_contact_at END WHERE id = 1",
                    {failures, after, s.ok() ? std::string() : s.ToString(), after, now,
                     s.ok() ? 1 : 0, now})
                .status());
        if (before == after) return Status::Ok();
        int code = after == "failed"     ? core::msg::kLinkFailed
                   : after == "degraded" ? core::msg::kLinkDegraded
                                         : core::msg::kLinkActive;
        DEPOT_RETURN_IF_ERROR(MarkUp(*ctx, tx, "link", ""));
        return PostMessage(*ctx, tx, code, {},
                           {{"link", link},
                            {"failures", std::to_string(failures)},
                            {"error", s.ok() ? std::string() : s.message()}});
      })
      .IgnoreError();
}

Status ChildLink::State::MirrorMetadata(tuf::Client& tuf) {
  DEPOT_RETURN_IF_ERROR(tuf.Refresh());
  DEPOT_ASSIGN_OR_RETURN(
      bool root_changed,
      repo::PublishTrustedMetadata(ctx->env, tuf, tuf_dir, ctx->repo->layout().metadata()));
  if (root_changed) {
    // Agents enrolling from now on pin the top site's newest root.
    auto root = ctx->repo->TrustedRoot();
    if (root.ok()) {
      std::lock_guard<std::mutex> lock(ctx->root_mu);
      ctx->trusted_root = *root;
    }
  }
  return Status::Ok();
}

Status ChildLink::State::CopyVersion(tuf::Client& tuf, const MissingVersion& v) {
  const std::string target = repo::ManifestTargetPath(v.package, v.version);
  DEPOT_ASSIGN_OR_RETURN(tuf::TargetInfo info, tuf.GetTarget(target));
  if (info.sha256 != v.manifest_id) {
    return Status::Corruption("the signed targets name manifest " + info.sha256 + " for " + target +
                              ", the parent's feed " + v.manifest_id +
                              "; retrying after the next refresh");
  }
  const std::string published =
      core::JoinPath(ctx->repo->layout().targets(), tuf::ConsistentTargetPath(target, info.sha256));
  std::string bytes;
  auto local = ctx->env->ReadFile(published, info.length);
  if (local.ok() && core::Sha256::HashHex(*local) == info.sha256) {
    bytes = std::move(*local);
  } else {
    DEPOT_ASSIGN_OR_RETURN(bytes, tuf.FetchTarget(info));  // verified against the signed hash
  }
  DEPOT_ASSIGN_OR_RETURN(store::Manifest m, store::ParseManifest(bytes));
  if (m.package_name != v.package || m.version != v.version) {
    return Status::Corruption("manifest " + target + " describes " + m.package_name + " version " +
                              std::to_string(m.version));
  }
  repo::MirrorOptions o;
  o.commit_bytes = 4ull << 20;
  o.commit_interval = std::chrono::milliseconds(500);
  o.limiter = schedule->limiter();
  o.cancelled = [this] { return stop.load() || !InWindow(); };
  o.on_rejected = [&](const store::ChunkId& id, const Status& s) {
    ctx->db
        ->Transaction([&](catalog::Tx& tx) {
          return PostMessage(*ctx, tx, core::msg::kParentRejected,
                             {v.package, v.version, {}, {}, {}},
                             {{"parent", ctx->config.parent_url},
                              {"object", "chunks/" + store::ChunkRelPath(id)},
                              {"error", s.message()}});
        })
        .IgnoreError();
  };
  DEPOT_ASSIGN_OR_RETURN(repo::MirrorResult r,
                         repo::MirrorChunks(ctx->env, ctx->clock, upstream.get(),
                                            ctx->repo->chunks(), m.UniqueChunks(), o));
  // Every chunk is durable: the manifest is published, then the version activated.
  DEPOT_RETURN_IF_ERROR(ctx->env->CreateDirs(std::string(core::Dirname(published))));
  DEPOT_RETURN_IF_ERROR(ctx->env->WriteFileAtomic(published, bytes, 0644));
  DEPOT_RETURN_IF_ERROR(ActivateVersion(*ctx, v));
  core::Log(core::LogLevel::kInfo, "site.version_replicated",
            {{"target", target}, {"transfer_bytes", std::to_string(r.transfer_bytes)}});
  return ctx->db->Transaction([&](catalog::Tx& tx) {
    return PostMessage(*ctx, tx, core::msg::kVersionReplicated, {v.package, v.version, {}, {}, {}},
                       {{"package", v.package},
                        {"version", std::to_string(v.version)},
                        {"parent", ctx->config.parent_url},
                        {"transfer_bytes", std::to_string(r.transfer_bytes)}});
  });
}

// Copies the missing versions in order while the window is open; a failure backs off
// the link's content (one 6008 record with a count) and ends the pass.
void ChildLink::State::CopyMissing(tuf::Client& tuf, core::Backoff& content,
                                   std::vector<MissingVersion>* missing) {
  if (!content.Due()) return;
  while (!missing->empty() && !stop && InWindow()) {
    Status c = CopyVersion(tuf, missing->front());
    if (!c.ok()) {
      if (stop) return;
      if (!InWindow()) break;  // the window closed mid-copy: resumes when it opens
      content.Failed();
      ctx->db
          ->Transaction([&](catalog::Tx& tx) {
            return PostMessage(*ctx, tx, core::msg::kReplicationFailed,
                               {missing->front().package, missing->front().version, {}, {}, {}},
                               {{"parent", ctx->config.parent_url},
                                {"error", c.message()},
                                {"next_retry", core::FormatUtc(content.DueWall())}},
                               "replication_failed");
          })
          .IgnoreError();
      break;
    }
    content.Succeeded();
    missing->erase(missing->begin());
    SaveProgress(*missing);
  }
}

// How long a feed poll may park at the parent: not at all when there is copying to
// do now, at most until the content's backoff ends when a copy waits on it.
int ChildLink::State::FeedWaitSeconds(const std::vector<MissingVersion>& missing,
                                      const core::Backoff& content) {
  if (missing.empty()) return timing.feed_wait_s;
  if (!content.Due()) {
    auto left = std::chrono::duration_cast<std::chrono::seconds>(content.Remaining()).count();
    return std::clamp<int>(static_cast<int>(left), 1, timing.feed_wait_s);
  }
  return InWindow() ? 0 : timing.feed_wait_s;
}

// One feed poll: the new feed's body, or nullopt when it has not changed (304).
core::Result<std::optional<std::string>> ChildLink::State::PollFeed(http::Client& client,
                                                                    const std::string& etag,
                                                                    int wait_s) {
  std::vector<std::string> headers;
  if (!etag.empty()) headers.push_back("If-None-Match: " + etag);
  DEPOT_ASSIGN_OR_RETURN(http::ClientResponse r,
                         client.Do("GET", "/api/v1/child/feed?wait=" + std::to_string(wait_s), {},
                                   "application/json", headers, wait_s + 30));
  if (r.status == 304) return std::optional<std::string>();
  DEPOT_RETURN_IF_ERROR(http::ApiError(r, "the parent's feed"));
  return std::optional<std::string>(std::move(r.body));
}

// Applies a feed the parent sent: the link's schedule, then the catalog
// (replica.h); `missing` and `etag` take the feed's.
Status ChildLink::State::TakeFeed(const std::string& body, std::vector<MissingVersion>* missing,
                                  std::string* etag) {
  Json feed = Json::parse(body, nullptr, false);
  if (feed.is_discarded() || !feed.is_object())
    return Status::Corruption("the parent's feed is not JSON");
  const Json sched = feed.value("schedule", Json::object());
  if (sched.is_object()) schedule->Set(sched);
  ctx->db
      ->Transaction([&](catalog::Tx& tx) {
        return tx
            .Exec("UPDATE parent_link SET max_rate = ?, windows = ? WHERE id = 1",
                  {sched.value("max_rate", std::int64_t{0}),
                   Dump(sched.value("windows", Json::array()))})
            .status();
      })
      .IgnoreError();
  DEPOT_ASSIGN_OR_RETURN(*missing, ApplyFeed(*ctx, feed));
  *etag = feed.value("etag", "");
  return Status::Ok();
}

void ChildLink::State::SaveProgress(const std::vector<MissingVersion>& missing) {
  std::int64_t bytes = 0;
  for (const auto& v : missing) bytes += v.bytes;
  ctx->db
      ->Transaction([&](catalog::Tx& tx) -> Status {
        DEPOT_ASSIGN_OR_RETURN(
            catalog::Rows was,
            tx.Query("SELECT versions_behind, bytes_behind FROM parent_link WHERE id = 1"));
        const auto versions = static_cast<std::int64_t>(missing.size());
        if (!was.empty() && was[0].Int(0) == versions && was[0].Int(1) == bytes)
          return Status::Ok();
        DEPOT_RETURN_IF_ERROR(
            tx.Exec("UPDATE parent_link SET versions_behind = ?, bytes_behind = ? WHERE id = 1",
                    {versions, bytes})
                .status());
        return MarkUp(*ctx, tx, "link", "");
      })
      .IgnoreError();
}

core::Result<std::unique_ptr<ChildLink>> ChildLink::Open(SiteContext* ctx, LinkTiming timing) {
  auto s = std::make_unique<State>();
  s->ctx = ctx;
  s->timing = timing;
  s->schedule = std::make_unique<core::TransferSchedule>(ctx->env, ctx->clock, 0, "site.link");
  s->ca = ResolvePath(ctx->data_dir, ctx->config.parent_ca);
  const std::string token_file = ResolvePath(ctx->data_dir, ctx->config.parent_token_file);
  DEPOT_ASSIGN_OR_RETURN(std::string token, ctx->env->ReadFile(token_file, 4096));
  while (!token.empty() && (token.back() == '\n' || token.back() == '\r')) token.pop_back();
  if (token.empty())
    return Status::InvalidArgument(token_file +
                                   " is empty: it must hold the token `depot child add` printed");
  s->token = token;
  s->tuf_dir = core::JoinPath(ctx->data_dir, "parent/tuf");
  http::CurlOptions co;
  co.ca_file = s->ca;
  co.chunk_batches = true;
  std::string base = ctx->config.parent_url;
  while (!base.empty() && base.back() == '/') base.pop_back();
  DEPOT_ASSIGN_OR_RETURN(s->upstream, http::CurlSource::Create(base + "/repo", co));
  DEPOT_RETURN_IF_ERROR(ctx->db->Transaction([&](catalog::Tx& tx) {
    return tx
        .Exec("INSERT INTO parent_link (id, state_since) VALUES (1, ?) ON CONFLICT (id) DO NOTHING",
              {ctx->NowMs()})
        .status();
  }));
  DEPOT_ASSIGN_OR_RETURN(
      catalog::Rows link,
      ctx->db->Query("SELECT failures, max_rate, windows FROM parent_link WHERE id = 1"));
  if (!link.empty()) {
    s->failures = link[0].Int(0);
    Json w = Json::parse(link[0].Text(2), nullptr, false);
    s->schedule->Set(
        {{"max_rate", link[0].Int(1)}, {"windows", w.is_discarded() ? Json::array() : w}});
  }
  return std::unique_ptr<ChildLink>(new ChildLink(std::move(s)));
}

ChildLink::ChildLink(std::unique_ptr<State> state) : s_(std::move(state)) {}

ChildLink::~ChildLink() { Stop(); }

void ChildLink::Start() {
  puller_ = std::thread([this] { Puller(); });
  reporter_ = std::thread([this] { Reporter(); });
}

void ChildLink::Stop() {
  {
    std::lock_guard<std::mutex> lock(s_->mu);
    s_->stop = true;
  }
  s_->cv.notify_all();
  if (puller_.joinable()) puller_.join();
  if (reporter_.joinable()) reporter_.join();
}

void ChildLink::Puller() {
  State& s = *s_;
  SiteContext& ctx = *s.ctx;
  tuf::Client tuf(ctx.env, ctx.clock, s.upstream.get(), s.tuf_dir);
  core::Backoff contact(ctx.clock, {s.timing.retry_base, s.timing.retry_max});
  core::Backoff content(ctx.clock, {s.timing.retry_base, s.timing.retry_max});
  std::string etag;
  // Every start reads the whole feed: the catalog may be behind what was seen before.
  std::vector<MissingVersion> missing;
  bool trusted = false;
  std::optional<core::MonoTime> last_metadata;
  auto client = ParentClient(ctx.config.parent_url, s.token, s.ca, 0);
  if (!client.ok()) {
    core::Log(core::LogLevel::kError, "site.parent_client_failed",
              {{"error", client.status().ToString()}});
    return;
  }
  (*client)->SetAbortFlag(&s.stop);
  while (!s.stop) {
    if (!HoldLease(ctx, kLinkLease)) {
      // Another process of this child site drives the link; after a takeover this
      // one starts from the whole feed (level-triggered).
      etag.clear();
      trusted = false;
      if (s.Sleep(kLeaseCheckEvery)) return;
      continue;
    }
    if (!contact.Due()) {
      if (s.Sleep(contact.Remaining())) return;
      continue;
    }
    if (!trusted) {
      Status t = tuf.Initialize({});
      if (!t.ok()) {
        s.Contact(t.WithContext("the parent's pinned root in " + s.tuf_dir));
        contact.Failed();
        continue;
      }
      trusted = true;
    }
    auto r = s.PollFeed(**client, etag, s.FeedWaitSeconds(missing, content));
    Status got = r.status();
    if (s.stop) return;
    if (!got.ok()) {
      s.Contact(got);
      contact.Failed();
      continue;
    }
    bool changed = false;
    if (r->has_value()) {
      Status took = s.TakeFeed(**r, &missing, &etag);
      if (!took.ok()) {
        s.Contact(took);
        contact.Failed();
        continue;
      }
      changed = true;
    }
    const core::MonoTime now = ctx.clock->Monotonic();
    if (changed || !last_metadata || now - *last_metadata >= s.timing.metadata_every) {
      Status m = s.MirrorMetadata(tuf);
      if (!m.ok()) {
        s.Contact(m.WithContext("the parent's metadata"));
        contact.Failed();
        continue;
      }
      last_metadata = now;
    }
    s.Contact(Status::Ok());
    contact.Succeeded();
    s.SaveProgress(missing);
    s.CopyMissing(tuf, content, &missing);
  }
}

void ChildLink::Reporter() {
  State& s = *s_;
  SiteContext& ctx = *s.ctx;
  core::Backoff retry(ctx.clock, {s.timing.retry_base, s.timing.retry_max});
  auto client = ParentClient(ctx.config.parent_url, s.token, s.ca, 60);
  if (!client.ok()) return;
  (*client)->SetAbortFlag(&s.stop);
  while (!s.stop) {
    if (!HoldLease(ctx, kLinkLease)) {
      if (s.Sleep(kLeaseCheckEvery)) return;
      continue;
    }
    auto batch = BuildUpBatch(ctx, kReportBatch);
    if (!batch.ok() || batch->last_seq == 0) {
      if (s.Sleep(s.timing.report_every)) return;
      continue;
    }
    Json body = {{"items", batch->items}, {"through", batch->last_seq}};
    auto r = (*client)->Do("POST", "/api/v1/child/report", Dump(body));
    Status sent = r.ok() ? http::ApiError(*r, "the parent's answer to a report") : r.status();
    std::int64_t acked = 0;
    if (sent.ok()) {
      Json a = Json::parse(r->body, nullptr, false);
      if (a.is_object() && a.contains("acked") && a["acked"].is_number_integer()) {
        acked = a["acked"].get<std::int64_t>();
      } else {
        sent = Status::Corruption("the parent's answer to a report has no `acked`");
      }
    }
    if (!sent.ok()) {
      if (s.stop) return;
      s.Contact(sent.WithContext("a report to the parent"));
      if (s.Sleep(retry.Failed())) return;
      continue;
    }
    retry.Succeeded();
    if (s.Failing()) s.Contact(Status::Ok());  // else the puller's polls record contact
    Status ack = AckUp(ctx, acked);
    if (!ack.ok())
      core::Log(core::LogLevel::kWarn, "site.report_up_ack_failed", {{"error", ack.ToString()}});
    // More marked than one batch holds: send on at once.
    if (static_cast<std::size_t>(batch->pending) > batch->items.size()) continue;
    if (s.Sleep(s.timing.report_every)) return;
  }
}

core::Result<ParentTrust> FetchParentTrust(const std::string& url, const std::string& token,
                                           const std::string& ca_file) {
  DEPOT_ASSIGN_OR_RETURN(auto client, ParentClient(url, token, ca_file, 30));
  DEPOT_ASSIGN_OR_RETURN(http::ClientResponse r, client->Do("GET", "/api/v1/child/trust"));
  DEPOT_RETURN_IF_ERROR(http::ApiError(r, "the parent site's trust"));
  Json j = Json::parse(r.body, nullptr, false);
  if (j.is_discarded() || !j.contains("trusted_root") || !j["trusted_root"].is_string() ||
      !j.contains("chunker") || !j["chunker"].is_object()) {
    return Status::Unavailable("the parent's trust answer is incomplete");
  }
  ParentTrust t;
  t.root = j["trusted_root"].get<std::string>();
  t.code = j.value("site", "");
  t.chunk_min = j["chunker"].value("min", 0u);
  t.chunk_avg = j["chunker"].value("avg", 0u);
  t.chunk_max = j["chunker"].value("max", 0u);
  t.compression_level = j.value("compression_level", 3);
  return t;
}

}  // namespace depot::site
