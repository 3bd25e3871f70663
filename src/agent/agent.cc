// The agent: its parts wired together. Each part is in its own file --
//   config_file   agent.json: settings and identity
//   enrollment    joining the site, reporting the machine's attributes
//   state_store   state.db: deployments, installed versions, held manifests, outbox
//   policy_sync   polling the policy and bringing the deployments in line with it
//   downloader    fetching a version from the policy's sources, on a worker thread
//   installer     running the signed program, judging its exit code
//   content       content directories, held manifests, the chunk cache, purging
//   reporter      delivering messages and deployment states to the site
//   driver        one transition per deployment per pass, by machine.h's table
// -- and this file runs them: RunOnce for one cycle, Run until stopped.
#include "agent/agent.h"

#include <malloc.h>
#include <unistd.h>

#include "agent/content.h"
#include "agent/downloader.h"
#include "agent/driver.h"
#include "agent/enrollment.h"
#include "agent/installer.h"
#include "agent/policy_sync.h"
#include "agent/reporter.h"
#include "agent/state_store.h"
#include "core/backoff.h"
#include "core/log.h"
#include "core/path.h"
#include "http/client.h"
#include "http/curl_source.h"

namespace depot::agent {

using core::Status;

namespace {

core::Result<std::unique_ptr<core::RepoSource>> DefaultSource(const std::string& url,
                                                              const AgentConfig& config) {
  http::CurlOptions o;
  o.ca_file = config.ca;
  // Depot's DPs and sites answer many chunks per request; nginx mirrors get GETs.
  o.chunk_batches = true;
  o.low_speed_time_s = static_cast<std::uint32_t>(std::max<std::int64_t>(
      1, std::chrono::duration_cast<std::chrono::seconds>(config.stall_timeout).count()));
  DEPOT_ASSIGN_OR_RETURN(auto src, http::CurlSource::Create(url, o));
  return std::unique_ptr<core::RepoSource>(std::move(src));
}

// The state of a data directory another process may be running; a directory that is
// not one is an error that says so (never a new empty database).
core::Result<std::unique_ptr<StateStore>> OpenState(core::Env* env, const std::string& data_dir,
                                                    AgentConfig* c, Identity* id) {
  Status loaded = LoadAgentConfig(env, data_dir, c, id);
  if (loaded.IsNotFound()) {
    return Status::NotFound(
        data_dir +
        " is not an agent data directory (no agent.json): start one with `depot agent "
        "run --data " +
        data_dir + " --site URL --enroll-token T`");
  }
  DEPOT_RETURN_IF_ERROR(loaded.WithContext("agent data " + data_dir));
  return StateStore::Open(core::Clock::Real(), core::JoinPath(data_dir, "state.db"));
}

}  // namespace

struct Agent::Impl {
  Impl(core::Env* e, core::Clock* c, std::string dir)
      : env(e), clock(c), data_dir(std::move(dir)), zones(e) {}

  core::Env* env;
  core::Clock* clock;
  std::string data_dir;
  AgentConfig config;
  Identity identity;
  std::unique_ptr<core::FileLock> lock;
  std::unique_ptr<StateStore> state;
  std::unique_ptr<ContentStore> content;
  std::unique_ptr<Installer> installer;
  std::unique_ptr<Downloader> downloader;
  std::unique_ptr<PolicySync> policy;
  std::unique_ptr<Driver> driver;
  std::unique_ptr<http::Client> site;
  core::ZoneCache zones;
  const std::atomic<bool>* stop = nullptr;

  Status ConnectSite() {
    http::ClientOptions o;
    o.bearer_token = identity.token;
    o.ca_file = config.ca;
    o.timeout_s = 120;
    o.fallback_urls = config.more_sites;
    o.clock = clock;
    DEPOT_ASSIGN_OR_RETURN(site, http::Client::Create(config.site, o));
    if (stop != nullptr) site->SetAbortFlag(stop);
    return Status::Ok();
  }

