#include "agent/agent.h"

#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <malloc.h>

#include <algorithm>
#include <cmath>
#include <condition_variable>
#include <mutex>
#include <nlohmann/json.hpp>
#include <random>
#include <set>
#include <thread>
#include <unordered_map>

#include "agent/machine.h"
#include "agent/program.h"
#include "agent/schedule.h"
#include "catalog/db.h"
#include "catalog/migrate.h"
#include "catalog/outbox.h"
#include "core/atomic_batch.h"
#include "core/crash_point.h"
#include "core/log.h"
#include "core/messages.h"
#include "core/parallel.h"
#include "core/path.h"
#include "core/random.h"
#include "core/sha256.h"
#include "http/client.h"
#include "http/curl_source.h"
#include "repo/fetch.h"
#include "store/chunk_store.h"
#include "store/manifest.h"

namespace depot::agent {

using core::Status;
using Json = nlohmann::json;

namespace {

constexpr char kAgentVersion[] = "0.1.0";
constexpr char kConfigFile[] = "agent.json";
constexpr char kRootFile[] = "trusted_root.json";
// Content directories one download looks through for chunks it already has: each
// costs its manifest's parse, and beyond a handful few chunks are found only there.
constexpr std::size_t kMaxSeeds = 16;

constexpr std::string_view kStateMigration1 = R"sql(
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
-- One row per deployment in (or recently in) the policy, at the version it works on.
-- policy: the policy's item for it (sources, windows, start, deadline) as JSON.
-- removed_ms: when it left the policy; its content is purged purge_grace later.
CREATE TABLE deployments (
  id BIGINT PRIMARY KEY,
  package TEXT NOT NULL,
  package_id TEXT NOT NULL,
  version BIGINT NOT NULL,
  manifest_id TEXT NOT NULL,
  program TEXT NOT NULL,
  kind TEXT NOT NULL,
  policy TEXT NOT NULL,
  state TEXT NOT NULL,
  attempts BIGINT NOT NULL DEFAULT 0,
  next_try_ms BIGINT NOT NULL DEFAULT 0,
  requested BIGINT NOT NULL DEFAULT 0,
  run_dir TEXT,
  run_started_ms BIGINT,
  exit_code BIGINT,
  output TEXT,
  last_error TEXT,
  bytes_done BIGINT NOT NULL DEFAULT 0,
  bytes_total BIGINT NOT NULL DEFAULT 0,
  report_seq BIGINT NOT NULL DEFAULT 0,
  reported_seq BIGINT NOT NULL DEFAULT 0,
  removed_ms BIGINT,
  updated_ms BIGINT NOT NULL
);
-- Programs that succeeded: never run again for this deployment and version.
CREATE TABLE succeeded (
  deployment BIGINT NOT NULL,
  version BIGINT NOT NULL,
  exit_code BIGINT,
  time_ms BIGINT NOT NULL,
  PRIMARY KEY (deployment, version)
);
-- The content in use per package (the newest version whose program succeeded).
CREATE TABLE installed (
  package TEXT PRIMARY KEY,
  version BIGINT NOT NULL,
  manifest_id TEXT NOT NULL,
  time_ms BIGINT NOT NULL
);
-- Versions whose manifest the agent keeps (manifests/<id>.json): what the cache's
-- chunks belong to, for pinning and least-recently-used eviction.
CREATE TABLE held (
  manifest_id TEXT PRIMARY KEY,
  package TEXT NOT NULL,
  version BIGINT NOT NULL,
  last_used_ms BIGINT NOT NULL
);
CREATE TABLE outbox (
  seq BIGINT PRIMARY KEY,
  code BIGINT NOT NULL,
  time_ms BIGINT NOT NULL,
  package TEXT,
  version BIGINT,
  deployment BIGINT,
  params TEXT NOT NULL
);
)sql";

const std::vector<catalog::Migration>& StateMigrations() {
  static const std::vector<catalog::Migration> kMigrations = {{1, "agent state", kStateMigration1}};
  return kMigrations;
}

std::string Dump(const Json& j) { return j.dump(-1, ' ', false, Json::error_handler_t::replace); }

std::int64_t Ms(core::Duration d) { return std::chrono::duration_cast<std::chrono::milliseconds>(d).count(); }

std::string DurText(core::Duration d) { return std::to_string(Ms(d)) + "ms"; }

core::Result<core::Duration> DurFrom(const Json& j, const char* key, core::Duration fallback) {
  auto it = j.find(key);
  if (it == j.end()) return fallback;
  if (!it->is_string()) return Status::InvalidArgument(std::string(key) + " must be a duration string");
  return core::ParseDuration(it->get<std::string>());
}

// What the agent reports about its machine.
Json CollectAttributes(const AgentConfig& config) {
  Json a = Json::object();
  struct utsname u {};
  if (::uname(&u) == 0) {
    std::string os = u.sysname;
    std::transform(os.begin(), os.end(), os.begin(), [](unsigned char c) { return std::tolower(c); });
    a["os"] = os;
    a["kernel"] = std::string(u.release);
    a["arch"] = std::string(u.machine);
  }
  char host[256] = {};
  if (::gethostname(host, sizeof(host) - 1) == 0) a["hostname"] = std::string(host);
  std::FILE* f = std::fopen("/etc/os-release", "r");
  if (f != nullptr) {
    char line[512];
    while (std::fgets(line, sizeof(line), f) != nullptr) {
      std::string l(line);
      if (l.rfind("PRETTY_NAME=", 0) == 0) {
        std::string v = l.substr(12);
        while (!v.empty() && (v.back() == '\n' || v.back() == '"')) v.pop_back();
        if (!v.empty() && v.front() == '"') v.erase(0, 1);
        a["os_release"] = v.substr(0, 200);
      }
    }
    std::fclose(f);
  }
  std::set<std::string> ips;
  struct ifaddrs* ifs = nullptr;
  if (::getifaddrs(&ifs) == 0) {
    for (auto* i = ifs; i != nullptr; i = i->ifa_next) {
      if (i->ifa_addr == nullptr || (i->ifa_flags & IFF_LOOPBACK) != 0) continue;
      char buf[INET6_ADDRSTRLEN] = {};
      if (i->ifa_addr->sa_family == AF_INET) {
        ::inet_ntop(AF_INET, &reinterpret_cast<sockaddr_in*>(i->ifa_addr)->sin_addr, buf, sizeof(buf));
      } else if (i->ifa_addr->sa_family == AF_INET6) {
        auto* a6 = reinterpret_cast<sockaddr_in6*>(i->ifa_addr);
        if (IN6_IS_ADDR_LINKLOCAL(&a6->sin6_addr)) continue;
        ::inet_ntop(AF_INET6, &a6->sin6_addr, buf, sizeof(buf));
      } else {
        continue;
      }
      ips.insert(buf);
      if (ips.size() >= 16) break;
    }
    ::freeifaddrs(ifs);
  }
  a["ips"] = Json(std::vector<std::string>(ips.begin(), ips.end()));
  a["agent_version"] = kAgentVersion;
  Json tags = Json::object();
  for (const auto& [k, v] : config.tags) tags[k] = v;
  a["tags"] = tags;
  return a;
}

core::Result<std::unique_ptr<core::RepoSource>> DefaultSource(const std::string& url, const AgentConfig& config) {
  http::CurlOptions o;
  o.ca_file = config.ca;
  // Depot's DPs and sites answer many chunks per request; nginx mirrors get GETs.
  o.chunk_batches = true;
  o.low_speed_time_s = static_cast<std::uint32_t>(
      std::max<std::int64_t>(1, std::chrono::duration_cast<std::chrono::seconds>(config.stall_timeout).count()));
  DEPOT_ASSIGN_OR_RETURN(auto src, http::CurlSource::Create(url, o));
  return std::unique_ptr<core::RepoSource>(std::move(src));
}

struct Source {
  std::string kind, name, url;
};

// One deployment row, as the driver needs it.
struct Row {
  std::int64_t id = 0, version = 0, attempts = 0, next_try_ms = 0, run_started_ms = 0;
  std::int64_t bytes_done = 0, bytes_total = 0;
  std::optional<std::int64_t> exit_code;
  std::string package, package_id, manifest_id, program, kind, run_dir, last_error, output;
  State state = State::kWaiting;
  bool requested = false, removed = false;
  Json policy;
  std::int64_t start_ms = 0;
  std::optional<std::int64_t> deadline_ms;
  std::vector<Source> sources;
  std::vector<Window> windows;
};

constexpr char kRowColumns[] =
    "id, package, package_id, version, manifest_id, program, kind, policy, state, attempts, next_try_ms, "
    "requested, run_dir, run_started_ms, removed_ms, bytes_done, bytes_total, exit_code, last_error, output";

Row ToRow(const catalog::Row& r) {
  Row d;
  d.id = r.Int(0);
  d.package = r.Text(1);
  d.package_id = r.Text(2);
  d.version = r.Int(3);
  d.manifest_id = r.Text(4);
  d.program = r.Text(5);
  d.kind = r.Text(6);
  d.policy = Json::parse(r.Text(7), nullptr, false);
  if (d.policy.is_discarded() || !d.policy.is_object()) d.policy = Json::object();
  d.state = ParseState(r.Text(8)).value_or(State::kWaiting);
  d.attempts = r.Int(9);
  d.next_try_ms = r.Int(10);
  d.requested = r.Int(11) != 0;
  d.run_dir = r.Text(12);
  d.run_started_ms = r.Int(13);
  d.removed = !r.IsNull(14);
  d.bytes_done = r.Int(15);
  d.bytes_total = r.Int(16);
  d.exit_code = r.OptInt(17);
  d.last_error = r.Text(18);
  d.output = r.Text(19);
  d.start_ms = d.policy.value("start_ms", std::int64_t{0});
  if (d.policy.contains("deadline_ms") && d.policy["deadline_ms"].is_number_integer()) {
    d.deadline_ms = d.policy["deadline_ms"].get<std::int64_t>();
  }
  if (d.policy.contains("sources") && d.policy["sources"].is_array()) {
    for (const auto& s : d.policy["sources"]) {
      if (!s.is_object() || !s.contains("url") || !s["url"].is_string()) continue;
      d.sources.push_back({s.value("kind", ""), s.value("name", ""), s["url"].get<std::string>()});
    }
  }
  if (d.policy.contains("windows") && d.policy["windows"].is_array()) {
    for (const auto& w : d.policy["windows"]) {
      if (!w.is_object()) continue;
      auto start = ParseClock(w.value("start", ""));
      if (!start.ok()) continue;
      d.windows.push_back({*start, w.value("duration_s", std::int64_t{0}), w.value("tz", std::string("UTC"))});
    }
  }
  return d;
}

// What one download attempt across the sources came to.
struct DownloadOutcome {
  Status status;
  bool refused = false;    // the signed content can never be installed
  bool cancelled = false;
  repo::FetchResult result;
  std::string source;      // where the chunks came from
  std::vector<catalog::OutboxMessage> events;  // one per source that failed
};

// The agent's chunk cache: chunks of versions whose directory is gone.
store::ChunkStore AgentCache(core::Env* env, const std::string& data_dir) {
  return store::ChunkStore(env, core::JoinPath(data_dir, "cache/chunks"), 3);
}

// A version's directory the next download may take chunks from (repo::FetchSeed).
struct SeedSpec {
  std::string dir;
  std::string manifest_id;
};

}  // namespace

