// The life of one deployment on one agent, as an explicit state machine: a table of
// (state, event) -> state. Nothing else moves a deployment, so every path is visible
// here and tested in machine_test.cc.
//
//   waiting --Start--> downloading --Downloaded--> downloaded --InstallAllowed--> installing
//   installing --ProgramSucceeded/ProgramRebootRequired--> succeeded
//   installing --ProgramRetry/ProgramTimedOut/OutcomeUnknown--> failed_retry
//   installing --ProgramFailed--> failed_final
//   downloading --DownloadFailed--> failed_retry;  --DownloadRefused--> failed_final
//   failed_retry --RetryDue--> waiting;  failed_retry --GiveUp--> failed_final
//   waiting|downloaded|failed_retry --DeadlinePassed--> failed_final
//   waiting --AlreadySucceeded--> succeeded (never run twice);  downloaded --Unschedulable-->
//   failed_final any --NewVersion--> waiting (the policy names another version: start over)
//
// The agent persists each transition before it acts on the new state, so after a
// crash it resumes from the stored state (a download restarts from its cache; a
// program still running or finished while the agent was down is picked up, never
// started twice).
//
// Thread safety: pure functions.
#pragma once

#include <optional>
#include <string_view>

namespace depot::agent {

enum class State {
  kWaiting,
  kDownloading,
  kDownloaded,
  kInstalling,
  kSucceeded,
  kFailedRetry,
  kFailedFinal,
};

enum class Event {
  kStart,            // start time reached (and, for available ones, requested)
  kDownloaded,       // content verified and in place
  kDownloadFailed,   // every source failed for now
  kDownloadRefused,  // the signed content can never be installed (unsafe, no program)
  kInstallAllowed,   // inside a maintenance window (or there are none)
  kProgramSucceeded,
  kProgramRebootRequired,  // success, reboot required
  kProgramRetry,           // exit code in the manifest's retry list
  kProgramTimedOut,
  kProgramFailed,   // any other exit code
  kOutcomeUnknown,  // the agent's host went down while the program ran
  kRetryDue,
  kGiveUp,  // too many attempts
  kDeadlinePassed,
  kAlreadySucceeded,  // this deployment's program already succeeded for this version
  kUnschedulable,     // its windows cannot be evaluated here (unknown time zone)
  kNewVersion,        // keep last: tests enumerate the events up to it
};

// The state after `event` in `from`, or nullopt when the event does not apply there
// (the caller ignores it; nothing changes).
std::optional<State> Next(State from, Event event);

// Stable names, as stored in the agent's database and reported to the site.
std::string_view StateName(State s);
std::optional<State> ParseState(std::string_view name);
std::string_view EventName(Event e);

// The state as the site's deployment reports know it (both failed states are
// "failed"; the detail says whether a retry is scheduled).
std::string_view ReportedState(State s);

// Whether work is under way (the deployment's content is pinned in the cache).
bool IsActive(State s);
// Whether nothing more happens without a new version or a retry.
bool IsTerminal(State s);

}  // namespace depot::agent
