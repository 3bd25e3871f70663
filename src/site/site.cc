#include "site/site.h"

#include <unistd.h>

#include <algorithm>
#include <condition_variable>
#include <thread>

#include "catalog/schema.h"
#include "core/log.h"
#include "core/messages.h"
#include "core/random.h"
#include "site/api.h"
#include "site/auth.h"
#include "site/child_link.h"
#include "site/children.h"
#include "site/context.h"
#include "site/distribution.h"
#include "site/messages.h"
#include "site/packages.h"
#include "site/processes.h"
#include "site/tls_ca.h"
#include "site/worker.h"
#include "tuf/repository.h"

namespace depot::site {

using core::Status;

std::string FormatMs(std::int64_t ms) {
  if (ms == 0) return {};
  return core::FormatUtc(core::TimePoint(std::chrono::milliseconds(ms)));
}

namespace {

constexpr const char* kConfigFile = kSiteConfigFile;
constexpr const char* kCatalogFile = kSiteCatalogFile;
constexpr char kLibraryDir[] = "library";

// The site's catalog: PostgreSQL when site.toml names one, else the SQLite file in
// the data directory.
core::Result<std::unique_ptr<catalog::Db>> OpenCatalog(const std::string& data_dir,
                                                       const SiteConfig& config) {
  if (!config.db.empty()) return catalog::Db::OpenPostgres(config.db);
  return catalog::Db::OpenSqlite(core::JoinPath(data_dir, kCatalogFile));
}

std::string ListenHost(const std::string& listen) {
  auto colon = listen.rfind(':');
  std::string host = colon == std::string::npos ? listen : listen.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[') host = host.substr(1, host.size() - 2);
  return host;
}

}  // namespace

namespace {

// A child's part of InitSite: joins the parent before anything is written, so a bad
// URL or token leaves no half-made directory behind; then the replica library, the
// pinned root and the token file.
Status InitChild(core::Env* env, const InitOptions& o, SiteConfig* out,
                 repo::RepoSettings* out_settings) {
  SiteConfig& config = *out;
  repo::RepoSettings& settings = *out_settings;
  // A child: it joins its parent before anything is written, so a bad URL or token
  // leaves no half-made directory behind.
  std::string parent = o.parent_url;
  while (!parent.empty() && parent.back() == '/') parent.pop_back();
  if (o.parent_token.empty()) return Status::InvalidArgument("--parent needs --parent-token");
  auto trust = FetchParentTrust(parent, o.parent_token, o.parent_ca);
  if (!trust.ok()) {
    return trust.status().WithContext("joining the parent site at " + parent +
                                      " (check the URL and the token `depot child add` printed)");
  }
  if (trust->code == o.code)
    return Status::InvalidArgument("the parent site's code is " + o.code +
                                   " too; codes name sites in a tree");
  settings.chunker.min_size = trust->chunk_min;
  settings.chunker.avg_size = trust->chunk_avg;
  settings.chunker.max_size = trust->chunk_max;
  settings.compression_level = trust->compression_level;
  config.parent_url = parent;
  config.parent_ca = o.parent_ca;
  DEPOT_RETURN_IF_ERROR(env->CreateDirs(o.data_dir, 0750));
  DEPOT_RETURN_IF_ERROR(repo::Repository::InitReplica(env, core::JoinPath(o.data_dir, kLibraryDir),
                                                      settings, trust->root)
                            .WithContext("content library"));
  const std::string tuf_dir = core::JoinPath(o.data_dir, "parent/tuf");
  DEPOT_RETURN_IF_ERROR(env->CreateDirs(tuf_dir, 0750));
  DEPOT_RETURN_IF_ERROR(
      env->WriteFileAtomic(core::JoinPath(tuf_dir, "root.json"), trust->root, 0644));
  DEPOT_RETURN_IF_ERROR(env->WriteFileAtomic(core::JoinPath(o.data_dir, config.parent_token_file),
                                             o.parent_token + "\n", 0600));
  return Status::Ok();
}

}  // namespace

namespace {

// What InitSite checks before it writes anything: the code, an empty data directory,
// TLS flags that go together.
Status CheckInitOptions(core::Env* env, const InitOptions& o) {
  DEPOT_RETURN_IF_ERROR(ValidateSiteCode(o.code));
  if (o.data_dir.empty()) return Status::InvalidArgument("--data is required");
  auto listing = env->ListDir(o.data_dir);
  if (listing.ok() && !listing->empty()) {
    auto has_config = env->Exists(core::JoinPath(o.data_dir, kConfigFile));
    if (has_config.ok() && *has_config) {
      return Status::InvalidArgument(
          o.data_dir + " already holds a site; serve it with `depot site serve --data " +
          o.data_dir + "`");
    }
    return Status::InvalidArgument(
        o.data_dir +
        " exists and is not empty (an interrupted init leaves no site.toml: remove "
        "the directory and run init again)");
  }
  if (o.tls_cert.empty() != o.tls_key.empty())
    return Status::InvalidArgument("--tls-cert and --tls-key go together");
  if (o.make_ca && !o.tls_cert.empty())
    return Status::InvalidArgument("--make-ca and --tls-cert exclude each other");
  return Status::Ok();
}

}  // namespace

core::Result<InitResult> InitSite(core::Env* env, core::Clock* clock, const InitOptions& o) {
  DEPOT_RETURN_IF_ERROR(CheckInitOptions(env, o));
  SiteConfig config;
  config.code = o.code;
  config.listen = o.listen;
  config.public_url = o.public_url;
  config.keep_versions = o.keep_versions;
  config.tls_cert = o.tls_cert;
  config.tls_key = o.tls_key;
  config.db = o.db;

  // A PostgreSQL catalog is checked before anything is written: a new site gets an
  // empty database (one that holds a site belongs to another data directory).
  std::unique_ptr<catalog::Db> db;
  if (!config.db.empty()) {
    DEPOT_ASSIGN_OR_RETURN(db, catalog::Db::OpenPostgres(config.db));
    DEPOT_ASSIGN_OR_RETURN(int schema, catalog::SchemaVersion(db.get()));
    if (schema != 0) {
      return Status::InvalidArgument(db->Describe() +
                                     " already holds a depot catalog: give --db an empty database");
    }
  }
  repo::RepoSettings settings;
  if (!o.parent_url.empty()) {
    DEPOT_RETURN_IF_ERROR(InitChild(env, o, &config, &settings));
  } else {
    DEPOT_RETURN_IF_ERROR(env->CreateDirs(o.data_dir, 0750));
    DEPOT_RETURN_IF_ERROR(
        repo::Repository::Init(env, clock, core::JoinPath(o.data_dir, kLibraryDir), settings)
            .WithContext("content library"));
  }
  if (!db) {
    DEPOT_ASSIGN_OR_RETURN(db, OpenCatalog(o.data_dir, config));
  }
  DEPOT_RETURN_IF_ERROR(catalog::Migrate(db.get(), catalog::SiteMigrations()));

  InitResult result;
  SiteContext ctx;
  ctx.env = env;
  ctx.clock = clock;
  ctx.config = config;
  NewToken admin;
  Status s = db->Transaction([&](catalog::Tx& tx) -> Status {
    DEPOT_RETURN_IF_ERROR(
        tx.Exec("INSERT INTO meta (key, value) VALUES ('site_code', ?)", {o.code}).status());
    DEPOT_ASSIGN_OR_RETURN(admin,
                           CreateToken(ctx, tx, Role::kAdmin, "initial admin", 0, 0, std::nullopt));
    return Status::Ok();
  });
  if (!s.ok()) return s;
  result.admin_token = admin.secret;

  if (o.make_ca) {
    char host[256] = {};
    ::gethostname(host, sizeof(host) - 1);
    std::vector<std::string> names = {"localhost", "127.0.0.1", "::1"};
    if (host[0] != 0) names.insert(names.begin(), host);
    std::string lh = ListenHost(o.listen);
    if (!lh.empty() && lh != "0.0.0.0" && lh != "::" && lh != "*" &&
        std::find(names.begin(), names.end(), lh) == names.end()) {
      names.insert(names.begin(), lh);
    }
    DEPOT_ASSIGN_OR_RETURN(CaFiles ca,
                           MakePrivateCa(env, core::JoinPath(o.data_dir, "tls"), o.code, names));
    config.tls_cert = "tls/site.pem";
    config.tls_key = "tls/site.key";
    config.tls_ca = "tls/ca.pem";
    result.ca_file = ca.ca_cert;
  }
  result.config_path = core::JoinPath(o.data_dir, kConfigFile);
  // Last: site.toml marks a complete data directory.
  DEPOT_RETURN_IF_ERROR(env->WriteFileAtomic(result.config_path, RenderConfig(config), 0640));
  core::Log(core::LogLevel::kInfo, "site.initialized", {{"data", o.data_dir}, {"code", o.code}});
  return result;
}

struct Site::Worker {
  std::thread thread;
  std::thread heartbeat;
  std::mutex mu;
  std::condition_variable cv;
  bool stop = false;
};

Site::Site() : ctx_(std::make_unique<SiteContext>()) {}

Site::~Site() {
  Stop();
  // The catalog first: its listener thread delivers into the context's caches, which
  // are destroyed before it otherwise.
  if (ctx_) ctx_->db.reset();
}

core::Result<std::unique_ptr<Site>> Site::Open(core::Env* env, core::Clock* clock,
                                               const std::string& data_dir,
                                               const ServeOverrides& overrides) {
  std::unique_ptr<Site> site(new Site());
  SiteContext& ctx = *site->ctx_;
  ctx.env = env;
  ctx.clock = clock;
  ctx.data_dir = data_dir;
  DEPOT_ASSIGN_OR_RETURN(ctx.config, LoadConfig(env, core::JoinPath(data_dir, kConfigFile)));
  if (!overrides.listen.empty()) ctx.config.listen = overrides.listen;
  if (!overrides.access_log.empty()) ctx.config.access_log = overrides.access_log;
  DEPOT_ASSIGN_OR_RETURN(ctx.repo,
                         repo::Repository::Open(env, clock, core::JoinPath(data_dir, kLibraryDir)));
  ctx.repo->SetTimestampLifetime(ctx.config.timestamp_lifetime);
  DEPOT_ASSIGN_OR_RETURN(ctx.repo_tree, http::StaticTree::Open(ctx.repo->layout().public_root()));
  DEPOT_ASSIGN_OR_RETURN(ctx.db, OpenCatalog(data_dir, ctx.config));
  DEPOT_RETURN_IF_ERROR(catalog::Migrate(ctx.db.get(), catalog::SiteMigrations()));
  DEPOT_ASSIGN_OR_RETURN(ctx.trusted_root, ctx.repo->TrustedRoot());
  ctx.process_id = core::RandomHex(16);
  {
    store::ChunkIntakeOptions intake;
    // The intake vouches for a chunk it committed only while collection cannot have
    // removed it (collection spares chunks younger than the grace period).
    intake.remember_for = std::min<std::chrono::milliseconds>(
        std::chrono::minutes(10),
        std::chrono::duration_cast<std::chrono::milliseconds>(ctx.config.gc_grace) / 2);
    ctx.intake = std::make_unique<store::ChunkIntake>(ctx.repo->chunks(), intake);
    ctx.chunk_filter = std::make_unique<store::ChunkFilter>();
  }
  // Before anything can change: other processes' changes reach this one's caches.
  SubscribeSignals(ctx);
  DEPOT_RETURN_IF_ERROR(RegisterProcess(ctx).WithContext("registering in " + ctx.db->Describe()));
  // A child's library is a replica: nothing is signed here, so nothing to recover.
  if (!ctx.config.is_child())
    DEPOT_RETURN_IF_ERROR(RecoverVersions(ctx).WithContext("recovering interrupted work"));
  ctx.chunks_received =
      ctx.metrics.GetCounter("depot_site_chunks_received_total", "Chunks uploaded and verified");
  ctx.chunk_bytes_received = ctx.metrics.GetCounter("depot_site_chunk_bytes_received_total",
                                                    "Compressed chunk bytes uploaded");
  ctx.chunks_rejected = ctx.metrics.GetCounter("depot_site_chunks_rejected_total",
                                               "Uploaded chunks that failed verification");
  ctx.policy_polls =
      ctx.metrics.GetCounter("depot_site_policy_polls_total", "Agent policy requests");
  ctx.policy_not_modified = ctx.metrics.GetCounter("depot_site_policy_not_modified_total",
                                                   "Policy requests answered 304");
  SiteContext* raw = &ctx;
  ctx.metrics.AddCollector(
      "depot_site_dp_records", "Reconciliation records by state",
      [raw](const core::Registry::Emit& emit) {
        auto rows = raw->db->Query("SELECT state, COUNT(*) FROM dp_records GROUP BY state");
        if (!rows.ok()) return;
        for (const auto& r : *rows) emit({{"state", r.Text(0)}}, static_cast<double>(r.Int(1)));
      });
  ctx.metrics.AddCollector(
      "depot_site_chunk_filter_ready",
      "1 once missing-chunk queries can skip lookups of chunks the library lacks",
      [raw](const core::Registry::Emit& emit) { emit({}, raw->chunk_filter->ready() ? 1 : 0); });
  ctx.metrics.AddCollector("depot_site_clients", "Enrolled clients",
                           [raw](const core::Registry::Emit& emit) {
                             auto n = raw->db->QueryInt("SELECT COUNT(*) FROM clients");
                             if (n.ok()) emit({}, static_cast<double>(*n));
                           });
  AddLinkMetrics(ctx);
  ctx.metrics.AddCollector(
      "depot_site_messages", "Status message records by severity",
      [raw](const core::Registry::Emit& emit) {
        auto rows = raw->db->Query("SELECT severity, COUNT(*) FROM messages GROUP BY severity");
        if (!rows.ok()) return;
        for (const auto& r : *rows) emit({{"severity", r.Text(0)}}, static_cast<double>(r.Int(1)));
      });
  return site;
}

namespace {

// The URL clients are told to use: the configured one, else the listening address with
// the host name in place of a wildcard host.
std::string PublicUrl(const SiteConfig& config, const http::Server& server) {
  std::string url;
  if (!config.public_url.empty()) {
    url = config.public_url;
    while (!url.empty() && url.back() == '/') url.pop_back();
  } else {
    std::string host = ListenHost(config.listen);
    if (host == "0.0.0.0" || host == "::" || host == "*" || host.empty()) {
      char name[256] = {};
      ::gethostname(name, sizeof(name) - 1);
      url = std::string(server.tls() ? "https://" : "http://") + name + ":" +
            std::to_string(server.port());
    } else {
      url = server.url();
    }
  }
  return url;
}

}  // namespace

Status Site::Start() {
  SiteContext& ctx = *ctx_;
  api_ = std::make_unique<SiteApi>(&ctx);
  http::ServerOptions opts;
  opts.listen = ctx.config.listen;
  opts.tls_cert_file = ResolvePath(ctx.data_dir, ctx.config.tls_cert);
  opts.tls_key_file = ResolvePath(ctx.data_dir, ctx.config.tls_key);
  opts.max_connections = ctx.config.max_connections;
  opts.max_connections_per_address = ctx.config.max_connections_per_address;
  opts.max_body_memory = ctx.config.max_body_memory;
  opts.metrics = &ctx.metrics;
  opts.metrics_prefix = "depot_site_http";
  opts.server_name = "depot-site";
  if (!ctx.config.access_log.empty())
    opts.access_log = ResolvePath(ctx.data_dir, ctx.config.access_log);
  DEPOT_ASSIGN_OR_RETURN(server_, http::Server::Start(api_.get(), opts));
  {
    std::lock_guard<std::mutex> lock(ctx.server_mu);
    ctx.server = server_.get();
  }
  ctx.public_url = PublicUrl(ctx.config, *server_);
  ctx.db
      ->Transaction([&](catalog::Tx& tx) {
        return PostMessage(ctx, tx, core::msg::kSiteStarted, {},
                           {{"site", ctx.config.code}, {"listen", server_->url()}});
      })
      .IgnoreError();
  ctx.ActivityHere();  // a revision from now: streams from before a restart look again
  core::Log(core::LogLevel::kInfo, "site.started",
            {{"code", ctx.config.code},
             {"url", server_->url()},
             {"console", ctx.public_url + "/console/"}});

  if (ctx.config.is_child()) {
    DEPOT_ASSIGN_OR_RETURN(link_, ChildLink::Open(&ctx));
    link_->Start();
  }
  worker_ = std::make_unique<Worker>();
  Worker* w = worker_.get();
  Heartbeat(ctx);  // with the URL it serves
  w->heartbeat = std::thread([this, w] { HeartbeatLoop(*ctx_, w->mu, w->cv, w->stop); });
  w->thread = std::thread([this, w] { WorkerLoop(*ctx_, w->mu, w->cv, w->stop); });
  return Status::Ok();
}

void Site::Stop() {
  if (link_) {
    link_->Stop();
    link_.reset();
  }
  if (worker_) {
    {
      std::lock_guard<std::mutex> lock(worker_->mu);
      worker_->stop = true;
    }
    worker_->cv.notify_all();
    if (worker_->thread.joinable()) worker_->thread.join();
    if (worker_->heartbeat.joinable()) worker_->heartbeat.join();
    worker_.reset();
  }
  if (server_) {
    server_->Stop();
    {
      std::lock_guard<std::mutex> lock(ctx_->server_mu);
      ctx_->server = nullptr;
    }
    server_.reset();
    FlushSeen(*ctx_);
    // Uploads whose version was not committed yet: their chunks still become durable
    // chunks (collected later if no version ever references them).
    Status s = ctx_->intake->Flush();
    if (!s.ok())
      core::Log(core::LogLevel::kError, "site.upload_commit_failed", {{"error", s.ToString()}});
    // Last: requests in flight may have reserved versions in this process's name. Its
    // leases pass on at once.
    UnregisterProcess(*ctx_);
  }
}

std::string Site::url() const { return server_ ? ctx_->public_url : std::string(); }

const SiteConfig& Site::config() const { return ctx_->config; }

}  // namespace depot::site