struct Agent::Impl {
  Impl(core::Env* e, core::Clock* c, std::string dir) : env(e), clock(c), data_dir(std::move(dir)), zones(e) {}

  core::Env* env;
  core::Clock* clock;
  std::string data_dir;
  AgentConfig config;
  Identity identity;
  std::string trusted_root;
  SourceFactory sources;
  std::unique_ptr<core::FileLock> lock;
  std::unique_ptr<catalog::Db> db;
  std::unique_ptr<http::Client> site;
  ZoneCache zones;

  // Policy polling, on the monotonic clock: a wall clock set back a week must not
  // stop the agent from polling for a week.
  std::string etag;
  std::optional<core::MonoTime> next_poll;
  // The site's clock minus ours, from the Date of its last policy answer: explains
  // an expiry refusal (whose clock is off). Unset until a poll succeeded.
  std::optional<core::Duration> site_clock_offset;
  core::Duration site_poll_interval = std::chrono::seconds(60);
  int poll_failures = 0;
  const std::atomic<bool>* stop = nullptr;

  // The download worker: one download at a time.
  std::mutex mu;
  std::condition_variable cv;
  std::thread worker;
  std::int64_t job_deployment = 0, job_version = 0;
  bool job_running = false, job_done = false;
  std::atomic<bool> job_cancel{false};
  std::atomic<std::uint64_t> job_bytes{0}, job_total{0};
  DownloadOutcome job_outcome;

  // Programs of held manifests, by manifest id (ProgramOf). Driver thread only.
  std::map<std::string, std::vector<store::Program>> programs;

  // Sources that failed recently go to the back of the list until then (monotonic).
  std::map<std::string, core::MonoTime> penalised_until;
  // When each failed deployment's retry is due, on the monotonic clock. A retry
  // scheduled before this process started has only its persisted wall time
  // (next_try_ms), clamped at start to now + retry_max (ClampPersistedRetries).
  std::map<std::int64_t, core::MonoTime> retry_due;
  // When this process started each deployment's program (monotonic), for timeouts.
  std::map<std::int64_t, core::MonoTime> run_started;

  // Set when anything failed / succeeded during RunOnce.
  bool any_failed = false, any_succeeded = false;
  std::uint64_t transitions = 0;  // every state change, so RunOnce knows when all rest

  std::string Path(const std::string& rel) const { return core::JoinPath(data_dir, rel); }
  std::string ContentDir(const std::string& package, std::int64_t version) const {
    return Path("content/" + package + "/" + std::to_string(version));
  }
  std::string ManifestPath(const std::string& manifest_id) const { return Path("manifests/" + manifest_id + ".json"); }
  std::int64_t NowMs() const { return Ms(clock->Now().time_since_epoch()); }
  core::MonoTime Mono() const { return clock->Monotonic(); }

  // ------------------------------------------------------------------ config

  Status SaveConfig() {
    Json tags = Json::object();
    for (const auto& [k, v] : config.tags) tags[k] = v;
    Json j = {{"site", config.site},
              {"ca", config.ca},
              {"name", config.name},
              {"tags", tags},
              {"client", identity.client},
              {"token", identity.token},
              {"site_code", identity.site_code},
              {"poll_interval", DurText(config.poll_interval)},
              {"cache_max_bytes", config.cache_max_bytes},
              {"purge_grace", DurText(config.purge_grace)},
              {"parallel", config.parallel},
              {"max_rate", config.max_rate},
              {"stall_timeout", DurText(config.stall_timeout)},
              {"retry_base", DurText(config.retry_base)},
              {"retry_max", DurText(config.retry_max)},
              {"max_attempts", config.max_attempts},
              {"source_penalty", DurText(config.source_penalty)}};
    return env->WriteFileAtomic(Path(kConfigFile), j.dump(2) + "\n", 0600);
  }

  static Status LoadConfig(core::Env* env, const std::string& data_dir, AgentConfig* c, Identity* id) {
    std::string path = core::JoinPath(data_dir, kConfigFile);
    auto text = env->ReadFile(path, 1 << 20);
    if (!text.ok()) return text.status();
    Json j = Json::parse(*text, nullptr, false);
    if (!j.is_object()) return Status::Corruption(path + " is not a JSON object; remove it and enroll again");
    try {
      c->site = j.value("site", "");
      c->ca = j.value("ca", "");
      c->name = j.value("name", "");
      if (j.contains("tags") && j["tags"].is_object()) {
        for (auto it = j["tags"].begin(); it != j["tags"].end(); ++it) c->tags[it.key()] = it->get<std::string>();
      }
      id->client = j.value("client", "");
      id->token = j.value("token", "");
      id->site_code = j.value("site_code", "");
      c->cache_max_bytes = j.value("cache_max_bytes", c->cache_max_bytes);
      c->parallel = j.value("parallel", c->parallel);
      c->max_rate = j.value("max_rate", c->max_rate);
      c->max_attempts = j.value("max_attempts", c->max_attempts);
    } catch (const Json::exception& e) {
      return Status::InvalidArgument(path + ": " + e.what());
    }
    struct {
      const char* key;
      core::Duration* out;
    } durs[] = {{"poll_interval", &c->poll_interval}, {"purge_grace", &c->purge_grace},
                {"stall_timeout", &c->stall_timeout}, {"retry_base", &c->retry_base},
                {"retry_max", &c->retry_max},         {"source_penalty", &c->source_penalty}};
    for (auto& d : durs) {
      auto v = DurFrom(j, d.key, *d.out);
      if (!v.ok()) return v.status().WithContext(path);
      *d.out = *v;
    }
    return Status::Ok();
  }

  Status ConnectSite() {
    http::ClientOptions o;
    o.bearer_token = identity.token;
    o.ca_file = config.ca;
    o.timeout_s = 120;
    DEPOT_ASSIGN_OR_RETURN(site, http::Client::Create(config.site, o));
    if (stop != nullptr) site->SetAbortFlag(stop);
    return Status::Ok();
  }

  // ------------------------------------------------------------------ messages

  catalog::OutboxMessage Message(int code, const Row& d, std::map<std::string, std::string> params = {}) {
    return {code, NowMs(), d.package, d.version, d.id, std::move(params)};
  }

  void Post(const catalog::OutboxMessage& m) {
    Status s = db->Transaction([&](catalog::Tx& tx) { return catalog::AppendOutbox(tx, m).status(); });
    if (!s.ok()) core::Log(core::LogLevel::kWarn, "agent.outbox_failed", {{"error", s.ToString()}});
  }

  // ------------------------------------------------------------------ transitions

  // The next sequence number for deployment reports (the site keeps the newest).
  static core::Result<std::int64_t> NextReportSeq(catalog::Tx& tx) {
    DEPOT_ASSIGN_OR_RETURN(
        std::int64_t seq,
        tx.QueryInt("SELECT COALESCE((SELECT CAST(value AS BIGINT) FROM meta WHERE key = 'report_seq'), 0) + 1"));
    DEPOT_RETURN_IF_ERROR(tx.Exec("INSERT INTO meta (key, value) VALUES ('report_seq', ?) ON CONFLICT (key) DO UPDATE "
                                  "SET value = excluded.value",
                                  {std::to_string(seq)})
                              .status());
    return seq;
  }

  // Moves deployment `id` by `event` and, in the same transaction, applies `extra`
  // (more columns, other tables) and appends `messages`: a state and what it caused
  // are stored together, before anything acts on them. Returns the new state, or
  // nullopt when the event does not apply (nothing changed).
  core::Result<std::optional<State>> Transition(std::int64_t id, Event event,
                                                const std::function<Status(catalog::Tx&)>& extra,
                                                const std::vector<catalog::OutboxMessage>& messages) {
    std::optional<State> result;
    Status s = db->Transaction([&](catalog::Tx& tx) -> Status {
      result.reset();
      DEPOT_ASSIGN_OR_RETURN(auto row, tx.QueryRow("SELECT state FROM deployments WHERE id = ?", {id}));
      auto from = ParseState(row.Text(0));
      if (!from) return Status::Corruption("deployment " + std::to_string(id) + " has unknown state " + row.Text(0));
      auto to = Next(*from, event);
      if (!to) return Status::Ok();
      DEPOT_ASSIGN_OR_RETURN(std::int64_t seq, NextReportSeq(tx));
      DEPOT_RETURN_IF_ERROR(
          tx.Exec("UPDATE deployments SET state = ?, report_seq = ?, updated_ms = ? WHERE id = ?",
                  {std::string(StateName(*to)), seq, NowMs(), id})
              .status());
      if (extra) DEPOT_RETURN_IF_ERROR(extra(tx));
      for (const auto& m : messages) DEPOT_RETURN_IF_ERROR(catalog::AppendOutbox(tx, m).status());
      result = *to;
      return Status::Ok();
    });
    if (!s.ok()) return s;
    if (result) {
      ++transitions;
      core::Log(core::LogLevel::kInfo, "agent.transition",
                {{"deployment", std::to_string(id)}, {"event", std::string(EventName(event))},
                 {"state", std::string(StateName(*result))}});
      if (*result == State::kFailedRetry || *result == State::kFailedFinal) any_failed = true;
      if (*result == State::kSucceeded) any_succeeded = true;
    }
    return result;
  }

  std::function<Status(catalog::Tx&)> SetColumns(std::int64_t id, std::string assignments, catalog::Params params) {
    return [id, assignments = std::move(assignments), params = std::move(params)](catalog::Tx& tx) -> Status {
      catalog::Params p = params;
      p.push_back(id);
      return tx.Exec("UPDATE deployments SET " + assignments + " WHERE id = ?", p).status();
    };
  }

