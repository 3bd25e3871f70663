#include "dp/context.h"

#include "catalog/migrate.h"
#include "catalog/outbox.h"
#include "core/failover_source.h"
#include "core/log.h"
#include "core/messages.h"
#include "core/path.h"
#include "core/sha256.h"
#include "repo/layout.h"
#include "store/compress.h"
#include "store/manifest.h"
#include "tuf/metadata.h"

namespace depot::dp {

using core::Status;

namespace {

constexpr std::string_view kStateMigration1 = R"sql(
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
-- Versions this DP holds or held. removed_at: when the assignment dropped it; its
-- content is deleted gc_grace later.
CREATE TABLE versions (
  target TEXT PRIMARY KEY,
  package TEXT NOT NULL,
  version BIGINT NOT NULL,
  manifest_id TEXT NOT NULL,
  published_at BIGINT,
  removed_at BIGINT
);
-- Status messages waiting to be delivered to the site, in sequence order.
CREATE TABLE outbox (
  seq BIGINT PRIMARY KEY,
  code BIGINT NOT NULL,
  time_ms BIGINT NOT NULL,
  package TEXT,
  version BIGINT,
  params TEXT NOT NULL
);
)sql";

// Shipped scripts never change (migrate_test pins them); the outbox they build is
// checked against its one definition (catalog/outbox.h) when the DP opens.
const std::vector<catalog::Migration>& StateMigrations() {
  static const std::vector<catalog::Migration> kMigrations = {
      {1, "dp state", kStateMigration1},
      // The shared outbox (catalog/outbox.h) carries a deployment subject too.
      {2, "outbox deployment", "ALTER TABLE outbox ADD COLUMN deployment BIGINT;"}};
  return kMigrations;
}

constexpr std::size_t kDiskReserve = 1 << 20;

}  // namespace

DpMetrics::DpMetrics(core::Registry* r)
    : synced_bytes(r->GetCounter("depot_dp_sync_bytes_total",
                                 "Chunk bytes copied from upstream and verified")),
      synced_chunks(
          r->GetCounter("depot_dp_sync_chunks_total", "Chunks copied from upstream and verified")),
      rejected(r->GetCounter("depot_dp_upstream_rejected_total",
                             "Upstream objects that failed verification")),
      scrubbed_bytes(
          r->GetCounter("depot_dp_scrub_bytes_total", "Stored bytes re-hashed by the scrubber")),
      scrub_damage(
          r->GetCounter("depot_dp_scrub_damaged_total", "Damaged objects the scrubber found")),
      repaired(r->GetCounter("depot_dp_repaired_total", "Damaged objects refetched")),
      pull_through(
          r->GetCounter("depot_dp_pull_through_total", "Objects fetched on demand for a client")),
      scrub_passes(r->GetCounter("depot_dp_scrub_passes_total",
                                 "Completed scrub passes over the whole store")),
      window_open(r->GetGauge("depot_dp_window_open",
                              "1 while the link's transfer windows let content move")),
      max_rate(r->GetGauge("depot_dp_max_rate_bytes",
                           "Bytes/s the sync and pull-through share (0: unlimited)")) {}

DpContext::DpContext(core::Env* e, core::Clock* c, std::string d, DpConfig config)
    : env(e),
      clock(c),
      dir(std::move(d)),
      cfg(std::move(config)),
      layout(dir),
      chunks(env, layout.chunks(), store::kDefaultCompressionLevel),
      state_dir(core::JoinPath(dir, "state")),
      staged_dir(core::JoinPath(state_dir, "manifests")),
      tuf_dir(core::JoinPath(state_dir, "tuf")),
      book(c, {cfg.retry_base, cfg.retry_max}) {}

Status DpContext::Open() {
  DEPOT_RETURN_IF_ERROR(env->CreateDirs(layout.metadata()));
  DEPOT_RETURN_IF_ERROR(env->CreateDirs(layout.targets()));
  DEPOT_RETURN_IF_ERROR(chunks.Create());
  DEPOT_RETURN_IF_ERROR(env->CreateDirs(staged_dir, 0750));
  DEPOT_RETURN_IF_ERROR(env->CreateDirs(tuf_dir, 0750));
  DEPOT_ASSIGN_OR_RETURN(db, catalog::Db::OpenSqlite(core::JoinPath(state_dir, "state.db")));
  DEPOT_RETURN_IF_ERROR(catalog::Migrate(db.get(), StateMigrations()));
  DEPOT_RETURN_IF_ERROR(catalog::CheckOutboxSchema(db.get()));
  http::CurlOptions co;
  co.ca_file = cfg.ca;
  // The upstream is a site or a DP: many chunks per request; a plain web server
  // (nginx) as upstream gets GETs.
  co.chunk_batches = true;
  std::vector<std::string> bases = {UpstreamBase()};
  if (cfg.upstream.empty()) bases.insert(bases.end(), cfg.more_sites.begin(), cfg.more_sites.end());
  std::vector<std::unique_ptr<core::RepoSource>> sources;
  for (std::string base : bases) {
    while (!base.empty() && base.back() == '/') base.pop_back();
    DEPOT_ASSIGN_OR_RETURN(auto source, http::CurlSource::Create(base + "/repo", co));
    sources.push_back(std::move(source));
  }
  if (sources.size() == 1) {
    upstream = std::move(sources.front());
  } else {
    upstream = std::make_unique<core::FailoverSource>(std::move(sources), clock);
  }
  DEPOT_ASSIGN_OR_RETURN(tree, http::StaticTree::Open(layout.public_root()));
  // Temp files of a previous run that was killed.
  chunks.SweepAbandonedTemps().status().IgnoreError();
  return Status::Ok();
}