  Status Poll(bool force) {
    std::vector<std::int64_t> stop_ids;
    Status s = policy->MaybePoll(site.get(), force, &stop_ids);
    driver->Stop(stop_ids);
    return s;
  }
};

Agent::Agent(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Agent::~Agent() { impl_->downloader->CancelAll(); }

core::Result<std::unique_ptr<Agent>> Agent::Open(core::Env* env, core::Clock* clock,
                                                 const std::string& data_dir,
                                                 const AgentOverrides& overrides,
                                                 SourceFactory sources) {
  // Absolute: programs run in their content directory and write to their run directory.
  std::string dir = data_dir;
  if (!dir.empty() && dir[0] != '/') {
    char cwd[4096];
    if (::getcwd(cwd, sizeof(cwd)) == nullptr)
      return Status::IOError("cannot read the current directory");
    dir = core::JoinPath(cwd, dir);
  }
  auto impl = std::make_unique<Impl>(env, clock, dir);
  DEPOT_RETURN_IF_ERROR(env->CreateDirs(dir, 0750));
  auto held = env->LockFile(core::JoinPath(dir, "agent.lock"));
  if (!held.ok()) {
    return Status::Unavailable("another depot agent is running on " + data_dir + " (" +
                               held.status().message() + ")");
  }
  impl->lock = std::move(*held);
  AgentConfig stored;
  Status loaded = LoadAgentConfig(env, dir, &stored, &impl->identity);
  if (!loaded.ok() && !loaded.IsNotFound()) return loaded;
  DEPOT_ASSIGN_OR_RETURN(impl->config, ApplyOverrides(stored, overrides));
  Impl& a = *impl;
  DEPOT_ASSIGN_OR_RETURN(a.state, StateStore::Open(clock, core::JoinPath(dir, "state.db")));
  DEPOT_RETURN_IF_ERROR(
      a.state->ClampRetries(core::UnixMillis(clock->Now()) + core::ToMillis(a.config.retry_max)));
  for (const char* d : {"cache", "manifests", "content", "runs"}) {
    DEPOT_RETURN_IF_ERROR(env->CreateDirs(core::JoinPath(dir, d), 0750));
  }
  a.content = std::make_unique<ContentStore>(env, clock, a.state.get(), &a.config, dir);
  a.installer = std::make_unique<Installer>(env, clock, a.state.get(), a.content.get(), dir);
  const ContentStore* content = a.content.get();
  a.downloader = std::make_unique<Downloader>(
      env, clock, &a.config, dir, sources ? std::move(sources) : DefaultSource,
      [content](const std::string& id) { return content->LoadManifest(id); });
  a.policy = std::make_unique<PolicySync>(a.state.get(), clock, &a.config);
  a.driver = std::make_unique<Driver>(env, clock, &a.config, a.state.get(), a.content.get(),
                                      a.installer.get(), a.downloader.get(), &a.zones);
  if (!a.identity.token.empty()) {
    DEPOT_ASSIGN_OR_RETURN(std::string root, env->ReadFile(TrustedRootPath(dir), 1 << 20));
    a.downloader->SetTrustedRoot(std::move(root));
    DEPOT_RETURN_IF_ERROR(SaveAgentConfig(env, dir, a.config, a.identity));
  }
  return std::unique_ptr<Agent>(new Agent(std::move(impl)));
}

Status Agent::EnsureEnrolled(const std::string& enroll_token) {
  Impl& a = *impl_;
  if (a.identity.token.empty()) {
    DEPOT_ASSIGN_OR_RETURN(Enrollment e, Enroll(a.config, enroll_token));
    DEPOT_RETURN_IF_ERROR(RecordEnrollment(a.env, a.data_dir, a.state.get(), a.config, e));
    a.identity = e.identity;
    a.downloader->SetTrustedRoot(e.trusted_root);
    core::Log(core::LogLevel::kInfo, "agent.enrolled",
              {{"client", a.identity.client}, {"site", a.config.site}});
  }
  return a.ConnectSite();
}

core::Result<Agent::Outcome> Agent::RunOnce() {
  Impl& a = *impl_;
  if (!a.site) return Status::InvalidArgument("not enrolled (call EnsureEnrolled first)");
  a.driver->ResetCounters();
  Status poll = a.Poll(/*force=*/true);
  bool failed = !poll.ok();
  for (;;) {
    std::uint64_t before = a.driver->transitions();
    DEPOT_ASSIGN_OR_RETURN(Activity now, a.driver->Step(a.policy->site_clock_offset()));
    a.driver->Purge().IgnoreError();
    if (a.driver->transitions() != before) continue;  // something moved: it may move on at once
    if (!now.busy) break;
    a.downloader->Wait(std::chrono::milliseconds(now.program ? 50 : 200), nullptr, now.program);
  }
  Status flushed = SendReports(a.state.get(), a.site.get());
  if (!flushed.ok()) {
    core::Log(core::LogLevel::kWarn, "agent.report_failed", {{"error", flushed.ToString()}});
    failed = true;
  }
  if (!poll.ok()) return poll;
  if (failed || a.driver->any_failed()) return Outcome::kFailed;
  return a.driver->any_succeeded() ? Outcome::kSucceeded : Outcome::kNothingToDo;
}

Status Agent::Run(const std::atomic<bool>* stop) {
  Impl& a = *impl_;
  if (!a.site) return Status::InvalidArgument("not enrolled (call EnsureEnrolled first)");
  a.stop = stop;
  a.site->SetAbortFlag(stop);
  core::Backoff reports(a.clock, {std::chrono::seconds(1), std::chrono::minutes(1)});
  bool was_busy = true;
  while (!stop->load()) {
    // Held at the site only while nothing here needs the loop (downloads, programs).
    a.policy->SetLongPoll(!was_busy);
    a.Poll(/*force=*/false).IgnoreError();
    auto step = a.driver->Step(a.policy->site_clock_offset());
    const bool is_busy = step.ok() && step->busy;
    const bool program = step.ok() && step->program;
    if (was_busy && !is_busy) {
      // Going idle, maybe for days: give back what a download's buffers left in the
      // allocator's arenas (an idle agent should cost its machine next to nothing).
      ::malloc_trim(0);
    }
    was_busy = is_busy;
    if (!step.ok())
      core::Log(core::LogLevel::kWarn, "agent.step_failed", {{"error", step.status().ToString()}});
    a.driver->Purge().IgnoreError();
    if (reports.Due()) {
      Status s = SendReports(a.state.get(), a.site.get());
      if (s.ok()) {
        reports.Succeeded();
      } else {
        reports.Failed();
      }
    }
    a.downloader->Wait(is_busy ? std::chrono::milliseconds(200) : std::chrono::milliseconds(1000),
                       stop, program);
  }
  a.downloader->CancelAll();  // whatever is downloading: verified chunks stay in the cache
  SendReports(a.state.get(), a.site.get()).IgnoreError();
  return Status::Ok();
}

core::Result<LocalStatusReport> Agent::LocalStatus(core::Env* env, const std::string& data_dir) {
  LocalStatusReport out;
  AgentConfig c;
  Identity id;
  DEPOT_ASSIGN_OR_RETURN(auto state, OpenState(env, data_dir, &c, &id));
  out.site = c.site;
  out.client = id.client;
  out.cache_max_bytes = c.cache_max_bytes;
  DEPOT_ASSIGN_OR_RETURN(std::vector<Deployment> all, state->All());
  for (const Deployment& row : all) {
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
  DEPOT_ASSIGN_OR_RETURN(auto installed, state->Installed());
  for (const auto& [package, version] : installed) out.installed[package] = version;
  DEPOT_ASSIGN_OR_RETURN(out.outbox, state->OutboxDepth());
  ContentStore content(env, core::Clock::Real(), state.get(), &c, data_dir);
  content.Cache()
      .ForEach([&](const store::ChunkId&, std::uint64_t bytes) {
        out.cache_bytes += bytes;
        ++out.cache_chunks;
        return true;
      })
      .IgnoreError();
  return out;
}

Status Agent::RequestInstall(core::Env* env, const std::string& data_dir,
                             const std::string& package) {
  AgentConfig c;
  Identity id;
  DEPOT_ASSIGN_OR_RETURN(auto state, OpenState(env, data_dir, &c, &id));
  DEPOT_ASSIGN_OR_RETURN(std::int64_t n, state->Request(package));
  if (n == 0) {
    return Status::NotFound(
        "no available deployment of " + package +
        " in this agent's policy (`depot agent status` lists them; a poll may be needed first)");
  }
  return Status::Ok();
}

}  // namespace depot::agent
