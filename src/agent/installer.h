// Running a deployment's program and judging its outcome (internal to the agent
// component): the program comes only from the signed manifest the agent holds; each
// attempt has its own run directory, recorded before the program starts, so a killed
// agent never runs it twice (program.h); the exit code is mapped by the manifest's
// lists; a program over its timeout (on the monotonic clock) is killed.
//
// Thread safety: the driver's thread only.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "agent/content.h"
#include "agent/machine.h"
#include "agent/state_store.h"
#include "core/clock.h"
#include "store/manifest.h"

namespace depot::agent {

// What an attempt came to, as the driver applies it.
struct Verdict {
  enum class Kind {
    kRunning,  // nothing to do yet
    kStart,    // no attempt under way: start one
    kDone,     // `event` with the fields below
  };
  Kind kind = Kind::kRunning;
  Event event = Event::kProgramFailed;
  std::string error;  // for failures
  std::optional<int> exit_code;
  std::string output;  // the tail of the program's output
  bool kill = false;   // kill what is left of the attempt
};

// How the manifest's exit-code lists judge `code`: kProgramSucceeded,
// kProgramRebootRequired, kProgramRetry or kProgramFailed.
Event MapExitCode(const store::Program& program, int code);

class Installer {
 public:
  // None of the pointers is owned.
  Installer(core::Env* env, core::Clock* clock, StateStore* state, ContentStore* content,
            std::string data_dir);

  // The program `name` of held version `manifest_id`, or nullptr when its manifest is
  // missing or damaged or has no such program. Cached per manifest: a running program
  // is checked several times a second, and a large manifest is megabytes to parse.
  const store::Program* ProgramOf(const std::string& manifest_id, const std::string& name);
  void Remember(const std::string& manifest_id, std::vector<store::Program> programs);

  // Starts an attempt of `program` for `d`: a new run directory, recorded first.
  core::Status Start(const Deployment& d, const store::Program& program);
  // Where d's attempt stands.
  Verdict Check(const Deployment& d);
  // Whether d's program is running now (such a deployment is never purged half-way).
  bool Running(const Deployment& d) const;

 private:
  core::Env* env_;
  core::Clock* clock_;
  StateStore* state_;
  ContentStore* content_;
  std::string data_dir_;
  std::map<std::string, std::vector<store::Program>> programs_;
  // When this process started each deployment's attempt (monotonic), for timeouts.
  std::map<std::int64_t, core::MonoTime> started_;
};

}  // namespace depot::agent
