#include "agent/machine.h"

#include <array>

namespace depot::agent {

namespace {

struct Transition {
  State from;
  Event event;
  State to;
};

// The whole behaviour. kNewVersion is added for every state below.
constexpr std::array kTable = {
    Transition{State::kWaiting, Event::kStart, State::kDownloading},
    Transition{State::kWaiting, Event::kDeadlinePassed, State::kFailedFinal},
    Transition{State::kWaiting, Event::kAlreadySucceeded, State::kSucceeded},
    Transition{State::kDownloading, Event::kDownloaded, State::kDownloaded},
    Transition{State::kDownloading, Event::kDownloadFailed, State::kFailedRetry},
    Transition{State::kDownloading, Event::kDownloadRefused, State::kFailedFinal},
    Transition{State::kDownloading, Event::kGiveUp, State::kFailedFinal},
    Transition{State::kDownloaded, Event::kInstallAllowed, State::kInstalling},
    // Its manifest went missing before the install: download again.
    Transition{State::kDownloaded, Event::kDownloadFailed, State::kFailedRetry},
    Transition{State::kDownloaded, Event::kGiveUp, State::kFailedFinal},
    Transition{State::kDownloaded, Event::kDeadlinePassed, State::kFailedFinal},
    Transition{State::kDownloaded, Event::kUnschedulable, State::kFailedFinal},
    Transition{State::kInstalling, Event::kProgramSucceeded, State::kSucceeded},
    Transition{State::kInstalling, Event::kProgramRebootRequired, State::kSucceeded},
    Transition{State::kInstalling, Event::kProgramRetry, State::kFailedRetry},
    Transition{State::kInstalling, Event::kProgramTimedOut, State::kFailedRetry},
    Transition{State::kInstalling, Event::kOutcomeUnknown, State::kFailedRetry},
    Transition{State::kInstalling, Event::kProgramFailed, State::kFailedFinal},
    Transition{State::kInstalling, Event::kGiveUp, State::kFailedFinal},
    Transition{State::kFailedRetry, Event::kRetryDue, State::kWaiting},
    Transition{State::kFailedRetry, Event::kGiveUp, State::kFailedFinal},
    Transition{State::kFailedRetry, Event::kDeadlinePassed, State::kFailedFinal},
};

constexpr std::array<std::string_view, 7> kStateNames = {
    "waiting",   "downloading",  "downloaded",  "installing",
    "succeeded", "failed_retry", "failed_final"};

}  // namespace

std::optional<State> Next(State from, Event event) {
  // A program that is running is never abandoned for a new version: the new one
  // starts once this one has an outcome.
  if (event == Event::kNewVersion) {
    if (from == State::kInstalling) return std::nullopt;
    return State::kWaiting;
  }
  for (const Transition& t : kTable) {
    if (t.from == from && t.event == event) return t.to;
  }
  return std::nullopt;
}

std::string_view StateName(State s) { return kStateNames[static_cast<std::size_t>(s)]; }

std::optional<State> ParseState(std::string_view name) {
  for (std::size_t i = 0; i < kStateNames.size(); ++i) {
    if (kStateNames[i] == name) return static_cast<State>(i);
  }
  return std::nullopt;
}

std::string_view EventName(Event e) {
  static constexpr std::array<std::string_view, 17> kNames = {"start",
                                                              "downloaded",
                                                              "download_failed",
                                                              "download_refused",
                                                              "install_allowed",
                                                              "program_succeeded",
                                                              "program_reboot_required",
                                                              "program_retry",
                                                              "program_timed_out",
                                                              "program_failed",
                                                              "outcome_unknown",
                                                              "retry_due",
                                                              "give_up",
                                                              "deadline_passed",
                                                              "already_succeeded",
                                                              "unschedulable",
                                                              "new_version"};
  return kNames[static_cast<std::size_t>(e)];
}

std::string_view ReportedState(State s) {
  switch (s) {
    case State::kFailedRetry:
    case State::kFailedFinal:
      return "failed";
    default:
      return StateName(s);
  }
}

bool IsActive(State s) {
  return s == State::kDownloading || s == State::kDownloaded || s == State::kInstalling;
}

bool IsTerminal(State s) { return s == State::kSucceeded || s == State::kFailedFinal; }

}  // namespace depot::agent