  // Exponential backoff with jitter for the attempts-th failure, in milliseconds.
  std::int64_t RetryDelayMs(std::int64_t attempts) {
    double base = static_cast<double>(Ms(config.retry_base));
    double delay = base * std::pow(2.0, static_cast<double>(std::max<std::int64_t>(0, attempts - 1)));
    delay = std::min(delay, static_cast<double>(Ms(config.retry_max)));
    static thread_local std::mt19937_64 rng(std::random_device{}());
    delay *= std::uniform_real_distribution<double>(0.8, 1.2)(rng);
    return static_cast<std::int64_t>(delay);
  }

  // Whether the retry of failed deployment `d` is due: by the monotonic clock when
  // this process scheduled it, else by its persisted wall time.
  bool RetryDue(const Row& d) {
    auto it = retry_due.find(d.id);
    if (it != retry_due.end()) return Mono() >= it->second;
    return NowMs() >= d.next_try_ms;
  }

  // A persisted retry time further away than the longest backoff was scheduled by a
  // clock that has since gone back (or was wrong): due by now + retry_max at the
  // latest. Run at start, before anything is scheduled.
  Status ClampPersistedRetries() {
    std::int64_t latest = NowMs() + Ms(config.retry_max);
    return db->Transaction([&](catalog::Tx& tx) {
      return tx.Exec("UPDATE deployments SET next_try_ms = ? WHERE next_try_ms > ?", {latest, latest}).status();
    });
  }

  // A failure that may be retried: failed_retry with the next time, or failed_final
  // when the attempts are used up.
  Status Fail(const Row& d, Event event, const std::string& error, std::optional<int> exit_code,
              const std::string& output) {
    std::int64_t attempts = d.attempts + 1;
    std::int64_t delay_ms = RetryDelayMs(attempts);
    std::int64_t at = NowMs() + delay_ms;  // persisted and shown; the schedule is retry_due
    auto extra = SetColumns(d.id, "attempts = ?, next_try_ms = ?, last_error = ?, exit_code = ?, output = ?",
                            {attempts, at, error.substr(0, 4096),
                             exit_code ? catalog::Value(std::int64_t{*exit_code}) : catalog::Value(), output});
    std::map<std::string, std::string> p = {{"error", error.substr(0, 1024)},
                                            {"next_retry", core::FormatUtc(core::TimePoint(std::chrono::milliseconds(at)))},
                                            {"program", d.program}};
    if (exit_code) p["exit_code"] = std::to_string(*exit_code);
    if (!output.empty()) p["output"] = output.substr(output.size() > 1024 ? output.size() - 1024 : 0);
    DEPOT_ASSIGN_OR_RETURN(auto to, Transition(d.id, event, extra, {Message(core::msg::kAgentInstallFailedRetry, d, p)}));
    if (to) retry_due[d.id] = Mono() + std::chrono::milliseconds(delay_ms);
    if (to && attempts >= config.max_attempts) {
      return FailFinal(d, Event::kGiveUp, "gave up after " + std::to_string(attempts) + " attempts: " + error);
    }
    return Status::Ok();
  }

  Status FailFinal(const Row& d, Event event, const std::string& error) {
    return Transition(d.id, event, SetColumns(d.id, "last_error = ?", {error.substr(0, 4096)}),
                      {Message(core::msg::kAgentInstallFailed, d, {{"error", error.substr(0, 1024)}, {"program", d.program}})})
        .status();
  }

  // ------------------------------------------------------------------ enrollment

  Status Enroll(const std::string& enroll_token) {
    if (enroll_token.empty()) {
      return Status::InvalidArgument("this agent is not enrolled yet: pass --enroll-token T (from `depot token create "
                                     "--role enroll`)");
    }
    http::ClientOptions o;
    o.bearer_token = enroll_token;
    o.ca_file = config.ca;
    DEPOT_ASSIGN_OR_RETURN(auto client, http::Client::Create(config.site, o));
    std::string name = config.name;
    if (name.empty()) {
      char host[256] = {};
      ::gethostname(host, sizeof(host) - 1);
      name = host;
    }
    Json body = {{"name", name}, {"attributes", CollectAttributes(config)}};
    DEPOT_ASSIGN_OR_RETURN(http::ClientResponse r, client->Do("POST", "/api/v1/agent/enroll", Dump(body)));
    DEPOT_RETURN_IF_ERROR(http::ApiError(r, "enrolling with " + config.site));
    Json j = Json::parse(r.body, nullptr, false);
    if (!j.is_object() || !j.contains("token") || !j.contains("client") || !j.contains("trusted_root")) {
      return Status::Corruption("enrollment answer from " + config.site + " is not what the agent API returns");
    }
    identity.client = j["client"].get<std::string>();
    identity.token = j["token"].get<std::string>();
    if (j.contains("site") && j["site"].is_object()) identity.site_code = j["site"].value("code", "");
    trusted_root = j["trusted_root"].get<std::string>();
    // The root first: an identity without its pinned root would be unusable.
    DEPOT_RETURN_IF_ERROR(env->WriteFileAtomic(Path(kRootFile), trusted_root, 0644));
    DEPOT_RETURN_IF_ERROR(SaveConfig());
    DEPOT_RETURN_IF_ERROR(db->Transaction([&](catalog::Tx& tx) {
      return tx
          .Exec("INSERT INTO meta (key, value) VALUES ('attributes', ?) ON CONFLICT (key) DO UPDATE SET value = "
                "excluded.value",
                {Dump(body["attributes"])})
          .status();
    }));
    core::Log(core::LogLevel::kInfo, "agent.enrolled", {{"client", identity.client}, {"site", config.site}});
    return Status::Ok();
  }

  // Reports attributes when they differ from what the site last accepted.
  void SyncAttributes() {
    std::string now = Dump(CollectAttributes(config));
    auto last = db->QueryRow("SELECT value FROM meta WHERE key = 'attributes'");
    if (last.ok() && last->Text(0) == now) return;
    auto r = site->Do("POST", "/api/v1/agent/attributes", "{\"attributes\":" + now + "}");
    if (!r.ok() || !http::ApiError(*r, "attributes").ok()) return;  // next poll tries again
    db->Transaction([&](catalog::Tx& tx) {
        return tx
            .Exec("INSERT INTO meta (key, value) VALUES ('attributes', ?) ON CONFLICT (key) DO UPDATE SET value = "
                  "excluded.value",
                  {now})
            .status();
      }).IgnoreError();
  }

  // ------------------------------------------------------------------ policy

  // Polls the policy; on a change, brings the deployment rows in line with it.
  Status Poll() {
    std::vector<std::string> headers;
    if (!etag.empty()) headers.push_back("If-None-Match: " + etag);
    DEPOT_ASSIGN_OR_RETURN(http::ClientResponse r, site->Do("GET", "/api/v1/agent/policy", {}, "", headers));
    if (const std::string* date = r.GetHeader("date")) {
      // Whole seconds: enough to tell a clock days off from one that is right.
      if (auto t = http::ParseHttpDate(*date)) site_clock_offset = *t - clock->Now();
    }
    if (r.status == 304) return Status::Ok();
    DEPOT_RETURN_IF_ERROR(http::ApiError(r, "policy from " + config.site));
    Json policy = Json::parse(r.body, nullptr, false);
    if (!policy.is_object() || !policy.contains("deployments") || !policy["deployments"].is_array()) {
      return Status::Corruption("policy from " + config.site + " is not a policy document");
    }
    if (policy.contains("poll_interval_s") && policy["poll_interval_s"].is_number_integer()) {
      site_poll_interval = std::chrono::seconds(std::max<std::int64_t>(1, policy["poll_interval_s"].get<std::int64_t>()));
    }
    DEPOT_RETURN_IF_ERROR(Reconcile(policy["deployments"]));
    const std::string* tag = r.GetHeader("etag");
    etag = tag != nullptr ? *tag : "";
    return Status::Ok();
  }

  Status Reconcile(const Json& items) {
    std::set<std::int64_t> present;
    for (const auto& item : items) {
      if (!item.is_object() || !item.contains("id") || !item["id"].is_number_integer()) continue;
      Row d;
      try {
        d.id = item["id"].get<std::int64_t>();
        d.package = item.at("package").get<std::string>();
        d.package_id = item.value("package_id", "");
        d.version = item.at("version").get<std::int64_t>();
        d.manifest_id = item.value("manifest_id", "");
        d.program = item.value("program", "");
        d.kind = item.value("kind", "required");
      } catch (const Json::exception& e) {
        core::Log(core::LogLevel::kWarn, "agent.bad_policy_item", {{"error", e.what()}});
        continue;
      }
      if (!store::ValidatePackageName(d.package).ok() || d.version < 1) continue;
      present.insert(d.id);
      std::string policy_json = Dump(item);
      auto existing = db->QueryRow(std::string("SELECT ") + kRowColumns + " FROM deployments WHERE id = ?", {d.id});
      if (!existing.ok() && existing.status().IsNotFound()) {
        Status inserted = db->Transaction([&](catalog::Tx& tx) -> Status {
          DEPOT_ASSIGN_OR_RETURN(std::int64_t seq, NextReportSeq(tx));
          return tx
              .Exec("INSERT INTO deployments (id, package, package_id, version, manifest_id, program, kind, policy, "
                    "state, report_seq, updated_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'waiting', ?, ?)",
                    {d.id, d.package, d.package_id, d.version, d.manifest_id, d.program, d.kind, policy_json, seq,
                     NowMs()})
              .status();
        });
        DEPOT_RETURN_IF_ERROR(inserted);
        continue;
      }
      DEPOT_RETURN_IF_ERROR(existing.status());
      Row old = ToRow(*existing);
      if (old.version != d.version) {
        // Another version: start over, unless a program is running (it finishes first;
        // the next poll brings the new version).
        auto to = Transition(
            d.id, Event::kNewVersion,
            SetColumns(d.id,
                       "version = ?, manifest_id = ?, program = ?, kind = ?, policy = ?, package_id = ?, attempts = 0, "
                       "next_try_ms = 0, run_dir = NULL, run_started_ms = NULL, exit_code = NULL, output = NULL, "
                       "last_error = NULL, bytes_done = 0, bytes_total = 0, removed_ms = NULL",
                       {d.version, d.manifest_id, d.program, d.kind, policy_json, d.package_id}),
            {});
        DEPOT_RETURN_IF_ERROR(to.status());
        if (*to) {
          CancelDownload(d.id);
        } else {
          etag.clear();  // ask again next poll
        }
        continue;
      }
      DEPOT_RETURN_IF_ERROR(db->Transaction([&](catalog::Tx& tx) {
        return tx
            .Exec("UPDATE deployments SET program = ?, kind = ?, policy = ?, removed_ms = NULL WHERE id = ?",
                  {d.program, d.kind, policy_json, d.id})
            .status();
      }));
    }
    // Deployments that left the policy: stop at once, purge later.
    DEPOT_ASSIGN_OR_RETURN(catalog::Rows rows,
                           db->Query(std::string("SELECT ") + kRowColumns + " FROM deployments WHERE removed_ms IS NULL"));
    for (const auto& r : rows) {
      Row d = ToRow(r);
      if (present.count(d.id)) continue;
      CancelDownload(d.id);
      Status removed = db->Transaction([&](catalog::Tx& tx) -> Status {
        DEPOT_RETURN_IF_ERROR(tx.Exec("UPDATE deployments SET removed_ms = ? WHERE id = ?", {NowMs(), d.id}).status());
        return catalog::AppendOutbox(tx, Message(core::msg::kAgentDeploymentRemoved, d)).status();
      });
      DEPOT_RETURN_IF_ERROR(removed);
      core::Log(core::LogLevel::kInfo, "agent.deployment_removed",
                {{"deployment", std::to_string(d.id)}, {"package", d.package}});
    }
    return Status::Ok();
  }

