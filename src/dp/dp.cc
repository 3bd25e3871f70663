#include "dp/dp.h"

#include <algorithm>
#include <condition_variable>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <set>
#include <thread>
#include <unordered_map>

#include "catalog/db.h"
#include "dp/version_check.h"
#include "catalog/migrate.h"
#include "catalog/outbox.h"
#include "core/crash_point.h"
#include "core/hex.h"
#include "core/log.h"
#include "core/messages.h"
#include "core/metrics.h"
#include "core/path.h"
#include "core/random.h"
#include "core/sha256.h"
#include "http/client.h"
#include "http/curl_source.h"
#include "http/server.h"
#include "http/static_files.h"
#include "repo/layout.h"
#include "repo/mirror.h"
#include "store/chunk_store.h"
#include "store/compress.h"
#include "store/manifest.h"
#include "tuf/client.h"
#include "tuf/metadata.h"

namespace depot::dp {

using core::Status;
using Json = nlohmann::json;

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

const std::vector<catalog::Migration>& StateMigrations() {
  static const std::vector<catalog::Migration> kMigrations = {
      {1, "dp state", kStateMigration1},
      // The shared outbox (catalog/outbox.h) carries a deployment subject too.
      {2, "outbox deployment", "ALTER TABLE outbox ADD COLUMN deployment BIGINT;"}};
  return kMigrations;
}

std::int64_t Ms(core::Duration d) { return std::chrono::duration_cast<std::chrono::milliseconds>(d).count(); }

std::string Dump(const Json& j) { return j.dump(-1, ' ', false, Json::error_handler_t::replace); }

// One assigned version, as the site describes it.
struct Assigned {
  std::string target;  // "tools/3.json"
  std::string package, package_id, manifest_id;
  std::int64_t version = 0;
  std::uint64_t manifest_bytes = 0, bytes = 0;
  std::int64_t retry_at_ms = 0;
  // The site's request to re-verify this version (an agent found it stale or bad):
  // its sequence number (0: none) and the chunks to check first.
  std::int64_t verify_seq = 0;
  std::vector<store::ChunkId> verify_chunks;
};

// What the DP knows locally about a version it syncs.
struct Local {
  std::string state = "pending";  // pending, syncing, ready, failed
  std::int64_t next_try_ms = 0;   // local backoff
  int failures = 0;
  std::uint64_t bytes_done = 0, bytes_total = 0, chunks_done = 0, chunks_total = 0;
  std::string error;
  bool report_due = true;
  // The site's latest verify request this DP has answered for the version; a ready
  // report carries it ("verified"), and only that brings a withheld copy back.
  std::int64_t verified_seq = 0;
};

// The versions of an assignment answer, by target; malformed entries are skipped
// (the site wrote them; a DP must not stop over one bad row).
std::map<std::string, Assigned> ParseAssignment(const Json& j) {
  std::map<std::string, Assigned> out;
  if (!j.contains("versions") || !j["versions"].is_array()) return out;
  for (const auto& v : j["versions"]) {
    Assigned a;
    try {
      a.target = v.at("target").get<std::string>();
      a.package = v.at("package").get<std::string>();
      a.package_id = v.at("package_id").get<std::string>();
      a.version = v.at("version").get<std::int64_t>();
      a.manifest_id = v.at("manifest_id").get<std::string>();
      a.manifest_bytes = v.at("manifest_bytes").get<std::uint64_t>();
      a.bytes = v.value("bytes", std::uint64_t{0});
      a.retry_at_ms = v.value("retry_at_ms", std::int64_t{0});
      if (v.contains("verify") && v["verify"].is_object()) {
        a.verify_seq = v["verify"].value("seq", std::int64_t{0});
        for (const auto& c : v["verify"].value("chunks", Json::array())) {
          auto id = c.is_string() ? core::ParseDigestHex(c.get<std::string>()) : core::Result<core::Digest>(Status());
          if (c.is_string() && id.ok() && a.verify_chunks.size() < 64) a.verify_chunks.push_back(*id);
        }
      }
    } catch (const std::exception&) {
      core::Log(core::LogLevel::kWarn, "dp.assignment_entry_malformed", {});
      continue;
    }
    if (!core::ValidateRelativePath(a.target).ok() || !core::IsLowerHex(a.manifest_id, 64)) continue;
    out[a.target] = a;
  }
  return out;
}

}  // namespace

struct DistributionPoint::Impl : public http::Handler {
  core::Env* env;
  core::Clock* clock;
  std::string dir;
  DpConfig cfg;
  repo::RepoLayout layout;
  store::ChunkStore chunks;
  std::string state_dir, staged_dir, tuf_dir;
  std::unique_ptr<catalog::Db> db;
  std::unique_ptr<http::CurlSource> upstream;  // Fetch() from any thread, FetchMany() from the syncer
  std::unique_ptr<http::StaticTree> tree;
  std::unique_ptr<http::Server> server;
  core::Registry metrics;
  core::Counter* synced_bytes = nullptr;
  core::Counter* synced_chunks = nullptr;
  core::Counter* rejected = nullptr;
  core::Counter* scrubbed_bytes = nullptr;
  core::Counter* scrub_damage = nullptr;
  core::Counter* repaired = nullptr;
  core::Counter* pull_through = nullptr;
  core::Counter* scrub_passes = nullptr;

  std::mutex mu;
  std::condition_variable cv;
  bool stopping = false;
  std::atomic<bool> abort_requests{false};  // ends long polls and reports at Stop
  std::uint64_t generation = 0;             // bumped when the assignment changes
  std::map<std::string, Assigned> assigned;  // by target
  std::map<std::string, Local> local;        // by target
  bool have_assignment = false;
  std::unordered_map<store::ChunkId, std::uint32_t, store::ChunkIdHash> wanted;  // chunks of known assigned manifests
  std::set<store::ChunkId> pulling;  // pull-through fetches in flight
  std::map<store::ChunkId, Status> pull_failed;  // why the last pull-through of a chunk failed (bounded)
  std::atomic<std::uint64_t> sync_bytes{0}, sync_chunks{0};  // progress of the current sync
  std::string syncing_target;

  std::vector<std::thread> threads;
  std::mutex pt_mu;  // serialises pull-through downloads (bounded upstream use)

