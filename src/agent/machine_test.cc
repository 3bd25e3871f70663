#include "agent/machine.h"

#include <gtest/gtest.h>

#include <set>

namespace depot::agent {
namespace {

constexpr State kAllStates[] = {State::kWaiting,    State::kDownloading, State::kDownloaded,
                                State::kInstalling, State::kSucceeded,   State::kFailedRetry,
                                State::kFailedFinal};

std::vector<Event> AllEvents() {
  std::vector<Event> out;
  for (int e = 0; e <= static_cast<int>(Event::kNewVersion); ++e)
    out.push_back(static_cast<Event>(e));
  return out;
}

TEST(MachineTest, HappyPathReachesSucceeded) {
  State s = State::kWaiting;
  for (Event e :
       {Event::kStart, Event::kDownloaded, Event::kInstallAllowed, Event::kProgramSucceeded}) {
    auto n = Next(s, e);
    ASSERT_TRUE(n.has_value()) << StateName(s) << " + " << EventName(e);
    s = *n;
  }
  EXPECT_EQ(s, State::kSucceeded);
}

TEST(MachineTest, SucceededOnlyLeavesForANewVersion) {
  // The rule that keeps a program from running twice: nothing but a new version
  // moves a succeeded deployment.
  for (Event e : AllEvents()) {
    auto n = Next(State::kSucceeded, e);
    if (e == Event::kNewVersion) {
      EXPECT_EQ(n, State::kWaiting);
    } else {
      EXPECT_FALSE(n.has_value()) << EventName(e);
    }
  }
}

TEST(MachineTest, ProgramOutcomesOnlyApplyWhileInstalling) {
  for (Event e : {Event::kProgramSucceeded, Event::kProgramRebootRequired, Event::kProgramRetry,
                  Event::kProgramTimedOut, Event::kProgramFailed, Event::kOutcomeUnknown}) {
    for (State s : kAllStates) {
      EXPECT_EQ(Next(s, e).has_value(), s == State::kInstalling)
          << StateName(s) << " + " << EventName(e);
    }
  }
  EXPECT_EQ(Next(State::kInstalling, Event::kProgramRetry), State::kFailedRetry);
  EXPECT_EQ(Next(State::kInstalling, Event::kProgramFailed), State::kFailedFinal);
  EXPECT_EQ(Next(State::kInstalling, Event::kProgramRebootRequired), State::kSucceeded);
}

TEST(MachineTest, RunningProgramIsNotAbandonedForANewVersion) {
  EXPECT_FALSE(Next(State::kInstalling, Event::kNewVersion).has_value());
  for (State s : kAllStates) {
    if (s != State::kInstalling) {
      EXPECT_EQ(Next(s, Event::kNewVersion), State::kWaiting) << StateName(s);
    }
  }
}

TEST(MachineTest, InstallingNeedsADownloadAndStartNeedsWaiting) {
  for (State s : kAllStates) {
    EXPECT_EQ(Next(s, Event::kInstallAllowed).has_value(), s == State::kDownloaded) << StateName(s);
    EXPECT_EQ(Next(s, Event::kStart).has_value(), s == State::kWaiting) << StateName(s);
  }
}

TEST(MachineTest, AlreadySucceededSkipsStraightToSucceededFromWaitingOnly) {
  for (State s : kAllStates) {
    EXPECT_EQ(Next(s, Event::kAlreadySucceeded).has_value(), s == State::kWaiting) << StateName(s);
  }
  EXPECT_EQ(Next(State::kWaiting, Event::kAlreadySucceeded), State::kSucceeded);
  EXPECT_EQ(Next(State::kDownloaded, Event::kUnschedulable), State::kFailedFinal);
}

TEST(MachineTest, RetriesReturnToWaitingOrGiveUp) {
  EXPECT_EQ(Next(State::kFailedRetry, Event::kRetryDue), State::kWaiting);
  EXPECT_EQ(Next(State::kFailedRetry, Event::kGiveUp), State::kFailedFinal);
  EXPECT_FALSE(Next(State::kFailedFinal, Event::kRetryDue).has_value());
  EXPECT_FALSE(Next(State::kInstalling, Event::kDeadlinePassed).has_value());
}

TEST(MachineTest, NamesRoundTripAndReportedStatesAreTheSites) {
  std::set<std::string_view> site = {"waiting",    "downloading", "downloaded",
                                     "installing", "succeeded",   "failed"};
  for (State s : kAllStates) {
    EXPECT_EQ(ParseState(StateName(s)), s);
    EXPECT_TRUE(site.count(ReportedState(s))) << StateName(s);
  }
  EXPECT_FALSE(ParseState("bogus").has_value());
  std::set<std::string_view> names;
  for (Event e : AllEvents()) names.insert(EventName(e));
  EXPECT_EQ(names.size(), AllEvents().size());
}

}  // namespace
}  // namespace depot::agent
