#include "agent/driver.h"

#include <cstdlib>

#include "agent/program.h"
#include "core/crash_point.h"
#include "core/log.h"
#include "core/messages.h"

namespace depot::agent {

using core::Status;

namespace {

std::string Tail(const std::string& s, std::size_t n) {
  return s.substr(s.size() > n ? s.size() - n : 0);
}

}  // namespace

Driver::Driver(core::Env* env, core::Clock* clock, const AgentConfig* config, StateStore* state,
               ContentStore* content, Installer* installer, Downloader* downloader,
               core::ZoneCache* zones)
    : env_(env),
      clock_(clock),
      config_(config),
      state_(state),
      content_(content),
      installer_(installer),
      downloader_(downloader),
      zones_(zones) {}

core::Result<Activity> Driver::Step(std::optional<core::Duration> site_clock) {
  site_clock_ = site_clock;
  ReapChildren();
  // A finished download whose deployment moved on: its messages are kept, the rest dropped.
  auto dropped = downloader_->DropUnless([&](std::int64_t id, std::int64_t version) {
    auto d = state_->Get(id);
    return d.ok() && d->has_value() && !(*d)->removed && (*d)->state == State::kDownloading &&
           (*d)->version == version;
  });
  for (const auto& m : dropped) state_->Post(m).IgnoreError();
  DEPOT_ASSIGN_OR_RETURN(std::vector<Deployment> live, state_->Live());
  Activity a;
  a.busy = downloader_->Running();
  for (const Deployment& d : live) {
    DEPOT_RETURN_IF_ERROR(DriveOne(d, &a.busy));
    if (d.state == State::kInstalling) a.program = true;
  }
  std::int64_t job = 0;
  if (downloader_->Running(&job))
    state_->SetProgress(job, downloader_->bytes(), downloader_->total()).IgnoreError();
  return a;
}

Status Driver::DriveOne(const Deployment& d, bool* busy) {
  switch (d.state) {
    case State::kWaiting:
      return OnWaiting(d, busy);
    case State::kDownloading:
      return OnDownloading(d, busy);
    case State::kDownloaded:
      return OnDownloaded(d, busy);
    case State::kInstalling:
      *busy = true;
      return OnInstalling(d);
    case State::kFailedRetry:
      return OnFailedRetry(d);
    case State::kSucceeded:
    case State::kFailedFinal:
      return Status::Ok();
  }
  return Status::Ok();
}

core::Result<std::optional<State>> Driver::Move(
    const Deployment& d, Event event, const Changes& changes,
    const std::vector<catalog::OutboxMessage>& messages) {
  DEPOT_ASSIGN_OR_RETURN(std::optional<State> to,
                         state_->Transition(d.id, event, changes, messages));
  if (!to) return to;
  ++transitions_;
  core::Log(core::LogLevel::kInfo, "agent.transition",
            {{"deployment", std::to_string(d.id)},
             {"event", std::string(EventName(event))},
             {"state", std::string(StateName(*to))}});
  if (*to == State::kFailedRetry || *to == State::kFailedFinal) any_failed_ = true;
  if (*to == State::kSucceeded) any_succeeded_ = true;
  return to;
}

core::Backoff& Driver::RetryOf(const Deployment& d) {
  auto it = retries_.find(d.id);
  if (it == retries_.end()) {
    it = retries_.emplace(d.id, core::Backoff(clock_, {config_->retry_base, config_->retry_max}))
             .first;
    it->second.Restore({d.attempts, d.state == State::kFailedRetry ? d.next_try_ms : 0});
  }
  return it->second;
}

Status Driver::Fail(const Deployment& d, Event event, const std::string& error,
                    std::optional<int> exit_code, const std::string& output) {
  core::Backoff& retry = RetryOf(d);
  retry.Failed();
  // The failure that uses up the last attempt is one transition (give_up) with one
  // message, not a retry that is abandoned in the same pass.
  const bool give_up = retry.failures() >= config_->max_attempts;
  const std::int64_t at =
      core::UnixMillis(retry.DueWall());  // shown and persisted; the schedule is `retry`
  const std::string why =
      give_up ? "gave up after " + std::to_string(retry.failures()) + " attempts: " + error : error;
  Changes c;
  c.attempts = retry.failures();
  c.next_try_ms = give_up ? 0 : at;
  c.set_error = true;
  c.error = why.substr(0, 4096);
  c.set_exit = true;
  if (exit_code) c.exit_code = *exit_code;
  c.output = output;
  std::map<std::string, std::string> p = {{"error", why.substr(0, 1024)}, {"program", d.program}};
  if (!give_up) p["next_retry"] = core::FormatUtc(core::FromUnixMillis(at));
  if (exit_code) p["exit_code"] = std::to_string(*exit_code);
  if (!output.empty()) p["output"] = Tail(output, 1024);
  const int code = give_up ? core::msg::kAgentInstallFailed : core::msg::kAgentInstallFailedRetry;
  return Move(d, give_up ? Event::kGiveUp : event, c, {DeploymentMessage(clock_, code, d, p)})
      .status();
}

Status Driver::FailFinal(const Deployment& d, Event event, const std::string& error) {
  Changes c;
  c.set_error = true;
  c.error = error.substr(0, 4096);
  return Move(d, event, c,
              {DeploymentMessage(clock_, core::msg::kAgentInstallFailed, d,
                                 {{"error", error.substr(0, 1024)}, {"program", d.program}})})
      .status();
}

Status Driver::OnWaiting(const Deployment& d, bool* busy) {
  const std::int64_t now = core::UnixMillis(clock_->Now());
  if (d.required() && d.deadline_ms && now > *d.deadline_ms) {
    return FailFinal(d, Event::kDeadlinePassed, "the deadline passed before it could install");
  }
  if (!d.required() && !d.requested) return Status::Ok();
  if (d.required() && now < d.start_ms) return Status::Ok();
  DEPOT_ASSIGN_OR_RETURN(bool done, state_->Succeeded(d.id, d.version));
  DEPOT_ASSIGN_OR_RETURN(bool in_use, state_->ContentInUse(d));
  if (done && in_use) {
    // Already done for this version (it came back to the policy): never again.
    return Move(d, Event::kAlreadySucceeded, {}, {}).status();
  }
  // Content a failed attempt may have changed is assembled afresh, taking what still
  // verifies from it.
  if (!in_use) content_->SetAside(d.package, d.version);
  DEPOT_ASSIGN_OR_RETURN(auto to,
                         Move(d, Event::kStart, {},
                              {DeploymentMessage(clock_, core::msg::kAgentDownloadStarted, d,
                                                 {{"bytes", std::to_string(d.policy_bytes)}})}));
  if (to) *busy = true;
  return Status::Ok();
}

Status Driver::OnDownloading(const Deployment& d, bool* busy) {
  *busy = true;
  if (auto o = downloader_->Take(d.id)) return FinishDownload(d, std::move(*o));
  if (downloader_->Holds(d.id)) return Status::Ok();
  const std::string dir = content_->Dir(d.package, d.version);
  auto exists = env_->Exists(dir);
  DEPOT_ASSIGN_OR_RETURN(bool in_use, state_->ContentInUse(d));
  if (exists.ok() && *exists && in_use) {
    // Content another deployment of this version put there: verified then, in use.
    auto manifest = env_->ReadFile(content_->ManifestPath(d.manifest_id), 512ull << 20);
    if (manifest.ok()) {
      DownloadOutcome o;
      o.result.manifest = std::move(*manifest);
      o.result.manifest_id = d.manifest_id;
      o.source = "local";
      return FinishDownload(d, std::move(o));
    }
    content_->SetAside(d.package, d.version);
  }
  downloader_->Start(d, dir, content_->SeedsFor(d), site_clock_);
  return Status::Ok();
}

Status Driver::FinishDownload(const Deployment& d, DownloadOutcome o) {
  for (const auto& e : o.events) state_->Post(e).IgnoreError();
  if (o.cancelled) return Status::Ok();  // the deployment changed or left the policy
  if (o.refused) return FailFinal(d, Event::kDownloadRefused, "refused: " + o.status.message());
  if (!o.status.ok())
    return Fail(d, Event::kDownloadFailed, "download failed: " + o.status.message(), std::nullopt,
                "");
  // A fetch hands over the programs of the manifest it verified; content found in
  // place comes with its stored manifest only.
  if (o.result.programs.empty()) {
    auto parsed = store::ParseManifest(o.result.manifest);
    if (parsed.ok()) o.result.programs = std::move(parsed->programs);
  }
  if (store::FindProgram(o.result.programs, d.program) == nullptr) {
    // Only programs inside the signed manifest ever run.
    env_->RemoveAll(content_->Dir(d.package, d.version)).IgnoreError();
    return FailFinal(d, Event::kDownloadRefused,
                     "program `" + d.program + "` is not in the signed manifest of " + d.package +
                         " version " + std::to_string(d.version));
  }
  DEPOT_RETURN_IF_ERROR(content_->SaveManifest(o.result.manifest_id, o.result.manifest));
  Changes c;
  c.downloaded =
      Changes::Downloaded{o.result.manifest_id, static_cast<std::int64_t>(o.result.bytes)};
  c.set_error = true;
  DEPOT_RETURN_IF_ERROR(
      Move(d, Event::kDownloaded, c,
           {DeploymentMessage(clock_, core::msg::kAgentDownloaded, d,
                              {{"source", o.source},
                               {"bytes_fetched", std::to_string(o.result.fetched_bytes)},
                               {"bytes_from_cache", std::to_string(o.result.cache_bytes)},
                               {"bytes_transferred", std::to_string(o.result.transfer_bytes)}})})
          .status());
  installer_->Remember(o.result.manifest_id, std::move(o.result.programs));
  core::CrashPoint("agent.download_recorded");
  content_->EnforceCacheLimit();
  return Status::Ok();
}

Status Driver::OnDownloaded(const Deployment& d, bool* busy) {
  const std::int64_t now = core::UnixMillis(clock_->Now());
  if (d.required() && d.deadline_ms && now > *d.deadline_ms) {
    return FailFinal(d, Event::kDeadlinePassed, "the deadline passed outside every window");
  }
  auto inside = core::InsideWindows(zones_, d.windows, now / 1000);
  if (!inside.ok()) return FailFinal(d, Event::kUnschedulable, inside.status().message());
  if (!*inside) return Status::Ok();
  const store::Program* program = installer_->ProgramOf(d.manifest_id, d.program);
  if (program == nullptr) {
    // Its manifest is gone or damaged: download again (what is here is reused).
    return Fail(d, Event::kDownloadFailed, "manifest of the download is missing; fetching again",
                std::nullopt, "");
  }
  Changes c;
  c.clear_run = true;
  DEPOT_ASSIGN_OR_RETURN(auto to, Move(d, Event::kInstallAllowed, c,
                                       {DeploymentMessage(clock_, core::msg::kAgentInstallStarted,
                                                          d, {{"program", d.program}})}));
  if (!to) return Status::Ok();
  *busy = true;
  return StartAttempt(d, *program);
}

Status Driver::StartAttempt(const Deployment& d, const store::Program& program) {
  Status s = installer_->Start(d, program);
  return s.ok() ? s : Fail(d, Event::kProgramRetry, s.message(), std::nullopt, "");
}

Status Driver::OnInstalling(const Deployment& d) {
  Verdict v = installer_->Check(d);
  switch (v.kind) {
    case Verdict::Kind::kRunning:
      return Status::Ok();
    case Verdict::Kind::kStart: {
      const store::Program* program = installer_->ProgramOf(d.manifest_id, d.program);
      if (program == nullptr)
        return Fail(d, Event::kOutcomeUnknown, "manifest missing", std::nullopt, "");
      return StartAttempt(d, *program);
    }
    case Verdict::Kind::kDone: {
      Status s = FinishProgram(d, v);
      if (v.kill) KillProgram(d.run_dir);
      return s;
    }
  }
  return Status::Ok();
}

Status Driver::FinishProgram(const Deployment& d, const Verdict& v) {
  if (v.exit_code) core::CrashPoint("agent.program_exited");
  switch (v.event) {
    case Event::kProgramSucceeded:
    case Event::kProgramRebootRequired: {
      const bool reboot = v.event == Event::kProgramRebootRequired;
      Changes c;
      c.set_exit = true;
      c.exit_code = v.exit_code;
      c.output = v.output;
      c.set_error = true;
      c.installed = true;
      DEPOT_RETURN_IF_ERROR(
          Move(d, v.event, c,
               {DeploymentMessage(clock_,
                                  reboot ? core::msg::kAgentInstallRebootRequired
                                         : core::msg::kAgentInstallSucceeded,
                                  d,
                                  {{"exit_code", std::to_string(v.exit_code.value_or(0))},
                                   {"program", d.program}})})
              .status());
      core::CrashPoint("agent.succeeded_recorded");
      retries_.erase(d.id);
      content_->RemoveOtherVersions(d.package, /*cache_chunks=*/true, BusyVersion(d.package));
      content_->EnforceCacheLimit();  // the previous version's chunks may have joined the cache
      return Status::Ok();
    }
    case Event::kProgramFailed: {
      Changes c;
      c.set_exit = true;
      c.exit_code = v.exit_code;
      c.output = v.output;
      c.set_error = true;
      c.error = v.error;
      std::map<std::string, std::string> p = {
          {"error", v.error}, {"program", d.program}, {"output", Tail(v.output, 1024)}};
      if (v.exit_code) p["exit_code"] = std::to_string(*v.exit_code);
      return Move(d, Event::kProgramFailed, c,
                  {DeploymentMessage(clock_, core::msg::kAgentInstallFailed, d, p)})
          .status();
    }
    default:  // retry, timed out, outcome unknown
      return Fail(d, v.event, v.error, v.exit_code, v.output);
  }
}

Status Driver::OnFailedRetry(const Deployment& d) {
  const std::int64_t now = core::UnixMillis(clock_->Now());
  if (d.required() && d.deadline_ms && now > *d.deadline_ms) {
    return FailFinal(d, Event::kDeadlinePassed, "the deadline passed while retrying");
  }
  if (d.attempts >= config_->max_attempts) {
    return FailFinal(d, Event::kGiveUp,
                     "gave up after " + std::to_string(d.attempts) + " attempts");
  }
  core::Backoff& retry = RetryOf(d);
  if (!retry.Due()) {
    // The wall clock jumped: keep what is shown and persisted honest.
    const std::int64_t due = core::UnixMillis(retry.DueWall());
    if (std::llabs(due - d.next_try_ms) > 60'000) state_->SetNextTry(d.id, due).IgnoreError();
    return Status::Ok();
  }
  return Move(d, Event::kRetryDue, {}, {}).status();
}

void Driver::Stop(const std::vector<std::int64_t>& ids) {
  for (std::int64_t id : ids) {
    downloader_->Cancel(id);
    retries_.erase(id);
  }
}

std::optional<std::int64_t> Driver::BusyVersion(const std::string& package) {
  std::int64_t id = 0, version = 0;
  if (!downloader_->Running(&id, &version)) return std::nullopt;
  auto d = state_->Get(id);
  if (!d.ok() || !d->has_value() || (*d)->package != package) return std::nullopt;
  return version;
}

Status Driver::Purge() {
  const std::int64_t cutoff =
      core::UnixMillis(clock_->Now()) - core::ToMillis(config_->purge_grace);
  // Never a program half-way, nor the content a download is writing.
  auto may_purge = [&](const Deployment& d) {
    return !installer_->Running(d) && !downloader_->Holds(d.id);
  };
  return content_->Purge(cutoff, may_purge,
                         [&](const std::string& package) { return BusyVersion(package); });
}

}  // namespace depot::agent