  // ------------------------------------------------------------------ download

  void CancelDownload(std::int64_t id) {
    std::lock_guard<std::mutex> l(mu);
    if (job_running && job_deployment == id) job_cancel = true;
  }

  // Sources in the policy's order, those that failed recently moved to the back.
  std::vector<Source> OrderSources(const std::vector<Source>& policy_order) {
    std::vector<Source> good, bad;
    core::MonoTime now = Mono();
    for (const auto& s : policy_order) {
      auto it = penalised_until.find(s.url);
      (it != penalised_until.end() && it->second > now ? bad : good).push_back(s);
    }
    good.insert(good.end(), bad.begin(), bad.end());
    return good;
  }

  // The content directories a download of `d` may take chunks from: every other
  // version whose directory is here (installed, or downloaded for a deployment),
  // the same package's first, then the most recently used. They are the agent's
  // copy of those chunks: the cache holds only what no directory does. Driver thread.
  std::vector<SeedSpec> SeedsFor(const Row& d) {
    std::vector<SeedSpec> out;
    auto rows = db->Query(
        "SELECT manifest_id, package, version FROM held ORDER BY package = ? DESC, last_used_ms DESC", {d.package});
    if (!rows.ok()) return out;
    for (const auto& r : *rows) {
      if (r.Text(1) == d.package && r.Int(2) == d.version) continue;
      std::string dir = ContentDir(r.Text(1), r.Int(2));
      auto exists = env->Exists(dir);
      if (!exists.ok() || !*exists) continue;
      out.push_back({dir, r.Text(0)});
      if (out.size() >= kMaxSeeds) break;
    }
    return out;
  }

  // Runs on the worker thread: no database access, only the outcome.
  DownloadOutcome Download(const Row& d, const std::vector<Source>& order, const std::vector<SeedSpec>& seed_specs,
                           std::optional<core::Duration> site_clock) {
    DownloadOutcome out;
    std::string dest = ContentDir(d.package, d.version);
    out.status = env->CreateDirs(Path("content/" + d.package), 0750);
    if (!out.status.ok()) return out;
    // Manifests of the seeds; one that is gone or damaged only means fewer local chunks.
    std::vector<store::Manifest> seed_manifests;
    std::vector<repo::FetchSeed> seeds;
    seed_manifests.reserve(seed_specs.size());
    for (const auto& spec : seed_specs) {
      auto m = LoadManifest(spec.manifest_id);
      if (!m.ok()) continue;
      seed_manifests.push_back(std::move(*m));
      seeds.push_back({spec.dir, nullptr});
    }
    for (std::size_t i = 0; i < seeds.size(); ++i) seeds[i].manifest = &seed_manifests[i];
    for (const Source& src : order) {
      if (job_cancel) break;
      auto source = sources(src.url, config);
      if (!source.ok()) {
        out.events.push_back(Message(core::msg::kAgentSourceFailed, d,
                                     {{"source", src.url}, {"error", source.status().message()}}));
        continue;
      }
      repo::FetchRequest req;
      req.package = d.package;
      req.version = d.version;
      req.dest = dest;
      req.trusted_root = trusted_root;
      req.cache_dir = Path("cache");
      // The assembled tree is the agent's copy of the version's chunks (a seed for the
      // next download); an interrupted or failed download keeps its partial tree.
      req.seeds = seeds;
      req.cache_fetched = false;
      req.keep_partial = true;
      req.parallel = config.parallel;
      req.max_rate = config.max_rate;
      req.threads = std::min(4u, core::DefaultConcurrency());
      req.max_rounds = 2;
      req.first_backoff = std::chrono::milliseconds(200);
      req.progress_bytes = &job_bytes;
      req.progress_total = &job_total;
      req.cancel = &job_cancel;
      repo::FetchDiagnostics diag;
      req.diagnostics = &diag;
      if (site_clock) req.reference_clock = repo::FetchRequest::ReferenceClock{"the site", *site_clock};
      auto r = repo::FetchVersion(env, clock, source->get(), req);
      if (r.ok()) {
        auto ms = [](double s) { return std::to_string(static_cast<std::int64_t>(s * 1000)); };
        core::Log(core::LogLevel::kInfo, "agent.fetched",
                  {{"package", d.package},
                   {"version", std::to_string(d.version)},
                   {"source", src.url},
                   {"fetched_bytes", std::to_string(r->fetched_bytes)},
                   {"metadata_ms", ms(r->metadata_s)},
                   {"prepare_ms", ms(r->prepare_s)},
                   {"transfer_ms", ms(r->transfer_s)},
                   {"finish_ms", ms(r->finish_s)}});
        out.status = Status::Ok();
        out.result = std::move(*r);
        out.source = src.url;
        return out;
      }
      out.status = r.status();
      if (job_cancel) {
        out.cancelled = true;
        return out;
      }
      if (diag.manifest_refused) {
        out.refused = true;
        return out;
      }
      const Status& s = r.status();
      // Local trouble (a disk error, a directory removed underneath): no source is to blame.
      if (diag.local_failure || s.IsIOError() || s.IsInvalidArgument()) return out;
      penalised_until[src.url] = Mono() + config.source_penalty;
      if (diag.version_missing || diag.source_behind) {
        std::string has = diag.version_missing
                              ? (diag.newest_available ? std::to_string(diag.newest_available) : "none")
                              : "older signed metadata";
        out.events.push_back(Message(core::msg::kAgentSourceStale, d,
                                     {{"source", src.url}, {"source_version", has}, {"error", s.message()}}));
      } else if (s.IsCorruption() || !diag.bad_chunks.empty()) {
        // Bad bytes, or chunks missing from a source that offers the version: named,
        // so the site has the source check those first.
        std::string chunks;
        for (const auto& id : diag.bad_chunks) chunks += (chunks.empty() ? "" : ",") + core::DigestHex(id);
        std::map<std::string, std::string> p = {{"source", src.url},
                                                {"object", d.package + " version " + std::to_string(d.version)},
                                                {"error", s.message()}};
        if (!chunks.empty()) p["chunks"] = chunks;
        out.events.push_back(Message(core::msg::kAgentVerificationFailed, d, std::move(p)));
      } else {
        out.events.push_back(Message(core::msg::kAgentSourceFailed, d, {{"source", src.url}, {"error", s.message()}}));
      }
      core::Log(core::LogLevel::kWarn, "agent.source_failed",
                {{"source", src.url}, {"package", d.package}, {"error", s.ToString()}});
    }
    if (out.status.ok()) out.status = Status::Unavailable("no source to download from");
    if (job_cancel) out.cancelled = true;
    return out;
  }

  void StartDownload(const Row& d) {
    std::lock_guard<std::mutex> l(mu);
    if (job_running || job_done) return;
    if (worker.joinable()) worker.join();
    job_running = true;
    job_deployment = d.id;
    job_version = d.version;
    job_cancel = false;
    job_bytes = 0;
    job_total = 0;
    auto order = OrderSources(d.sources);
    auto seeds = SeedsFor(d);
    auto site_clock = site_clock_offset;
    worker = std::thread([this, d, order, seeds, site_clock] {
      DownloadOutcome o = Download(d, order, seeds, site_clock);
      std::lock_guard<std::mutex> guard(mu);
      job_outcome = std::move(o);
      job_running = false;
      job_done = true;
      cv.notify_all();
    });
  }

  // The download of `d` finished: record what it came to.
  Status FinishDownload(const Row& d, DownloadOutcome o) {
    for (const auto& e : o.events) Post(e);
    if (o.cancelled) return Status::Ok();  // the deployment changed or left the policy
    if (!o.status.ok() || o.refused) {
      if (o.refused) return FailFinal(d, Event::kDownloadRefused, "refused: " + o.status.message());
      return Fail(d, Event::kDownloadFailed, "download failed: " + o.status.message(), std::nullopt, "");
    }
    // A fetch hands over the programs of the manifest it verified; content found in
    // place comes with its stored manifest only. A large version's manifest is
    // megabytes: parsing it again would hold up the install.
    if (o.result.programs.empty()) {
      auto parsed = store::ParseManifest(o.result.manifest);
      if (parsed.ok()) o.result.programs = std::move(parsed->programs);
    }
    if (store::FindProgram(o.result.programs, d.program) == nullptr) {
      // Only programs inside the signed manifest ever run.
      env->RemoveAll(ContentDir(d.package, d.version)).IgnoreError();
      return FailFinal(d, Event::kDownloadRefused,
                       "program `" + d.program + "` is not in the signed manifest of " + d.package + " version " +
                           std::to_string(d.version));
    }
    DEPOT_RETURN_IF_ERROR(env->CreateDirs(Path("manifests"), 0750));
    DEPOT_RETURN_IF_ERROR(env->WriteFileAtomic(ManifestPath(o.result.manifest_id), o.result.manifest, 0644));
    std::string manifest_id = o.result.manifest_id;
    auto extra = [&](catalog::Tx& tx) -> Status {
      DEPOT_RETURN_IF_ERROR(tx.Exec("UPDATE deployments SET manifest_id = ?, bytes_done = ?, bytes_total = ?, "
                                    "last_error = NULL WHERE id = ?",
                                    {manifest_id, o.result.bytes, o.result.bytes, d.id})
                                .status());
      return tx
          .Exec("INSERT INTO held (manifest_id, package, version, last_used_ms) VALUES (?, ?, ?, ?) ON CONFLICT "
                "(manifest_id) DO UPDATE SET last_used_ms = excluded.last_used_ms",
                {manifest_id, d.package, d.version, NowMs()})
          .status();
    };
    DEPOT_RETURN_IF_ERROR(
        Transition(d.id, Event::kDownloaded, extra,
                   {Message(core::msg::kAgentDownloaded, d,
                            {{"source", o.source},
                             {"bytes_fetched", std::to_string(o.result.fetched_bytes)},
                             {"bytes_from_cache", std::to_string(o.result.cache_bytes)},
                             {"bytes_transferred", std::to_string(o.result.transfer_bytes)}})})
            .status());
    RememberPrograms(manifest_id, std::move(o.result.programs));  // what ProgramOf would parse
    core::CrashPoint("agent.download_recorded");
    EnforceCacheLimit();
    return Status::Ok();
  }

