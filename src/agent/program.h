// Running a package's install program so that it runs at most once per attempt, even
// when the agent is killed while it runs.
//
// The agent does not run the program itself: it starts a small /bin/sh wrapper in its
// own session (so it outlives the agent) inside a run directory that belongs to one
// attempt. Before the wrapper exists, the agent takes an exclusive flock on RUN/lock
// and hands that descriptor to it, so from then until the wrapper exits the lock is
// held -- "lock free" means "no wrapper alive", with no window in between. The
// wrapper
//   1. marks the attempt with mkdir RUN/started (exits if it exists);
//   2. records its pid, runs the command with /bin/sh -c in the working directory
//      (stdout and stderr to RUN/output; the command does not inherit the lock);
//   3. writes the exit code to RUN/exit (temp file, fsync, rename).
// A restarted agent reads RUN/exit when it is there; otherwise a held lock means the
// program is still running, and a free one means it never started (no RUN/started:
// safe to start a new attempt) or vanished with its host (outcome unknown).
//
// Thread safety: functions are thread-safe; one attempt is driven by one thread.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/status.h"

namespace depot::agent {

struct ProgramSpec {
  std::string command;                 // from the signed manifest, run with /bin/sh -c
  std::string work_dir;                // the version's content directory
  std::vector<std::string> extra_env;  // "NAME=value", added to the agent's environment
};

// Creates `run_dir` (must not exist) and starts the wrapper in it. Returns its pid (a
// child of this process until it exits; ReapChildren collects it).
core::Result<int> StartProgram(const std::string& run_dir, const ProgramSpec& spec);

enum class RunState {
  kRunning,       // the wrapper holds its lock
  kExited,        // exit_code is valid
  kNeverStarted,  // the command never started, and nothing is left that could start it
  kVanished,      // the command started, but its wrapper is gone without an exit code
};

struct RunStatus {
  RunState state = RunState::kRunning;
  int exit_code = 0;
};

// Where the attempt in `run_dir` stands. IOError on an unreadable run directory.
core::Result<RunStatus> CheckProgram(const std::string& run_dir);

// Kills the attempt's whole process group (SIGKILL) if it is still running.
void KillProgram(const std::string& run_dir);

// The last `max_bytes` of the program's output ("" when there is none).
std::string OutputTail(const std::string& run_dir, std::size_t max_bytes = 4096);

// Collects exited children so they do not linger as zombies. Call periodically.
void ReapChildren();

}  // namespace depot::agent