core::Result<std::unique_ptr<http::Client>> DpContext::SiteClient(long timeout_s) {
  http::ClientOptions o;
  o.bearer_token = cfg.token;
  o.ca_file = cfg.ca;
  o.timeout_s = timeout_s;
  o.max_response_bytes = 64ull << 20;
  o.fallback_urls = cfg.more_sites;
  o.clock = clock;
  DEPOT_ASSIGN_OR_RETURN(auto client, http::Client::Create(cfg.site, o));
  client->SetAbortFlag(&abort_requests);
  return client;
}

void DpContext::Post(int code, const std::string& package, std::int64_t version,
                     std::map<std::string, std::string> params) {
  catalog::OutboxMessage m{
      code, core::UnixMillis(clock->Now()), package, version, 0, std::move(params)};
  Status s =
      db->Transaction([&](catalog::Tx& tx) { return catalog::AppendOutbox(tx, m).status(); });
  if (!s.ok()) core::Log(core::LogLevel::kWarn, "dp.outbox_failed", {{"error", s.ToString()}});
}

void DpContext::ReportDamage(const store::ChunkId& id, const Assigned& a, const std::string& why) {
  metrics.scrub_damage->Inc();
  std::string object = "chunks/" + store::ChunkRelPath(id);
  core::Log(core::LogLevel::kWarn, "dp.damaged_chunk", {{"object", object}, {"error", why}});
  Post(core::msg::kDpScrubDamage, a.package, a.version, {{"object", object}, {"error", why}});
}

std::string DpContext::PublishedPath(const std::string& package, std::int64_t version,
                                     const std::string& manifest_id) const {
  return core::JoinPath(
      layout.targets(),
      tuf::ConsistentTargetPath(repo::ManifestTargetPath(package, version), manifest_id));
}

std::string DpContext::StagedPath(const std::string& manifest_id) const {
  return core::JoinPath(staged_dir, manifest_id + ".json");
}

core::Result<std::string> DpContext::ManifestBytesLocal(const Assigned& a) const {
  auto staged = env->ReadFile(StagedPath(a.manifest_id), a.manifest_bytes);
  if (staged.ok() && core::Sha256::HashHex(*staged) == a.manifest_id) return *staged;
  auto published =
      env->ReadFile(PublishedPath(a.package, a.version, a.manifest_id), a.manifest_bytes);
  if (published.ok() && core::Sha256::HashHex(*published) == a.manifest_id) return *published;
  return Status::NotFound("manifest of " + a.target + " not here yet");
}

core::Result<std::string> DpContext::ManifestBytesUpstream(const Assigned& a) {
  auto local_copy = ManifestBytesLocal(a);
  if (local_copy.ok()) return local_copy;
  DEPOT_ASSIGN_OR_RETURN(std::string bytes,
                         upstream->Fetch(std::string(repo::kTargetsDir) + "/" +
                                             tuf::ConsistentTargetPath(a.target, a.manifest_id),
                                         a.manifest_bytes));
  if (core::Sha256::HashHex(bytes) != a.manifest_id) {
    return Status::Corruption("manifest " + a.target + " from " + upstream->Describe() +
                              " does not match its signed hash");
  }
  DEPOT_RETURN_IF_ERROR(env->WriteFileAtomic(StagedPath(a.manifest_id), bytes, 0644));
  return bytes;
}

Status DpContext::Refetch(const store::ChunkId& id, std::uint32_t size) {
  std::string path = std::string(repo::kChunksDir) + "/" + store::ChunkRelPath(id);
  DEPOT_ASSIGN_OR_RETURN(std::string frame, upstream->Fetch(path, store::MaxFrameSize(size)));
  schedule.limiter()->Throttle(frame.size(), [this] { return abort_requests.load(); });
  return chunks.PutFrame(id, size, frame, nullptr).status();
}

void DpContext::WantChunksOf(const std::string& manifest_bytes) {
  auto m = store::ParseManifest(manifest_bytes);
  if (!m.ok()) return;
  std::vector<std::pair<store::ChunkId, std::uint32_t>> want;
  for (const auto& c : m->UniqueChunks()) want.emplace_back(c.id, c.size);
  book.Want(want);
}

void DpContext::KeepDiskReserve() {
  const std::string path = core::JoinPath(state_dir, "disk-reserve");
  if (env->Stat(path).ok()) return;
  Status s = env->WriteFileAtomic(path, std::string(kDiskReserve, '\0'), 0600);
  if (!s.ok())
    core::Log(core::LogLevel::kInfo, "dp.disk_reserve_pending", {{"error", s.ToString()}});
}

void DpContext::GiveUpDiskReserve() {
  env->Remove(core::JoinPath(state_dir, "disk-reserve")).IgnoreError();
}

}  // namespace depot::dp
