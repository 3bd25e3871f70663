#include "agent/installer.h"

#include <algorithm>

#include "agent/program.h"
#include "core/crash_point.h"
#include "core/log.h"
#include "core/path.h"
#include "core/random.h"

namespace depot::agent {

using core::Status;

Event MapExitCode(const store::Program& program, int code) {
  auto in = [code](const std::vector<int>& v) {
    return std::find(v.begin(), v.end(), code) != v.end();
  };
  if (in(program.success_codes)) return Event::kProgramSucceeded;
  if (in(program.reboot_codes)) return Event::kProgramRebootRequired;
  if (in(program.retry_codes)) return Event::kProgramRetry;
  return Event::kProgramFailed;
}

Installer::Installer(core::Env* env, core::Clock* clock, StateStore* state, ContentStore* content,
                     std::string data_dir)
    : env_(env), clock_(clock), state_(state), content_(content), data_dir_(std::move(data_dir)) {}

const store::Program* Installer::ProgramOf(const std::string& manifest_id,
                                           const std::string& name) {
  auto it = programs_.find(manifest_id);
  if (it == programs_.end()) {
    auto m = content_->LoadManifest(manifest_id);
    if (!m.ok()) return nullptr;
    Remember(manifest_id, std::move(m->programs));
    it = programs_.find(manifest_id);
  }
  return store::FindProgram(it->second, name);
}

void Installer::Remember(const std::string& manifest_id, std::vector<store::Program> programs) {
  if (programs_.size() > 64) programs_.clear();
  programs_[manifest_id] = std::move(programs);
}

Status Installer::Start(const Deployment& d, const store::Program& program) {
  std::string run_dir =
      core::JoinPath(data_dir_, "runs/" + std::to_string(d.id) + "-" + std::to_string(d.version) +
                                    "-" + core::RandomHex(6));
  DEPOT_RETURN_IF_ERROR(state_->SetRun(d.id, run_dir, core::UnixMillis(clock_->Now())));
  started_[d.id] = clock_->Monotonic();
  ProgramSpec spec;
  spec.command = program.command;
  spec.work_dir = content_->Dir(d.package, d.version);
  spec.extra_env = {"DEPOT_PACKAGE=" + d.package, "DEPOT_VERSION=" + std::to_string(d.version),
                    "DEPOT_DEPLOYMENT=" + std::to_string(d.id), "DEPOT_PROGRAM=" + program.name};
  DEPOT_RETURN_IF_ERROR(env_->CreateDirs(core::JoinPath(data_dir_, "runs"), 0700));
  DEPOT_RETURN_IF_ERROR(StartProgram(run_dir, spec).status());
  core::Log(core::LogLevel::kInfo, "agent.program_started",
            {{"deployment", std::to_string(d.id)}, {"program", program.name}, {"run", run_dir}});
  core::CrashPoint("agent.program_started");
  return Status::Ok();
}

Verdict Installer::Check(const Deployment& d) {
  Verdict v;
  const store::Program* program = ProgramOf(d.manifest_id, d.program);
  auto unknown = [&](std::string error, std::optional<int> code = std::nullopt,
                     std::string output = "") {
    v.kind = Verdict::Kind::kDone;
    v.event = Event::kOutcomeUnknown;
    v.error = std::move(error);
    v.exit_code = code;
    v.output = std::move(output);
    return v;
  };
  if (d.run_dir.empty()) {
    // Stopped between recording "installing" and starting the attempt.
    if (program == nullptr) return unknown("manifest missing");
    v.kind = Verdict::Kind::kStart;
    return v;
  }
  auto st = CheckProgram(d.run_dir);
  if (!st.ok()) {
    if (program == nullptr) return unknown(st.status().message());
    v.kind = Verdict::Kind::kStart;  // the run directory was never made: the attempt never started
    return v;
  }
  std::string output = OutputTail(d.run_dir);
  switch (st->state) {
    case RunState::kRunning: {
      std::int64_t timeout_ms = program ? std::int64_t{program->timeout_s} * 1000 : 3600 * 1000;
      // On the monotonic clock when this process started it; a program left running
      // by an earlier process has only its wall start time.
      auto started = started_.find(d.id);
      std::int64_t ran_ms =
          started != started_.end()
              ? core::ToMillis(clock_->Monotonic() - started->second)
              : std::max<std::int64_t>(0, core::UnixMillis(clock_->Now()) - d.run_started_ms);
      if (ran_ms <= timeout_ms) return v;
      v.kind = Verdict::Kind::kDone;
      v.event = Event::kProgramTimedOut;
      v.error = "timed out after " + std::to_string(timeout_ms / 1000) + " s";
      v.output = output;
      v.kill = true;
      return v;
    }
    case RunState::kExited:
      if (program == nullptr)
        return unknown("manifest missing after the program ran", st->exit_code, output);
      v.kind = Verdict::Kind::kDone;
      v.event = MapExitCode(*program, st->exit_code);
      v.exit_code = st->exit_code;
      v.output = output;
      if (v.event == Event::kProgramRetry) {
        v.error = "exit code " + std::to_string(st->exit_code) + " asks for a retry";
      } else if (v.event == Event::kProgramFailed) {
        v.error = "exit code " + std::to_string(st->exit_code);
      }
      return v;
    case RunState::kNeverStarted:
      if (program == nullptr) return unknown("manifest missing");
      v.kind = Verdict::Kind::kStart;
      return v;
    case RunState::kVanished:
      return unknown("the program's process vanished without an exit code (host restart?)",
                     std::nullopt, output);
  }
  return v;
}

bool Installer::Running(const Deployment& d) const {
  if (d.state != State::kInstalling || d.run_dir.empty()) return false;
  auto st = CheckProgram(d.run_dir);
  return st.ok() && st->state == RunState::kRunning;
}

}  // namespace depot::agent