  Impl(core::Env* e, core::Clock* c, std::string d, DpConfig config)
      : env(e),
        clock(c),
        dir(std::move(d)),
        cfg(std::move(config)),
        layout(dir),
        chunks(env, layout.chunks(), store::kDefaultCompressionLevel),
        state_dir(core::JoinPath(dir, "state")),
        staged_dir(core::JoinPath(state_dir, "manifests")),
        tuf_dir(core::JoinPath(state_dir, "tuf")) {}

  std::int64_t NowMs() const {
    return std::chrono::duration_cast<std::chrono::milliseconds>(clock->Now().time_since_epoch()).count();
  }

  std::string UpstreamBase() const { return cfg.upstream.empty() ? cfg.site : cfg.upstream; }

  core::Result<std::unique_ptr<http::Client>> SiteClient(long timeout_s) {
    http::ClientOptions o;
    o.bearer_token = cfg.token;
    o.ca_file = cfg.ca;
    o.timeout_s = timeout_s;
    o.max_response_bytes = 64ull << 20;
    DEPOT_ASSIGN_OR_RETURN(auto client, http::Client::Create(cfg.site, o));
    client->SetAbortFlag(&abort_requests);
    return client;
  }

  bool Stopping() {
    std::lock_guard<std::mutex> lock(mu);
    return stopping;
  }

  // Waits up to `d` or until stop; returns true when stopping.
  bool Sleep(core::Duration d) {
    std::unique_lock<std::mutex> lock(mu);
    cv.wait_for(lock, d, [&] { return stopping; });
    return stopping;
  }

  // ---------------------------------------------------------------- messages

  void Post(int code, const std::string& package, std::int64_t version, std::map<std::string, std::string> params) {
    catalog::OutboxMessage m{code, NowMs(), package, version, 0, std::move(params)};
    Status s = db->Transaction([&](catalog::Tx& tx) { return catalog::AppendOutbox(tx, m).status(); });
    if (!s.ok()) core::Log(core::LogLevel::kWarn, "dp.outbox_failed", {{"error", s.ToString()}});
    cv.notify_all();
  }

  // ---------------------------------------------------------------- assignment

  void PollLoop() {
    std::string etag;
    int failures = 0;
    std::unique_ptr<http::Client> client;
    while (!Stopping()) {
      if (!client) {
        auto c = SiteClient(150);
        if (!c.ok()) {
          core::Log(core::LogLevel::kError, "dp.site_client", {{"error", c.status().ToString()}});
          if (Sleep(cfg.retry_max)) return;
          continue;
        }
        client = std::move(*c);
      }
      std::vector<std::string> headers;
      if (!etag.empty()) headers.push_back("If-None-Match: " + etag);
      std::int64_t wait_s = std::clamp<std::int64_t>(
          std::chrono::duration_cast<std::chrono::seconds>(cfg.poll_wait).count(), 1, 120);
      auto r = client->Do("GET", "/api/v1/dp/assignment?wait=" + std::to_string(wait_s), {}, "application/json",
                          headers, static_cast<int>(wait_s + 90));
      if (Stopping()) return;
      // 304 is the long poll's normal end when nothing changed, not a failure to back off from.
      Status s = !r.ok() ? r.status() : r->status == 304 ? Status::Ok() : http::ApiError(*r, "assignment");
      if (!s.ok() || (r->status != 200 && r->status != 304)) {
        ++failures;
        core::Log(core::LogLevel::kWarn, "dp.assignment_failed",
                  {{"error", s.ok() ? "HTTP " + std::to_string(r->status) : s.ToString()},
                   {"attempt", std::to_string(failures)}});
        auto wait = std::min<core::Duration>(cfg.retry_max, cfg.retry_base * (1 << std::min(failures - 1, 16)));
        if (Sleep(wait)) return;
        client.reset();
        continue;
      }
      failures = 0;
      if (r->status == 304) continue;
      Json j = Json::parse(r->body, nullptr, false);
      if (j.is_discarded() || !j.contains("versions") || !j["versions"].is_array()) {
        core::Log(core::LogLevel::kWarn, "dp.assignment_malformed", {});
        if (Sleep(cfg.retry_base)) return;
        continue;
      }
      if (const std::string* e = r->GetHeader("etag")) etag = *e;
      std::map<std::string, Assigned> next = ParseAssignment(j);
      ApplyAssignment(std::move(next));
    }
  }

  void ApplyAssignment(std::map<std::string, Assigned> next) {
    std::vector<std::string> removed, added;
    std::vector<Assigned> to_verify;  // new verify requests from the site
    {
      std::lock_guard<std::mutex> lock(mu);
      for (const auto& [t, a] : assigned) {
        if (!next.count(t)) removed.push_back(t);
      }
      for (const auto& [t, a] : next) {
        if (!assigned.count(t)) added.push_back(t);
        Local& l = local[t];
        // The site's retry time for a failed version is authoritative.
        if (a.retry_at_ms > l.next_try_ms) l.next_try_ms = a.retry_at_ms;
        auto prev = assigned.find(t);
        if (a.verify_seq > l.verified_seq && (prev == assigned.end() || prev->second.verify_seq < a.verify_seq)) {
          to_verify.push_back(a);
          l.next_try_ms = 0;  // a request is worked on at once
        }
      }
      for (const auto& t : removed) local.erase(t);
      assigned = std::move(next);
      have_assignment = true;
      ++generation;
    }
    std::int64_t now = NowMs();
    Status s = db->Transaction([&](catalog::Tx& tx) -> Status {
      for (const auto& t : removed) {
        DEPOT_RETURN_IF_ERROR(
            tx.Exec("UPDATE versions SET removed_at = ? WHERE target = ? AND removed_at IS NULL", {now, t}).status());
      }
      for (const auto& t : added) {
        DEPOT_RETURN_IF_ERROR(tx.Exec("UPDATE versions SET removed_at = NULL WHERE target = ?", {t}).status());
      }
      return Status::Ok();
    });
    if (!s.ok()) core::Log(core::LogLevel::kWarn, "dp.state_failed", {{"error", s.ToString()}});
    if (!removed.empty()) {
      core::Log(core::LogLevel::kInfo, "dp.unassigned", {{"versions", std::to_string(removed.size())}});
    }
    // The chunks an agent reported are checked straight away (a damaged one is removed,
    // so it is not served again); the whole version follows on the syncer.
    for (const Assigned& a : to_verify) {
      core::Log(core::LogLevel::kInfo, "dp.verify_requested",
                {{"target", a.target}, {"seq", std::to_string(a.verify_seq)},
                 {"chunks", std::to_string(a.verify_chunks.size())}});
      for (const auto& id : a.verify_chunks) {
        std::string why;
        if (CheckChunk(&chunks, id, &why) == ChunkHealth::kDamaged) ReportDamage(id, a, why);
      }
    }
    if (!to_verify.empty() && tree) tree->CloseKeptFiles();
    cv.notify_all();
  }

