#include "agent/program.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <chrono>
#include <thread>

#include "core/env.h"
#include "core/testing.h"

namespace depot::agent {
namespace {

RunStatus WaitUntilNotRunning(const std::string& run_dir) {
  for (int i = 0; i < 500; ++i) {
    ReapChildren();
    auto st = CheckProgram(run_dir);
    EXPECT_TRUE(st.ok());
    if (st.ok() && st->state != RunState::kRunning) return *st;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ADD_FAILURE() << "still running: " << run_dir;
  return {};
}

TEST(ProgramTest, RunsInItsDirectoryWithEnvironmentAndKeepsExitCodeAndOutput) {
  testing::TempDir dir;
  ::mkdir(dir.Sub("work").c_str(), 0755);
  ProgramSpec spec;
  spec.command = "pwd; echo \"pkg=$DEPOT_PACKAGE\"; exit 7";
  spec.work_dir = dir.Sub("work");
  spec.extra_env = {"DEPOT_PACKAGE=tools"};
  auto pid = StartProgram(dir.Sub("run1"), spec);
  ASSERT_TRUE(pid.ok()) << pid.status().ToString();
  RunStatus st = WaitUntilNotRunning(dir.Sub("run1"));
  EXPECT_EQ(st.state, RunState::kExited);
  EXPECT_EQ(st.exit_code, 7);
  std::string out = OutputTail(dir.Sub("run1"));
  EXPECT_NE(out.find(dir.Sub("work")), std::string::npos) << out;
  EXPECT_NE(out.find("pkg=tools"), std::string::npos) << out;
  // Asking again changes nothing: the attempt is over.
  EXPECT_EQ(CheckProgram(dir.Sub("run1"))->state, RunState::kExited);
}

TEST(ProgramTest, OutputTailKeepsTheLastBytes) {
  testing::TempDir dir;
  ProgramSpec spec;
  spec.command = "i=0; while [ $i -lt 2000 ]; do echo line$i; i=$((i+1)); done";
  spec.work_dir = dir.path();
  ASSERT_TRUE(StartProgram(dir.Sub("run"), spec).ok());
  WaitUntilNotRunning(dir.Sub("run"));
  std::string out = OutputTail(dir.Sub("run"), 4096);
  EXPECT_EQ(out.size(), 4096u);
  EXPECT_NE(out.find("line1999\n"), std::string::npos);
}

TEST(ProgramTest, RunningProgramIsSeenRunningAndCanBeKilled) {
  testing::TempDir dir;
  ProgramSpec spec;
  spec.command = "sleep 30";
  spec.work_dir = dir.path();
  ASSERT_TRUE(StartProgram(dir.Sub("run"), spec).ok());
  // Running once the wrapper has claimed the attempt.
  RunState seen = RunState::kNeverStarted;
  for (int i = 0; i < 200 && seen != RunState::kRunning; ++i) {
    struct stat sb;
    if (::stat(dir.Sub("run/started").c_str(), &sb) == 0)
      seen = CheckProgram(dir.Sub("run"))->state;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ASSERT_EQ(seen, RunState::kRunning);
  KillProgram(dir.Sub("run"));
  RunStatus st = WaitUntilNotRunning(dir.Sub("run"));
  // Killed: it started, and no exit code was written.
  EXPECT_EQ(st.state, RunState::kVanished);
}

TEST(ProgramTest, AProgramKilledRightAfterItsStartIsKilled) {
  // A timeout judged at once (the agent's clock jumped, or the host is slow to start
  // the wrapper): the kill must not depend on the wrapper having run yet.
  testing::TempDir dir;
  ProgramSpec spec;
  spec.command = "sleep 30";
  spec.work_dir = dir.path();
  ASSERT_TRUE(StartProgram(dir.Sub("run"), spec).ok());
  KillProgram(dir.Sub("run"));
  RunStatus st = WaitUntilNotRunning(dir.Sub("run"));
  EXPECT_NE(st.state, RunState::kExited);
}

TEST(ProgramTest, AnAttemptThatNeverStartedIsToldApartFromOneThatVanished) {
  testing::TempDir dir;
  // The agent died after making the run directory, before a wrapper existed.
  ::mkdir(dir.Sub("run").c_str(), 0700);
  auto st = CheckProgram(dir.Sub("run"));
  ASSERT_TRUE(st.ok());
  EXPECT_EQ(st->state, RunState::kNeverStarted);
  // The command started (RUN/started), but nothing holds the lock and no exit code
  // was written: its host went away.
  ::mkdir(dir.Sub("run/started").c_str(), 0700);
  EXPECT_EQ(CheckProgram(dir.Sub("run"))->state, RunState::kVanished);
  ProgramSpec spec;
  spec.command = "echo once >> ../ran";
  ::mkdir(dir.Sub("work").c_str(), 0700);
  spec.work_dir = dir.Sub("work");
  EXPECT_FALSE(StartProgram(dir.Sub("run"), spec).ok());  // an existing run directory is refused
  ASSERT_TRUE(StartProgram(dir.Sub("run2"), spec).ok());
  EXPECT_EQ(WaitUntilNotRunning(dir.Sub("run2")).state, RunState::kExited);
  auto ran = core::Env::Default()->ReadFile(dir.Sub("ran"), 1024);
  ASSERT_TRUE(ran.ok());
  EXPECT_EQ(*ran, "once\n");
}

TEST(ProgramTest, MissingRunDirectoryIsAnError) {
  EXPECT_FALSE(CheckProgram("/nonexistent/run").ok());
}

}  // namespace
}  // namespace depot::agent