  // ------------------------------------------------------------------ install

  // The program `name` of a held version, or nullptr when its manifest is missing or
  // damaged or has no such program. Programs are kept per manifest id: a running
  // program is checked several times a second, and a large version's manifest is
  // megabytes to hash and parse.
  const store::Program* ProgramOf(const std::string& manifest_id, const std::string& name) {
    auto it = programs.find(manifest_id);
    if (it == programs.end()) {
      auto m = LoadManifest(manifest_id);
      if (!m.ok()) return nullptr;
      RememberPrograms(manifest_id, std::move(m->programs));
      it = programs.find(manifest_id);
    }
    return store::FindProgram(it->second, name);
  }

  void RememberPrograms(const std::string& manifest_id, std::vector<store::Program> list) {
    if (programs.size() > 64) programs.clear();
    programs[manifest_id] = std::move(list);
  }

  core::Result<store::Manifest> LoadManifest(const std::string& manifest_id) {
    DEPOT_ASSIGN_OR_RETURN(std::string bytes, env->ReadFile(ManifestPath(manifest_id), 512ull << 20));
    if (core::Sha256::HashHex(bytes) != manifest_id) {
      return Status::Corruption("stored manifest " + manifest_id + " does not match its id");
    }
    return store::ParseManifest(bytes);
  }

  Status StartAttempt(const Row& d, const store::Program& program) {
    std::string run_dir = Path("runs/" + std::to_string(d.id) + "-" + std::to_string(d.version) + "-" +
                               core::RandomHex(6));
    run_started[d.id] = Mono();
    DEPOT_RETURN_IF_ERROR(db->Transaction([&](catalog::Tx& tx) {
      return tx.Exec("UPDATE deployments SET run_dir = ?, run_started_ms = ? WHERE id = ?", {run_dir, NowMs(), d.id})
          .status();
    }));
    ProgramSpec spec;
    spec.command = program.command;
    spec.work_dir = ContentDir(d.package, d.version);
    spec.extra_env = {"DEPOT_PACKAGE=" + d.package, "DEPOT_VERSION=" + std::to_string(d.version),
                      "DEPOT_DEPLOYMENT=" + std::to_string(d.id), "DEPOT_PROGRAM=" + program.name};
    DEPOT_RETURN_IF_ERROR(env->CreateDirs(Path("runs"), 0700));
    auto pid = StartProgram(run_dir, spec);
    if (!pid.ok()) return Fail(d, Event::kProgramRetry, pid.status().message(), std::nullopt, "");
    core::Log(core::LogLevel::kInfo, "agent.program_started",
              {{"deployment", std::to_string(d.id)}, {"program", program.name}, {"run", run_dir}});
    core::CrashPoint("agent.program_started");
    return Status::Ok();
  }

  // The program of `d` exited with `code`: map it by the manifest.
  Status Finish(const Row& d, const store::Program& program, int code, const std::string& output) {
    core::CrashPoint("agent.program_exited");
    auto in = [code](const std::vector<int>& v) { return std::find(v.begin(), v.end(), code) != v.end(); };
    if (in(program.success_codes) || in(program.reboot_codes)) {
      bool reboot = in(program.reboot_codes);
      std::int64_t now = NowMs();
      auto extra = [&](catalog::Tx& tx) -> Status {
        DEPOT_RETURN_IF_ERROR(tx.Exec("UPDATE deployments SET exit_code = ?, output = ?, last_error = NULL WHERE id = ?",
                                      {code, output, d.id})
                                  .status());
        DEPOT_RETURN_IF_ERROR(tx.Exec("INSERT INTO succeeded (deployment, version, exit_code, time_ms) VALUES (?, ?, ?, "
                                      "?) ON CONFLICT (deployment, version) DO NOTHING",
                                      {d.id, d.version, code, now})
                                  .status());
        return tx
            .Exec("INSERT INTO installed (package, version, manifest_id, time_ms) VALUES (?, ?, ?, ?) ON CONFLICT "
                  "(package) DO UPDATE SET version = excluded.version, manifest_id = excluded.manifest_id, time_ms = "
                  "excluded.time_ms WHERE installed.version <= excluded.version",
                  {d.package, d.version, d.manifest_id, now})
            .status();
      };
      DEPOT_RETURN_IF_ERROR(
          Transition(d.id, reboot ? Event::kProgramRebootRequired : Event::kProgramSucceeded, extra,
                     {Message(reboot ? core::msg::kAgentInstallRebootRequired : core::msg::kAgentInstallSucceeded, d,
                              {{"exit_code", std::to_string(code)}, {"program", d.program}})})
              .status());
      core::CrashPoint("agent.succeeded_recorded");
      RemoveOtherVersions(d.package, /*cache_chunks=*/true);
      EnforceCacheLimit();  // the previous version's chunks may have joined the cache
      return Status::Ok();
    }
    if (in(program.retry_codes)) {
      return Fail(d, Event::kProgramRetry, "exit code " + std::to_string(code) + " asks for a retry", code, output);
    }
    std::string error = "exit code " + std::to_string(code);
    return Transition(d.id, Event::kProgramFailed,
                      SetColumns(d.id, "exit_code = ?, output = ?, last_error = ?", {code, output, error}),
                      {Message(core::msg::kAgentInstallFailed, d,
                               {{"error", error}, {"exit_code", std::to_string(code)}, {"program", d.program},
                                {"output", output.substr(output.size() > 1024 ? output.size() - 1024 : 0)}})})
        .status();
  }

  // ------------------------------------------------------------------ driving

  // Whether the content directory of d's version is in use and must be kept as is:
  // it is the installed version of the package, or another live deployment of the
  // same version holds it (downloaded, installing or succeeded with it).
  bool ReusableContent(const Row& d) {
    auto n = db->QueryInt("SELECT (SELECT COUNT(*) FROM installed WHERE package = ? AND version = ?) + (SELECT "
                          "COUNT(*) FROM deployments WHERE package = ? AND version = ? AND id != ? AND removed_ms IS "
                          "NULL AND state IN ('downloaded', 'installing', 'succeeded'))",
                          {d.package, d.version, d.package, d.version, d.id});
    return n.ok() && *n > 0;
  }

  core::Result<std::vector<Row>> LiveRows() {
    DEPOT_ASSIGN_OR_RETURN(catalog::Rows rows, db->Query(std::string("SELECT ") + kRowColumns +
                                                         " FROM deployments WHERE removed_ms IS NULL ORDER BY id"));
    std::vector<Row> out;
    for (const auto& r : rows) out.push_back(ToRow(r));
    return out;
  }