  void ReportDamage(const store::ChunkId& id, const Assigned& a, const std::string& why) {
    if (scrub_damage) scrub_damage->Inc();
    std::string object = "chunks/" + store::ChunkRelPath(id);
    core::Log(core::LogLevel::kWarn, "dp.damaged_chunk", {{"object", object}, {"error", why}});
    Post(core::msg::kDpScrubDamage, a.package, a.version, {{"object", object}, {"error", why}});
  }

  // ---------------------------------------------------------------- syncing

  std::string PublishedPath(const std::string& package, std::int64_t version, const std::string& manifest_id) const {
    return core::JoinPath(layout.targets(),
                          tuf::ConsistentTargetPath(repo::ManifestTargetPath(package, version), manifest_id));
  }
  std::string StagedPath(const std::string& manifest_id) const {
    return core::JoinPath(staged_dir, manifest_id + ".json");
  }

  // Mirrors the verified TUF metadata into the public tree: versioned files first,
  // timestamp.json last (what clients read first), each written atomically.
  Status MirrorMetadata(tuf::Client& client) {
    struct File {
      const char* trusted;
      std::string public_name;
    };
    std::vector<File> files = {
        {"root.json", std::to_string(client.root_version()) + ".root.json"},
        {"root.json", "root.json"},
        {"targets.json", std::to_string(client.targets_version()) + ".targets.json"},
        {"snapshot.json", std::to_string(client.snapshot_version()) + ".snapshot.json"},
        {"timestamp.json", "timestamp.json"},
    };
    for (const File& f : files) {
      DEPOT_ASSIGN_OR_RETURN(std::string bytes, env->ReadFile(core::JoinPath(tuf_dir, f.trusted), 64ull << 20));
      std::string dest = core::JoinPath(layout.metadata(), f.public_name);
      auto existing = env->ReadFile(dest, 64ull << 20);
      if (existing.ok() && *existing == bytes) continue;
      DEPOT_RETURN_IF_ERROR(env->WriteFileAtomic(dest, bytes, 0644));
    }
    return Status::Ok();
  }

  struct Pick {
    Assigned a;
    std::uint64_t gen;
  };

  // The next version to work on: not ready, due, in a stable order.
  std::optional<Pick> NextWork() {
    std::lock_guard<std::mutex> lock(mu);
    std::int64_t now = NowMs();
    for (const auto& [t, a] : assigned) {
      Local& l = local[t];
      if (l.state == "ready" && a.verify_seq <= l.verified_seq) continue;
      if (l.next_try_ms > now) continue;
      return Pick{a, generation};
    }
    return std::nullopt;
  }

  bool StillAssigned(const std::string& target) {
    std::lock_guard<std::mutex> lock(mu);
    return stopping ? false : assigned.count(target) > 0;
  }

  void SetLocal(const std::string& target, const std::function<void(Local&)>& fn) {
    {
      std::lock_guard<std::mutex> lock(mu);
      auto it = local.find(target);
      if (it == local.end()) return;
      fn(it->second);
      it->second.report_due = true;
    }
    cv.notify_all();
  }

  core::Result<std::string> ManifestBytes(tuf::Client* client, const Assigned& a) {
    auto local_copy = ManifestBytesLocal(a);
    if (local_copy.ok()) return local_copy;
    if (client == nullptr) {
      // Pull-through: the assignment (from the authenticated site) names the hash.
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
    DEPOT_ASSIGN_OR_RETURN(tuf::TargetInfo info, client->GetTarget(a.target));
    if (info.sha256 != a.manifest_id) {
      return Status::Corruption("the signed metadata names manifest " + info.sha256 + " for " + a.target +
                                ", the site's assignment " + a.manifest_id + "; retrying after the next refresh");
    }
    DEPOT_ASSIGN_OR_RETURN(std::string bytes, client->FetchTarget(info));
    DEPOT_RETURN_IF_ERROR(env->WriteFileAtomic(StagedPath(a.manifest_id), bytes, 0644));
    return bytes;
  }

  // Syncs one version. When the site asked for it to be re-verified (an agent found
  // it stale or bad), every chunk of it is re-hashed first -- the reported ones before
  // the rest -- and damaged ones removed, so the sync below refetches them and
  // re-publishes the manifest; the ready that follows answers the request.
  Status SyncOne(tuf::Client& client, const Pick& pick) {
    const Assigned& a = pick.a;
    bool check;
    {
      std::lock_guard<std::mutex> lock(mu);
      check = a.verify_seq > local[a.target].verified_seq;
    }
    DEPOT_ASSIGN_OR_RETURN(std::string bytes, ManifestBytes(&client, a));
    DEPOT_ASSIGN_OR_RETURN(store::Manifest m, store::ParseManifest(bytes));
    if (m.package_name != a.package || m.version != a.version) {
      return Status::Corruption("manifest " + a.target + " describes " + m.package_name + " version " +
                                std::to_string(m.version));
    }
    std::vector<store::ChunkRef> refs = m.UniqueChunks();
    VersionCheck checked;
    if (check) {
      SetLocal(a.target, [&](Local& l) { l.state = "syncing"; });
      checked = CheckVersionChunks(&chunks, refs, a.verify_chunks, [&] { return !StillAssigned(a.target); });
      for (const auto& d : checked.damaged_objects) {
        Post(core::msg::kDpScrubDamage, a.package, a.version, {{"object", d.substr(0, d.find(':'))},
                                                               {"error", d.substr(d.find(':') + 2)}});
      }
      if (checked.damaged > 0 && tree) tree->CloseKeptFiles();
    }
    std::uint64_t total = 0;
    {
      std::lock_guard<std::mutex> lock(mu);
      for (const auto& c : refs) wanted[c.id] = c.size;
    }
    for (const auto& c : refs) total += c.size;
    // MirrorChunks counts what is already here first, then each chunk it stores.
    sync_bytes = 0;
    sync_chunks = 0;
    {
      std::lock_guard<std::mutex> lock(mu);
      syncing_target = a.target;
    }
    SetLocal(a.target, [&](Local& l) {
      l.state = "syncing";
      l.bytes_total = total;
      l.chunks_total = refs.size();
    });
    repo::MirrorOptions o;
    o.parallel = cfg.parallel;
    // Durable progress often: a kill refetches at most this much plus what was in flight.
    o.commit_bytes = 4ull << 20;
    o.commit_interval = std::chrono::milliseconds(500);
    o.max_rate = cfg.max_sync_rate;
    o.progress_bytes = &sync_bytes;
    o.progress_chunks = &sync_chunks;
    o.cancelled = [&] { return !StillAssigned(a.target); };
    o.on_rejected = [&](const store::ChunkId& id, const Status& s) {
      if (rejected) rejected->Inc();
      Post(core::msg::kDpUpstreamRejected, a.package, a.version,
           {{"object", "chunks/" + store::ChunkRelPath(id)}, {"upstream", upstream->Describe()}, {"error", s.message()}});
    };
    auto r = repo::MirrorChunks(env, clock, upstream.get(), &chunks, refs, o);
    {
      std::lock_guard<std::mutex> lock(mu);
      syncing_target.clear();
      auto it = local.find(a.target);
      if (it != local.end()) {
        it->second.bytes_done = sync_bytes;
        it->second.chunks_done = sync_chunks;
      }
    }
    if (r.ok()) {
      if (synced_bytes) synced_bytes->Inc(r->bytes);
      if (synced_chunks) synced_chunks->Inc(r->chunks);
    }
    if (!r.ok()) return r.status();
    // Everything is present and durable: publish the manifest, last.
    core::CrashPoint("dp.before_publish");
    std::string published = PublishedPath(a.package, a.version, a.manifest_id);
    DEPOT_RETURN_IF_ERROR(env->CreateDirs(std::string(core::Dirname(published))));
    DEPOT_RETURN_IF_ERROR(env->WriteFileAtomic(published, bytes, 0644));
    core::CrashPoint("dp.published");
    DEPOT_RETURN_IF_ERROR(db->Transaction([&](catalog::Tx& tx) {
      return tx
          .Exec("INSERT INTO versions (target, package, version, manifest_id, published_at) VALUES (?, ?, ?, ?, ?) "
                "ON CONFLICT (target) DO UPDATE SET manifest_id = excluded.manifest_id, published_at = "
                "excluded.published_at, removed_at = NULL",
                {a.target, a.package, a.version, a.manifest_id, NowMs()})
          .status();
    }));
    env->Remove(StagedPath(a.manifest_id)).IgnoreError();
    SetLocal(a.target, [&](Local& l) {
      l.state = "ready";
      l.failures = 0;
      l.error.clear();
      l.bytes_done = total;
      l.chunks_done = refs.size();
      // Everything was re-checked above when the site asked (pick.verify): this
      // ready answers its request.
      if (check) l.verified_seq = std::max(l.verified_seq, a.verify_seq);
    });
    if (check) {
      Post(core::msg::kDpVersionVerified, a.package, a.version,
           {{"checked", std::to_string(checked.checked)},
            {"damaged", std::to_string(checked.damaged + checked.missing)},
            {"repaired", std::to_string(r->chunks)}});
    } else {
      Post(core::msg::kDpSyncComplete, a.package, a.version, {});
    }
    core::Log(core::LogLevel::kInfo, "dp.synced",
              {{"target", a.target}, {"fetched_bytes", std::to_string(r->bytes)},
               {"transfer_bytes", std::to_string(r->transfer_bytes)}});
    return Status::Ok();
  }

  // A published version is ready when its manifest verifies and its chunks are all
  // present (checked at start and after scrubs).
  bool PublishedComplete(const Assigned& a) {
    auto bytes = env->ReadFile(PublishedPath(a.package, a.version, a.manifest_id), a.manifest_bytes);
    if (!bytes.ok() || core::Sha256::HashHex(*bytes) != a.manifest_id) return false;
    auto m = store::ParseManifest(*bytes);
    if (!m.ok()) return false;
    std::lock_guard<std::mutex> lock(mu);
    for (const auto& c : m->UniqueChunks()) {
      auto has = chunks.Has(c.id);
      if (!has.ok() || !*has) return false;
      wanted[c.id] = c.size;
    }
    return true;
  }

  void SyncLoop() {
    tuf::Client client(env, clock, upstream.get(), tuf_dir);
    bool initialized = false;
    std::int64_t last_refresh = 0;
    while (!Stopping()) {
      if (!initialized) {
        Status s = InitTrust(&client);
        if (!s.ok()) {
          core::Log(core::LogLevel::kWarn, "dp.trust_failed", {{"error", s.ToString()}});
          if (Sleep(cfg.retry_base)) return;
          continue;
        }
        initialized = true;
      }
      bool have;
      {
        std::lock_guard<std::mutex> lock(mu);
        have = have_assignment;
      }
      if (!have) {
        if (Sleep(std::chrono::milliseconds(200))) return;
        continue;
      }
      // Versions already published count as ready without refetching anything.
      std::vector<Assigned> unknown;
      {
        std::lock_guard<std::mutex> lock(mu);
        for (const auto& [t, a] : assigned) {
          if (local[t].state == "pending") unknown.push_back(a);
        }
      }
      for (const auto& a : unknown) {
        if (PublishedComplete(a)) {
          SetLocal(a.target, [](Local& l) {
            l.state = "ready";
            l.error.clear();
          });
        }
      }
      std::int64_t now = NowMs();
      auto pick = NextWork();
      if (pick || now - last_refresh > 30'000) {
        Status s = client.Refresh();
        if (s.ok()) s = MirrorMetadata(client);
        if (s.ok()) {
          last_refresh = now;
        } else {
          core::Log(core::LogLevel::kWarn, "dp.metadata_failed", {{"error", s.ToString()}});
          if (pick) Failed(pick->a, s);
          if (Sleep(std::chrono::seconds(1))) return;
          continue;
        }
      }
      if (!pick) {
        CollectGarbage();
        std::unique_lock<std::mutex> lock(mu);
        cv.wait_for(lock, std::chrono::seconds(1), [&] { return stopping; });
        continue;
      }
      Status s = SyncOne(client, *pick);
      if (s.ok()) KeepDiskReserve();
      if (!s.ok()) {
        if (!StillAssigned(pick->a.target)) continue;  // cancelled: the assignment dropped it
        Failed(pick->a, s);
      }
    }
  }

  // A full disk would also refuse the outbox row that reports it: a few pages are
  // kept in reserve (state/disk-reserve) and given up exactly then, so the message is
  // stored and delivered; the reserve comes back once space does.
  static constexpr std::size_t kDiskReserve = 1 << 20;
  std::string ReservePath() const { return core::JoinPath(state_dir, "disk-reserve"); }
  void KeepDiskReserve() {
    if (env->Stat(ReservePath()).ok()) return;
    Status s = env->WriteFileAtomic(ReservePath(), std::string(kDiskReserve, '\0'), 0600);
    if (!s.ok()) core::Log(core::LogLevel::kInfo, "dp.disk_reserve_pending", {{"error", s.ToString()}});
  }

  void Failed(const Assigned& a, const Status& s) {
    core::Log(core::LogLevel::kWarn, "dp.sync_failed", {{"target", a.target}, {"error", s.ToString()}});
    if (s.IsIOError() && s.message().find("No space") != std::string::npos) {
      env->Remove(ReservePath()).IgnoreError();
      Post(core::msg::kDpDiskFull, a.package, a.version, {{"error", s.message()}});
    }
    SetLocal(a.target, [&](Local& l) {
      l.state = "failed";
      l.error = s.ToString();
      ++l.failures;
      auto wait = std::min<core::Duration>(cfg.retry_max, cfg.retry_base * (1 << std::min(l.failures - 1, 16)));
      l.next_try_ms = NowMs() + Ms(wait);
    });
  }

  Status InitTrust(tuf::Client* client) {
    auto existing = env->ReadFile(core::JoinPath(tuf_dir, "root.json"), 1 << 20);
    if (existing.ok()) return client->Initialize({});
    DEPOT_ASSIGN_OR_RETURN(auto c, SiteClient(30));
    DEPOT_ASSIGN_OR_RETURN(http::ClientResponse r, c->Do("GET", "/api/v1/dp/trust"));
    DEPOT_RETURN_IF_ERROR(http::ApiError(r, "trust"));
    Json j = Json::parse(r.body, nullptr, false);
    if (j.is_discarded() || !j.contains("trusted_root") || !j["trusted_root"].is_string()) {
      return Status::Unavailable("the site's trust answer has no root");
    }
    return client->Initialize(j["trusted_root"].get<std::string>());
  }

  // Deletes content of versions unassigned longer than the grace period; keeps every
  // chunk another assigned version uses.
  void CollectGarbage() {
    std::int64_t cutoff = NowMs() - Ms(cfg.gc_grace);
    auto due = db->Query("SELECT target, package, version, manifest_id FROM versions WHERE removed_at IS NOT NULL "
                         "AND removed_at <= ?",
                         {cutoff});
    if (!due.ok() || due->empty()) return;
    // Live: every chunk of every assigned version whose manifest we know.
    store::ChunkIdSet live;
    std::vector<Assigned> keep;
    {
      std::lock_guard<std::mutex> lock(mu);
      for (const auto& [t, a] : assigned) keep.push_back(a);
    }
    for (const auto& a : keep) {
      auto bytes = ManifestBytesLocal(a);
      if (!bytes.ok()) {
        // Cannot know what it needs: collect nothing this time.
        return;
      }
      auto m = store::ParseManifest(*bytes);
      if (!m.ok()) return;
      for (const auto& c : m->UniqueChunks()) live.insert(c.id);
    }
    for (const auto& r : *due) {
      std::string target = r.Text(0), package = r.Text(1), manifest_id = r.Text(3);
      std::int64_t version = r.Int(2);
      std::string published = PublishedPath(package, version, manifest_id);
      env->Remove(published).IgnoreError();
      // The package's directory goes with its last version (fails, harmlessly, while
      // others remain). Publishing runs on this same thread, so nothing races it.
      env->Remove(std::string(core::Dirname(published))).IgnoreError();
      env->Remove(StagedPath(manifest_id)).IgnoreError();
      db->Transaction([&](catalog::Tx& tx) {
          return tx.Exec("DELETE FROM versions WHERE target = ?", {target}).status();
        }).IgnoreError();
      Post(core::msg::kDpContentPurged, package, version, {});
    }
    std::int64_t keep_after_ns = (NowMs() - Ms(cfg.gc_grace)) * 1'000'000;
    auto stats = chunks.CollectGarbage(live, keep_after_ns);
    // Files the server keeps open would hold the deleted ones' disk space.
    if (tree) tree->CloseKeptFiles();
    if (stats.ok()) {
      core::Log(core::LogLevel::kInfo, "dp.gc",
                {{"removed", std::to_string(stats->removed)}, {"bytes", std::to_string(stats->removed_bytes)}});
    }
  }

  core::Result<std::string> ManifestBytesLocal(const Assigned& a) {
    auto staged = env->ReadFile(StagedPath(a.manifest_id), a.manifest_bytes);
    if (staged.ok() && core::Sha256::HashHex(*staged) == a.manifest_id) return *staged;
    auto published = env->ReadFile(PublishedPath(a.package, a.version, a.manifest_id), a.manifest_bytes);
    if (published.ok() && core::Sha256::HashHex(*published) == a.manifest_id) return *published;
    return Status::NotFound("manifest of " + a.target + " not here yet");
  }

  // ---------------------------------------------------------------- reporting

  void ReportLoop() {
    std::unique_ptr<http::Client> client;
    int failures = 0;
    while (!Stopping()) {
      {
        std::unique_lock<std::mutex> lock(mu);
        cv.wait_for(lock, std::chrono::seconds(1), [&] { return stopping; });
        if (stopping) return;
      }
      if (!client) {
        auto c = SiteClient(30);
        if (!c.ok()) continue;
        client = std::move(*c);
      }
      Status s = SendReports(client.get());
      if (s.ok()) s = SendMessages(client.get());
      if (!s.ok()) {
        ++failures;
        client.reset();
        if (failures == 1 || failures % 30 == 0) {
          core::Log(core::LogLevel::kWarn, "dp.report_failed", {{"error", s.ToString()}});
        }
        if (Sleep(std::min<core::Duration>(cfg.retry_max, cfg.retry_base * std::min(failures, 16)))) return;
      } else {
        failures = 0;
      }
    }
  }

  Status SendReports(http::Client* client) {
    Json versions = Json::array();
    std::vector<std::string> sent;
    {
      std::lock_guard<std::mutex> lock(mu);
      for (auto& [t, l] : local) {
        auto it = assigned.find(t);
        if (it == assigned.end()) continue;
        bool live = t == syncing_target;
        if (!l.report_due && !live) continue;
        if (l.state == "pending") continue;
        Json v = {{"package", it->second.package},
                  {"version", it->second.version},
                  {"state", l.state},
                  {"bytes_total", l.bytes_total},
                  {"chunks_total", l.chunks_total},
                  {"verified", l.verified_seq}};
        v["bytes_done"] = live ? sync_bytes.load() : l.bytes_done;
        v["chunks_done"] = live ? sync_chunks.load() : l.chunks_done;
        if (!l.error.empty()) v["error"] = l.error.substr(0, 2000);
        versions.push_back(v);
        sent.push_back(t);
      }
    }
    if (versions.empty()) return Status::Ok();
    DEPOT_ASSIGN_OR_RETURN(http::ClientResponse r,
                           client->Do("POST", "/api/v1/dp/report", Dump({{"versions", versions}})));
    DEPOT_RETURN_IF_ERROR(http::ApiError(r, "report"));
    std::lock_guard<std::mutex> lock(mu);
    for (const auto& t : sent) {
      auto it = local.find(t);
      if (it != local.end()) it->second.report_due = false;
    }
    return Status::Ok();
  }

  Status SendMessages(http::Client* client) {
    for (;;) {
      DEPOT_ASSIGN_OR_RETURN(catalog::OutboxBatch batch, catalog::ReadOutbox(db.get(), 500));
      if (batch.count == 0) return Status::Ok();
      DEPOT_ASSIGN_OR_RETURN(http::ClientResponse resp,
                             client->Do("POST", "/api/v1/dp/messages", "{\"messages\":" + batch.json + "}"));
      DEPOT_RETURN_IF_ERROR(http::ApiError(resp, "messages"));
      DEPOT_RETURN_IF_ERROR(catalog::AckOutbox(db.get(), batch.last_seq));
      if (batch.count < 500) return Status::Ok();
    }
  }

  // ---------------------------------------------------------------- scrub

  // Re-hashes every chunk and published manifest; damaged ones are removed and, with
  // `repair`, refetched. Rate-limited by `rate` bytes/s (0: unlimited).
  core::Result<VerifyReport> Scrub(bool repair, std::uint64_t rate) {
    VerifyReport report;
    std::vector<std::pair<store::ChunkId, std::uint64_t>> all;
    DEPOT_RETURN_IF_ERROR(chunks.ForEach([&](const store::ChunkId& id, std::uint64_t size) {
      all.emplace_back(id, size);
      return true;
    }));
    auto start = std::chrono::steady_clock::now();
    std::uint64_t read = 0;
    for (const auto& [id, stored] : all) {
      if (Stopping()) break;
      auto data = chunks.Get(id, UINT64_MAX, /*verify=*/true);
      ++report.chunks;
      read += stored;
      report.bytes += stored;
      if (scrubbed_bytes) scrubbed_bytes->Inc(stored);
      if (!data.ok() && !data.status().IsNotFound()) {
        std::string object = "chunks/" + store::ChunkRelPath(id);
        VerifyFinding f{object, data.status().message(), false};
        if (scrub_damage) scrub_damage->Inc();
        chunks.Remove(id).IgnoreError();
        Post(core::msg::kDpScrubDamage, "", 0, {{"object", object}, {"error", data.status().message()}});
        if (repair) {
          std::uint32_t size = 0;
          {
            std::lock_guard<std::mutex> lock(mu);
            auto it = wanted.find(id);
            if (it != wanted.end()) size = it->second;
          }
          Status rs = size == 0 ? Status::NotFound("no assigned version uses it; not refetched") : Refetch(id, size);
          f.repaired = rs.ok();
          if (rs.ok()) {
            if (repaired) repaired->Inc();
            Post(core::msg::kDpRepaired, "", 0, {{"object", object}, {"upstream", upstream->Describe()}});
          } else {
            f.problem += "; not repaired: " + rs.message();
          }
        }
        report.findings.push_back(std::move(f));
      }
      if (rate > 0) {
        auto should = std::chrono::duration<double>(static_cast<double>(read) / static_cast<double>(rate));
        auto spent = std::chrono::steady_clock::now() - start;
        if (should > spent &&
            Sleep(std::chrono::duration_cast<core::Duration>(should - spent))) {
          break;
        }
      }
    }
    // Published manifests: their name carries their hash.
    auto packages = env->ListDir(layout.targets());
    if (packages.ok()) {
      for (const auto& p : *packages) {
        if (p.type != core::FileType::kDirectory) continue;
        std::string pdir = core::JoinPath(layout.targets(), p.name);
        auto files = env->ListDir(pdir);
        if (!files.ok()) continue;
        for (const auto& f : *files) {
          if (f.name.empty() || f.name[0] == '.') continue;
          ++report.manifests;
          std::string path = core::JoinPath(pdir, f.name);
          auto bytes = env->ReadFile(path, 256ull << 20);
          if (bytes.ok() && f.name.size() > 64 && core::Sha256::HashHex(*bytes) == f.name.substr(0, 64)) continue;
          std::string object = "targets/" + p.name + "/" + f.name;
          env->Remove(path).IgnoreError();
          Post(core::msg::kDpScrubDamage, p.name, 0, {{"object", object}, {"error", "manifest does not match its hash"}});
          report.findings.push_back({object, "manifest does not match its hash; removed (the syncer re-publishes it)", repair});
          // The version is no longer complete here: let the syncer redo it.
          std::lock_guard<std::mutex> lock(mu);
          for (auto& [t, l] : local) {
            auto it = assigned.find(t);
            if (it != assigned.end() && it->second.package == p.name && l.state == "ready") {
              l.state = "pending";
              l.report_due = true;
            }
          }
        }
      }
    }
    if (!report.findings.empty()) {
      // Removed files stay open in the server's cache until it looks at them again.
      if (tree) tree->CloseKeptFiles();
      // Chunks were removed: versions that used them must be checked again.
      std::lock_guard<std::mutex> lock(mu);
      for (auto& [t, l] : local) {
        if (l.state == "ready") l.state = "pending";
      }
      cv.notify_all();
    }
    return report;
  }

  Status Refetch(const store::ChunkId& id, std::uint32_t size) {
    std::string path = std::string(repo::kChunksDir) + "/" + store::ChunkRelPath(id);
    DEPOT_ASSIGN_OR_RETURN(std::string frame, upstream->Fetch(path, store::MaxFrameSize(size)));
    return chunks.PutFrame(id, size, frame, nullptr).status();
  }

  void ScrubLoop() {
    // The first pass soon after start (a DP that was down may have come back with a
    // damaged disk), then every scrub_every; each pass ends with a report (3008).
    if (Sleep(std::min(cfg.scrub_every, cfg.scrub_start))) return;
    for (;;) {
      auto r = Scrub(/*repair=*/true, cfg.scrub_rate);
      if (r.ok() && !Stopping()) {
        std::uint64_t repaired_now = 0;
        for (const auto& f : r->findings) repaired_now += f.repaired ? 1 : 0;
        core::Log(core::LogLevel::kInfo, "dp.scrubbed",
                  {{"chunks", std::to_string(r->chunks)}, {"damaged", std::to_string(r->findings.size())}});
        Post(core::msg::kDpScrubPass, "", 0,
             {{"chunks", std::to_string(r->chunks)},
              {"bytes", std::to_string(r->bytes)},
              {"manifests", std::to_string(r->manifests)},
              {"damaged", std::to_string(r->findings.size())},
              {"repaired", std::to_string(repaired_now)}});
        if (scrub_passes) scrub_passes->Inc();
      }
      if (Sleep(cfg.scrub_every)) return;
    }
  }

  // ---------------------------------------------------------------- serving

  // Nothing here takes a body; a small one is read so that a PUT or POST gets the 405
  // that says so rather than a 413.
  std::uint64_t BodyLimit(const http::Request& head) override {
    return head.method == "GET" || head.method == "HEAD" ? 0 : 64 << 10;
  }

  void Handle(http::Request& req, http::Response* resp) override {
    if (req.path == "/healthz") {
      *resp = http::Response::Text(200, "ok\n");
      resp->SetHeader("Cache-Control", "no-cache");
      return;
    }
    if (req.path == "/metrics") {
      *resp = http::Response::Text(200, metrics.Render());
      resp->SetHeader("Content-Type", "text/plain; version=0.0.4");
      return;
    }
    if (req.path.rfind("/repo/", 0) != 0) {
      *resp = http::Response::Json(404, R"({"error":{"code":"NotFound","message":"no such object"}})");
      return;
    }
    std::string_view rel = std::string_view(req.path).substr(6);
    if (rel == http::kChunkBatchPath) {
      // What is not here yet is answered "-": the client asks for it alone, and that
      // GET reaches the pull-through below.
      tree->ServeChunkBatch(req, resp);
      return;
    }
    tree->Serve(req, rel, resp);
    if (resp->status != 404 || (req.method != "GET" && req.method != "HEAD")) return;
    PullThrough(req, rel, resp);
  }

  // A chunk or manifest of an assigned version that is not here yet: fetched from
  // upstream, verified and stored on a background thread while the request is
  // parked; then served from disk. Unverified bytes are never sent.
  void PullThrough(http::Request& req, std::string_view rel, http::Response* resp) {
    if (rel.rfind("chunks/", 0) == 0 && rel.size() == 7 + 3 + 64) {
      auto id = core::ParseDigestHex(rel.substr(10));
      if (!id.ok()) return;
      std::uint32_t size = 0;
      bool start = false;
      std::string topic = "pt:" + std::string(rel.substr(10));
      std::uint64_t seq = server->Sequence(topic);
      {
        std::lock_guard<std::mutex> lock(mu);
        auto it = wanted.find(*id);
        if (it == wanted.end()) return;  // not ours: 404
        size = it->second;
        if (req.poll_round == 0) start = pulling.insert(*id).second;
      }
      if (req.poll_round > 0) {
        if (resp->status == 404) {
          Status why = Status::Unavailable("upstream could not supply the chunk");
          {
            std::lock_guard<std::mutex> lock(mu);
            auto it = pull_failed.find(*id);
            if (it != pull_failed.end()) why = it->second;
          }
          // The DP's own disk (full, failing) is not the upstream's fault: 503, not 502.
          Json err = {{"error", {{"code", why.IsIOError() ? "IOError" : "Unavailable"}, {"message", why.message()}}}};
          *resp = http::Response::Json(why.IsIOError() ? 503 : 502, err.dump());
          if (why.IsIOError()) resp->SetHeader("Retry-After", "60");
        }
        return;
      }
      if (start) {
        if (pull_through) pull_through->Inc();
        store::ChunkId cid = *id;
        std::thread([this, cid, size, topic] {
          Status s;
          {
            std::lock_guard<std::mutex> lock(pt_mu);
            auto has = chunks.Has(cid);
            s = has.ok() && *has ? Status::Ok() : Refetch(cid, size);
          }
          if (!s.ok()) {
            core::Log(core::LogLevel::kWarn, "dp.pull_through_failed",
                      {{"chunk", core::DigestHex(cid)}, {"error", s.ToString()}});
          }
          {
            std::lock_guard<std::mutex> lock(mu);
            pulling.erase(cid);
            if (s.ok()) {
              pull_failed.erase(cid);
            } else {
              if (pull_failed.size() >= 1024) pull_failed.clear();
              pull_failed[cid] = s;
            }
          }
          if (server) server->Notify(topic);
        }).detach();
      }
      *resp = http::Response();
      resp->wait = http::Response::Wait{topic, seq, std::chrono::seconds(60)};
      return;
    }
    if (rel.rfind("targets/", 0) == 0) {
      // targets/<package>/<sha256>.<version>.json of an assigned version.
      std::optional<Assigned> hit;
      {
        std::lock_guard<std::mutex> lock(mu);
        for (const auto& [t, a] : assigned) {
          if (std::string("targets/") + tuf::ConsistentTargetPath(a.target, a.manifest_id) == rel) hit = a;
        }
      }
      if (!hit) return;
      auto bytes = ManifestBytes(nullptr, *hit);
      if (!bytes.ok()) return;
      *resp = http::Response::Json(200, std::move(*bytes));
      resp->SetHeader("Cache-Control", "public, max-age=31536000, immutable");
      resp->SetHeader("ETag", "\"" + hit->manifest_id + "\"");
    }
  }
};

DistributionPoint::DistributionPoint(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

DistributionPoint::~DistributionPoint() { Stop(); }

core::Result<std::unique_ptr<DistributionPoint>> DistributionPoint::Open(core::Env* env, core::Clock* clock,
                                                                         const std::string& data_dir,
                                                                         const DpConfig& config) {
  if (config.site.empty() || config.token.empty()) {
    return Status::InvalidArgument("a DP needs --site URL and --token TOKEN (from `depot dp add`)");
  }
  auto impl = std::make_unique<Impl>(env, clock, data_dir, config);
  DEPOT_RETURN_IF_ERROR(env->CreateDirs(impl->layout.metadata()));
  DEPOT_RETURN_IF_ERROR(env->CreateDirs(impl->layout.targets()));
  DEPOT_RETURN_IF_ERROR(impl->chunks.Create());
  DEPOT_RETURN_IF_ERROR(env->CreateDirs(impl->staged_dir, 0750));
  DEPOT_RETURN_IF_ERROR(env->CreateDirs(impl->tuf_dir, 0750));
  DEPOT_ASSIGN_OR_RETURN(impl->db, catalog::Db::OpenSqlite(core::JoinPath(impl->state_dir, "state.db")));
  DEPOT_RETURN_IF_ERROR(catalog::Migrate(impl->db.get(), StateMigrations()));
  http::CurlOptions co;
  co.ca_file = config.ca;
  // The upstream is a site or a DP: many chunks per request; a plain web server
  // (nginx) as upstream gets GETs.
  co.chunk_batches = true;
  std::string base = impl->UpstreamBase();
  while (!base.empty() && base.back() == '/') base.pop_back();
  DEPOT_ASSIGN_OR_RETURN(impl->upstream, http::CurlSource::Create(base + "/repo", co));
  DEPOT_ASSIGN_OR_RETURN(impl->tree, http::StaticTree::Open(impl->layout.public_root()));
  // Temp files of a previous run that was killed.
  impl->chunks.SweepAbandonedTemps().status().IgnoreError();
  core::Registry& r = impl->metrics;
  impl->synced_bytes = r.GetCounter("depot_dp_sync_bytes_total", "Chunk bytes copied from upstream and verified");
  impl->synced_chunks = r.GetCounter("depot_dp_sync_chunks_total", "Chunks copied from upstream and verified");
  impl->rejected = r.GetCounter("depot_dp_upstream_rejected_total", "Upstream objects that failed verification");
  impl->scrubbed_bytes = r.GetCounter("depot_dp_scrub_bytes_total", "Stored bytes re-hashed by the scrubber");
  impl->scrub_damage = r.GetCounter("depot_dp_scrub_damaged_total", "Damaged objects the scrubber found");
  impl->repaired = r.GetCounter("depot_dp_repaired_total", "Damaged objects refetched");
  impl->pull_through = r.GetCounter("depot_dp_pull_through_total", "Objects fetched on demand for a client");
  impl->scrub_passes = r.GetCounter("depot_dp_scrub_passes_total", "Completed scrub passes over the whole store");
  Impl* raw = impl.get();
  r.AddCollector("depot_dp_versions", "Assigned versions by local state", [raw](const core::Registry::Emit& emit) {
    std::map<std::string, int> counts = {{"pending", 0}, {"syncing", 0}, {"ready", 0}, {"failed", 0}};
    std::lock_guard<std::mutex> lock(raw->mu);
    for (const auto& [t, l] : raw->local) counts[l.state]++;
    for (const auto& [s, n] : counts) emit({{"state", s}}, n);
  });
  r.AddCollector("depot_dp_sync_progress_bytes", "Bytes present of the version being synced",
                 [raw](const core::Registry::Emit& emit) { emit({}, static_cast<double>(raw->sync_bytes.load())); });
  r.AddCollector("depot_dp_kept_open_files", "Immutable files the server keeps open between requests",
                 [raw](const core::Registry::Emit& emit) { emit({}, static_cast<double>(raw->tree->kept_files())); });
  return std::unique_ptr<DistributionPoint>(new DistributionPoint(std::move(impl)));
}

Status DistributionPoint::Start() {
  Impl* impl = impl_.get();
  http::ServerOptions o;
  o.listen = impl->cfg.listen;
  o.tls_cert_file = impl->cfg.tls_cert;
  o.tls_key_file = impl->cfg.tls_key;
  o.max_connections = impl->cfg.max_connections;
  o.metrics = &impl->metrics;
  o.metrics_prefix = "depot_dp_http";
  o.server_name = "depot-dp";
  o.access_log = impl->cfg.access_log;
  DEPOT_ASSIGN_OR_RETURN(impl->server, http::Server::Start(impl, o));
  impl->KeepDiskReserve();
  impl->threads.emplace_back([impl] { impl->PollLoop(); });
  impl->threads.emplace_back([impl] { impl->SyncLoop(); });
  impl->threads.emplace_back([impl] { impl->ReportLoop(); });
  impl->threads.emplace_back([impl] { impl->ScrubLoop(); });
  core::Log(core::LogLevel::kInfo, "dp.started", {{"url", impl->server->url()}, {"upstream", impl->upstream->Describe()}});
  return Status::Ok();
}

void DistributionPoint::Stop() {
  Impl* impl = impl_.get();
  if (impl == nullptr) return;
  {
    std::lock_guard<std::mutex> lock(impl->mu);
    impl->stopping = true;
  }
  impl->abort_requests = true;
  impl->cv.notify_all();
  for (auto& t : impl->threads) {
    if (t.joinable()) t.join();
  }
  impl->threads.clear();
  if (impl->server) {
    impl->server->Stop();
    impl->server.reset();
  }
}

std::string DistributionPoint::url() const { return impl_->server ? impl_->server->url() : std::string(); }
std::uint16_t DistributionPoint::port() const { return impl_->server ? impl_->server->port() : 0; }

core::Result<VerifyReport> DistributionPoint::Verify(bool repair) {
  if (repair) {
    // Learn which chunks assigned versions need, so damaged ones can be refetched.
    auto c = impl_->SiteClient(30);
    if (c.ok()) {
      auto r = (*c)->Do("GET", "/api/v1/dp/assignment");
      if (r.ok() && r->status == 200) {
        Json j = Json::parse(r->body, nullptr, false);
        for (const auto& [t, a] : ParseAssignment(j.is_discarded() ? Json() : j)) {
          auto bytes = impl_->ManifestBytesLocal(a);
          if (!bytes.ok()) continue;
          auto m = store::ParseManifest(*bytes);
          if (!m.ok()) continue;
          std::lock_guard<std::mutex> lock(impl_->mu);
          for (const auto& ch : m->UniqueChunks()) impl_->wanted[ch.id] = ch.size;
        }
      }
    }
  }
  auto report = impl_->Scrub(repair, 0);
  // Deliver what the scrub recorded now, if the site answers.
  auto c = impl_->SiteClient(30);
  if (c.ok()) impl_->SendMessages(c->get()).IgnoreError();
  return report;
}

}  // namespace depot::dp