  // Moves every deployment as far as it can go now. Returns true while something is
  // under way (a download or a program), so RunOnce knows to keep going.
  core::Result<bool> Step() {
    ReapChildren();
    bool busy = false;
    // A finished download first.
    {
      std::unique_lock<std::mutex> l(mu);
      if (job_done) {
        job_done = false;
        std::int64_t id = job_deployment, version = job_version;
        DownloadOutcome o = std::move(job_outcome);
        l.unlock();
        if (worker.joinable()) worker.join();
        auto row = db->QueryRow(std::string("SELECT ") + kRowColumns + " FROM deployments WHERE id = ?", {id});
        if (row.ok()) {
          Row d = ToRow(*row);
          if (!d.removed && d.version == version && d.state == State::kDownloading) {
            DEPOT_RETURN_IF_ERROR(FinishDownload(d, std::move(o)));
          } else {
            for (const auto& e : o.events) Post(e);
          }
        }
      }
      if (job_running) busy = true;
    }
    DEPOT_ASSIGN_OR_RETURN(std::vector<Row> rows, LiveRows());
    std::int64_t now = NowMs();
    for (Row& d : rows) {
      bool deadline_passed = d.kind == "required" && d.deadline_ms && now > *d.deadline_ms;
      switch (d.state) {
        case State::kWaiting: {
          if (deadline_passed) {
            DEPOT_RETURN_IF_ERROR(FailFinal(d, Event::kDeadlinePassed, "the deadline passed before it could install"));
            break;
          }
          if (d.kind == "available" && !d.requested) break;
          if (d.kind == "required" && now < d.start_ms) break;
          auto done = db->QueryInt("SELECT COUNT(*) FROM succeeded WHERE deployment = ? AND version = ?",
                                   {d.id, d.version});
          DEPOT_RETURN_IF_ERROR(done.status());
          bool reusable = ReusableContent(d);
          if (*done > 0 && reusable) {
            // Already done for this version (it came back to the policy): never again.
            DEPOT_RETURN_IF_ERROR(Transition(d.id, Event::kAlreadySucceeded, {}, {}).status());
            break;
          }
          if (!reusable) {
            // Content a failed attempt may have changed: assembled afresh, taking what
            // still verifies from it.
            SetAsideContent(d.package, d.version);
          }
          DEPOT_ASSIGN_OR_RETURN(auto to, Transition(d.id, Event::kStart, {},
                                                     {Message(core::msg::kAgentDownloadStarted, d,
                                                              {{"bytes", std::to_string(d.policy.value("bytes", 0))}})}));
          if (to) busy = true;
          break;
        }
        case State::kDownloading: {
          busy = true;
          std::string dir = ContentDir(d.package, d.version);
          auto exists = env->Exists(dir);
          if (exists.ok() && *exists && ReusableContent(d)) {
            // Content another deployment of this version put there: verified then, in use.
            DownloadOutcome o;
            auto manifest = env->ReadFile(ManifestPath(d.manifest_id), 512ull << 20);
            if (manifest.ok()) {
              o.result.manifest = *manifest;
              o.result.manifest_id = d.manifest_id;
              o.source = "local";
              DEPOT_RETURN_IF_ERROR(FinishDownload(d, std::move(o)));
              break;
            }
            SetAsideContent(d.package, d.version);
          }
          bool mine;
          {
            std::lock_guard<std::mutex> l(mu);
            mine = (job_running || job_done) && job_deployment == d.id;
          }
          if (!mine) StartDownload(d);
          break;
        }
        case State::kDownloaded: {
          if (deadline_passed) {
            DEPOT_RETURN_IF_ERROR(FailFinal(d, Event::kDeadlinePassed, "the deadline passed outside every window"));
            break;
          }
          auto inside = InsideWindows(&zones, d.windows, now / 1000);
          if (!inside.ok()) {
            DEPOT_RETURN_IF_ERROR(FailFinal(d, Event::kUnschedulable, inside.status().message()));
            break;
          }
          if (!*inside) break;
          const store::Program* program = ProgramOf(d.manifest_id, d.program);
          if (program == nullptr) {
            // Its manifest is gone or damaged: download again (what is here is reused).
            DEPOT_RETURN_IF_ERROR(
                Fail(d, Event::kDownloadFailed, "manifest of the download is missing; fetching again", std::nullopt, ""));
            break;
          }
          DEPOT_ASSIGN_OR_RETURN(auto to, Transition(d.id, Event::kInstallAllowed,
                                                     SetColumns(d.id, "run_dir = NULL, run_started_ms = NULL", {}),
                                                     {Message(core::msg::kAgentInstallStarted, d,
                                                              {{"program", d.program}})}));
          if (!to) break;
          d.state = State::kInstalling;
          DEPOT_RETURN_IF_ERROR(StartAttempt(d, *program));
          busy = true;
          break;
        }
        case State::kInstalling: {
          busy = true;
          DEPOT_RETURN_IF_ERROR(DriveProgram(d));
          break;
        }
        case State::kFailedRetry: {
          if (deadline_passed) {
            DEPOT_RETURN_IF_ERROR(FailFinal(d, Event::kDeadlinePassed, "the deadline passed while retrying"));
          } else if (d.attempts >= config.max_attempts) {
            DEPOT_RETURN_IF_ERROR(FailFinal(d, Event::kGiveUp, "gave up after " + std::to_string(d.attempts) + " attempts"));
          } else if (RetryDue(d)) {
            retry_due.erase(d.id);
            DEPOT_RETURN_IF_ERROR(Transition(d.id, Event::kRetryDue, {}, {}).status());
          }
          break;
        }
        case State::kSucceeded:
        case State::kFailedFinal:
          break;
      }
    }
    // Progress of the running download.
    {
      std::lock_guard<std::mutex> l(mu);
      if (job_running) {
        db->Transaction([&](catalog::Tx& tx) {
            return tx
                .Exec("UPDATE deployments SET bytes_done = ?, bytes_total = ? WHERE id = ?",
                      {job_bytes.load(), job_total.load(), job_deployment})
                .status();
          }).IgnoreError();
      }
    }
    return busy;
  }

  Status DriveProgram(const Row& d) {
    const store::Program* program = ProgramOf(d.manifest_id, d.program);
    if (d.run_dir.empty()) {
      // Stopped between recording "installing" and starting the attempt.
      if (program == nullptr) return Fail(d, Event::kOutcomeUnknown, "manifest missing", std::nullopt, "");
      return StartAttempt(d, *program);
    }
    auto st = CheckProgram(d.run_dir);
    if (!st.ok()) {
      if (program == nullptr) return Fail(d, Event::kOutcomeUnknown, st.status().message(), std::nullopt, "");
      // The run directory was never made: the attempt never started.
      return StartAttempt(d, *program);
    }
    std::string output = OutputTail(d.run_dir);
    switch (st->state) {
      case RunState::kRunning: {
        std::int64_t timeout_ms = program ? std::int64_t{program->timeout_s} * 1000 : 3600 * 1000;
        // Measured on the monotonic clock when this process started the program; a
        // program left running by an earlier process has only its wall start time.
        auto started = run_started.find(d.id);
        std::int64_t ran_ms = started != run_started.end() ? Ms(Mono() - started->second)
                                                           : std::max<std::int64_t>(0, NowMs() - d.run_started_ms);
        if (ran_ms > timeout_ms) {
          DEPOT_RETURN_IF_ERROR(Fail(d, Event::kProgramTimedOut,
                                     "timed out after " + std::to_string(timeout_ms / 1000) + " s", std::nullopt,
                                     output));
          KillProgram(d.run_dir);
        }
        return Status::Ok();
      }
      case RunState::kExited:
        if (program == nullptr) {
          return Fail(d, Event::kOutcomeUnknown, "manifest missing after the program ran", st->exit_code, output);
        }
        return Finish(d, *program, st->exit_code, output);
      case RunState::kNeverStarted:
        if (program == nullptr) return Fail(d, Event::kOutcomeUnknown, "manifest missing", std::nullopt, "");
        return StartAttempt(d, *program);
      case RunState::kVanished:
        return Fail(d, Event::kOutcomeUnknown, "the program's process vanished without an exit code (host restart?)",
                    std::nullopt, output);
    }
    return Status::Ok();
  }

  // ------------------------------------------------------------------ reports

  // Sends queued messages and changed deployment states. Unavailable when the site
  // cannot be reached (they stay queued).
  Status Flush() {
    for (int round = 0; round < 100; ++round) {
      DEPOT_ASSIGN_OR_RETURN(catalog::OutboxBatch batch, catalog::ReadOutbox(db.get(), 500));
      DEPOT_ASSIGN_OR_RETURN(catalog::Rows rows,
                             db->Query("SELECT id, report_seq, state, version, exit_code, last_error, next_try_ms FROM "
                                       "deployments WHERE report_seq > reported_seq AND removed_ms IS NULL LIMIT 500"));
      if (batch.count == 0 && rows.empty()) return Status::Ok();
      Json reports = Json::array();
      for (const auto& r : rows) {
        auto state = ParseState(r.Text(2)).value_or(State::kWaiting);
        std::string detail = r.Text(5);
        if (state == State::kFailedRetry) {
          detail += (detail.empty() ? "" : "; ") + std::string("retry at ") +
                    core::FormatUtc(core::TimePoint(std::chrono::milliseconds(r.Int(6))));
        }
        Json rep = {{"deployment", r.Int(0)},
                    {"seq", r.Int(1)},
                    {"state", std::string(ReportedState(state))},
                    {"version", r.Int(3)},
                    {"detail", detail.substr(0, 4000)}};
        if (!r.IsNull(4)) rep["exit_code"] = r.Int(4);
        reports.push_back(rep);
      }
      std::string body = "{\"messages\":" + batch.json + ",\"deployments\":" + Dump(reports) + "}";
      DEPOT_ASSIGN_OR_RETURN(http::ClientResponse resp, site->Do("POST", "/api/v1/agent/status", body));
      DEPOT_RETURN_IF_ERROR(http::ApiError(resp, "status to " + config.site));
      if (batch.count > 0) DEPOT_RETURN_IF_ERROR(catalog::AckOutbox(db.get(), batch.last_seq));
      Status marked = db->Transaction([&](catalog::Tx& tx) -> Status {
        for (const auto& r : rows) {
          DEPOT_RETURN_IF_ERROR(tx.Exec("UPDATE deployments SET reported_seq = ? WHERE id = ? AND reported_seq < ?",
                                        {r.Int(1), r.Int(0), r.Int(1)})
                                    .status());
        }
        return Status::Ok();
      });
      DEPOT_RETURN_IF_ERROR(marked);
      if (batch.count < 500 && rows.size() < 500) return Status::Ok();
    }
    return Status::Ok();
  }

  // ------------------------------------------------------------------ cleanup

  // Versions whose chunks must stay: installed content, and every version a live
  // deployment is working towards.
  core::Result<std::set<std::string>> PinnedManifests() {
    std::set<std::string> pinned;
    DEPOT_ASSIGN_OR_RETURN(catalog::Rows inst, db->Query("SELECT manifest_id FROM installed"));
    for (const auto& r : inst) pinned.insert(r.Text(0));
    DEPOT_ASSIGN_OR_RETURN(catalog::Rows live, db->Query("SELECT manifest_id, state FROM deployments WHERE removed_ms "
                                                         "IS NULL AND state NOT IN ('succeeded', 'failed_final')"));
    for (const auto& r : live) pinned.insert(r.Text(0));
    return pinned;
  }

  // Moves a version's content directory to where the next fetch of it looks for a
  // partial tree (repo::PartialPath), replacing any partial tree there: the fetch
  // then takes every chunk that still verifies from it instead of downloading it.
  void SetAsideContent(const std::string& package, std::int64_t version) {
    std::string dir = ContentDir(package, version);
    auto exists = env->Exists(dir);
    if (!exists.ok() || !*exists) return;
    std::string partial = repo::PartialPath(dir);
    env->RemoveAll(partial).IgnoreError();
    if (!env->Rename(dir, partial).ok()) env->RemoveAll(dir).IgnoreError();
  }

  // Removes content directories of `package` that are neither installed nor being
  // worked on, and the partial and staging trees of such versions. With
  // `cache_chunks`, a removed version's chunks go into the cache first (see
  // CacheChunksOf).
  void RemoveOtherVersions(const std::string& package, bool cache_chunks) {
    std::set<std::int64_t> keep;
    auto inst = db->QueryRow("SELECT version FROM installed WHERE package = ?", {package});
    if (inst.ok()) keep.insert(inst->Int(0));
    auto live = db->Query("SELECT version FROM deployments WHERE package = ? AND removed_ms IS NULL AND state NOT IN "
                          "('succeeded', 'failed_final')",
                          {package});
    if (live.ok()) {
      for (const auto& r : *live) keep.insert(r.Int(0));
    }
    {
      // What the download worker is writing right now is not ours to remove.
      std::lock_guard<std::mutex> l(mu);
      if (job_running) keep.insert(job_version);
    }
    std::string dir = Path("content/" + package);
    auto entries = env->ListDir(dir);
    if (!entries.ok()) return;
    for (const auto& e : *entries) {
      // "<version>", or a fetch's partial or staging tree of "<version>".
      std::string_view leftover_of = repo::LeftoverOf(e.name);
      std::string version(leftover_of.empty() ? std::string_view(e.name) : leftover_of);
      char* end = nullptr;
      long long v = std::strtoll(version.c_str(), &end, 10);
      if (version.empty() || *end != '\0' || keep.count(v)) continue;
      std::string path = core::JoinPath(dir, e.name);
      if (leftover_of.empty() && cache_chunks) CacheChunksOf(package, v, path);
      env->RemoveAll(path).IgnoreError();
      core::Log(core::LogLevel::kInfo, "agent.content_removed", {{"package", package}, {"entry", e.name}});
    }
  }

  // Before a superseded version's directory goes: its chunks that no pinned version
  // uses are put into the cache (read back, verified, at most the cache's limit), so
  // a return to that version (a rollback, another deployment of it) finds them here.
  // Chunks of pinned versions need no copy: their directories are seeds.
  void CacheChunksOf(const std::string& package, std::int64_t version, const std::string& dir) {
    auto held = db->Query("SELECT manifest_id FROM held WHERE package = ? AND version = ?", {package, version});
    auto pinned = PinnedManifests();
    if (!held.ok() || held->empty() || !pinned.ok()) return;
    store::ChunkIdSet skip;
    for (const auto& id : *pinned) {
      auto c = ChunksOf(id);
      skip.insert(c.begin(), c.end());
    }
    store::ChunkStore cache = AgentCache(env, data_dir);
    core::AtomicBatch batch(env, cache.root());
    std::uint64_t cached = 0;
    std::string buffer;
    for (const auto& h : *held) {
      auto m = LoadManifest(h.Text(0));
      if (!m.ok()) continue;
      for (const auto& e : m->entries) {
        if (e.type != store::EntryType::kFile || e.chunks.empty()) continue;
        auto file = env->OpenForRead(core::JoinPath(dir, e.path), /*no_follow=*/true);
        if (!file.ok()) continue;
        std::uint64_t offset = 0;
        for (const auto& c : e.chunks) {
          std::uint64_t at = offset;
          offset += c.size;
          if (!skip.insert(c.id).second) continue;
          if (cached + c.size > config.cache_max_bytes) break;
          buffer.resize(c.size);
          if (!core::ReadExactlyAt(file->get(), at, buffer.data(), c.size).ok()) continue;
          if (cache.Put(c.id, buffer, &batch).ok()) cached += c.size;  // Put verifies the id
        }
      }
    }
    Status s = batch.Commit();
    core::Log(s.ok() ? core::LogLevel::kInfo : core::LogLevel::kWarn, "agent.cached_superseded",
              {{"package", package}, {"version", std::to_string(version)}, {"bytes", std::to_string(cached)},
               {"error", s.ok() ? "" : s.message()}});
  }

  // Deployments that left the policy more than purge_grace ago: content and cache
  // entries that nothing else needs go, and the records with them.
  Status Purge() {
    std::int64_t cutoff = NowMs() - Ms(config.purge_grace);
    DEPOT_ASSIGN_OR_RETURN(catalog::Rows rows,
                           db->Query(std::string("SELECT ") + kRowColumns +
                                         " FROM deployments WHERE removed_ms IS NOT NULL AND removed_ms <= ?",
                                     {cutoff}));
    if (rows.empty()) return Status::Ok();
    std::set<std::string> packages;
    for (const auto& r : rows) {
      Row d = ToRow(r);
      if (d.state == State::kInstalling) {
        auto st = CheckProgram(d.run_dir);
        if (st.ok() && st->state == RunState::kRunning) continue;  // never killed half way
      }
      {
        std::lock_guard<std::mutex> l(mu);
        if ((job_running || job_done) && job_deployment == d.id) continue;
      }
      DEPOT_RETURN_IF_ERROR(db->Transaction([&](catalog::Tx& tx) {
        return tx.Exec("DELETE FROM deployments WHERE id = ?", {d.id}).status();
      }));
      packages.insert(d.package);
    }
    for (const auto& package : packages) {
      DEPOT_ASSIGN_OR_RETURN(std::int64_t live,
                             db->QueryInt("SELECT COUNT(*) FROM deployments WHERE package = ?", {package}));
      if (live == 0) {
        // Nothing refers to the package any more: its content and its place in the
        // installed table go with it.
        DEPOT_RETURN_IF_ERROR(env->RemoveAll(Path("content/" + package)));
        DEPOT_RETURN_IF_ERROR(db->Transaction([&](catalog::Tx& tx) {
          return tx.Exec("DELETE FROM installed WHERE package = ?", {package}).status();
        }));
      } else {
        RemoveOtherVersions(package, /*cache_chunks=*/false);
      }
      // Cache entries of its versions nothing pins any more.
      DEPOT_ASSIGN_OR_RETURN(std::set<std::string> pinned, PinnedManifests());
      DEPOT_ASSIGN_OR_RETURN(catalog::Rows held,
                             db->Query("SELECT manifest_id, version FROM held WHERE package = ?", {package}));
      std::vector<std::string> release;
      for (const auto& h : held) {
        if (pinned.count(h.Text(0))) continue;
        release.push_back(h.Text(0));
        catalog::OutboxMessage m{core::msg::kAgentContentPurged, NowMs(), package, h.Int(1), 0, {}};
        Post(m);
      }
      DEPOT_RETURN_IF_ERROR(EvictVersions(release, pinned));
    }
    return Status::Ok();
  }

  // Chunk ids of a held version (empty when its manifest is gone).
  store::ChunkIdSet ChunksOf(const std::string& manifest_id) {
    store::ChunkIdSet out;
    auto m = LoadManifest(manifest_id);
    if (!m.ok()) return out;
    for (const auto& c : m->UniqueChunks()) out.insert(c.id);
    return out;
  }

  // Removes the given versions from the cache: their chunks unless a pinned version
  // uses them, their manifests and held records.
  Status EvictVersions(const std::vector<std::string>& manifest_ids, const std::set<std::string>& pinned) {
    if (manifest_ids.empty()) return Status::Ok();
    store::ChunkIdSet keep;
    for (const auto& id : pinned) {
      auto c = ChunksOf(id);
      keep.insert(c.begin(), c.end());
    }
    store::ChunkStore cache = AgentCache(env, data_dir);
    for (const auto& id : manifest_ids) {
      for (const auto& c : ChunksOf(id)) {
        if (!keep.count(c)) cache.Remove(c).IgnoreError();
      }
      DEPOT_RETURN_IF_ERROR(db->Transaction([&](catalog::Tx& tx) {
        return tx.Exec("DELETE FROM held WHERE manifest_id = ?", {id}).status();
      }));
      env->Remove(ManifestPath(id)).IgnoreError();
    }
    return Status::Ok();
  }

  // Keeps the cache under its limit: chunks nothing refers to go first, then those of
  // the least recently used versions; chunks of pinned versions always stay.
  void EnforceCacheLimit() {
    store::ChunkStore cache = AgentCache(env, data_dir);
    std::vector<std::pair<store::ChunkId, std::uint64_t>> all;
    std::uint64_t total = 0;
    Status s = cache.ForEach([&](const store::ChunkId& id, std::uint64_t bytes) {
      all.emplace_back(id, bytes);
      total += bytes;
      return true;
    });
    if (!s.ok() || total <= config.cache_max_bytes) return;
    auto pinned = PinnedManifests();
    auto held = db->Query("SELECT manifest_id, last_used_ms FROM held ORDER BY last_used_ms");
    if (!pinned.ok() || !held.ok()) return;
    // Each chunk's recency: the newest use among the versions holding it.
    std::unordered_map<store::ChunkId, std::int64_t, store::ChunkIdHash> recency;
    std::vector<std::string> unpinned;
    for (const auto& h : *held) {
      bool pin = pinned->count(h.Text(0)) > 0;
      if (!pin) unpinned.push_back(h.Text(0));
      for (const auto& c : ChunksOf(h.Text(0))) {
        auto& r = recency[c];
        r = std::max(r, pin ? INT64_MAX : h.Int(1));
      }
    }
    std::sort(all.begin(), all.end(), [&](const auto& a, const auto& b) {
      auto ra = recency.count(a.first) ? recency[a.first] : 0;
      auto rb = recency.count(b.first) ? recency[b.first] : 0;
      return ra < rb;
    });
    std::uint64_t removed = 0;
    store::ChunkIdSet gone;
    for (const auto& [id, bytes] : all) {
      if (total <= config.cache_max_bytes) break;
      if (recency.count(id) && recency[id] == INT64_MAX) break;  // only pinned chunks left
      if (cache.Remove(id).ok()) {
        total -= bytes;
        removed += bytes;
        gone.insert(id);
      }
    }
    // Versions that lost chunks are no longer whole in the cache: forget them.
    for (const auto& id : unpinned) {
      for (const auto& c : ChunksOf(id)) {
        if (gone.count(c)) {
          db->Transaction([&](catalog::Tx& tx) {
              return tx.Exec("DELETE FROM held WHERE manifest_id = ?", {id}).status();
            }).IgnoreError();
          env->Remove(ManifestPath(id)).IgnoreError();
          break;
        }
      }
    }
    core::Log(core::LogLevel::kInfo, "agent.cache_evicted",
              {{"bytes", std::to_string(removed)}, {"cache_bytes", std::to_string(total)},
               {"limit", std::to_string(config.cache_max_bytes)}});
  }

  // ------------------------------------------------------------------ loop

  core::Duration PollInterval() const {
    return config.poll_interval.count() > 0 ? config.poll_interval : site_poll_interval;
  }

  // Polls when due. Returns the poll's status (OK when not due).
  Status MaybePoll(bool force) {
    core::MonoTime now = Mono();
    if (!force && next_poll && now < *next_poll) return Status::Ok();
    SyncAttributes();
    Status s = Poll();
    if (s.ok()) {
      poll_failures = 0;
      next_poll = now + PollInterval();
    } else {
      ++poll_failures;
      std::int64_t backoff = std::min<std::int64_t>(Ms(PollInterval()), 1000ll << std::min(poll_failures, 10));
      next_poll = now + std::chrono::milliseconds(backoff);
      core::Log(core::LogLevel::kWarn, "agent.poll_failed", {{"error", s.ToString()}});
    }
    return s;
  }

  void Wait(core::Duration d) {
    std::unique_lock<std::mutex> l(mu);
    cv.wait_for(l, d, [&] { return job_done || (stop != nullptr && stop->load()); });
  }
};

Agent::Agent(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Agent::~Agent() {
  impl_->job_cancel = true;
  if (impl_->worker.joinable()) impl_->worker.join();
}

core::Result<std::unique_ptr<Agent>> Agent::Open(core::Env* env, core::Clock* clock, const std::string& data_dir,
                                                 const AgentOverrides& overrides, SourceFactory sources) {
  // Absolute: programs run in their content directory and write to their run directory.
  std::string dir = data_dir;
  if (!dir.empty() && dir[0] != '/') {
    char cwd[4096];
    if (::getcwd(cwd, sizeof(cwd)) == nullptr) return Status::IOError("cannot read the current directory");
    dir = core::JoinPath(cwd, dir);
  }
  auto impl = std::make_unique<Impl>(env, clock, dir);
  DEPOT_RETURN_IF_ERROR(env->CreateDirs(dir, 0750));
  auto held = env->LockFile(impl->Path("agent.lock"));
  if (!held.ok()) {
    return Status::Unavailable("another depot agent is running on " + data_dir + " (" + held.status().message() + ")");
  }
  impl->lock = std::move(*held);
  AgentConfig c;
  Status loaded = Impl::LoadConfig(env, data_dir, &c, &impl->identity);
  if (!loaded.ok() && !loaded.IsNotFound()) return loaded;
  if (!overrides.site.empty()) c.site = overrides.site;
  if (!overrides.ca.empty()) c.ca = overrides.ca;
  if (!overrides.name.empty()) c.name = overrides.name;
  for (const auto& [k, v] : overrides.tags) c.tags[k] = v;
  auto take = [](auto& into, const auto& from) {
    if (from) into = *from;
  };
  take(c.poll_interval, overrides.poll_interval);
  take(c.purge_grace, overrides.purge_grace);
  take(c.stall_timeout, overrides.stall_timeout);
  take(c.retry_base, overrides.retry_base);
  take(c.retry_max, overrides.retry_max);
  take(c.source_penalty, overrides.source_penalty);
  take(c.cache_max_bytes, overrides.cache_max_bytes);
  take(c.max_rate, overrides.max_rate);
  take(c.parallel, overrides.parallel);
  take(c.max_attempts, overrides.max_attempts);
  if (c.parallel < 1 || c.parallel > 64) return Status::InvalidArgument("parallel must be from 1 to 64");
  if (c.max_attempts < 1) return Status::InvalidArgument("max_attempts must be at least 1");
  if (c.site.empty()) return Status::InvalidArgument("no site: pass --site URL on the first start");
  while (!c.site.empty() && c.site.back() == '/') c.site.pop_back();
  impl->config = c;
  impl->sources = sources ? std::move(sources) : DefaultSource;
  DEPOT_ASSIGN_OR_RETURN(impl->db, catalog::Db::OpenSqlite(impl->Path("state.db")));
  DEPOT_RETURN_IF_ERROR(catalog::Migrate(impl->db.get(), StateMigrations()));
  for (const char* d : {"cache", "manifests", "content", "runs"}) DEPOT_RETURN_IF_ERROR(env->CreateDirs(impl->Path(d), 0750));
  DEPOT_RETURN_IF_ERROR(impl->ClampPersistedRetries());
  if (!impl->identity.token.empty()) {
    DEPOT_ASSIGN_OR_RETURN(impl->trusted_root, env->ReadFile(impl->Path(kRootFile), 1 << 20));
    DEPOT_RETURN_IF_ERROR(impl->SaveConfig());
  }
  return std::unique_ptr<Agent>(new Agent(std::move(impl)));
}

Status Agent::EnsureEnrolled(const std::string& enroll_token) {
  if (impl_->identity.token.empty()) DEPOT_RETURN_IF_ERROR(impl_->Enroll(enroll_token));
  return impl_->ConnectSite();
}

core::Result<Agent::Outcome> Agent::RunOnce() {
  Impl& a = *impl_;
  if (!a.site) return Status::InvalidArgument("not enrolled (call EnsureEnrolled first)");
  a.any_failed = a.any_succeeded = false;
  Status poll = a.MaybePoll(true);
  bool failed = !poll.ok();
  for (;;) {
    std::uint64_t before = a.transitions;
    DEPOT_ASSIGN_OR_RETURN(bool busy, a.Step());
    a.Purge().IgnoreError();
    if (a.transitions != before) continue;  // something moved: it may move on at once
    if (!busy) break;
    a.Wait(std::chrono::milliseconds(200));
  }
  Status flushed = a.Flush();
  if (!flushed.ok()) {
    core::Log(core::LogLevel::kWarn, "agent.report_failed", {{"error", flushed.ToString()}});
    failed = true;
  }
  if (!poll.ok()) return poll;
  if (failed || a.any_failed) return Outcome::kFailed;
  return a.any_succeeded ? Outcome::kSucceeded : Outcome::kNothingToDo;
}

Status Agent::Run(const std::atomic<bool>* stop) {
  Impl& a = *impl_;
  if (!a.site) return Status::InvalidArgument("not enrolled (call EnsureEnrolled first)");
  a.stop = stop;
  a.site->SetAbortFlag(stop);
  core::MonoTime next_flush = a.Mono();  // due at once
  std::int64_t flush_failures = 0;
  bool was_busy = true;
  while (!stop->load()) {
    a.MaybePoll(false).IgnoreError();
    auto busy = a.Step();
    bool is_busy = busy.ok() && *busy;
    if (was_busy && !is_busy) {
      // Going idle, maybe for days: give back what a download's buffers left in the
      // allocator's arenas (an idle agent should cost its machine next to nothing).
      ::malloc_trim(0);
    }
    was_busy = is_busy;
    if (!busy.ok()) core::Log(core::LogLevel::kWarn, "agent.step_failed", {{"error", busy.status().ToString()}});
    a.Purge().IgnoreError();
    core::MonoTime now = a.Mono();
    if (now >= next_flush) {
      Status s = a.Flush();
      flush_failures = s.ok() ? 0 : flush_failures + 1;
      next_flush = now + std::chrono::milliseconds(
                             s.ok() ? 0 : std::min<std::int64_t>(60000, 1000ll << std::min<std::int64_t>(flush_failures, 6)));
    }
    a.Wait(busy.ok() && *busy ? std::chrono::milliseconds(200) : std::chrono::milliseconds(1000));
  }
  a.job_cancel = true;  // whatever is downloading: verified chunks stay in the cache
  if (a.worker.joinable()) a.worker.join();
  a.Flush().IgnoreError();
  return Status::Ok();
}

namespace {

// The state database of an agent data directory another process may be running; a
// directory that is not one is an error that says so (never a new empty database).
core::Result<std::unique_ptr<catalog::Db>> OpenState(core::Env* env, const std::string& data_dir, AgentConfig* c,
                                                     Identity* id) {
  Status loaded = Agent::Impl::LoadConfig(env, data_dir, c, id);
  if (loaded.IsNotFound()) {
    return Status::NotFound(data_dir + " is not an agent data directory (no " + kConfigFile +
                            "): start one with `depot agent run --data " + data_dir +
                            " --site URL --enroll-token T`");
  }
  DEPOT_RETURN_IF_ERROR(loaded.WithContext("agent data " + data_dir));
  DEPOT_ASSIGN_OR_RETURN(auto db, catalog::Db::OpenSqlite(core::JoinPath(data_dir, "state.db")));
  DEPOT_RETURN_IF_ERROR(catalog::Migrate(db.get(), StateMigrations()));
  return db;
}

}  // namespace

core::Result<LocalStatusReport> Agent::LocalStatus(core::Env* env, const std::string& data_dir) {
  LocalStatusReport out;
  AgentConfig c;
  Identity id;
  DEPOT_ASSIGN_OR_RETURN(auto db, OpenState(env, data_dir, &c, &id));
  out.site = c.site;
  out.client = id.client;
  out.cache_max_bytes = c.cache_max_bytes;
  DEPOT_ASSIGN_OR_RETURN(catalog::Rows rows,
                         db->Query(std::string("SELECT ") + kRowColumns + " FROM deployments ORDER BY id"));
  for (const auto& r : rows) {
    Row row = ToRow(r);
    DeploymentStatus d;
    d.id = row.id;
    d.package = row.package;
    d.kind = row.kind;
    d.program = row.program;
    d.state = std::string(StateName(row.state));
    d.version = row.version;
    d.attempts = row.attempts;
    d.next_try_ms = row.next_try_ms;
    d.bytes_done = row.bytes_done;
    d.bytes_total = row.bytes_total;
    d.exit_code = row.exit_code;
    d.last_error = row.last_error;
    d.output = row.output;
    d.requested = row.requested;
    d.removed = row.removed;
    out.deployments.push_back(std::move(d));
  }
  DEPOT_ASSIGN_OR_RETURN(catalog::Rows inst, db->Query("SELECT package, version FROM installed ORDER BY package"));
  for (const auto& r : inst) out.installed[r.Text(0)] = r.Int(1);
  DEPOT_ASSIGN_OR_RETURN(out.outbox, catalog::OutboxDepth(db.get()));
  store::ChunkStore cache = AgentCache(env, data_dir);
  cache.ForEach([&](const store::ChunkId&, std::uint64_t bytes) {
         out.cache_bytes += bytes;
         ++out.cache_chunks;
         return true;
       }).IgnoreError();
  return out;
}

Status Agent::RequestInstall(core::Env* env, const std::string& data_dir, const std::string& package) {
  AgentConfig c;
  Identity id;
  DEPOT_ASSIGN_OR_RETURN(auto db, OpenState(env, data_dir, &c, &id));
  std::int64_t n = 0;
  DEPOT_RETURN_IF_ERROR(db->Transaction([&](catalog::Tx& tx) -> Status {
    DEPOT_ASSIGN_OR_RETURN(n, tx.Exec("UPDATE deployments SET requested = 1 WHERE package = ? AND kind = 'available' "
                                      "AND removed_ms IS NULL",
                                      {package}));
    return Status::Ok();
  }));
  if (n == 0) {
    return Status::NotFound("no available deployment of " + package +
                            " in this agent's policy (`depot agent status` lists them; a poll may be needed first)");
  }
  return Status::Ok();
}

}  // namespace depot::agent
